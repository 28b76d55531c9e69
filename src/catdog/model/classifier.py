"""backbone + head -> one Keras classifier (raw RGB 0..255 in, probabilities out), and the freeze /
unfreeze helpers for the two training phases.

Follows the Keras transfer-learning guide, https://keras.io/guides/transfer_learning/ :
- phase 1 freezes the backbone (`trainable = False`) and trains only the new head;
- phase 2 unfreezes (part of) the backbone and trains with a very low learning rate;
- the backbone is CALLED with `training=False`, so its BatchNormalization layers stay in inference mode
  even when unfrozen ("otherwise the updates applied to the non-trainable weights will suddenly destroy
  what the model has learned"). BN layers are also kept non-trainable, as in the guide's EfficientNet
  fine-tuning example.
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path

from catdog.data.decode import as_size
from catdog.errors import ConfigError, ModelError
from catdog.model.registry import BackboneEntry

POOL_NAME = "pool"
_FIXED_SUFFIX = "_preprocess"  # preprocessing layers with weights (caffe) are never trained


def resolve_weights(entry: BackboneEntry, weights: str | None) -> str:
    """None -> the entry's default; checks the value fits the backbone. Returns "imagenet", "none", "file" or a path."""
    if weights is None:
        return entry.default_weights
    if entry.is_file:
        if weights not in ("file", "imagenet"):
            raise ConfigError(f"--weights {weights}: a model-file backbone ({entry.name}) brings its own weights; "
                              "leave --weights out")
        return "file"
    if weights == "imagenet" and entry.weights_file is None:
        raise ConfigError(f"--weights imagenet: backbone {entry.name} has no ImageNet weights; use none or a file")
    if weights not in ("imagenet", "none") and not Path(weights).is_file():
        raise ConfigError(f"--weights {weights}: not 'imagenet', 'none' or an existing weights file")
    return weights


def check_image_size(entry: BackboneEntry, image_size) -> tuple[int, int]:
    h, w = as_size(image_size)
    if entry.fixed_size is not None and (h, w) != tuple(entry.fixed_size):
        fh, fw = entry.fixed_size
        raise ConfigError(f"--image-size {h}x{w}: backbone {entry.name} takes {fh}x{fw} images only (its input size "
                          "is fixed); leave --image-size out" + (f" or pass {fh}" if fh == fw else ""))
    if min(h, w) < entry.min_size:
        raise ConfigError(f"--image-size {h}x{w} is too small for backbone {entry.name} (min {entry.min_size})")
    return h, w


def keras_models_dir() -> Path:
    """Where keras.utils.get_file caches application weights ($KERAS_HOME or ~/.keras, then models/)."""
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    return Path(home) / "models"


def build_backbone(entry: BackboneEntry, weights: str, image_size):
    """The backbone model: raw RGB 0..255 (H, W, 3) -> feature map (or pooled features for some files)."""
    h, w = check_image_size(entry, image_size)
    keras_weights = {"none": None, "file": None}.get(weights, weights)
    try:
        return entry.build((h, w, 3), keras_weights)
    except Exception as e:  # noqa: BLE001 - re-raised below unless offline or a bad weights file
        if weights == "imagenet" and entry.weights_file and not (keras_models_dir() / entry.weights_file).is_file():
            url = re.search(r"https?://\S+?(?=:?\s|:?$)", str(e))
            source = f" (from {url.group(0)})" if url else ""
            raise ModelError(
                f"cannot download ImageNet weights for {entry.name} (offline?): put {entry.weights_file}{source} at "
                f"{keras_models_dir() / entry.weights_file}, or use --weights none|PATH"
            ) from e
        if weights not in ("imagenet", "none", "file"):  # a user's weights file: name it, no traceback
            reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise ModelError(f"--weights {weights}: cannot load into backbone {entry.name} ({reason})") from e
        raise


def pooled(backbone, x):
    """Call the backbone in inference mode and pool a feature map to (N, C)."""
    import keras

    x = backbone(x, training=False)
    if len(x.shape) == 4:
        x = keras.layers.GlobalAveragePooling2D(name=POOL_NAME)(x)
    return x


def feature_dim(backbone) -> int:
    return int(backbone.output.shape[-1])


