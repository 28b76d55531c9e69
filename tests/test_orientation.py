"""EXIF orientation (issue 9): photos stored turned with a tag 2-8 decode to the same pixels as the upright
photo through pack + reader, predict (files, zip, pack), serve and the exported SavedModel; a damaged
block or an invalid value is read as upright with a warning naming the file."""

from __future__ import annotations

import base64
import io
import zipfile

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image, ImageOps
from typer.testing import CliRunner

import catdog.cli
from catdog.data import exif, load
from catdog.data.decode import decode_and_resize
from catdog.data.pack import pack
from catdog.data.records import parse_example
from catdog.inputs import collect_inputs
from catdog.prediction import run_predictions
from fixtures.photos import DAMAGED_EXIF, blocky, jpeg
from fixtures.runs import write_run

catdog.cli._register_commands()
runner = CliRunner()
SIZE = (64, 96)  # (height, width) of the upright photo, also the model input: no resizing blurs the comparison
UPRIGHT = blocky(*SIZE)


def close(a, b, tolerance: float = 3.0) -> bool:
    """Same picture after JPEG (a few levels); a wrong turn moves most blocks by ~80 levels."""
    return a.shape == b.shape and float(np.mean(np.abs(np.asarray(a, np.float32) - np.asarray(b, np.float32)))) < tolerance


class Recorder:
    """A predictor that keeps what it is given (the exact model input), for pixel comparisons."""

    classes = ["cat", "dog"]
    image_size = SIZE
    resize = "squash"
    name = source = "recorder"
    info: dict = {}

    def __init__(self):
        self.images = []

    def predict_images(self, images):
        images = np.asarray(images)
        self.images.extend(images)
        return np.tile([[0.5, 0.5]], (len(images), 1)).astype(np.float32)


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    root = tmp_path_factory.mktemp("orientation")
    folder = root / "photos"
    folder.mkdir()
    for o in range(1, 9):
        (folder / f"{o}.jpg").write_bytes(jpeg(UPRIGHT, o))
    return root, folder


def test_turned_photos_are_what_pil_exif_transpose_calls_upright(photos):
    _, folder = photos
    for o in range(1, 9):
        reference = np.asarray(ImageOps.exif_transpose(Image.open(folder / f"{o}.jpg")))
        assert close(reference, UPRIGHT), o
    assert not close(np.asarray(Image.open(folder / "6.jpg")).transpose(1, 0, 2), UPRIGHT)  # the test can fail


def test_python_and_in_graph_readers_agree_on_valid_absent_and_damaged_tags(photos):
    _, folder = photos
    cases = {f"tag {o}": (folder / f"{o}.jpg").read_bytes() for o in range(1, 9)}
    cases.update({name: jpeg(UPRIGHT, exif=payload) for name, payload in DAMAGED_EXIF.items()})
    cases.update({"no exif": jpeg(UPRIGHT), "png": b"\x89PNG\r\n\x1a\n", "empty": b""})
    traced = tf.function(exif.orientation_status, input_signature=[tf.TensorSpec([], tf.string)])
    for name, data in cases.items():
        value, problem = exif.jpeg_orientation(data)
        status = int(traced(tf.constant(data)))
        assert status == (exif.PROBLEM if problem else value), name
    assert [exif.jpeg_orientation(cases[f"tag {o}"]) for o in range(1, 9)] == [(o, "") for o in range(1, 9)]
    assert all(exif.jpeg_orientation(cases[name])[1] for name in DAMAGED_EXIF)


