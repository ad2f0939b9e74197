"""The example notebook (examples/quickstart.ipynb) runs from top to bottom in a kernel."""

from __future__ import annotations

import os

import pytest
from conftest import ROOT

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")
pytest.importorskip("pandas")

NOTEBOOK = ROOT / "examples" / "quickstart.ipynb"


def _installed(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None


def _text(cell: dict) -> str:
    """A cell's outputs as text: streams and plain-text results."""
    parts = []
    for out in cell.get("outputs", []):
        if out["output_type"] == "stream":
            parts.append(out["text"])
        elif "data" in out:
            parts.append(out["data"].get("text/plain", ""))
    return "".join(parts)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.slow
def test_the_quickstart_notebook_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])
    )
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(
        nb,
        timeout=300,
        kernel_name="python3",
        resources={"metadata": {"path": str(NOTEBOOK.parent)}},
    )
    client.execute()
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert not [o for c in code for o in c.outputs if o["output_type"] == "error"]
    train, best, predict, quiet, evaluate = (_text(c) for c in code[1:])
    # the epochs were logged (stderr of the kernel), then shown as a table
    assert all(f"bioseqnn: epoch {k}/4" in train for k in range(1, 5))
    # with ipywidgets, the progress bar is a widget (Rich's live display)
    widgets = [
        o
        for o in code[1].outputs
        if "application/vnd.jupyter.widget-view+json" in o.get("data", {})
    ]
    assert len(widgets) == (1 if _installed("ipywidgets") else 0)
    table = train[train.index("   epoch") :].strip().splitlines()
    assert "val_mcc" in table[0] and len(table) == 5
    assert best.startswith("best epoch ") and "val_auroc 0." in best
    assert "magainin-like" in predict and "prob_1" in predict
    # the quiet run logged no epoch, and trained 4 of them
    assert "bioseqnn: epoch 1/4" not in quiet and "\n4 epochs, val_accuracy 0." in quiet
    assert "auroc" in evaluate and "accuracy" in evaluate


@pytest.mark.skipif(not _installed("ipywidgets"), reason="the bar is a widget with ipywidgets")
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.slow
def test_no_epoch_line_is_lost_to_the_progress_widget(monkeypatch: pytest.MonkeyPatch) -> None:
    """While a notebook's bar (an output widget) is drawn, what the cell prints goes into
    the widget and is cleared at the next draw; drawn by a thread of its own, it took an
    epoch's log line with it now and then (3 of 30 in one of five runs on a busy machine).
    Many short epochs of many batches give that many chances."""
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])
    )
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    data = ROOT / "example_data"
    source = (
        "import bioseqnn\n"
        f"run = bioseqnn.train({str(data / 'hemolytic.fasta')!r}, "
        f"{str(data / 'hemolytic.csv')!r}, arch='cnn', channels=[8], kernel_sizes=[3], "
        "dilations=[1], epochs=30, patience=100, batch_size=8, seed=1, threads=1)\n"
    )
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source)])
    nbclient.NotebookClient(nb, timeout=600, kernel_name="python3").execute()
    (cell,) = nb.cells
    assert not [o for o in cell.outputs if o["output_type"] == "error"]
    shown = _text(cell)
    assert [k for k in range(1, 31) if f"bioseqnn: epoch {k}/30" not in shown] == []
    assert (
        sum("application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in cell.outputs)
        == 1
    )
