"""CSV files: the one writer (always atomic, through catdog.atomic) and the one reader.

Used for the Kaggle submission and its `.skipped.csv`, evaluate's predictions.csv, pack's side files
(rejected.csv, duplicates.csv, leakage.csv, records.csv) and merge. Formats differ only in their line
ending, which is part of each file's contract and therefore chosen by the caller:
- `CRLF` ("\\r\\n", the csv module's default): submission.csv, *.skipped.csv, predictions.csv;
- `LF` ("\\n"): the side files of a pack.
"""

from __future__ import annotations

import csv
import io
from typing import Iterable, Sequence

from catdog import atomic

CRLF = "\r\n"
LF = "\n"


def to_text(header: Sequence[str], rows: Iterable[Sequence], *, lineterminator: str = CRLF) -> str:
    """A header line plus one line per row, quoted by the csv module's rules."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator=lineterminator)
    writer.writerow(header)
    writer.writerows(rows)
    return buf.getvalue()


def write_csv(path, header: Sequence[str], rows: Iterable[Sequence], *, lineterminator: str = CRLF) -> None:
    """Write a CSV to `path` (a local path or a gs://-style URL) atomically: never half a file under that name."""
    atomic.write_text(path, to_text(header, rows, lineterminator=lineterminator))


def read_dicts(path) -> list[dict]:
    """The rows of a CSV with a header line, as dicts (also from gs://-style URLs)."""
    if atomic.is_url(path):
        import tensorflow as tf

        with tf.io.gfile.GFile(str(path)) as f:
            return list(csv.DictReader(f))
    with open(path, newline="") as f:
        return list(csv.DictReader(f))