def mutated_heads(count: int, seed: int = 0) -> list[bytes]:
    """JPEG heads around APP1 Exif blocks that are valid (either byte order, the tag anywhere in IFD0) or
    damaged at random: cut short, a byte or a length changed, the IFD offset or entry count out of range,
    a wrong start of image, a decoy Exif\\0\\0 before the block."""
    import struct

    rng = np.random.default_rng(seed)
    heads = []
    for k in range(count):
        order = "<" if k % 2 else ">"
        tags = [(0x010F, 2, 0), (0x0110, 2, 0), (0x0112, 3, int(rng.integers(0, 11)))][: 1 + k % 3]
        rng.shuffle(tags)
        ifd = struct.pack(order + "H", len(tags)) + b"".join(
            struct.pack(order + "HHI", tag, kind, 1) + struct.pack(order + "H", value) + b"\0\0"
            for tag, kind, value in tags)
        tiff = (b"II" if order == "<" else b"MM") + struct.pack(order + "HI", 42, 8) + ifd + b"\0" * 4
        payload = bytearray(b"Exif\0\0" + tiff)
        what = k % 6
        if what == 1:
            payload = payload[: int(rng.integers(0, len(payload)))]
        elif what == 2:
            payload[int(rng.integers(0, len(payload)))] = int(rng.integers(0, 256))
        elif what == 3:  # IFD offset anywhere, in or far out of the block
            payload[10:14] = struct.pack(order + "I", int(rng.choice([0, 7, 8, 9, len(tiff), 1 << 20, (1 << 32) - 1])))
        elif what == 4:
            payload[14:16] = struct.pack(order + "H", int(rng.choice([0, 2, 3, 4, 200, 65535])))
        length = len(payload) + 2 + (int(rng.integers(-8, 9)) if what == 5 else 0)
        app0 = b"\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00" if k % 4 == 0 else b""
        if k % 7 == 6:  # a comment that mentions Exif\0\0 first: the first one found is not an APP1 segment
            app0 += b"\xff\xfe\x00\x0aExif\0\0\xc3\xff"
        soi = b"\xff\xd8" if k % 25 else b"\xff\xd9"
        heads.append(soi + app0 + b"\xff\xe1" + struct.pack(">H", max(length, 0) % 65536) + bytes(payload)
                     + b"\xff\xdb" + bytes(rng.integers(0, 256, int(rng.integers(0, 64)), dtype=np.uint8)))
    return heads


def test_python_and_in_graph_readers_agree_on_hundreds_of_damaged_blocks():
    traced = tf.function(exif.orientation_status, input_signature=[tf.TensorSpec([], tf.string)])
    results = {}
    for k, data in enumerate(mutated_heads(600)):
        value, problem = exif.jpeg_orientation(data)
        expected = exif.PROBLEM if problem else value
        assert int(traced(tf.constant(data))) == expected, (k, data[:40])
        results[expected] = results.get(expected, 0) + 1
    # the cases cover every outcome: upright or absent, each valid turn, and damaged blocks
    assert set(results) == {exif.PROBLEM, *range(1, 9)}, results
    assert results[exif.PROBLEM] > 100 and results[1] > 100, results


def test_decoding_raw_bytes_turns_every_orientation_upright(photos):
    _, folder = photos
    for o in range(1, 9):
        image = decode_and_resize(tf.constant((folder / f"{o}.jpg").read_bytes()), SIZE).numpy()
        assert close(image, UPRIGHT), o
    stored_as_is = decode_and_resize(tf.constant((folder / "6.jpg").read_bytes()), SIZE, orientation=1).numpy()
    assert not close(stored_as_is, UPRIGHT)


@pytest.mark.parametrize("mode", ["squash", "crop", "pad"])
def test_every_resize_mode_treats_a_turned_photo_as_its_upright_twin(photos, mode):
    """The transpose of orientations 5-8 happens after the resize, to the transposed target: a crop or a pad
    to a target of another aspect must still land where it lands on the upright photo."""
    _, folder = photos
    target = (40, 90)  # wider than the photo's 2:3, so crop and pad cut or fill along one axis only
    reference = decode_and_resize(tf.constant(jpeg(UPRIGHT)), target, mode).numpy()
    for o in range(2, 9):
        image = decode_and_resize(tf.constant((folder / f"{o}.jpg").read_bytes()), target, mode).numpy()
        assert close(image, reference), (mode, o)
    stored_as_is = decode_and_resize(tf.constant((folder / "8.jpg").read_bytes()), target, mode, orientation=1)
    assert not close(stored_as_is.numpy(), reference)


def test_pack_keeps_original_bytes_and_the_reader_applies_the_orientation(photos, tmp_path):
    _, folder = photos
    src = tmp_path / "train"
    src.mkdir()
    for o in range(1, 9):
        (src / f"cat.{o}.jpg").write_bytes((folder / f"{o}.jpg").read_bytes())
        (src / f"dog.{o}.jpg").write_bytes(jpeg(blocky(*SIZE, seed=o), o))
    (src / "cat.99.jpg").write_bytes(jpeg(UPRIGHT, exif=DAMAGED_EXIF["invalid-value-9"]))
    m = pack([str(src)], str(tmp_path / "packed"), workers=1, progress=False)
    assert m["orientation"]["turned"] == 14
    assert [w for w in m["warnings"] if "cat.99.jpg" in w] == [
        f"{src}/cat.99.jpg: invalid EXIF orientation 9; read as upright (orientation 1)"]
    seen = {}
    for split in ("train", "val"):
        if not m["splits"][split]["num_examples"]:
            continue
        for batch in load(str(tmp_path / "packed"), split, SIZE, batch_size=4, with_ids=True):
            seen.update(zip((i.decode() for i in batch["id"].numpy()), batch["image"].numpy()))
    assert len(seen) == 17
    for o in range(1, 9):
        assert close(seen[f"cat.{o}"], UPRIGHT), o
        assert close(seen[f"dog.{o}"], blocky(*SIZE, seed=o)), o
    assert close(seen["cat.99"], UPRIGHT)
    records = tf.data.TFRecordDataset(tf.io.gfile.glob(str(tmp_path / "packed" / "*.tfrecord")))
    stored = {parse_example(r)["image/id"].numpy().decode(): parse_example(r) for r in records}
    assert stored["cat.6"]["image/encoded"].numpy() == (folder / "6.jpg").read_bytes()  # bytes kept original
    assert int(stored["cat.6"]["image/orientation"]) == 6


