"""Issue 13: bounded resources and one-line errors for hostile or broken input.

Memory is measured as the peak RSS of a fresh `python -m catdog ...` subprocess, read by a small wrapper
with resource.getrusage(RUSAGE_CHILDREN), so earlier tests in this process cannot pollute the number.
"""

from __future__ import annotations

import csv
import io
import os
import struct
import subprocess
import sys
import zipfile
import zlib
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from catdog.data.imagecheck import BadImage, read_header
from catdog.data.pack import pack
from fixtures.images import make_image
from fixtures.runs import write_run
from fixtures.cli import invoke

SRC = Path(__file__).resolve().parents[1] / "src"
GB = 2**30


def peak_rss(*args, cwd=None) -> tuple[int, int, str]:
    """(exit code, peak RSS in bytes, output) of `python -m catdog ARGS` run in a fresh wrapper process."""
    wrapper = ("import resource, subprocess, sys; p = subprocess.run(sys.argv[1:], capture_output=True, text=True); "
               "print(p.returncode); print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); "
               "print(p.stdout + p.stderr)")
    env = {**os.environ, "PYTHONPATH": str(SRC), "TF_CPP_MIN_LOG_LEVEL": "3"}
    out = subprocess.run([sys.executable, "-c", wrapper, sys.executable, "-m", "catdog", *map(str, args)],
                         capture_output=True, text=True, env=env, cwd=cwd, timeout=600).stdout
    code, rss, text = out.split("\n", 2)
    return int(code), int(rss) * 1024, text  # ru_maxrss is in KiB on Linux


def read_rejected(out: Path) -> dict[str, str]:
    with open(out / "rejected.csv", newline="") as f:
        return {Path(r["path"]).name: r["reason"] for r in csv.DictReader(f)}


def jpeg(size=(32, 32), seed=0) -> bytes:
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(buf, format="JPEG")
    return buf.getvalue()


def jpeg_claiming(width: int, height: int) -> bytes:
    """A small real JPEG whose frame header (SOF0) is patched to claim width x height: the probe's 633 bytes."""
    data = bytearray(jpeg((16, 16)))
    sof = data.index(b"\xff\xc0")
    data[sof + 5:sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def png_with_bad_crc() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (32, 32), (40, 60, 200)).save(buf, format="PNG")
    data = bytearray(buf.getvalue())
    idat = data.index(b"IDAT")
    length = struct.unpack(">I", data[idat - 4:idat])[0]
    data[idat + 4 + length] ^= 0xFF  # flip a byte of the IDAT chunk's CRC; the pixels are intact
    return bytes(data)


