"""catdog predict: id coverage and order, bad images, calibration, clipping, TTA, inputs of every kind."""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from catdog.data.decode import decode_and_resize
from catdog.errors import ModelError
from catdog.inputs import collect_inputs, natural_key
from catdog.predictors import KerasPredictor, load_predictor
from catdog.run import load_run
from fixtures.images import make_image
from fixtures.packed import build_pack
from fixtures.runs import write_run
from fixtures.cli import invoke, read_csv


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    root = tmp_path_factory.mktemp("predict")
    build_pack(root / "packed", {"train": 4, "val": 6, "test": 5})
    run = write_run(root / "run", data=root / "packed", temperature=1.7, logit_scale=8.0)
    images = root / "images"
    for n, image_id in enumerate((100, 2, 10, 1)):
        make_image(images / f"{image_id}.jpg", (40 + 50 * n, 120, 200 - 40 * n), seed=n)
    (images / "notes.txt").write_text("not an image, not an input")
    return root, run, images


def expected_probs(run_dir: Path, paths) -> np.ndarray:
    """The calibrated reference: the run's inference model on the one shared decode function."""
    run = load_run(run_dir)
    images = tf.stack([decode_and_resize(tf.io.read_file(str(p)), run.image_size, run.resize) for p in paths])
    return run.inference_model()(images).numpy()


def test_submission_covers_every_id_in_numeric_order(env, tmp_path):
    root, run, images = env
    out = tmp_path / "submission.csv"
    result = invoke("predict", run, images, "-o", out)
    assert result.exit_code == 0, result.output
    rows = read_csv(out)
    assert rows[0] == ["id", "label"]
    assert [r[0] for r in rows[1:]] == ["1", "2", "10", "100"]
    expected = expected_probs(run, [images / f"{i}.jpg" for i in (1, 2, 10, 100)])
    np.testing.assert_allclose([float(r[1]) for r in rows[1:]], expected[:, 1], atol=1e-6)
    assert "wrote 4 predictions" in result.output
    assert list(tmp_path.iterdir()) == [out]  # no temp files left behind


def test_calibration_divides_logits_by_the_run_temperature(env):
    _, run_dir, images = env
    run = load_run(run_dir)
    assert run.temperature == pytest.approx(1.7)
    x = tf.stack([decode_and_resize(tf.io.read_file(str(images / "1.jpg")), run.image_size, run.resize)])
    logit = run.model.get_layer("logits").output
    import keras

    z = keras.Model(run.model.inputs, logit)(x).numpy()[0, 0]
    p = KerasPredictor.from_run(run).predict_images(x)[0]
    assert p[1] == pytest.approx(1 / (1 + np.exp(-z / 1.7)), abs=1e-6)
    assert p.sum() == pytest.approx(1.0, abs=1e-6)


def test_packed_zip_and_file_inputs_each_id_once(env, tmp_path):
    root, run, images = env
    archive = tmp_path / "more.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.write(images / "10.jpg", "batch/20.jpg")
        zf.write(images / "2.jpg", "batch/21.jpg")
        zf.writestr("batch/readme.md", "ignored")
    single = make_image(tmp_path / "30.png", (10, 200, 10), fmt="PNG")
    out = tmp_path / "sub.csv"
    result = invoke("predict", run, root / "packed", archive, single, "-o", out)
    assert result.exit_code == 0, result.output
    ids = [r[0] for r in read_csv(out)[1:]]
    assert ids == ["1", "2", "3", "4", "5", "20", "21", "30"]
    probs = {r[0]: float(r[1]) for r in read_csv(out)[1:]}
    zip_expected = expected_probs(run, [images / "10.jpg"])[0, 1]
    assert probs["20"] == pytest.approx(zip_expected, abs=1e-6)


def test_duplicate_ids_across_inputs_are_an_error(env, tmp_path):
    _, run, images = env
    clash = make_image(tmp_path / "other" / "10.png", (0, 0, 0), fmt="PNG")
    result = invoke("predict", run, images, clash, "-o", tmp_path / "s.csv")
    assert result.exit_code == 1
    assert "duplicate id '10'" in result.output
    assert not (tmp_path / "s.csv").exists()