def test_records_written_before_the_orientation_feature_read_as_upright():
    old = tf.train.Example(features=tf.train.Features(feature={
        name: tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"x"])) for name in
        ("image/encoded", "image/format", "image/class/text", "image/id", "image/source", "image/sha256",
         "image/converted_from")} | {
        name: tf.train.Feature(int64_list=tf.train.Int64List(value=[1])) for name in
        ("image/height", "image/width", "image/class/label")}))
    assert int(parse_example(tf.constant(old.SerializeToString()))["image/orientation"]) == 1


def test_predict_sees_upright_pixels_from_files_zips_and_packs(photos, tmp_path):
    root, folder = photos
    archive = tmp_path / "photos.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for o in range(1, 9):
            zf.write(folder / f"{o}.jpg", f"z{o}.jpg")
    test = tmp_path / "test1"
    test.mkdir()
    for o in range(1, 9):
        (test / f"{o}.jpg").write_bytes(jpeg(blocky(*SIZE, seed=o), o))
    pack([str(test)], str(tmp_path / "packed"), workers=1, progress=False)
    for inputs, expected in ((folder, UPRIGHT), (archive, UPRIGHT), (tmp_path / "packed", None)):
        recorder = Recorder()
        result = run_predictions(recorder, collect_inputs([str(inputs)]), batch_size=3, progress=False)
        assert len(result.ids) == 8 and not result.bad and not result.exif_problems
        for image_id, image in zip(result.ids, recorder.images[1:]):  # [0] is the warm-up
            want = expected if expected is not None else blocky(*SIZE, seed=int(image_id))
            assert close(image, want), (inputs, image_id)


def _tagged(pixels: np.ndarray, orientation: int, fmt: str) -> bytes:
    """PNG / lossless WebP bytes of `pixels` (upright) stored turned and tagged, as Pillow writes them: a PNG
    `eXIf` chunk holds the bare TIFF block, a WebP `EXIF` chunk keeps the `Exif\\0\\0` prefix."""
    from fixtures.photos import STORED

    image = Image.fromarray(pixels)
    image = image.transpose(STORED[orientation]) if STORED[orientation] is not None else image
    tag = Image.Exif()
    tag[0x0112] = orientation
    out = io.BytesIO()
    image.save(out, format=fmt, exif=tag.tobytes(), **({"lossless": True} if fmt == "WEBP" else {}))
    return out.getvalue()


@pytest.mark.parametrize("fmt", ["PNG", "WEBP"])
def test_png_and_webp_with_an_orientation_read_upright_by_pack_and_by_predict(tmp_path, fmt):
    """Pack converts a PNG/WebP upright with Pillow's exif_transpose; predict on the file read it as stored, so
    the same photo got 0.999 from a pack and 0.62 from its folder. Both now see the upright photo."""
    test = tmp_path / "test1"
    test.mkdir()
    for o in range(1, 9):
        data = _tagged(blocky(*SIZE, seed=o), o, fmt)
        assert (b"eXIf" if fmt == "PNG" else b"EXIF") in data
        (test / f"{o}.{fmt.lower()}").write_bytes(data)
        assert tf.function(exif.orientation_status)(tf.constant(data)).numpy() == o
        assert close(np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB")),
                     blocky(*SIZE, seed=o)), o
    if fmt == "WEBP":  # WebP writes its EXIF chunk after the image data: beyond the 128 KB a JPEG is searched
        noise = np.random.default_rng(0).integers(0, 256, (400, 300, 3), dtype=np.uint8)
        big = _tagged(noise, 6, fmt)
        assert big.find(b"EXIF") > exif.SCAN_BYTES
        assert tf.function(exif.orientation_status)(tf.constant(big)).numpy() == 6
    pack([str(test)], str(tmp_path / "packed"), workers=1, progress=False)
    # the pack stores them converted to JPEG (quality 95, chroma subsampled: 3-5 levels off these blocks)
    for inputs, tolerance in ((test, 3.0), (tmp_path / "packed", 8.0)):
        recorder = Recorder()
        result = run_predictions(recorder, collect_inputs([str(inputs)]), batch_size=3, progress=False)
        assert len(result.ids) == 8 and not result.bad and not result.exif_problems
        for image_id, image in zip(result.ids, recorder.images[1:]):  # [0] is the warm-up
            assert close(image, blocky(*SIZE, seed=int(image_id)), tolerance), (inputs, image_id)


