"""catdog export: SavedModel on raw JPEG bytes without catdog, TFLite parity, keras, bad format, predict on exports."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from catdog.data.decode import decode_and_resize
from catdog.predictors import KerasPredictor, load_predictor
from catdog.run import load_run
from fixtures.packed import build_pack, jpeg_bytes
from fixtures.runs import write_run
from fixtures.cli import invoke


# Runs in a fresh interpreter where importing catdog is impossible: the SavedModel must stand alone.
STANDALONE = r"""
import json, sys
class NoCatdog:
    def find_spec(self, name, path=None, target=None):
        if name == "catdog" or name.startswith("catdog."):
            raise ImportError("catdog is blocked in this process")
sys.meta_path.insert(0, NoCatdog())
import numpy as np, tensorflow as tf
model_dir, images_json, out_json = sys.argv[1:]
loaded = tf.saved_model.load(model_dir)
images = [bytes.fromhex(h) for h in json.load(open(images_json))]
out = loaded.signatures["serving_default"](image_bytes=tf.constant(images))
assert not [m for m in sys.modules if m.startswith("catdog")]
json.dump({"probabilities": out["probabilities"].numpy().tolist(),
           "classes": [[c.decode() for c in row] for row in out["classes"].numpy()]}, open(out_json, "w"))
"""


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    build_pack(root / "packed", {"train": 2, "val": 6, "test": 3})
    run = write_run(root / "run", data=root / "packed", image_size=(32, 32), temperature=0.8, logit_scale=5.0)
    samples = [jpeg_bytes(c, size=(57, 41), seed=s) for s, c in enumerate([(200, 60, 40), (40, 60, 200)] * 2)]
    return root, run, samples


def reference(run_dir, encoded):
    run = load_run(run_dir)
    images = tf.stack([decode_and_resize(tf.constant(b), run.image_size, run.resize) for b in encoded])
    return images, KerasPredictor.from_run(run).predict_images(images)


def test_savedmodel_runs_on_raw_jpeg_bytes_without_catdog(env, tmp_path):
    _, run, samples = env
    out = tmp_path / "serving" / "catdog"
    out.parent.mkdir()
    result = invoke("export", run, "--format", "savedmodel", "--out", out)
    assert result.exit_code == 0, result.output
    assert (out / "1" / "saved_model.pb").is_file() and (out / "1" / "variables").is_dir()  # TF Serving layout
    assert "parity on 6 images (val split" in result.output
    meta = json.loads((out / "1" / "catdog.json").read_text())
    assert meta["classes"] == ["cat", "dog"] and meta["image_size"] == [32, 32] and meta["parity"]["max_abs_diff"] <= 1e-5

    (tmp_path / "images.json").write_text(json.dumps([b.hex() for b in samples]))
    proc = subprocess.run([sys.executable, "-c", STANDALONE, str(out / "1"), str(tmp_path / "images.json"),
                           str(tmp_path / "out.json")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    got = json.loads((tmp_path / "out.json").read_text())
    _, expected = reference(run, samples)
    np.testing.assert_allclose(np.array(got["probabilities"]), expected, atol=1e-5)
    assert got["classes"] == [["cat", "dog"]] * len(samples)

    # a second export is the next version; catdog predict reads the base folder (newest version)
    assert invoke("export", run, "--format", "savedmodel", "--out", out).exit_code == 0
    assert (out / "2" / "saved_model.pb").is_file()
    predictor = load_predictor(out)
    assert predictor.source.endswith("2") and predictor.classes == ["cat", "dog"]
    images, expected = reference(run, samples)
    np.testing.assert_allclose(predictor.predict_images(images), expected, atol=1e-5)
    uint8 = tf.saved_model.load(str(out / "2")).signatures["images_uint8"]
    rounded = tf.cast(tf.round(images), tf.uint8)
    expected_u8 = KerasPredictor.from_run(load_run(run)).predict_images(tf.cast(rounded, tf.float32))
    np.testing.assert_allclose(uint8(images=rounded)["probabilities"].numpy(), expected_u8, atol=1e-5)


def test_tflite_float_and_dynamic_parity_and_predict(env, tmp_path):
    root, run, samples = env
    result = invoke("export", run, "--format", "tflite", "--out", tmp_path)
    assert result.exit_code == 0, result.output
    assert "max |exported - in-memory|" in result.output
    tflite = tmp_path / "model.tflite"
    meta = json.loads((tmp_path / "model.tflite.json").read_text())
    assert meta["parity"]["max_abs_diff"] <= 1e-5 and meta["quantize"] == "none"

    from ai_edge_litert.interpreter import Interpreter

    images, expected = reference(run, samples)
    interpreter = Interpreter(model_path=str(tflite))
    index = interpreter.get_input_details()[0]["index"]
    interpreter.resize_tensor_input(index, list(images.shape))
    interpreter.allocate_tensors()
    interpreter.set_tensor(index, images.numpy())
    interpreter.invoke()
    got = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    assert got.shape == (len(samples), 2)
    np.testing.assert_allclose(got, expected, atol=1e-5)

    result = invoke("export", run, "--format", "tflite", "--quantize", "dynamic", "--out", tmp_path)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "model-int8.tflite").is_file() and "quantized" in result.output
    assert json.loads((tmp_path / "model-int8.tflite.json").read_text())["quantize"] == "dynamic"

    # catdog predict with the .tflite as MODEL gives the run's probabilities
    sub_run, sub_tfl = tmp_path / "run.csv", tmp_path / "tfl.csv"
    assert invoke("predict", run, root / "packed", "-o", sub_run).exit_code == 0
    assert invoke("predict", tflite, root / "packed", "-o", sub_tfl).exit_code == 0
    a, b = (list(csv.reader(open(p))) for p in (sub_run, sub_tfl))
    assert [r[0] for r in a] == [r[0] for r in b] == ["id", "1", "2", "3"]
    np.testing.assert_allclose([float(r[1]) for r in a[1:]], [float(r[1]) for r in b[1:]], atol=1e-5)


def test_keras_export_is_the_calibrated_model(env, tmp_path):
    _, run, samples = env
    assert invoke("export", run, "--format", "keras", "--out", tmp_path / "k").exit_code == 0
    predictor = load_predictor(tmp_path / "k" / "model.keras")
    images, expected = reference(run, samples)
    np.testing.assert_allclose(predictor.predict_images(images), expected, atol=1e-6)


def test_unknown_format_and_quantized_savedmodel_are_rejected(env, tmp_path):
    _, run, _ = env
    result = invoke("export", run, "--format", "coreml", "--out", tmp_path)
    assert result.exit_code == 2 and "coreml" in result.output and "savedmodel" in result.output
    result = invoke("export", run, "--format", "savedmodel", "--quantize", "dynamic", "--out", tmp_path / "x")
    assert result.exit_code == 1 and "tflite only" in result.output and "--format savedmodel" in result.output
    assert not (tmp_path / "x").exists()
    result = invoke("export", run, "--format", "keras", "--out", tmp_path / "missing" / "deeper")
    assert result.exit_code == 1 and "does not exist" in result.output


def test_export_without_reachable_pack_uses_generated_parity_images(env, tmp_path):
    _, run, _ = env
    orphan = write_run(tmp_path / "orphan", data=tmp_path / "gone", model=load_run(run).model)
    result = invoke("export", orphan, "--format", "keras", "--out", tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert "generated" in result.output
