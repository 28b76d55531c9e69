"""Shared fixtures: tiny generated image trees, and ../shared (real photos, pretrained weights) when present."""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest

from fixtures.images import make_image

SHARED = Path(__file__).resolve().parents[2] / "shared"


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """../shared beside the checkout; tests using it skip where it is absent (a user's fresh clone)."""
    if not (SHARED / "data" / "dogs-vs-cats" / "train").is_dir():
        pytest.skip("../shared is not present")
    return SHARED


@pytest.fixture
def kaggle_flat(tmp_path: Path) -> Path:
    """Kaggle layout: train/cat.<i>.jpg (reddish) and train/dog.<i>.jpg (bluish), 6 of each."""
    root = tmp_path / "train"
    for i in range(1, 7):
        make_image(root / f"cat.{i}.jpg", (200, 60, 40), seed=i)
        make_image(root / f"dog.{i}.jpg", (40, 60, 200), seed=100 + i)
    return root