def zip_bomb(path: Path, size: int = 2 * GB, good: int = 3) -> Path:
    """A real deflate bomb: `size` bytes of zeros in ~2 MB (the same 1 MiB block compressed once and repeated
    after full flushes, which is what zlib itself would emit), beside a few good photos."""
    block = bytes(2**20)
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    chunk = c.compress(block) + c.flush(zlib.Z_FULL_FLUSH)
    tail = zlib.compressobj(9, zlib.DEFLATED, -15).flush()

    class Repeat:  # stands in for zipfile's compressor: zipfile still computes the real CRC over all the bytes
        def compress(self, data):
            assert len(data) == len(block)
            return chunk

        def flush(self):
            return tail

    real = zipfile._get_compressor
    zipfile._get_compressor = lambda *a, **k: Repeat()
    try:
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
            with zf.open("train/cat.999.bmp", "w", force_zip64=True) as f:
                for _ in range(size // len(block)):
                    f.write(block)
    finally:
        zipfile._get_compressor = real
    with zipfile.ZipFile(path, "a", zipfile.ZIP_DEFLATED) as zf:
        for i in range(1, good + 1):
            zf.writestr(f"train/cat.{i}.jpg", jpeg(seed=i))
            zf.writestr(f"train/dog.{i}.jpg", jpeg(seed=100 + i))
    return path


def test_zip_bomb_helper_is_a_real_bomb(tmp_path):
    small = zip_bomb(tmp_path / "small.zip", size=8 * 2**20, good=0)
    with zipfile.ZipFile(small) as zf:
        assert zf.read("train/cat.999.bmp") == bytes(8 * 2**20)  # inflates, CRC checked by zipfile


def test_pack_refuses_a_zip_bomb_before_inflating_it_in_bounded_memory(tmp_path):
    bomb = zip_bomb(tmp_path / "bomb.zip")
    assert bomb.stat().st_size < 4 * 2**20
    code, rss, output = peak_rss("pack", bomb, "--out", tmp_path / "out", "--workers", "1")
    assert code == 0 and "Traceback" not in output, output
    assert rss < 1 * GB, f"peak RSS {rss / 2**20:.0f} MB"
    rejected = read_rejected(tmp_path / "out")
    assert rejected == {"cat.999.bmp": "too-large"}


def test_a_highly_compressed_member_is_refused_by_ratio(tmp_path):
    path = tmp_path / "ratio.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("train/cat.9.bmp", bytes(16 * 2**20))  # 16 MB of zeros: ~1000:1
        for i in range(1, 4):
            zf.writestr(f"train/cat.{i}.jpg", jpeg(seed=i))
            zf.writestr(f"train/dog.{i}.jpg", jpeg(seed=50 + i))
    pack([path], tmp_path / "out", workers=1, progress=False)
    assert read_rejected(tmp_path / "out") == {"cat.9.bmp": "compression-ratio"}


def test_symlink_loops_and_dangling_links_are_listed_as_rejected(tmp_path):
    src = tmp_path / "train"
    for i in range(1, 4):
        make_image(src / f"cat.{i}.jpg", (200, 60, 40), size=(32, 32), seed=i)
        make_image(src / f"dog.{i}.jpg", (40, 60, 200), size=(32, 32), seed=10 + i)
    (src / "cat.50.jpg").symlink_to(src / "cat.50.jpg")  # a loop
    (src / "dog.51.jpg").symlink_to(tmp_path / "gone.jpg")  # dangling
    result = invoke("pack", src, "--out", tmp_path / "out", "--workers", "1")
    assert result.exit_code == 0 and "Traceback" not in result.output, result.output
    assert read_rejected(tmp_path / "out") == {"cat.50.jpg": "link-loop", "dog.51.jpg": "dangling-link"}


def test_one_checker_pack_and_serve_refuse_the_same_broken_files(tmp_path):
    from catdog.serve.images import RejectedImage, check_header

    truncated, bad_crc = jpeg_claiming(6000, 6000), png_with_bad_crc()
    assert len(truncated) < 1000
    src = tmp_path / "train"
    for i in range(1, 4):
        make_image(src / f"cat.{i}.jpg", (200, 60, 40), size=(32, 32), seed=i)
        make_image(src / f"dog.{i}.jpg", (40, 60, 200), size=(32, 32), seed=10 + i)
    (src / "cat.7.jpg").write_bytes(truncated)
    (src / "dog.8.png").write_bytes(bad_crc)
    pack([src], tmp_path / "out", workers=1, progress=False)
    assert read_rejected(tmp_path / "out") == {"cat.7.jpg": "truncated", "dog.8.png": "bad-crc"}
    for data, status in ((truncated, 400), (bad_crc, 400)):
        with pytest.raises(RejectedImage) as caught:
            check_header(data, 40_000_000)
        assert caught.value.status == status
    with pytest.raises(BadImage, match="6000x6000 needs at least 70,312 bytes of data, the file has"):
        read_header(truncated)


@contextmanager
def tiny_disk(path: Path, size: str = "1m"):
    """A small tmpfs at `path` (root only); skips the test where mounting is not allowed."""
    path.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def test_disk_full_during_pack_is_one_line_naming_the_path_and_free_space(tmp_path):
    src = tmp_path / "train"
    for i in range(1, 13):
        for label, color in (("cat", (200, 60, 40)), ("dog", (40, 60, 200))):
            (src / f"{label}.{i}.jpg").parent.mkdir(exist_ok=True)
            (src / f"{label}.{i}.jpg").write_bytes(jpeg((160, 160), seed=i if label == "cat" else 100 + i))
    with tiny_disk(tmp_path / "disk", "256k") as disk:
        result = invoke("pack", src, "--out", disk / "out", "--workers", "1")
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    line = result.output.strip().splitlines()[-1]
    assert line.startswith(f"error: {disk / 'out'}: disk full while packing (") and " free)" in line


def test_disk_full_during_predict_is_one_line(tmp_path):
    run = write_run(tmp_path / "run")
    images = tmp_path / "images"
    for i in range(1, 4):
        make_image(images / f"{i}.jpg", (40 * i, 120, 200), seed=i)
    with tiny_disk(tmp_path / "disk", "64k") as disk:
        try:  # leave no space at all
            with open(disk / "filler", "wb") as f:
                while True:
                    f.write(bytes(4096))
                    f.flush()
        except OSError:
            pass
        result = invoke("predict", run, images, "-o", disk / "submission.csv")
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    assert result.output.strip().splitlines()[-1] == (f"error: {disk / 'submission.csv'}: disk full while writing predictions "
                                     "(0 bytes free); free some space and run the same command again")


def big_png(path: Path, side: int = 20000) -> Path:
    """A valid 20000x20000 greyscale PNG of zeros (~400 KB), written row by row without 400 MB in memory."""
    row = b"\0" * (side + 1)  # filter byte + pixels
    deflate = zlib.compressobj(9, zlib.DEFLATED, -15)
    one = deflate.compress(row) + deflate.flush(zlib.Z_FULL_FLUSH)  # the same bytes for every row after a full flush
    adler = 1
    for _ in range(side):
        adler = zlib.adler32(row, adler)
    idat = b"\x78\xda" + one * side + zlib.compressobj(9, zlib.DEFLATED, -15).flush() + struct.pack(">I", adler)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0))
                     + chunk(b"IDAT", idat) + chunk(b"IEND", b""))
    return path


