"""catdog.runtime: LiteRT conversion with parity against TensorFlow, the cached converted model, the runtime
choice (auto = TensorFlow with a GPU, else LiteRT), and the fallback / error for a model that does not convert."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from catdog import runtime
from catdog.errors import ConfigError, ModelError


def small_classifier(size: int = 32, seed: int = 0):
    """small-cnn (random init) -> global pooling -> Dense(1) sigmoid: a classifier with real conv/BN/pool ops."""
    import keras

    from catdog.model.backbones import small_cnn

    keras.utils.set_random_seed(seed)
    backbone = small_cnn((size, size, 3), None)
    inputs = keras.Input((size, size, 3))
    x = keras.layers.GlobalAveragePooling2D()(backbone(inputs))
    x = keras.layers.Dense(1, activation="sigmoid", name="logits")(x)
    return keras.Model(inputs, x)


def not_convertible(size: int = 16):
    """A model using tf.Erfinv, which is not a LiteRT built-in op."""
    import keras

    inputs = keras.Input((size, size, 3))
    x = keras.layers.GlobalAveragePooling2D()(inputs)
    x = keras.layers.Lambda(lambda t: keras.ops.erfinv(t / 300.0))(x)
    return keras.Model(inputs, x)


@pytest.fixture(scope="module")
def classifier():
    return small_classifier()


def test_litert_matches_tensorflow_on_generated_images(classifier, tmp_path):
    rt = runtime.accelerate(classifier, tmp_path, runtime="litert", label="small-cnn")
    assert isinstance(rt, runtime.LiteRTRuntime)
    images = runtime.parity_images(32, count=6, seed=7)  # not the images the build-time check used
    expected = classifier(images, training=False).numpy()
    for batch in (images, images[:1], images[:5]):  # batch sizes change: the interpreter is resized
        got = rt(batch)
        assert got.shape == (len(batch), 1)
        assert np.max(np.abs(got - expected[: len(batch)])) <= runtime.PARITY_TOLERANCE
    assert 0.0 < float(expected.min()) and float(expected.max()) < 1.0
    info = next(tmp_path.glob("small-cnn-*.json"))
    assert "parity_max_abs_diff" in info.read_text()


def test_conversion_goes_straight_from_the_graph_without_a_savedmodel(classifier, monkeypatch):
    """The converter's default first saves the whole Keras model as a SavedModel and loads it back (9 of
    the 10 s of converting Lite0 here); catdog converts from the traced graph. A save would show up here."""
    from tensorflow.python.saved_model import save as saved_model_save

    saves = []
    real_save = saved_model_save.save
    monkeypatch.setattr(saved_model_save, "save", lambda *a, **k: saves.append(a) or real_save(*a, **k))
    flatbuffer, forward = runtime.convert(classifier)
    assert saves == []
    assert flatbuffer[4:8] == b"TFL3"  # a .tflite flatbuffer's file identifier
    images = runtime.parity_images(32, count=2)
    np.testing.assert_allclose(np.asarray(forward(images)), classifier(images, training=False).numpy(), atol=1e-6)


def test_tensorflow_runtime_is_the_model(classifier, tmp_path):
    rt = runtime.accelerate(classifier, tmp_path, runtime="tensorflow")
    images = runtime.parity_images(32, count=3)
    np.testing.assert_allclose(rt(images), classifier(images, training=False).numpy(), atol=1e-6)
    assert not list(tmp_path.iterdir())  # nothing converted


def test_auto_is_tensorflow_with_a_gpu_and_litert_without(monkeypatch):
    import tensorflow as tf

    real = tf.config.list_physical_devices

    def fake(gpus):
        return lambda kind=None: gpus if kind == "GPU" else real(kind)

    monkeypatch.setattr(tf.config, "list_physical_devices", fake(["/physical_device:GPU:0"]))
    assert runtime.choose("auto") == "tensorflow"
    assert runtime.choose("litert") == "litert"
    monkeypatch.setattr(tf.config, "list_physical_devices", fake([]))
    assert runtime.choose("auto") == "litert"
    assert runtime.choose("tensorflow") == "tensorflow"
    with pytest.raises(ConfigError, match="--runtime must be one of"):
        runtime.choose("onnx")


def test_converted_model_is_reused_and_rebuilt_when_the_model_changes(tmp_path, monkeypatch):
    model = small_classifier(seed=1)
    first = runtime.build_litert(model, tmp_path, "m")
    files = sorted(tmp_path.glob("m-*.tflite"))
    assert [first.path] == files

    def no_convert(_model):
        raise AssertionError("converted again although the model is unchanged")

    monkeypatch.setattr(runtime, "convert", no_convert)
    again = runtime.build_litert(small_classifier(seed=1), tmp_path, "m")  # same weights, new objects
    assert again.path == first.path
    monkeypatch.undo()

    changed = small_classifier(seed=1)
    kernel, bias = changed.get_layer("logits").get_weights()
    changed.get_layer("logits").set_weights([kernel * 2.0, bias])
    rebuilt = runtime.build_litert(changed, tmp_path, "m")
    assert rebuilt.path != first.path and len(list(tmp_path.glob("m-*.tflite"))) == 2
    images = runtime.parity_images(32, count=2, seed=3)
    assert np.max(np.abs(rebuilt(images) - changed(images, training=False).numpy())) <= runtime.PARITY_TOLERANCE


def test_non_convertible_model_falls_back_with_one_notice(tmp_path, caplog, monkeypatch):
    monkeypatch.setattr(runtime, "gpu_present", lambda: False)  # auto = LiteRT
    model = not_convertible()
    images = runtime.parity_images(16, count=2)
    with caplog.at_level(logging.WARNING, logger="catdog.runtime"):
        rt = runtime.accelerate(model, tmp_path, runtime="auto", label="odd-model")
        rt_again = runtime.accelerate(model, tmp_path, runtime="auto", label="odd-model")
    assert isinstance(rt, runtime.TensorFlowRuntime) and isinstance(rt_again, runtime.TensorFlowRuntime)
    np.testing.assert_allclose(rt(images), model(images).numpy(), atol=1e-6)
    notices = [r.getMessage() for r in caplog.records if "odd-model" in r.getMessage()]
    assert len(notices) == 1
    assert "tf.Erfinv is not a LiteRT built-in op" in notices[0] and "using TensorFlow" in notices[0]
    assert "\n" not in notices[0]


def test_forced_litert_on_non_convertible_model_is_a_one_line_error(tmp_path):
    with pytest.raises(ModelError) as info:
        runtime.accelerate(not_convertible(), tmp_path, runtime="litert", label="odd-model.keras")
    message = str(info.value)
    assert message.startswith("odd-model.keras: cannot run on LiteRT") and "tf.Erfinv" in message
    assert "\n" not in message


def test_feature_cache_through_litert_equals_tensorflow(tmp_path):
    from catdog.model.backbones import small_cnn
    from catdog.model.classifier import feature_extractor
    from catdog.model.feature_cache import ensure_split
    from fixtures.packed import build_pack

    build_pack(tmp_path / "packed", {"train": 10, "val": 4})
    extractor = feature_extractor(small_cnn((32, 32, 3), None), 32)
    out = {}
    for name in ("tensorflow", "litert"):
        folder = tmp_path / "cache" / name / "key"
        out[name] = ensure_split(folder, {"k": name}, extractor, str(tmp_path / "packed"), "train", 32,
                                 batch_size=4, runtime=name, show_progress=False)
    tf_features, lt_features = (np.asarray(out[n].features[0]) for n in ("tensorflow", "litert"))
    assert tf_features.shape == lt_features.shape == (10, 128)
    scale = max(1.0, float(np.abs(tf_features).max()))
    assert np.max(np.abs(tf_features - lt_features)) / scale <= runtime.PARITY_TOLERANCE
    np.testing.assert_array_equal(out["tensorflow"].labels, out["litert"].labels)
    assert len(list((tmp_path / "cache" / "litert" / "models").glob("*.tflite"))) == 1
    assert not (tmp_path / "cache" / "tensorflow" / "models").exists()


@pytest.mark.shared
def test_shared_lite0_features_match_tensorflow(shared_dir, tmp_path):
    import keras

    from catdog.model.classifier import feature_extractor

    path = shared_dir / "weights" / "efficientnet_lite0_imagenet_notop.keras"
    if not path.is_file():
        pytest.skip(f"{path} not present")
    extractor = feature_extractor(keras.saving.load_model(path, compile=False), 224)
    rt = runtime.accelerate(extractor, tmp_path, runtime="litert", label=Path(path).stem)
    images = runtime.parity_images(224, count=3, seed=11)
    expected = extractor(images, training=False).numpy()
    got = rt(images)
    assert got.shape == expected.shape == (3, 1280)
    assert np.max(np.abs(got - expected)) / max(1.0, float(np.abs(expected).max())) <= runtime.PARITY_TOLERANCE


def test_predict_cli_litert_matches_tensorflow_and_reuses_the_runs_converted_model(tmp_path):
    import csv

    from typer.testing import CliRunner

    import catdog.cli
    from fixtures.images import flat_tree
    from fixtures.runs import write_run

    catdog.cli._register_commands()
    run = write_run(tmp_path / "run", temperature=1.3)
    images = flat_tree(tmp_path / "images", n=5)
    probs, stamps = {}, []
    for name in ("tensorflow", "litert", "litert"):
        out = tmp_path / f"{name}.csv"
        result = CliRunner().invoke(catdog.cli.app, ["predict", str(run), str(images), "-o", str(out),
                                                     "--runtime", name])
        assert result.exit_code == 0, result.output
        with out.open() as f:
            probs[name] = {row["id"]: float(row["label"]) for row in csv.DictReader(f)}
        if name == "litert":
            stamps.append([(p.name, p.stat().st_mtime_ns) for p in sorted((run / "litert").glob("*.tflite"))])
    assert len(stamps[0]) == 1 and stamps[1] == stamps[0]  # converted once into RUN/litert, then reused
    assert len(probs["tensorflow"]) == 10 and probs["litert"].keys() == probs["tensorflow"].keys()
    assert max(abs(probs["litert"][k] - probs["tensorflow"][k]) for k in probs["tensorflow"]) <= runtime.PARITY_TOLERANCE


def test_savedmodel_with_forced_litert_is_a_one_line_error(tmp_path):
    from catdog.predictors import load_predictor

    (tmp_path / "sm").mkdir()
    (tmp_path / "sm" / "saved_model.pb").write_bytes(b"")
    with pytest.raises(ModelError, match="a SavedModel runs on TensorFlow"):
        load_predictor(tmp_path / "sm", runtime="litert")
