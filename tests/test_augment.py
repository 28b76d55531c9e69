"""Augmentation: each transform keeps shape, dtype and the 0..255 range; each can be switched off."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from catdog.data.augment import (AugmentConfig, build_augment, random_brightness, random_resized_crop,
                                 random_saturation)

OFF = dict(flip=False, brightness=0.0, contrast=0.0, saturation=0.0, hue=0.0, crop_scale=1.0)


@pytest.fixture(autouse=True)
def _seeded():
    """Augmentation draws from TF's global random state, which other tests advance: seed it, so each test sees
    the same draws whatever ran before (without this, 6 flips could all come out "no flip", 1 time in 64)."""
    tf.random.set_seed(1234)


def _image(h=24, w=32, seed=0):
    return tf.constant(np.random.default_rng(seed).uniform(0, 255, (h, w, 3)).astype(np.float32))


def test_all_off_means_no_augment_function():
    assert AugmentConfig(**OFF).is_off()
    assert build_augment(AugmentConfig(**OFF)) is None


@pytest.mark.parametrize("switch", [{"flip": True}, {"brightness": 0.3}, {"contrast": 0.5}, {"saturation": 0.5},
                                    {"hue": 0.1}, {"crop_scale": 0.3}])
def test_each_transform_alone_keeps_shape_dtype_and_range(switch):
    augment = build_augment(AugmentConfig(**{**OFF, **switch}))
    image = _image()
    outs = [augment(image) for _ in range(6)]
    for out in outs:
        assert out.shape == image.shape and out.dtype == tf.float32
        assert float(tf.reduce_min(out)) >= 0.0 and float(tf.reduce_max(out)) <= 255.0
    assert any(not np.allclose(out.numpy(), image.numpy()) for out in outs)  # it does something


def test_flip_only_returns_the_image_or_its_mirror():
    augment = build_augment(AugmentConfig(**{**OFF, "flip": True}))
    image = _image()
    seen = set()
    for _ in range(12):
        out = augment(image).numpy()
        if np.array_equal(out, image.numpy()):
            seen.add("same")
        else:
            np.testing.assert_array_equal(out, image.numpy()[:, ::-1])
            seen.add("mirror")
    assert seen == {"same", "mirror"}


def test_brightness_shifts_every_pixel_by_the_same_bounded_delta():
    image = tf.fill((8, 8, 3), 100.0)
    out = random_brightness(image, 0.1).numpy()
    delta = out - 100.0
    assert np.allclose(delta, delta.flat[0]) and abs(delta.flat[0]) <= 25.5 + 1e-4


def test_saturation_keeps_grey_grey():
    grey = tf.fill((6, 6, 3), 77.0)
    np.testing.assert_allclose(random_saturation(grey, 0.9).numpy(), 77.0, atol=1e-3)


def test_resized_crop_output_size_equals_input_size():
    out = random_resized_crop(_image(20, 30), 0.2)
    assert out.shape == (20, 30, 3)


def test_augment_runs_inside_tf_data_and_the_default_config_is_on():
    augment = build_augment(AugmentConfig())
    ds = tf.data.Dataset.from_tensors(_image()).repeat(3).map(augment)
    assert [x.shape for x in ds] == [(24, 32, 3)] * 3


def test_config_validation_and_fingerprint():
    with pytest.raises(ValueError, match="brightness"):
        AugmentConfig(brightness=2.0)
    with pytest.raises(ValueError, match="crop_scale"):
        AugmentConfig(crop_scale=0.0)
    assert AugmentConfig().fingerprint() == AugmentConfig().fingerprint()
    assert AugmentConfig().fingerprint() != AugmentConfig(hue=0.0).fingerprint()
