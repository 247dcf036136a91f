"""``examples/quickstart.ipynb`` runs top to bottom, offline, with nbclient."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

NOTEBOOK = Path(__file__).resolve().parent.parent / "examples" / "quickstart.ipynb"


@pytest.mark.slow
def test_quickstart_notebook_executes(tmp_path: Path) -> None:
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel", reason="nbclient needs a python3 Jupyter kernel (dev extra)")
    pytest.importorskip("torch")
    pytest.importorskip("sklearn")
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(notebook, timeout=300, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute()  # raises CellExecutionError (with the traceback) when a cell fails

    out = tmp_path / "quickstart-output"
    text = "".join(o.get("text", "") for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs)
    plan = json.loads((out / "synthetic" / "plan.json").read_text())
    assert "7: 6 real + 24 synthetic" in text and "0: 30 real + 0 synthetic" in text, text
    assert len(list((out / "synthetic" / "7").glob("*.png"))) == 24 and plan
    for folder in ("report", "evaluation"):
        assert "<svg" in (out / folder / "report.html").read_text()
    evaluation = json.loads((out / "evaluation" / "report.json").read_text())
    assert list(evaluation["experiments"]) == ["baseline", "upsample"]
    assert "upsample   test accuracy" in text
    md = "\n".join(c.source for c in notebook.cells if c.cell_type == "markdown")
    assert 'pip install "synthaug[sd' in md and "--generator lora-sd15" in md  # the GPU variant, as commands
