"""CSV files: the one writer (always atomic, through catdog.atomic) and the one reader.

Used for the Kaggle submission and its `.skipped.csv`, evaluate's predictions.csv, pack's side files
(rejected.csv, duplicates.csv, leakage.csv, records.csv) and merge. Formats differ only in their line
ending, which is part of each file's contract and therefore chosen by the caller:
- `CRLF` ("\\r\\n", the csv module's default): submission.csv, *.skipped.csv, predictions.csv;
- `LF` ("\\n"): the side files of a pack.

Cells are written so that a spreadsheet shows them as text, never runs them (CSV injection, OWASP): a text
cell that starts with `=`, `+`, `-`, `@`, a tab or a carriage return gets a leading single quote, the
escape spreadsheet programs expect (`=HYPERLINK(...)`, a file named `=1+2.jpg`, becomes `'=HYPERLINK(...)`,
`'=1+2`). Numbers (`-1`, `-0.5`, `+3e2`) cannot be formulas and are left alone, so Kaggle ids and
probabilities are unchanged. records.csv, a pack's machine-read file, is written unescaped.
"""

from __future__ import annotations

import csv
import io
from typing import Iterable, Sequence

from catdog import atomic

CRLF = "\r\n"
LF = "\n"


FORMULA_START = ("=", "+", "-", "@", "\t", "\r")  # what makes a spreadsheet evaluate a cell (OWASP)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def escape_cell(value):
    """A text cell a spreadsheet would evaluate -> the same text with a leading `'`; anything else unchanged."""
    if isinstance(value, str) and value.startswith(FORMULA_START) and not _is_number(value):
        return "'" + value
    return value


def to_text(header: Sequence[str], rows: Iterable[Sequence], *, lineterminator: str = CRLF,
            escape: bool = True) -> str:
    """A header line plus one line per row, quoted by the csv module's rules (cells escaped, see above)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator=lineterminator)
    writer.writerow(header)
    writer.writerows(([escape_cell(v) for v in row] for row in rows) if escape else rows)
    return buf.getvalue()


def write_csv(path, header: Sequence[str], rows: Iterable[Sequence], *, lineterminator: str = CRLF,
              escape: bool = True) -> None:
    """Write a CSV to `path` (a local path or a gs://-style URL) atomically: never half a file under that name.

    `escape=False` only for files read back by catdog itself (records.csv), never for files people open."""
    atomic.write_text(path, to_text(header, rows, lineterminator=lineterminator, escape=escape))


def read_dicts(path) -> list[dict]:
    """The rows of a CSV with a header line, as dicts (also from gs://-style URLs)."""
    if atomic.is_url(path):
        import tensorflow as tf

        with tf.io.gfile.GFile(str(path)) as f:
            return list(csv.DictReader(f))
    with open(path, newline="") as f:
        return list(csv.DictReader(f))
