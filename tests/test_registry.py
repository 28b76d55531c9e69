"""Backbone registry, classifier assembly and the freeze/unfreeze helpers (weights=None, tiny inputs)."""

from __future__ import annotations

import re

import keras
import numpy as np
import pytest

from catdog.errors import ConfigError, ModelError
from catdog.model.classifier import (build_backbone, build_classifier, check_image_size, feature_dim,
                                     get_backbone_layer, leaf_layers, resolve_weights, unfreeze)
from catdog.model.head import build_head
from catdog.model.registry import BackboneEntry, get_backbone, list_backbones

EXPECTED = {"vgg16", "resnet50", "efficientnetv2b0", "efficientnetv2s", "mobilenetv3small", "mobilenetv3large",
            "convnext_tiny", "small-cnn"}


def test_registry_lists_every_backbone_sorted():
    names = list_backbones()
    assert set(names) == EXPECTED and names == sorted(names)


@pytest.mark.parametrize("name", list_backbones())
def test_every_backbone_builds_at_its_min_size_with_the_declared_feature_dim(name):
    entry = get_backbone(name)
    size = max(entry.min_size, 32)
    backbone = build_backbone(entry, "none", size)
    assert backbone.input.shape[1:] == (size, size, 3)
    assert feature_dim(backbone) == entry.feature_dim
    assert entry.default_size >= entry.min_size
    if name in ("small-cnn", "mobilenetv3small", "vgg16"):  # a forward pass on the cheap ones
        out = backbone.predict_on_batch(np.full((2, size, size, 3), 128.0, np.float32))
        assert out.shape[0] == 2 and np.isfinite(out).all()


def test_vgg16_caffe_preprocessing_matches_keras_preprocess_input():
    backbone = build_backbone(get_backbone("vgg16"), "none", 32)
    pre = backbone.get_layer("caffe_preprocess")
    assert not pre.trainable
    images = np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 3)).astype(np.float32)
    ours = keras.Model(backbone.input, pre.output).predict_on_batch(images)
    expected = keras.applications.vgg16.preprocess_input(images.copy())
    np.testing.assert_allclose(ours, expected, atol=1e-3)


def test_unknown_backbone_lists_the_valid_names():
    with pytest.raises(ConfigError, match="unknown backbone 'resnet9000'.*convnext_tiny.*vgg16"):
        get_backbone("resnet9000")


def test_missing_model_file_and_too_small_image_size(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        get_backbone(str(tmp_path / "missing.keras"))
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "best.keras").write_bytes(b"")
    with pytest.raises(ConfigError, match=r"a folder, not a model file; a run's model is .*run/best\.keras"):
        get_backbone(str(tmp_path / "run"))
    with pytest.raises(ConfigError, match="too small for backbone vgg16 \\(min 32\\)"):
        check_image_size(get_backbone("vgg16"), 16)


def test_weights_resolution():
    assert resolve_weights(get_backbone("efficientnetv2b0"), None) == "imagenet"
    assert resolve_weights(get_backbone("small-cnn"), None) == "none"
    with pytest.raises(ConfigError, match="no ImageNet weights"):
        resolve_weights(get_backbone("small-cnn"), "imagenet")
    with pytest.raises(ConfigError, match="not 'imagenet', 'none' or an existing weights file"):
        resolve_weights(get_backbone("vgg16"), "/nope/w.h5")


def test_offline_imagenet_error_names_the_file_and_where_to_put_it(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "kh"))

    def offline(input_shape, weights):
        raise Exception("URL fetch failure on https://example/x.h5: None -- [Errno -3] Temporary failure")

    entry = BackboneEntry("fake", offline, 224, 32, 8, weights_file="fake_notop.h5")
    expected = f"put fake_notop.h5 (from https://example/x.h5) at {tmp_path / 'kh' / 'models' / 'fake_notop.h5'}"
    with pytest.raises(ModelError, match=re.escape(expected)):
        build_backbone(entry, "imagenet", 32)