@pytest.fixture
def with_bad(env, tmp_path):
    folder = tmp_path / "mixed"
    for i in (1, 2, 3):
        make_image(folder / f"{i}.jpg", (200, 60, 40), seed=i)
    good = (folder / "1.jpg").read_bytes()
    (folder / "4.jpg").write_bytes(good[: len(good) // 2])  # truncated JPEG
    (folder / "5.jpg").write_text("this is text, not a JPEG")
    (folder / "6.jpg").write_bytes(b"")
    return folder


def test_bad_images_fail_by_name_and_write_nothing(env, with_bad, tmp_path):
    _, run, _ = env
    out = tmp_path / "out" / "submission.csv"
    out.parent.mkdir()
    result = invoke("predict", run, with_bad, "-o", out)
    assert result.exit_code == 1
    for name in ("4.jpg", "5.jpg", "6.jpg"):
        assert name in result.output
    assert "3 of 6 images could not be read" in result.output
    assert "--skip-bad" in result.output
    assert list(out.parent.iterdir()) == []  # no partial CSV under any name


def test_skip_bad_writes_the_rest_and_lists_the_bad(env, with_bad, tmp_path):
    _, run, _ = env
    out = tmp_path / "submission.csv"
    result = invoke("predict", run, with_bad, "-o", out, "--skip-bad")
    assert result.exit_code == 0, result.output
    assert [r[0] for r in read_csv(out)[1:]] == ["1", "2", "3"]
    skipped = read_csv(tmp_path / "submission.skipped.csv")
    assert skipped[0] == ["id", "name", "reason"]
    reasons = {r[0]: r[2] for r in skipped[1:]}
    assert set(reasons) == {"4", "5", "6"}
    assert "truncated" in reasons["4"] and "not an image" in reasons["5"] and "empty" in reasons["6"]


def test_test_files_that_pack_rejected_are_named_as_if_predict_had_read_them(env, with_bad, tmp_path):
    """Pack keeps the broken test files out of the shards (rejected.csv); predict on the pack must not write a
    submission that silently lacks their rows, exactly as predict on the folder does not."""
    _, run, _ = env
    packed = tmp_path / "packed"
    assert invoke("pack", with_bad, "--out", packed, "--workers", "1").exit_code == 0
    rejected = {r[0].rsplit("/", 1)[1]: r for r in read_csv(packed / "rejected.csv")[1:]}
    assert read_csv(packed / "rejected.csv")[0] == ["path", "reason", "id", "split"]
    assert {name: (r[2], r[3]) for name, r in rejected.items()} == {
        "4.jpg": ("4", "test"), "5.jpg": ("5", "test"), "6.jpg": ("6", "test")}
    out = tmp_path / "submission.csv"
    result = invoke("predict", run, packed, "-o", out)
    assert result.exit_code == 1 and not out.exists()
    assert "3 of 6 images could not be read" in result.output and "rejected by pack" in result.output
    for name in ("4.jpg", "5.jpg", "6.jpg"):
        assert name in result.output
    result = invoke("predict", run, packed, "-o", out, "--skip-bad")
    assert result.exit_code == 0, result.output
    assert [r[0] for r in read_csv(out)[1:]] == ["1", "2", "3"]
    skipped = read_csv(tmp_path / "submission.skipped.csv")
    assert [r[0] for r in skipped[1:]] == ["4", "5", "6"]
    assert all("rejected by pack" in r[2] for r in skipped[1:])


def test_output_in_missing_folder_fails_before_any_work(env, tmp_path):
    _, run, images = env
    result = invoke("predict", run, images, "-o", tmp_path / "nope" / "s.csv")
    assert result.exit_code == 1
    assert "does not exist" in result.output and "nope" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_clip_and_tta_flip(env, tmp_path):
    _, run, images = env
    out = tmp_path / "clipped.csv"
    assert invoke("predict", run, images, "-o", out, "--clip", "0.45").exit_code == 0
    labels = [float(r[1]) for r in read_csv(out)[1:]]
    assert min(labels) >= 0.45 - 1e-9 and max(labels) <= 0.55 + 1e-9

    out = tmp_path / "tta.csv"
    assert invoke("predict", run, images, "-o", out, "--tta", "flip").exit_code == 0
    paths = [images / f"{i}.jpg" for i in (1, 2, 10, 100)]
    r = load_run(run)
    x = tf.stack([decode_and_resize(tf.io.read_file(str(p)), r.image_size, r.resize) for p in paths])
    plain = r.inference_model()(x).numpy()
    mirrored = r.inference_model()(tf.image.flip_left_right(x)).numpy()
    assert np.abs(plain - mirrored).max() > 1e-4  # the fixture model is not mirror-symmetric
    got = np.array([float(row[1]) for row in read_csv(out)[1:]])
    np.testing.assert_allclose(got, (plain[:, 1] + mirrored[:, 1]) / 2, atol=1e-6)


def test_more_than_two_classes_get_one_column_each(tmp_path):
    run = write_run(tmp_path / "run3", classes=("bird", "cat", "dog"), image_size=(24, 24))
    for i in (3, 1, 2):
        make_image(tmp_path / "img" / f"{i}.jpg", (30 * i, 90, 120), seed=i)
    out = tmp_path / "s.csv"
    result = invoke("predict", run, tmp_path / "img", "-o", out)
    assert result.exit_code == 0, result.output
    rows = read_csv(out)
    assert rows[0] == ["id", "predicted", "bird", "cat", "dog"]
    assert [r[0] for r in rows[1:]] == ["1", "2", "3"]
    for r in rows[1:]:
        probs = [float(v) for v in r[2:]]
        assert sum(probs) == pytest.approx(1.0, abs=1e-5)
        assert r[1] == ["bird", "cat", "dog"][int(np.argmax(probs))]
    result = invoke("predict", run, tmp_path / "img", "-o", out, "--format", "kaggle")
    assert result.exit_code == 1 and "--format kaggle needs 2 classes" in result.output


def test_two_classes_full_format_gives_predicted_class_and_every_column(env, tmp_path):
    _, run, images = env
    kaggle, full = tmp_path / "k.csv", tmp_path / "f.csv"
    assert invoke("predict", run, images, "-o", kaggle).exit_code == 0
    assert invoke("predict", run, images, "-o", full, "--format", "full").exit_code == 0
    k, f = read_csv(kaggle), read_csv(full)
    assert k[0] == ["id", "label"] and f[0] == ["id", "predicted", "cat", "dog"]
    assert [r[0] for r in k] == [r[0] for r in f]
    for kr, fr in zip(k[1:], f[1:]):
        assert float(fr[3]) == pytest.approx(float(kr[1]), abs=1e-7)
        assert fr[1] == ("dog" if float(fr[3]) > float(fr[2]) else "cat")


def test_run_folder_without_model_is_a_one_line_error(env, tmp_path):
    _, run, images = env
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text((run / "config.json").read_text())
    result = invoke("predict", broken, images, "-o", tmp_path / "s.csv")
    assert result.exit_code == 1
    assert "no model" in result.output and "best.keras" in result.output
    with pytest.raises(ModelError, match="not a run folder"):
        load_predictor(tmp_path)


def test_natural_sort_and_input_listing(env):
    assert sorted(["100", "10", "2", "1", "cat.10", "cat.2"], key=natural_key) == ["1", "2", "10", "100", "cat.2", "cat.10"]
    _, _, images = env
    inputs = collect_inputs([str(images)])
    assert inputs.ids == ["1", "2", "10", "100"] and inputs.ignored == 1


def test_packed_folder_on_a_tfio_filesystem_is_an_input(tmp_path):
    """A pack behind a URL (here TensorFlow's ram:// filesystem) is read through tf.io.gfile."""
    import tensorflow as tf

    from catdog.inputs import collect_inputs
    from fixtures.packed import build_pack

    build_pack(tmp_path / "p", {"train": 2, "test": 3})
    url = "ram://catdog-predict-input/p"
    tf.io.gfile.makedirs(url)
    for f in (tmp_path / "p").iterdir():
        tf.io.gfile.copy(str(f), f"{url}/{f.name}", overwrite=True)
    inputs = collect_inputs([url])
    assert len(inputs.sources) == 1
    from catdog.errors import DataError

    with pytest.raises(DataError, match="not a packed folder"):
        collect_inputs(["ram://catdog-predict-input/nothing"])


def one_error_line(result) -> str:
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 1 and len(lines) == 1 and lines[0].startswith("error: "), result.output
    return lines[0]


@pytest.mark.parametrize("damage", ["truncated", "bad-crc"])
def test_damaged_best_keras_is_a_one_line_error(env, tmp_path, damage):
    _, run, images = env
    broken = tmp_path / "run"
    shutil.copytree(run, broken)
    data = bytearray((run / "best.keras").read_bytes())
    if damage == "truncated":
        data = data[:2000]
    else:
        data[len(data) // 2] ^= 0xFF  # inside a stored member: zipfile raises BadZipFile (Bad CRC-32)
    (broken / "best.keras").write_bytes(bytes(data))
    line = one_error_line(invoke("predict", broken, images, "-o", tmp_path / "s.csv"))
    assert f"{broken / 'best.keras'}: " in line and "File not found" not in line
    assert not (tmp_path / "s.csv").exists()


def test_damaged_shard_in_a_packed_input_is_named(env, tmp_path):
    root, run, _ = env
    packed = tmp_path / "packed"
    shutil.copytree(root / "packed", packed)
    shard = next(packed.glob("test-*.tfrecord"))
    shard.write_bytes(shard.read_bytes()[:-20])  # the last record is cut short: TF raises DataLossError
    line = one_error_line(invoke("predict", run, packed, "-o", tmp_path / "s.csv"))
    assert line.startswith(f"error: {shard}: checksum mismatch")
    assert not (tmp_path / "s.csv").exists()


def test_input_listing_skips_what_pack_skips(tmp_path):
    """Folders and zips are listed by data/scan.py, so predict skips exactly what pack skips."""
    folder = tmp_path / "photos"
    for name in ("1.jpg", "sub/2.png", ".hidden/3.jpg", "__MACOSX/4.jpg", ".5.jpg"):
        make_image(folder / name, (10, 20, 30), size=(8, 8), fmt="PNG" if name.endswith("png") else "JPEG")
    (folder / "notes.txt").write_text("x")
    inputs = collect_inputs([str(folder)])
    assert inputs.ids == ["1", "2"] and inputs.ignored == 1  # notes.txt; hidden and __MACOSX never listed
    archive = tmp_path / "batch.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for member in ("b/7.jpg", "b/.git/8.jpg", "__MACOSX/b/._7.jpg", "b/readme.md"):
            zf.writestr(member, (folder / "1.jpg").read_bytes())
    inputs = collect_inputs([str(archive)])
    assert inputs.ids == ["7"] and inputs.ignored == 1  # readme.md