def feature_extractor(backbone, image_size):
    """raw images -> pooled features: the function the feature cache runs once per image."""
    import keras

    h, w = as_size(image_size)
    inputs = keras.Input((h, w, 3), name="image")
    return keras.Model(inputs, pooled(backbone, inputs), name="feature_extractor")


def build_classifier(backbone, head, image_size):
    """backbone (training=False) -> global average pooling -> the head's own layers (shared, not copied).

    The result matches the run-folder contract: input float32 (None, H, W, 3) raw 0..255; a Dense named
    "logits"; the final activation named "probs".
    """
    import keras

    h, w = as_size(image_size)
    inputs = keras.Input((h, w, 3), name="image")
    x = pooled(backbone, inputs)
    for layer in head.layers[1:]:
        x = layer(x)
    return keras.Model(inputs, x, name="classifier")


def get_backbone_layer(classifier):
    """The nested backbone model inside a classifier built by `build_classifier`."""
    import keras

    models = [layer for layer in classifier.layers if isinstance(layer, keras.Model)]
    if len(models) != 1:
        raise ModelError(f"classifier {classifier.name}: expected one nested backbone model, found {len(models)}")
    return models[0]


def leaf_layers(model) -> list:
    """All non-container layers of a (possibly nested) model, input to output."""
    import keras

    out = []
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            out.extend(leaf_layers(layer))
        elif not isinstance(layer, keras.layers.InputLayer):
            out.append(layer)
    return out


def pin_inference_mode(backbone) -> int:
    """Make the backbone's stochastic layers identities, as `training=False` intends; returns how many.

    Keras 3 functional models pass the outer call's `training=True` (from `fit`) on to nested models,
    overriding the `backbone(x, training=False)` recorded in the graph (checked with Keras 3.15). So the
    guide's inference mode is pinned in the layers themselves: dropout-like layers get rate 0 (what they
    do at inference), and BatchNormalization layers are kept non-trainable by `freeze`/`unfreeze`
    (Keras 3 runs a non-trainable BN on its moving statistics). Without this, EfficientNetV2's
    stochastic-depth Dropout would be active while the frozen phase runs on the fly, and features would
    differ from the cached ones.
    """
    import keras

    stochastic = (keras.layers.Dropout, keras.layers.SpatialDropout1D, keras.layers.SpatialDropout2D,
                  keras.layers.SpatialDropout3D, keras.layers.GaussianDropout, keras.layers.GaussianNoise,
                  keras.layers.AlphaDropout)
    pinned = 0
    for layer in leaf_layers(backbone):
        if isinstance(layer, stochastic):
            if isinstance(layer, keras.layers.GaussianNoise):
                layer.stddev = 0.0
            else:
                layer.rate = 0.0
            pinned += 1
    return pinned


def freeze(backbone) -> None:
    """Phase 1: nothing in the backbone trains."""
    backbone.trainable = False


def unfreeze(backbone, amount: int | float) -> int:
    """Phase 2: unfreeze the top `amount` layers (int) or that fraction of layers (float in (0, 1]).

    BatchNormalization and preprocessing layers stay frozen. Returns the number of layers with weights
    that will now train. The caller must re-compile the model for this to take effect.
    """
    import keras

    layers = leaf_layers(backbone)
    if isinstance(amount, bool) or amount < 0:
        raise ConfigError(f"--unfreeze must be a layer count >= 0 or a fraction in (0, 1]; got {amount!r}")
    if isinstance(amount, float):
        if not 0 < amount <= 1:
            raise ConfigError(f"--unfreeze fraction must be in (0, 1]; got {amount}")
        count = math.ceil(amount * len(layers))
    else:
        count = min(int(amount), len(layers))
    backbone.trainable = True  # sets every nested layer; re-freeze all but the top `count` below
    unfrozen = 0
    for index, layer in enumerate(layers):
        train_it = (index >= len(layers) - count
                    and not isinstance(layer, keras.layers.BatchNormalization)
                    and not layer.name.endswith(_FIXED_SUFFIX))
        layer.trainable = train_it
        unfrozen += int(train_it and bool(layer.weights))
    return unfrozen
