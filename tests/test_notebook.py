"""notebooks/dogs_vs_cats.ipynb runs top to bottom (headless, nbclient) on small generated data, so it never rots."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "dogs_vs_cats.ipynb"

pytestmark = pytest.mark.skipif(
    any(importlib.util.find_spec(m) is None for m in ("nbclient", "nbformat", "ipykernel")),
    reason="nbclient / nbformat / ipykernel not installed (the test extra has them)")


def test_notebook_runs_on_generated_data(tmp_path):
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(NOTEBOOK, as_version=4)
    params = [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(params) == 1, "the notebook needs exactly one cell tagged 'parameters'"
    params[0].source = "\n".join([
        f"WORK_DIR = {str(tmp_path / 'work')!r}", "KAGGLE_DIR = ''", "CATDOG_PIP = ''",
        "INSTALL = False", "USE_DRIVE = False", "GENERATED_DATA = True",
        "BACKBONE = 'small-cnn'", "WEIGHTS = 'none'", "IMAGE_SIZE = 32",
        "EPOCHS = 1", "FINE_TUNE_EPOCHS = 0", "BATCH_SIZE = 16", "PACK_WORKERS = 0",
    ])
    NotebookClient(nb, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()

    errors = [o for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
    work = tmp_path / "work"
    submission = (work / "submission.csv").read_text().splitlines()
    assert submission[0] == "id,label" and len(submission) == 1 + 20  # every generated test image once
    assert [int(line.split(",")[0]) for line in submission[1:]] == list(range(1, 21))
    assert (work / "exported" / "model.tflite").is_file()
    report = json.loads((work / "exported" / "export.json").read_text())["exports"]["model.tflite"]
    assert 0 <= report["accuracy"] <= 1
    # the curves cell drew a figure, and the mistakes page was displayed inline
    outputs = [o for c in nb.cells for o in c.get("outputs", [])]
    assert any("image/png" in o.get("data", {}) for o in outputs)
    assert any("Most confident mistakes" in o.get("data", {}).get("text/html", "") for o in outputs)


def test_install_cell_refuses_to_pip_install_an_unset_package(tmp_path):
    """catdog is not on PyPI: with INSTALL on and CATDOG_PIP left empty the notebook stops with a message,
    instead of `pip install catdog` fetching whatever package has that name."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    nb = nbformat.read(NOTEBOOK, as_version=4)
    params = next(i for i, c in enumerate(nb.cells) if "parameters" in c.get("metadata", {}).get("tags", []))
    install = next(i for i, c in enumerate(nb.cells) if "%pip install" in c.source)
    nb.cells = [nb.cells[params], nb.cells[install]]
    nb.cells[0].source = "INSTALL = True\nCATDOG_PIP = ''"
    with pytest.raises(CellExecutionError, match="not on PyPI"):
        NotebookClient(nb, timeout=120, kernel_name="python3",
                       resources={"metadata": {"path": str(tmp_path)}}).execute()