def test_predict_warns_by_name_about_a_damaged_exif_block(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "1.jpg").write_bytes(jpeg(UPRIGHT, 6))
    (folder / "2.jpg").write_bytes(jpeg(UPRIGHT, exif=DAMAGED_EXIF["cut-short"]))
    run = write_run(tmp_path / "run", image_size=(32, 32))
    result = runner.invoke(catdog.cli.app, ["predict", str(run), str(folder), "-o", str(tmp_path / "s.csv")])
    assert result.exit_code == 0, result.output
    assert f"warning: {folder}/2.jpg: damaged EXIF block or invalid orientation; read as upright" in result.output
    assert "1.jpg" not in result.output.split("wrote")[0]
    assert len((tmp_path / "s.csv").read_text().splitlines()) == 3


def test_serve_preview_and_model_input_are_upright(photos):
    from fastapi.testclient import TestClient

    from catdog.serve import create_app

    _, folder = photos
    recorder = Recorder()
    with TestClient(create_app(recorder, batch_wait_ms=0)) as client:
        for o in range(1, 9):
            response = client.post("/predict?preview=1", files={"file": (f"{o}.jpg", (folder / f"{o}.jpg").read_bytes())})
            assert response.status_code == 200, response.text
            preview = response.json()["input_preview"]
            assert preview.startswith("data:image/jpeg;base64,")
            shown = np.asarray(Image.open(io.BytesIO(base64.b64decode(preview.split(",", 1)[1]))))
            assert close(recorder.images[-1], UPRIGHT) and close(shown, UPRIGHT), o
        damaged = client.post("/predict", files={"file": ("bad.jpg", jpeg(UPRIGHT, exif=DAMAGED_EXIF["garbage"]))})
        assert damaged.status_code == 200 and "input_preview" not in damaged.json()
        assert damaged.json()["warning"] == "damaged EXIF block or invalid orientation; read as upright"
        assert "warning" not in client.post("/predict", files={"file": ("6.jpg", (folder / "6.jpg").read_bytes())}).json()


def test_exported_savedmodel_bytes_signature_turns_photos_upright(photos, tmp_path):
    _, folder = photos
    run = write_run(tmp_path / "run", image_size=SIZE, logit_scale=8.0)
    result = runner.invoke(catdog.cli.app, ["export", str(run), "--format", "savedmodel", "--out", str(tmp_path / "sm")])
    assert result.exit_code == 0, result.output
    serve = tf.saved_model.load(str(tmp_path / "sm" / "1")).signatures["serving_default"]
    images = serve(image_bytes=tf.constant([(folder / f"{o}.jpg").read_bytes() for o in range(1, 9)]))
    probs = images["probabilities"].numpy()
    np.testing.assert_allclose(probs, np.repeat(probs[:1], 8, axis=0), atol=0.02)
    from catdog.run import load_run

    model = load_run(run).inference_model()
    sideways = model(decode_and_resize(tf.constant((folder / "6.jpg").read_bytes()), SIZE, orientation=1)[None]).numpy()
    assert np.abs(sideways - probs[:1]).max() > 0.02  # ignoring the tag would have been caught


def test_decoding_upright_logs_no_onednn_error_line(tmp_path):
    """TF's transpose of uint8 pixels goes through oneDNN, which prints "E0000 ... oneDNN supports DT_UINT8 only
    on platforms with AVX-512" on such CPUs: a line that looks like an error in every train/predict run."""
    import subprocess
    import sys

    path = tmp_path / "p.jpg"
    Image.fromarray(np.full((30, 40, 3), 120, np.uint8)).save(path)
    code = ("import catdog._tf, tensorflow as tf\nfrom catdog.data.decode import decode_and_resize\n"
            f"data = open({str(path)!r}, 'rb').read()\n"
            "for o in (1, 6):\n"
            "    ds = tf.data.Dataset.from_tensors(data).map(lambda e: decode_and_resize(e, (16, 20), orientation=o))\n"
            "    assert next(iter(ds)).shape == (16, 20, 3)\n"
            "    tf.function(lambda e: decode_and_resize(e, (16, 20)))(tf.constant(data))\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "oneDNN supports" not in proc.stderr, proc.stderr[-2000:]
