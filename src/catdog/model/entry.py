"""A backbone entry and the decorator that registers it: what backbones.py needs, apart from the lookups.

Apart from registry.py (which lists and looks up entries, importing backbones.py to fill the table)
so that backbones.py can register its entries without importing the registry back.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

WEIGHT_CHOICES = ("imagenet", "none")  # or a path to a weights file


@dataclass(frozen=True)
class BackboneEntry:
    """What catdog needs to know about a backbone besides how to build it."""

    name: str  # registry name, or the model file path for file backbones
    build: Callable  # (input_shape (h, w, 3), weights: None | "imagenet" | path) -> keras.Model
    default_size: int  # the native training resolution
    min_size: int  # smallest height/width the architecture accepts
    feature_dim: int | None  # channels of the output; None = read from the model (file backbones)
    weights_file: str | None = None  # file name Keras' get_file caches in ~/.keras/models for "imagenet"
    from_scratch: bool = False  # trained end to end (no frozen phase, no feature cache), e.g. small-cnn
    is_file: bool = False  # a saved .keras model used as a feature extractor
    fixed_size: tuple[int, int] | None = None  # a file whose input takes this (height, width) only

    @property
    def default_weights(self) -> str:
        if self.is_file:
            return "file"
        return "none" if self.from_scratch or self.weights_file is None else "imagenet"


_REGISTRY: dict[str, BackboneEntry] = {}


def register_backbone(*, default_size: int, min_size: int, feature_dim: int, weights_file: str | None = None,
                      from_scratch: bool = False, name: str | None = None):
    """Decorator: the builder function's name (or `name=`) becomes the public backbone name."""

    def wrap(fn: Callable) -> Callable:
        key = name or fn.__name__
        if key in _REGISTRY:
            raise ValueError(f"backbone {key!r} registered twice")
        _REGISTRY[key] = BackboneEntry(key, fn, default_size, min_size, feature_dim, weights_file, from_scratch)
        return fn

    return wrap
