"""Export for other runtimes: MediaPipe runs the .tflite with its metadata, float16 / int8 quantization with
their measured report, ONNX Runtime parity, and the one-line errors when a format cannot be written."""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from catdog.predictors import load_predictor
from catdog.tflite_metadata import read_labels
from fixtures.packed import build_pack
from fixtures.runs import write_run
from fixtures.cli import invoke

REPO = Path(__file__).resolve().parents[1]
MEDIAPIPE_PYTHON = Path(os.environ.get("CATDOG_MEDIAPIPE_PYTHON", REPO / ".venv-mediapipe" / "bin" / "python"))


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    root = tmp_path_factory.mktemp("formats")
    build_pack(root / "packed", {"train": 2, "val": 8, "test": 3})
    run = write_run(root / "run", data=root / "packed", image_size=(32, 32), temperature=0.8, logit_scale=2.0)
    images = []  # PNGs at the model's size: MediaPipe's resize is then a no-op, and PNG decodes identically
    rng = np.random.default_rng(0)
    for i in range(4):
        path = root / f"{i + 1}.png"
        base = rng.integers(0, 256, (1, 1, 3))
        Image.fromarray(np.clip(base + rng.integers(-40, 40, (32, 32, 3)), 0, 255).astype(np.uint8)).save(path)
        images.append(path)
    return root, run, images


def catdog_probabilities(model, images, out_csv) -> dict[str, float]:
    """P(dog) per image id from `catdog predict` (a Kaggle two-column CSV)."""
    result = invoke("predict", model, *images, "-o", out_csv)
    assert result.exit_code == 0, result.output
    return {row["id"]: float(row["label"]) for row in csv.DictReader(open(out_csv))}


@pytest.mark.skipif(not MEDIAPIPE_PYTHON.is_file(),
                    reason=f"no MediaPipe venv at {MEDIAPIPE_PYTHON} (.ci/run builds it; MediaPipe's pins clash with TF)")