def test_predict_refuses_a_huge_png_from_its_header_in_bounded_memory(tmp_path):
    run = write_run(tmp_path / "run")
    images = tmp_path / "images"
    for i in range(1, 3):
        make_image(images / f"{i}.jpg", (40 * i, 120, 200), seed=i)
    big_png(images / "3.png")
    assert (images / "3.png").stat().st_size < 2**20
    code, rss, output = peak_rss("predict", run, images, "-o", tmp_path / "sub.csv", "--skip-bad")
    assert code == 0 and "Traceback" not in output, output
    assert rss < 1 * GB, f"peak RSS {rss / 2**20:.0f} MB"
    with open(tmp_path / "sub.skipped.csv", newline="") as f:
        (row,) = list(csv.DictReader(f))
    assert row["id"] == "3" and "the limit is 40,000,000 pixels" in row["reason"]
    result = invoke("predict", run, images / "3.png", images / "1.jpg", "-o", tmp_path / "strict.csv")
    assert result.exit_code == 1 and "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and errors[0].startswith("error: 1 of 2 images could not be read: ")
    assert "3.png (image dimensions are absurd" in result.output and "the limit is 40,000,000 pixels" in result.output
    assert not (tmp_path / "strict.csv").exists()


def test_evaluate_refuses_a_record_above_the_pixel_limit_before_decoding_it(tmp_path):
    import hashlib

    import tensorflow as tf

    from catdog.data import manifest as manifest_lib
    from catdog.data.records import make_example
    from fixtures.packed import build_pack

    packed = tmp_path / "packed"
    manifest = build_pack(packed, {"train": 2, "val": 4}, shards_per_split=1)
    shard = manifest["splits"]["val"]["shards"][0]
    bomb = jpeg_claiming(20000, 20000)  # a hand-made pack: its header claims 400 MP
    with tf.io.TFRecordWriter(str(packed / shard["file"])) as writer:
        for i in range(4):
            data = bomb if i == 2 else jpeg(seed=i)
            writer.write(make_example(encoded=data, height=32, width=32, label=i % 2, label_text=("cat", "dog")[i % 2],
                                      image_id=f"x.{i}", source=f"x.{i}.jpg", sha256=hashlib.sha256(data).hexdigest()))
    shard.update(num_bytes=(packed / shard["file"]).stat().st_size, sha256=manifest_lib.file_sha256(str(packed / shard["file"])))
    manifest_lib.write_manifest(str(packed), manifest)
    run = write_run(tmp_path / "run", data=packed)
    result = invoke("evaluate", run, "--data", packed)
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    assert result.output.strip().splitlines()[-1] == (
        f"error: {packed}: split 'val' holds an image whose header claims more pixels than the limit (40 MP by "
        "default); it was not decoded; re-pack the images with `catdog pack`")


def test_predict_refuses_jpeg_headers_in_graph_with_the_pack_rules_in_bounded_memory(tmp_path):
    """predict checks a JPEG's frame header in-graph (no Python call per photo): the pixel limit and the minimum
    size are read_header's rules, and a refused JPEG is never decoded (a 30000x30000 claim would take 2.7 GB)."""
    run = write_run(tmp_path / "run")
    images = tmp_path / "images"
    for i in range(1, 3):
        make_image(images / f"{i}.jpg", (40 * i, 120, 200), seed=i)
    (images / "3.jpg").write_bytes(jpeg_claiming(30000, 30000) + bytes(1_800_000))  # big enough: only the limit fails
    (images / "4.jpg").write_bytes(jpeg_claiming(6000, 6000))  # 633 bytes for 6000x6000: truncated
    code, rss, output = peak_rss("predict", run, images, "-o", tmp_path / "sub.csv", "--skip-bad")
    assert code == 0 and "Traceback" not in output, output
    assert rss < 1 * GB, f"peak RSS {rss / 2**20:.0f} MB"
    with open(tmp_path / "sub.csv", newline="") as f:
        assert [row["id"] for row in csv.DictReader(f)] == ["1", "2"]
    with open(tmp_path / "sub.skipped.csv", newline="") as f:
        reasons = {row["id"]: row["reason"] for row in csv.DictReader(f)}
    assert set(reasons) == {"3", "4"}
    assert "the limit is 40,000,000 pixels" in reasons["3"]
    assert "6000x6000 needs at least 70,312 bytes of data" in reasons["4"]


def test_predict_checks_good_jpegs_without_a_python_call_per_photo(tmp_path, monkeypatch):
    """The per-photo Python header check held the GIL against the model's loop; JPEGs are checked in-graph."""
    import catdog.prediction as prediction

    run = write_run(tmp_path / "run")
    images = tmp_path / "images"
    for i in range(1, 4):
        make_image(images / f"{i}.jpg", (40 * i, 120, 200), seed=i)
    Image.new("RGB", (24, 20), (10, 200, 30)).save(images / "4.png")
    calls = []
    real = prediction.read_header
    monkeypatch.setattr(prediction, "read_header", lambda data, *a: calls.append(data[:4]) or real(data, *a))
    summary = prediction.predict(str(run), [str(images)], str(tmp_path / "sub.csv"), progress=False)
    assert summary.rows == 4 and not summary.skipped
    assert calls == [b"\x89PNG"]  # the PNG only
