"""How closely MediaPipe Tasks' ImageClassifier agrees with `catdog predict` on an exported .tflite, on real
photos at their own sizes (MediaPipe decodes and resizes them itself).

    $ python bench/mediapipe_agreement.py bench-work/exports/model.tflite ../shared/data/dogs-vs-cats/test1

MediaPipe runs in its own venv (`.venv-mediapipe`, built by .ci/run; its pins clash with TensorFlow's), through
tests/mediapipe_classify.py. Prints |P(catdog) - P(MediaPipe)| for the model's last class (P(dog) for cats vs
dogs): max, mean, how many photos exceed 0.02, top-class disagreements, and the worst photos with their sizes;
"large" = at least twice the model's input size in both dimensions.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
SUFFIXES = {".jpg", ".jpeg", ".png"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", type=Path, help="an exported .tflite (catdog export --format tflite)")
    parser.add_argument("photos", type=Path, help="a folder of photos")
    parser.add_argument("--mediapipe-python", type=Path, default=REPO / ".venv-mediapipe" / "bin" / "python")
    parser.add_argument("--worst", type=int, default=8, help="photos to list, worst first")
    args = parser.parse_args()
    if not args.mediapipe_python.is_file():
        sys.exit(f"error: no MediaPipe venv at {args.mediapipe_python} (python3 -m venv .venv-mediapipe && "
                 ".venv-mediapipe/bin/pip install mediapipe==1.2.3)")
    photos = sorted(p for p in args.photos.iterdir() if p.suffix.lower() in SUFFIXES)
    if not photos:
        sys.exit(f"error: {args.photos}: no .jpg/.jpeg/.png photos")
    metadata = json.loads(Path(str(args.model) + ".json").read_text())
    (height, width), classes = metadata["image_size"], metadata["classes"]

    proc = subprocess.run([str(args.mediapipe_python), str(REPO / "tests" / "mediapipe_classify.py"), str(args.model),
                           *map(str, photos)], capture_output=True, text=True, check=True)
    mediapipe = {Path(p).stem: s[classes[-1]] for p, s in json.loads(proc.stdout.strip().splitlines()[-1]).items()}
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "predictions.csv"
        subprocess.run([sys.executable, "-m", "catdog", "predict", str(args.model), str(args.photos), "-o", str(out)],
                       check=True, capture_output=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
        with out.open() as f:
            catdog = {row["id"]: float(row["label"]) for row in csv.DictReader(f)}

    rows = []
    for path in photos:
        w, h = Image.open(path).size
        gap = abs(catdog[path.stem] - mediapipe[path.stem])
        rows.append((gap, path.name, w, h, catdog[path.stem], mediapipe[path.stem]))
    gaps = np.array([r[0] for r in rows])
    large = np.array([r[2] >= 2 * width and r[3] >= 2 * height for r in rows])
    flips = sum((r[4] > 0.5) != (r[5] > 0.5) for r in rows)
    print(f"{len(rows)} photos ({int(large.sum())} large): |dP| max {gaps.max():.4f}, mean {gaps.mean():.4f}, "
          f"p99 {np.quantile(gaps, 0.99):.4f}; > 0.02: {int((gaps > 0.02).sum())} "
          f"(large: {int((gaps[large] > 0.02).sum())}, max {gaps[large].max() if large.any() else 0:.4f}); "
          f"top class differs: {flips}")
    for gap, name, w, h, p_catdog, p_mediapipe in sorted(rows, reverse=True)[: args.worst]:
        print(f"  {name} {w}x{h}: catdog {p_catdog:.4f}  MediaPipe {p_mediapipe:.4f}  |dP| {gap:.4f}")


if __name__ == "__main__":
    main()
