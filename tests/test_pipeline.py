"""The reader: shapes, exactly-once evaluation, count check, resize modes, reduced-scale decode."""

from __future__ import annotations

import io

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from catdog.data import load, manifest as manifest_lib
from catdog.data.decode import decode_and_resize, decode_jpeg_reduced, resize
from catdog.data.pipeline import checked
from catdog.errors import DataError
from fixtures.packed import build_pack


@pytest.fixture
def packed(tmp_path):
    build_pack(tmp_path / "packed", {"train": 11, "val": 7, "test": 5})
    return tmp_path / "packed"


def test_eval_yields_each_record_exactly_once_with_partial_last_batch(packed):
    ds = load(str(packed), "val", image_size=24, batch_size=3, with_ids=True)
    batches = list(checked(ds, str(packed), "val"))
    assert [int(b["image"].shape[0]) for b in batches] == [3, 3, 1]
    ids = [i.decode() for b in batches for i in b["id"].numpy()]
    assert len(ids) == 7 and len(set(ids)) == 7
    assert batches[0]["image"].shape[1:] == (24, 24, 3)
    assert batches[0]["image"].dtype == tf.float32


def test_eval_order_is_deterministic(packed):
    first = [i for b in load(str(packed), "train", 16, batch_size=4, with_ids=True) for i in b["id"].numpy()]
    second = [i for b in load(str(packed), "train", 16, batch_size=4, with_ids=True) for i in b["id"].numpy()]
    assert first == second and len(first) == 11


def test_labels_match_class_names(packed):
    for batch in load(str(packed), "train", 16, batch_size=32, with_ids=True):
        for label, image_id in zip(batch["label"].numpy(), batch["id"].numpy()):
            assert image_id.decode().startswith(["cat", "dog"][label])
    test_labels = np.concatenate([b[1].numpy() for b in load(str(packed), "test", 16)])
    assert (test_labels == -1).all() and len(test_labels) == 5


def test_count_mismatch_with_manifest_raises(packed):
    manifest = manifest_lib.read_manifest(str(packed))
    val = manifest["splits"]["val"]  # a record has gone missing from a shard (the manifest agrees with itself)
    val["num_examples"] = 8
    val["shards"][0]["num_examples"] += 8 - sum(shard["num_examples"] for shard in val["shards"])
    val["class_counts"][manifest["classes"][0]] += 8 - sum(val["class_counts"].values())
    manifest_lib.write_manifest(str(packed), manifest)
    with pytest.raises(DataError, match="expected to contain 8"):
        list(checked(load(str(packed), "val", 16, batch_size=4), str(packed), "val"))


def test_training_mode_shuffles_with_seed_and_repeats(packed):
    def ids(**kw):
        ds = load(str(packed), "train", 16, batch_size=4, with_ids=True, **kw)
        return [i.decode() for b in ds for i in b["id"].numpy()]

    plain = ids()
    shuffled = ids(training=True, seed=1)
    assert sorted(shuffled) == sorted(plain) and len(shuffled) == 11  # every record once per epoch...
    assert shuffled != plain  # ...in another order than the evaluation order
    assert ids(training=True, seed=1) == shuffled  # the same seed gives the same order
    assert ids(training=True, seed=2) != shuffled  # another seed, another order
    # repeat: batches keep coming past the end of an epoch, every record again
    repeated = load(str(packed), "train", 16, batch_size=4, training=True, seed=1, repeat=True, with_ids=True)
    seen = [i.decode() for b in repeated.take(6) for i in b["id"].numpy()]
    assert len(seen) == 24 and set(seen) == set(plain)
    # augment is applied in training mode: same seed and order, pixels mapped by the augment function
    flipped = list(load(str(packed), "train", 16, batch_size=4, training=True, seed=1,
                        augment=lambda x: 255.0 - x).take(1))[0]
    straight = list(load(str(packed), "train", 16, batch_size=4, training=True, seed=1).take(1))[0]
    assert np.array_equal(flipped[1].numpy(), straight[1].numpy())
    assert np.allclose(flipped[0].numpy(), 255.0 - straight[0].numpy(), atol=1e-3)


def test_missing_split_and_bad_mode_are_clear_errors(tmp_path):
    build_pack(tmp_path / "p", {"train": 4})
    with pytest.raises(DataError, match="no 'val' split"):
        load(str(tmp_path / "p"), "val", 16)
    with pytest.raises(DataError, match="resize mode"):
        load(str(tmp_path / "p"), "train", 16, resize="zoom")
    with pytest.raises(DataError, match="not a packed folder"):
        load(str(tmp_path), "train", 16)


def _jpeg(w, h):
    x = np.linspace(0, 255, w * h * 3).reshape(h, w, 3).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(x).save(buf, format="JPEG")
    return buf.getvalue()


def test_reduced_scale_decode_only_from_three_times_the_target():
    assert decode_jpeg_reduced(tf.constant(_jpeg(400, 300)), (64, 64)).shape[:2] == (75, 100)  # ratio 4
    assert decode_jpeg_reduced(tf.constant(_jpeg(400, 300)), (100, 100)).shape[:2] == (150, 200)  # ratio 2
    assert decode_jpeg_reduced(tf.constant(_jpeg(400, 300)), (128, 128)).shape[:2] == (300, 400)  # 2.3x: full
    assert decode_jpeg_reduced(tf.constant(_jpeg(100, 80)), (64, 64)).shape[:2] == (80, 100)  # ratio 1


@pytest.mark.parametrize("mode", ["squash", "crop", "pad"])
def test_resize_modes(mode):
    wide = tf.ones((20, 80, 3), tf.uint8) * 200
    out = resize(wide, (16, 16), mode)
    assert out.shape == (16, 16, 3)
    if mode == "pad":  # letterboxed: top and bottom rows are black, the middle is the image
        assert float(out[0, 8, 0]) == 0.0 and float(out[8, 8, 0]) == pytest.approx(200, abs=1)
    else:
        assert float(tf.reduce_min(out)) == pytest.approx(200, abs=1)


def test_png_bytes_decode_through_the_same_function():
    buf = io.BytesIO()
    Image.fromarray(np.full((10, 12, 3), 90, np.uint8)).save(buf, format="PNG")
    out = decode_and_resize(tf.constant(buf.getvalue()), 8)
    assert out.shape == (8, 8, 3) and float(tf.reduce_mean(out)) == pytest.approx(90, abs=1)


def test_evaluation_and_predict_streams_run_without_the_autotuner(packed, monkeypatch):
    """Next to a model on the same CPU, tf.data's autotuner made about half the passes run at one core's
    speed (docs/benchmarks.md): evaluation-order reads and predict's stream turn it off; training keeps it."""
    from catdog import prediction
    from catdog.data import pipeline
    from catdog.inputs import collect_inputs

    assert load(str(packed), "val", 16).options().autotune.enabled is False
    assert load(str(packed), "train", 16, training=True, seed=1).options().autotune.enabled is not False

    streams, untuned = [], pipeline.untuned
    monkeypatch.setattr(pipeline, "untuned", lambda ds: streams.append(untuned(ds)) or streams[-1])

    class Uniform:
        image_size, resize, classes = (16, 16), "squash", ["cat", "dog"]

        def predict_images(self, images):
            return np.full((len(images), 2), 0.5, np.float32)

    result = prediction.run_predictions(Uniform(), collect_inputs([str(packed)]), batch_size=2, progress=False)
    assert len(result.ids) == 5
    assert len(streams) == 1 and streams[0].options().autotune.enabled is False
