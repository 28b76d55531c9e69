"""`catdog --version` prints the package version, without importing TensorFlow (it must be instant)."""

from __future__ import annotations

import subprocess
import sys

import catdog


def test_version_prints_the_package_version_without_tensorflow():
    code = ("import sys, catdog.cli; sys.argv = ['catdog', '--version']\n"
            "try:\n    catdog.cli.main()\nexcept SystemExit as e:\n    assert e.code in (0, None), e.code\n"
            "assert 'tensorflow' not in sys.modules, 'catdog --version imported TensorFlow'")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout == f"catdog {catdog.__version__}\n"