def test_mediapipe_image_classifier_runs_the_exported_tflite(env, tmp_path):
    root, run, images = env
    assert invoke("export", run, "--format", "tflite", "--out", tmp_path).exit_code == 0
    model = tmp_path / "model.tflite"
    assert read_labels(model.read_bytes()) == ["cat", "dog"]
    proc = subprocess.run([str(MEDIAPIPE_PYTHON), str(REPO / "tests" / "mediapipe_classify.py"), str(model),
                           *map(str, images)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    expected = catdog_probabilities(run, images, tmp_path / "sub.csv")
    for path in images:
        scores = got[str(path)]
        assert set(scores) == {"cat", "dog"}
        assert scores["cat"] + scores["dog"] == pytest.approx(1.0, abs=1e-5)
        p_dog = expected[path.stem]
        assert abs(scores["dog"] - p_dog) <= 1e-5  # same pixels (no resize, lossless PNG): only float rounding
        assert (scores["dog"] > scores["cat"]) == (p_dog > 0.5)
    assert len({round(expected[p.stem], 3) for p in images}) > 1  # the images do not all look alike to the model


def test_float16_and_int8_exports_run_and_report_accuracy(env, tmp_path):
    root, run, images = env
    for quantize, name in (("float16", "model-float16.tflite"), ("int8", "model-int8-full.tflite")):
        result = invoke("export", run, "--format", "tflite", "--quantize", quantize, "--out", tmp_path)
        assert result.exit_code == 0, result.output
        assert "accuracy" in result.output and "images/s" in result.output and "MB" in result.output
        report = json.loads((tmp_path / "export.json").read_text())["exports"][name]
        assert report["quantize"] == quantize and report["eval_images"] == 8
        assert report["file_bytes"] == (tmp_path / name).stat().st_size
        assert 0 <= report["accuracy"] <= 1 and report["log_loss"] > 0 and report["images_per_second"] > 0
        assert report["float_accuracy"] == pytest.approx(
            json.loads((tmp_path / "export.json").read_text())["exports"][name]["float_accuracy"])
        assert read_labels((tmp_path / name).read_bytes()) == ["cat", "dog"]
    exports = json.loads((tmp_path / "export.json").read_text())["exports"]
    assert set(exports) == {"model-float16.tflite", "model-int8-full.tflite"}
    assert exports["model-float16.tflite"]["max_abs_diff_vs_float"] < 0.01  # half-precision weights only
    assert exports["model-int8-full.tflite"]["max_abs_diff_vs_float"] < 0.2

    from ai_edge_litert.interpreter import Interpreter

    detail = Interpreter(model_path=str(tmp_path / "model-int8-full.tflite")).get_input_details()[0]
    assert detail["dtype"] == np.uint8  # full-integer: raw RGB bytes in
    # catdog predict quantizes the pixels for it; close to the float model
    p_int8 = catdog_probabilities(tmp_path / "model-int8-full.tflite", images, tmp_path / "int8.csv")
    p_float = catdog_probabilities(run, images, tmp_path / "float.csv")
    assert p_int8.keys() == p_float.keys()
    assert max(abs(p_int8[k] - p_float[k]) for k in p_int8) < 0.2


def test_int8_without_val_split_is_a_one_line_error_and_writes_nothing(env, tmp_path):
    _, run, _ = env
    from catdog.run import load_run

    orphan = write_run(tmp_path / "orphan", data=tmp_path / "gone", model=load_run(run).model)
    out = tmp_path / "out"
    result = invoke("export", orphan, "--format", "tflite", "--quantize", "int8", "--out", out)
    assert result.exit_code == 1
    line = result.output.strip()
    assert "\n" not in line and line.startswith("error:") and "int8" in line and "val split" in line
    assert not out.exists() or not any(out.iterdir())


@pytest.mark.skipif(importlib.util.find_spec("tf2onnx") is None or importlib.util.find_spec("onnxruntime") is None,
                    reason="catdog[onnx] not installed")
def test_onnx_export_matches_keras_and_tflite_and_predicts(env, tmp_path):
    root, run, images = env
    result = invoke("export", run, "--format", "onnx", "--out", tmp_path)
    assert result.exit_code == 0, result.output
    assert invoke("export", run, "--format", "tflite", "--out", tmp_path).exit_code == 0
    meta = json.loads((tmp_path / "model.onnx.json").read_text())
    assert meta["opset"] == 17 and meta["parity"]["max_abs_diff"] <= 1e-4

    import onnxruntime as ort

    from catdog.data.decode import decode_and_resize
    from catdog.predictors import KerasPredictor
    from catdog.run import load_run

    session = ort.InferenceSession(str(tmp_path / "model.onnx"), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["images"]
    import tensorflow as tf

    pixels = np.stack([decode_and_resize(tf.constant(p.read_bytes()), (32, 32), "squash").numpy() for p in images])
    got = session.run(None, {"images": pixels})[0]
    keras_probs = KerasPredictor.from_run(load_run(run)).predict_images(pixels)
    tflite_probs = load_predictor(tmp_path / "model.tflite").predict_images(pixels)
    np.testing.assert_allclose(got, keras_probs, atol=1e-4)
    np.testing.assert_allclose(got, tflite_probs, atol=1e-4)
    props = {p.key: p.value for p in __import__("onnx").load(str(tmp_path / "model.onnx")).metadata_props}
    assert json.loads(props["classes"]) == ["cat", "dog"]

    p_onnx = catdog_probabilities(tmp_path / "model.onnx", images, tmp_path / "onnx.csv")
    p_run = catdog_probabilities(run, images, tmp_path / "run.csv")
    assert max(abs(p_onnx[k] - p_run[k]) for k in p_run) <= 1e-4


def test_missing_onnx_extra_is_a_one_line_error_naming_it(env, tmp_path, monkeypatch):
    _, run, _ = env
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "tf2onnx" else real(name, *a))
    out = tmp_path / "out"
    result = invoke("export", run, "--format", "onnx", "--out", out)
    assert result.exit_code == 1
    assert result.output.strip() == "error: --format onnx needs tf2onnx, which is not installed: pip install 'catdog[onnx]'"
    assert not out.exists()


def test_a_model_the_converter_cannot_take_is_a_one_line_error_and_writes_nothing(env, tmp_path, monkeypatch):
    import tensorflow as tf

    _, run, _ = env

    class Refusing:
        def __init__(self, *a, **k):
            self.optimizations, self.target_spec = [], type("Spec", (), {})()

        def convert(self):
            raise RuntimeError("op 'FancyOp' is neither a custom op nor a flex op\n<long converter log>")

    monkeypatch.setattr(tf.lite.TFLiteConverter, "from_saved_model", Refusing)
    result = invoke("export", run, "--format", "tflite", "--quantize", "float16", "--out", tmp_path)
    assert result.exit_code == 1
    assert result.output.strip() == ("error: --format tflite --quantize float16: the converter cannot take this "
                                     "model (op 'FancyOp' is neither a custom op nor a flex op)")
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no model, no metadata, no scratch folder


@pytest.mark.skipif(importlib.util.find_spec("tf2onnx") is None, reason="catdog[onnx] not installed")
def test_a_model_tf2onnx_cannot_convert_is_a_one_line_error_and_writes_nothing(env, tmp_path, monkeypatch):
    import tf2onnx

    _, run, _ = env

    def refuse(*a, **k):
        raise ValueError("Unsupported ops: Counter({'FancyOp': 1})\nmore")

    monkeypatch.setattr(tf2onnx.convert, "from_function", refuse)
    result = invoke("export", run, "--format", "onnx", "--out", tmp_path)
    assert result.exit_code == 1
    assert result.output.strip() == ("error: --format onnx: tf2onnx cannot convert this model "
                                     "(Unsupported ops: Counter({'FancyOp': 1}))")
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def _lite0_classifier(shared: Path, photos: list[Path], labels: np.ndarray):
    """EfficientNet-Lite0 (ImageNet, from ../shared) + a logistic-regression head fitted on `photos`, decoded as
    catdog decodes them: a real cats-vs-dogs classifier in a few seconds (no training loop)."""
    import keras
    import tensorflow as tf

    from catdog.data.decode import decode_and_resize

    backbone = keras.saving.load_model(shared / "weights" / "efficientnet_lite0_imagenet_notop.keras", compile=False)
    images = keras.Input((224, 224, 3), name="image")
    pooled = keras.layers.GlobalAveragePooling2D()(backbone(images))
    features = keras.Model(images, pooled).predict(
        np.stack([decode_and_resize(tf.io.read_file(str(p)), 224).numpy() for p in photos]), batch_size=32, verbose=0)
    mean, scale = features.mean(0), features.std(0) + 1e-3
    x, w, b = (features - mean) / scale, np.zeros(features.shape[1]), 0.0
    for _ in range(300):  # gradient descent on the L2-regularised logistic loss
        err = 1 / (1 + np.exp(-(x @ w + b))) - labels
        w -= 0.5 * (x.T @ err / len(x) + 0.05 * w)
        b -= 0.5 * err.mean()
    logits = keras.layers.Dense(1, name="logits")(pooled)
    model = keras.Model(images, keras.layers.Activation("sigmoid", name="probs")(logits))
    model.get_layer("logits").set_weights([(w / scale)[:, None], np.array([b - (w / scale) @ mean])])
    return model


@pytest.mark.shared
@pytest.mark.skipif(not MEDIAPIPE_PYTHON.is_file(),
                    reason=f"no MediaPipe venv at {MEDIAPIPE_PYTHON} (.ci/run builds it; MediaPipe's pins clash with TF)")
def test_mediapipe_agrees_with_catdog_predict_on_real_photos_at_their_own_sizes(shared_dir, tmp_path):
    """MediaPipe decodes (stb_image) and resizes (OpenCV bilinear warp) the photo itself; catdog's decode
    matches it up to a 3x shrink, so P(dog) agrees within 0.02 on Kaggle photos of every size, large ones
    (>= 2x the model's 224 px in both dimensions, which catdog once decoded at reduced scale) included."""
    weights = shared_dir / "weights" / "efficientnet_lite0_imagenet_notop.keras"
    if not weights.is_file():
        pytest.skip(f"{weights} not present")
    kaggle = shared_dir / "data" / "dogs-vs-cats"
    train = [kaggle / "train" / f"{c}.{i}.jpg" for c in ("cat", "dog") for i in range(1, 21)]
    model = _lite0_classifier(shared_dir, train, np.repeat([0.0, 1.0], 20))
    # a soft calibration (T = 4, as calibration.json stores it) spreads P over 0.1-0.9, where a mismatch shows most
    run = write_run(tmp_path / "run", image_size=(224, 224), model=model, temperature=4.0)
    assert invoke("export", run, "--format", "tflite", "--out", tmp_path / "export").exit_code == 0

    # unseen photos, by rule: every 40th of test1/, and the first 10 that are >= 448 px in both dimensions
    numbered = [kaggle / "test1" / f"{i}.jpg" for i in range(1, 1001)]
    large = [p for p in numbered if min(Image.open(p).size) >= 448][:10]
    photos = sorted(set(numbered[39::40] + large), key=lambda p: int(p.stem))
    assert len(large) == 10 and len(photos) == 35
    proc = subprocess.run([str(MEDIAPIPE_PYTHON), str(REPO / "tests" / "mediapipe_classify.py"),
                           str(tmp_path / "export" / "model.tflite"), *map(str, photos)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    mediapipe = {Path(p).stem: scores["dog"] for p, scores in json.loads(proc.stdout.strip().splitlines()[-1]).items()}
    catdog_p = catdog_probabilities(tmp_path / "export" / "model.tflite", photos, tmp_path / "sub.csv")
    assert catdog_p.keys() == mediapipe.keys()
    gaps = {k: abs(catdog_p[k] - mediapipe[k]) for k in catdog_p}
    worst = sorted(gaps.items(), key=lambda kv: -kv[1])[:5]
    assert max(gaps.values()) <= 0.02, worst
    # before decode.py matched MediaPipe (fast DCT, half-pixel sampling, reduced decode from 2x): max 0.025, mean 0.008
    assert np.mean(list(gaps.values())) <= 0.004, worst
    assert np.mean([gaps[p.stem] for p in large]) <= 0.004  # was 0.008 (a reduced-scale decode, where MediaPipe's was full)
    assert all((catdog_p[k] > 0.5) == (mediapipe[k] > 0.5) for k in catdog_p)
    # the photos are not all obvious to the model: P is spread, so a resize mismatch would show
    assert sum(0.05 < p < 0.95 for p in catdog_p.values()) >= 5, sorted(catdog_p.values())
