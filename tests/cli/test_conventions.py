"""Command-line conventions: -j for --threads, several inputs to predict, MultiQC output."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import EXAMPLES, run_bioseqnn

TINY_CNN = [
    "--arch",
    "cnn",
    "--channels",
    "8",
    "--kernel-sizes",
    "5",
    "--dilations",
    "1",
    "--epochs",
    "1",
    "--quiet",
]


@pytest.fixture(scope="module")
def peptide_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from bioseqnn.cli import main

    out = tmp_path_factory.mktemp("conventions") / "peptides.bsnn"
    assert (
        main(
            [
                "train",
                str(EXAMPLES / "hemolytic.fasta"),
                str(EXAMPLES / "hemolytic.csv"),
                "-o",
                str(out),
                "-j",
                "1",
                *TINY_CNN,
            ]
        )
        == 0
    )
    return out


def _fasta_parts(tmp_path: Path) -> tuple[Path, Path]:
    """The first 7 peptides and the next 5, as two FASTA files."""
    lines = (EXAMPLES / "hemolytic.fasta").read_text().splitlines()
    a, b = tmp_path / "a.fa", tmp_path / "b.fa"
    a.write_text("\n".join(lines[:14]) + "\n")
    b.write_text("\n".join(lines[14:24]) + "\n")
    return a, b


@pytest.mark.parametrize(
    "command", ["train", "predict", "evaluate", "explain", "variants", "generate", "tune"]
)
def test_every_command_with_threads_takes_j(cli, command: str) -> None:
    import typer

    from bioseqnn.cli import app

    params = typer.main.get_command(app).commands[command].params  # type: ignore[attr-defined]
    threads = next(p for p in params if p.name == "threads")
    assert set(threads.opts) == {"--threads", "-j"}


def test_predict_reads_several_files_in_order(cli, peptide_model: Path, tmp_path: Path) -> None:
    a, b = _fasta_parts(tmp_path)
    ra = cli("predict", peptide_model, a, "-j", "1")
    rb = cli("predict", peptide_model, b, "--threads", "1")
    both = cli("predict", peptide_model, a, b, "-j", "1")
    assert ra.code == rb.code == both.code == 0
    head, *rows_a = ra.out.splitlines()
    _, *rows_b = rb.out.splitlines()
    assert len(rows_a) == 7 and len(rows_b) == 5
    assert both.out.splitlines() == [head, *rows_a, *rows_b]
    assert "warning" not in both.err


def test_an_id_in_two_files_keeps_both_rows_and_warns(
    cli, peptide_model: Path, tmp_path: Path
) -> None:
    a, _ = _fasta_parts(tmp_path)
    r = cli("predict", peptide_model, a, a)
    assert r.code == 0
    rows = r.out.splitlines()[1:]
    assert len(rows) == 14 and rows[:7] == rows[7:]
    assert r.err.count("warning") == 1
    assert "'peptide_pm_1' is in" in r.err and "both rows are kept" in r.err


@pytest.mark.slow
def test_several_inputs_in_a_real_process(peptide_model: Path, tmp_path: Path) -> None:
    a, b = _fasta_parts(tmp_path)
    r = run_bioseqnn("predict", peptide_model, a, "-", "-j", "1", stdin=b.read_bytes(), timeout=300)
    assert r.returncode == 0, r.stderr.decode()
    ids = [line.split("\t")[0] for line in r.stdout.decode().splitlines()[1:]]
    expected = [
        line[1:] for line in (a.read_text() + b.read_text()).splitlines() if line.startswith(">")
    ]
    assert ids == expected
    twice = run_bioseqnn("predict", peptide_model, "-", "-", timeout=300)
    assert twice.returncode == 2 and b"only one input can be '-'" in twice.stderr


# MultiQC's custom content (docs: "Custom Content", JSON form): these top-level keys, a
# plot type, and data as sample -> {column: value}
MULTIQC_KEYS = {
    "id",
    "section_name",
    "description",
    "plot_type",
    "pconfig",
    "headers",
    "data",
    "parent_id",
    "parent_name",
    "section_anchor",
}
PLOT_TYPES = {
    "generalstats",
    "table",
    "bargraph",
    "linegraph",
    "scatter",
    "heatmap",
    "html",
    "image",
    "violin",
    "box",
}


def test_evaluate_writes_multiqc_custom_content(cli, peptide_model: Path, tmp_path: Path) -> None:
    a, b = _fasta_parts(tmp_path)
    labels = EXAMPLES / "hemolytic.csv"
    docs = []
    for name, fasta in (("first", a), ("second", b)):
        mqc = tmp_path / f"{name}_mqc.json"
        r = cli(
            "evaluate",
            peptide_model,
            fasta,
            labels,
            "--multiqc",
            mqc,
            "--quiet",
            "--ignore-unmatched",
        )
        assert r.code == 0, r.err
        docs.append((json.loads(r.out), json.loads(mqc.read_text())))
    for metrics, section in docs:
        assert set(section) <= MULTIQC_KEYS
        assert section["plot_type"] in PLOT_TYPES and section["plot_type"] == "table"
        assert section["id"] == "bioseqnn_evaluate"  # one table for all the files
        assert isinstance(section["section_name"], str) and section["pconfig"]["id"]
        ((sample, row),) = section["data"].items()
        assert sample == f"peptides: {metrics['dataset']}"
        assert set(section["headers"]) == set(row)
        assert row["records"] == metrics["records"]
        for key, value in metrics["metrics"].items():
            if value is None:  # undefined on this data: no cell
                assert key not in row
            else:
                assert row[key] == value and isinstance(value, (int, float))
        assert all(isinstance(v, (int, float)) and math.isfinite(v) for v in row.values())
    # the two runs are two rows of one table once MultiQC merges the files
    assert docs[0][1]["data"].keys() != docs[1][1]["data"].keys()


def test_a_multiqc_name_without_the_suffix_is_a_warning(
    cli, peptide_model: Path, tmp_path: Path
) -> None:
    a, _ = _fasta_parts(tmp_path)
    r = cli(
        "evaluate",
        peptide_model,
        a,
        EXAMPLES / "hemolytic.csv",
        "--multiqc",
        tmp_path / "metrics.json",
        "--ignore-unmatched",
        "-o",
        tmp_path / "m.json",
    )
    assert r.code == 0
    assert "MultiQC finds custom content by the name's end, _mqc.json" in r.err
    assert json.loads((tmp_path / "metrics.json").read_text())["plot_type"] == "table"


@pytest.mark.parametrize(
    "args",
    [["predict", "MODEL", "SEQS"], ["info", "MODEL"], ["--version"]],
    ids=["predict", "info", "version"],
)
def test_a_closed_standard_output_is_one_line(peptide_model: Path, args: list[str]) -> None:
    """Started with stdout closed (``>&-``), Python has no sys.stdout; writing to it was
    'unexpected TypeError'. Now the output error, exit 1."""
    given = [
        {"MODEL": str(peptide_model), "SEQS": str(EXAMPLES / "hemolytic.fasta")}.get(a, a)
        for a in args
    ]
    done = subprocess.run(
        [sys.executable, "-m", "bioseqnn", *given],
        stdin=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        preexec_fn=lambda: os.close(1),
        timeout=600,
        check=False,
    )
    assert done.returncode == 1
    assert done.stderr.decode() == (
        "bioseqnn: error: <stdout>: cannot write: standard output is closed\n"
    )


def test_a_file_name_that_is_not_utf8_is_shown_as_the_shell_writes_it(
    peptide_model: Path, tmp_path: Path
) -> None:
    """Bytes of a name that are not UTF-8 were shown as \\udce9, which cannot be typed
    back; they are shown as \\xe9, as printf takes them."""
    name = os.fsdecode(bytes(tmp_path) + b"/bad\xe9.fa")
    Path(name).write_bytes(b">a\nAC3D\n")
    done = run_bioseqnn("predict", peptide_model, name)
    assert done.returncode == 1
    shown = str(tmp_path) + "/bad\\xe9.fa"
    assert done.stderr.decode().startswith(f"bioseqnn: error: {shown}: line 2, column 3: ")
    done = run_bioseqnn("predict", peptide_model, os.fsdecode(bytes(tmp_path) + b"/no\xe9.fa"))
    assert done.stderr.decode() == f"bioseqnn: error: {tmp_path}/no\\xe9.fa: no such file\n"


def test_an_interrupt_while_the_command_line_loads_is_one_line() -> None:
    """A Ctrl-C typed right after Enter arrives while the command line's modules load,
    before its error funnel is in place: the console script answers it as the funnel
    would (one line, exit 130), not with a traceback. The interrupt is made to arrive
    as typer is imported."""
    probe = (
        "import sys\n"
        "class Interrupt:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'typer':\n"
        "            raise KeyboardInterrupt\n"
        "sys.meta_path.insert(0, Interrupt())\n"
        "sys.argv = ['bioseqnn', '--version']\n"
        "from bioseqnn._entry import run\n"
        "run()\n"
    )
    p = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert p.returncode == 130
    assert p.stderr == "bioseqnn: error: interrupted\n"
    assert p.stdout == ""
