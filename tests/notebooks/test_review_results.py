"""The notebook runs top to bottom on a real screening of the bundled sample: a cell that
raises fails the test, and what it prints must agree with the results file it read."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest

from knockoff.screening.screen import ScreenOptions, screen
from tests.helpers import REPO, SAMPLE

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")
pytest.importorskip("matplotlib")

NOTEBOOK = REPO / "notebooks" / "review-results.ipynb"


@pytest.mark.slow
def test_review_notebook_runs_on_a_screening_of_the_sample(tmp_path, monkeypatch):
    results = tmp_path / "sample.parquet"
    monkeypatch.chdir(REPO)  # the manifest's photo paths, as `make demo` screens them
    screen([str(SAMPLE / "listings.csv")], results, REPO / "models" / "knockoff.onnx", REPO / "models" / "gallery",
           ScreenOptions())
    monkeypatch.setenv("KNOCKOFF_RESULTS", str(results))
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    notebook = nbformat.read(NOTEBOOK, as_version=4)

    nbclient.NotebookClient(notebook, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": str(NOTEBOOK.parent)}}).execute()

    rows = pq.read_table(results).to_pylist()
    counts = (f"{len(rows)} rows, {sum(bool(r['flagged']) for r in rows)} flagged, "
              f"{sum(r['error'] is not None for r in rows)} failed")
    printed = ["".join(output.get("text", "")) for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs]
    assert counts in printed[0]
    figures = [output for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs
               if "image/png" in output.get("data", {})]
    assert len(figures) == 7  # the five most suspicious listings, then the two least
