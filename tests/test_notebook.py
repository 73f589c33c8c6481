"""The analysts' notebook runs top to bottom on a warehouse, read-only."""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "institution_walkthrough.ipynb"


def test_walkthrough_notebook_executes(small_night, tmp_path, monkeypatch):
    db, _, _ = small_night
    before = db.stat().st_mtime_ns
    monkeypatch.setenv("CLAIMWATCH_DB", str(db))
    monkeypatch.delenv("MPLBACKEND", raising=False)  # the kernel's own inline backend, as in Jupyter
    nb = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(nb, timeout=180, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    # the daily-cost chart is shown: importing the report's charts must not switch the kernel to Agg
    assert [o for o in outputs if "image/png" in o.get("data", {})]
    text = "".join(str(o.get("text", "")) + str(o.get("data", {}).get("text/plain", "")) for o in outputs)
    assert "flagged visits" in text and "latest run" in text
    assert db.stat().st_mtime_ns == before  # opened read-only
    assert os.environ["CLAIMWATCH_DB"] == str(db)
