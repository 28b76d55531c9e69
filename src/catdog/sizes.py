"""Byte sizes written the way people type them on a command line: '128MB', '512KB', '1.5 MiB', '1048576'."""

from __future__ import annotations

import re

from catdog.errors import ConfigError

# K/M/G are binary (1MB = 2**20 bytes), as file sizes are shown by most tools; a bare number is bytes.
_UNITS = {"": 1, "b": 1, "k": 2**10, "kb": 2**10, "kib": 2**10, "m": 2**20, "mb": 2**20, "mib": 2**20,
          "g": 2**30, "gb": 2**30, "gib": 2**30}


def parse_size(text: str | int, option: str) -> int:
    """'10MB' -> 10485760; ConfigError naming `option` (e.g. "--shard-size") for anything else or < 1 byte."""
    if isinstance(text, int):
        value = text
    else:
        match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", str(text))
        unit = match.group(2).lower() if match else None
        if not match or unit not in _UNITS:
            raise ConfigError(f"{option}: cannot read {text!r} as a size; use bytes or e.g. 64MB, 512KB, 1GB")
        value = int(float(match.group(1)) * _UNITS[unit])
    if value < 1:
        raise ConfigError(f"{option}: must be at least 1 byte, got {text!r}")
    return value