def test_unloadable_weights_file_is_a_one_line_model_error(tmp_path):
    garbage = tmp_path / "w.keras"
    garbage.write_bytes(b"\xff\xd8 not weights")
    other = tmp_path / "other.weights.h5"
    keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)]).save_weights(other)
    for path in (garbage, other):
        with pytest.raises(ModelError, match=f"--weights {re.escape(str(path))}: cannot load into backbone small-cnn"):
            build_backbone(get_backbone("small-cnn"), str(path), 32)


def test_non_zip_keras_file_as_backbone_says_so(tmp_path):
    fake = tmp_path / "photo.keras"
    fake.write_bytes(b"\xff\xd8\xff\xe0 a jpeg, not a model")
    with pytest.raises(ModelError, match="photo.keras: not a Keras model file \\(a .keras file is a zip archive"):
        build_backbone(get_backbone(str(fake)), "file", 32)


def test_saved_model_file_works_as_a_backbone(tmp_path):
    inputs = keras.Input((None, None, 3))
    x = keras.layers.Conv2D(5, 3, strides=2)(keras.layers.Rescaling(1 / 255)(inputs))
    keras.Model(inputs, x).save(tmp_path / "fx.keras")
    entry = get_backbone(str(tmp_path / "fx.keras"))
    assert entry.is_file and entry.default_weights == "file"
    backbone = build_backbone(entry, "file", 32)
    assert feature_dim(backbone) == 5
    with pytest.raises(ConfigError, match="brings its own weights"):
        resolve_weights(entry, "none")


@pytest.mark.parametrize("num_classes,units,activation", [(2, 1, "sigmoid"), (3, 3, "softmax")])
def test_classifier_head_shapes(num_classes, units, activation):
    backbone = build_backbone(get_backbone("small-cnn"), "none", 32)
    head = build_head(feature_dim(backbone), num_classes, dropout=0.1, l2=1e-3, seed=0)
    model = build_classifier(backbone, head, 32)
    assert model.input.shape == (None, 32, 32, 3)
    assert model.output.shape == (None, units)
    assert model.get_layer("logits").units == units
    assert model.get_layer("probs").get_config()["activation"] == activation
    probs = model.predict_on_batch(np.full((4, 32, 32, 3), 100.0, np.float32))
    assert probs.shape == (4, units) and ((probs >= 0) & (probs <= 1)).all()
    if num_classes == 3:
        np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-5)
    assert get_backbone_layer(model) is backbone


def test_unfreeze_top_layers_keeps_batchnorm_frozen():
    backbone = build_backbone(get_backbone("small-cnn"), "none", 32)
    backbone.trainable = False
    layers = leaf_layers(backbone)
    assert unfreeze(backbone, 4) == 1  # top 4 = conv3, bn3 (stays frozen), relu3, pool3
    assert [layer.name for layer in layers if layer.trainable and layer.weights] == ["conv3"]
    assert unfreeze(backbone, 1.0) == 4  # every conv; no BatchNormalization
    assert not any(layer.trainable for layer in layers if isinstance(layer, keras.layers.BatchNormalization))
    with pytest.raises(ConfigError, match="fraction"):
        unfreeze(backbone, 1.5)


def test_frozen_backbone_stays_in_inference_mode_inside_fit():
    """Keras 3 passes fit's training=True into nested models; dropout inside the backbone must stay off."""
    from catdog.model.classifier import freeze, pin_inference_mode

    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3)(inputs)
    x = keras.layers.Dropout(0.5)(x)
    x = keras.layers.BatchNormalization()(x)
    backbone = keras.Model(inputs, x)
    freeze(backbone)
    assert pin_inference_mode(backbone) == 1
    model = build_classifier(backbone, build_head(4, 2, dropout=0.0), 8)
    images = np.random.default_rng(0).uniform(0, 255, (4, 8, 8, 3)).astype(np.float32)
    np.testing.assert_allclose(model(images, training=True), model(images, training=False), atol=1e-6)
