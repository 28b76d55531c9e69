"""Training-time augmentation as plain functions built from config (like timm's `create_transform`).

`build_augment(cfg)` returns one function image -> image on float32 0..255 (H, W, 3), the form
`catdog.data.load(..., augment=...)` applies per image to the training split only. Every transform can
be switched off (flip=False, or a strength of 0; crop_scale=1.0), and `build_augment` returns None when
all are off. The output always has the input's shape and stays in 0..255.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass

from catdog._tf import tf


@dataclass(frozen=True)
class AugmentConfig:
    flip: bool = True  # random left-right flip: cats and dogs have no handedness
    brightness: float = 0.1  # add a uniform delta in [-x, x] * 255; 0 = off
    contrast: float = 0.1  # scale deviations from the mean by a factor in [1 - x, 1 + x]; 0 = off
    saturation: float = 0.1  # scale saturation by a factor in [1 - x, 1 + x]; 0 = off
    hue: float = 0.02  # rotate hue by up to x of the colour wheel (max 0.5); 0 = off
    crop_scale: float = 0.7  # random resized crop keeps an area fraction in [x, 1], resized back; 1.0 = off

    def __post_init__(self):
        for name in ("brightness", "contrast", "saturation"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"augment {name} must be in [0, 1]; got {getattr(self, name)}")
        if not 0 <= self.hue <= 0.5:
            raise ValueError(f"augment hue must be in [0, 0.5]; got {self.hue}")
        if not 0.05 <= self.crop_scale <= 1:
            raise ValueError(f"augment crop_scale must be in [0.05, 1]; got {self.crop_scale}")

    def is_off(self) -> bool:
        return (not self.flip and self.brightness == 0 and self.contrast == 0 and self.saturation == 0
                and self.hue == 0 and self.crop_scale == 1)

    def fingerprint(self) -> str:
        """Short stable hash, part of the feature-cache key of augmented views."""
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:12]


def _unit(image: tf.Tensor) -> tf.Tensor:
    """0..255 -> 0..1, clipped (earlier colour steps may overshoot; tf.image's HSV ops expect 0..1)."""
    return tf.clip_by_value(image / 255.0, 0.0, 1.0)


def random_flip(image: tf.Tensor) -> tf.Tensor:
    return tf.image.random_flip_left_right(image)


def random_brightness(image: tf.Tensor, max_delta: float) -> tf.Tensor:
    return image + tf.random.uniform([], -max_delta, max_delta) * 255.0


def random_contrast(image: tf.Tensor, strength: float) -> tf.Tensor:
    return tf.image.random_contrast(image, 1.0 - strength, 1.0 + strength)


def random_saturation(image: tf.Tensor, strength: float) -> tf.Tensor:
    return tf.image.random_saturation(_unit(image), 1.0 - strength, 1.0 + strength) * 255.0


def random_hue(image: tf.Tensor, max_delta: float) -> tf.Tensor:
    return tf.image.random_hue(_unit(image), max_delta) * 255.0


def random_resized_crop(image: tf.Tensor, min_area: float, ratio=(3 / 4, 4 / 3)) -> tf.Tensor:
    """Crop a random box covering [min_area, 1] of the image with aspect ratio in `ratio`; resize back."""
    shape = tf.shape(image)
    begin, size, _ = tf.image.sample_distorted_bounding_box(
        shape,
        bounding_boxes=tf.zeros([1, 0, 4]),
        min_object_covered=0.0,
        aspect_ratio_range=ratio,
        area_range=(min_area, 1.0),
        max_attempts=10,
        use_image_if_no_bounding_boxes=True,
    )
    crop = tf.slice(image, begin, size)
    return tf.image.resize(crop, shape[:2], antialias=True)


def build_augment(cfg: AugmentConfig) -> Callable[[tf.Tensor], tf.Tensor] | None:
    """Compose the switched-on transforms (geometry first, then colour) into one image -> image function."""
    if cfg.is_off():
        return None
    steps: list[Callable[[tf.Tensor], tf.Tensor]] = []
    if cfg.crop_scale < 1:
        steps.append(lambda x: random_resized_crop(x, cfg.crop_scale))
    if cfg.flip:
        steps.append(random_flip)
    if cfg.brightness > 0:
        steps.append(lambda x: random_brightness(x, cfg.brightness))
    if cfg.contrast > 0:
        steps.append(lambda x: random_contrast(x, cfg.contrast))
    if cfg.saturation > 0:
        steps.append(lambda x: random_saturation(x, cfg.saturation))
    if cfg.hue > 0:
        steps.append(lambda x: random_hue(x, cfg.hue))

    def augment(image: tf.Tensor) -> tf.Tensor:
        static_shape = image.shape
        image = tf.cast(image, tf.float32)
        for step in steps:
            image = step(image)
        image = tf.clip_by_value(image, 0.0, 255.0)
        return tf.ensure_shape(image, static_shape)

    return augment
