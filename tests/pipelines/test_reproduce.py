"""The reproduce command end to end on tiny slices (a pipeline check, not the figures)."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from reproduce import ROWS, main, markdown, stratified_folds

EXAMPLES = Path(__file__).resolve().parents[2] / "example_data"
SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "reproduce.py"
LAYOUT = "DATA must hold the datasets as laid out in ../shared/data (see its README)"


def slice_fasta(src: Path, dst: Path, ids: list[str]) -> None:
    records: dict[str, str] = {}
    name = ""
    for line in src.read_text().splitlines():
        if line.startswith(">"):
            name = line[1:].split()[0]
            records[name] = ""
        else:
            records[name] += line.strip()
    dst.write_text("".join(f">{i}\n{records[i]}\n" for i in ids))


def ids_of(path: Path) -> list[str]:
    return [line[1:].split()[0] for line in path.read_text().splitlines() if line.startswith(">")]


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """The layout of ../shared/data, filled with a few records of example_data."""
    root = tmp_path / "data"
    nc = root / "ncrna_families"
    nc.mkdir(parents=True)
    for part, per_family in (("train", 6), ("test", 2)):
        with open(EXAMPLES / f"ncrna_{part}.csv", newline="") as fh:
            rows = list(csv.DictReader(fh))
        seen: dict[str, int] = {}
        keep = []
        for r in rows:
            if seen.get(r["family"], 0) < per_family:
                seen[r["family"]] = seen.get(r["family"], 0) + 1
                keep.append(r)
        (nc / f"{part}.csv").write_text(
            "id,family\n" + "".join(f"{r['id']},{r['family']}\n" for r in keep)
        )
        slice_fasta(EXAMPLES / f"ncrna_{part}.fasta", nc / f"{part}.fasta", [r["id"] for r in keep])
    ss = root / "secondary_structure"
    ss.mkdir()
    train = ids_of(EXAMPLES / "ss_train.fasta")[:40]
    test = ids_of(EXAMPLES / "ss_test.fasta")[:10]
    split = {
        **{i: "train" for i in train[:30]},
        **{i: "valid" for i in train[30:]},
        **{i: "test" for i in test},
    }
    (ss / "splits.csv").write_text("id,split\n" + "".join(f"{i},{s}\n" for i, s in split.items()))
    for name, suffix in (("sequences", ""), ("ss3", "_ss3"), ("resolved_mask", "_mask")):
        text = "".join(
            (EXAMPLES / f"ss_{part}{suffix}.fasta").read_text() for part in ("train", "test")
        )
        (ss / "all.fasta").write_text(text)
        slice_fasta(ss / "all.fasta", ss / f"{name}.fasta", list(split))
    (ss / "all.fasta").unlink()
    return root


@pytest.mark.slow
def test_reduced_run_writes_results_and_table(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "results.json"
    code = main(
        [
            str(data_dir),
            "--rows",
            "ncrna_families,secondary_structure",
            "--epochs",
            "1",
            "--out",
            str(out),
            "--quiet",
        ]
    )
    assert code == 0
    doc = json.loads(out.read_text())
    nc, ss = doc["rows"]["ncrna_families"], doc["rows"]["secondary_structure"]
    assert nc["reduced"] == "--epochs 1" and nc["seed"] == 0
    assert nc["config"] == "example_data/reproduce/ncrna_families.yaml"
    assert nc["train_records"] + nc["val_records"] == 78 and nc["test_records"] == 26
    assert 0.0 <= nc["results"]["test accuracy"] <= 1.0
    assert nc["epochs_run"] == 1
    from bioseqnn.models import native

    kernels = native.instruction_set() if native.available() else "off"
    assert nc["machine"].endswith(f"torch {torch.__version__}, CPU kernels {kernels}")
    assert "per position" in ss["architecture"] and "pooling" not in ss["architecture"]
    assert ss["train_records"] == 30 and ss["val_records"] == 10 and ss["test_records"] == 10
    # the secondary-structure config is an ensemble: every member is recorded
    assert ss["architecture"].endswith(", ensemble of 5")
    assert [m["seed"] for m in ss["members"]] == [0, 1, 2, 3, 4]
    assert all(m["epochs_run"] == 1 for m in ss["members"])
    assert 0.0 <= ss["validation"]["val_accuracy"] <= 1.0
    # Q3 counts resolved test residues only
    mask = "".join(
        line
        for line in (data_dir / "secondary_structure" / "resolved_mask.fasta")
        .read_text()
        .splitlines()[-20:]
        if not line.startswith(">")
    )
    assert ss["scored_positions"] == mask.count("1")
    captured = capsys.readouterr()
    table = captured.out
    assert captured.err == ""  # --quiet: not even the CPU fallback of device 'auto'
    assert "| ncrna_families | test accuracy |" in table
    assert "(reduced run: --epochs 1)" in table
    assert "ensemble of 5 (`example_data/reproduce/secondary_structure.yaml`) |" in table
    assert [
        line.split(" | ")[-1]
        for line in table.splitlines()
        if line.startswith("| secondary_structure | Q3")
    ] == ["0-4 |"]
    assert "0.859 (one-hot CNN" in table
    assert "not yet measured (`python scripts/reproduce.py DATA --rows gb1_fitness`)" in table

    # a second run of another row keeps the first rows
    code = main(
        [str(data_dir), "--rows", "ncrna_families", "--epochs", "1", "--out", str(out), "--quiet"]
    )
    assert code == 0
    again = json.loads(out.read_text())["rows"]
    assert set(again) == {"ncrna_families", "secondary_structure"}
    assert again["ncrna_families"]["results"] == nc["results"]  # same seed, same numbers


def test_every_row_has_a_config_and_a_table_line() -> None:
    from bioseqnn.config import load_config

    for row in ROWS:
        load_config(EXAMPLES / "reproduce" / f"{row}.yaml")
    text = markdown({})
    assert all(f"| {row} |" in text for row in ROWS)


def test_stratified_folds_balance_classes() -> None:
    labels = ["a"] * 10 + ["b"] * 5
    folds = stratified_folds(labels, 5, 0)
    for k in range(5):
        members = [lab for lab, f in zip(labels, folds, strict=True) if f == k]
        assert members.count("a") == 2 and members.count("b") == 1


# --------------------------------------------------------------------------- the command's errors
# Each runs `python scripts/reproduce.py` in a real subprocess from a temporary folder.


def reproduce(
    *args: str | os.PathLike[str], cwd: Path, script: Path = SCRIPT
) -> subprocess.CompletedProcess[str]:
    """Run the command (``script``: the checkout's, or a copy elsewhere)."""
    return subprocess.run(
        [sys.executable, str(script), *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def one_error(proc: subprocess.CompletedProcess[str], code: int, message: str) -> None:
    """The run failed with ``code`` and said exactly ``message`` on one line, no traceback."""
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode == code, proc.stderr
    assert proc.stderr == f"reproduce: error: {message}\n"
    assert proc.stdout == ""


@pytest.fixture
def peptides(tmp_path: Path) -> Path:
    """A DATA folder holding only hemolytic_peptides: 20 + 20 records of example_data."""
    folder = tmp_path / "data" / "hemolytic_peptides"
    folder.mkdir(parents=True)
    with open(EXAMPLES / "hemolytic.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    keep = [r for r in rows if r["hemolytic"] == "1"][:20] + [
        r for r in rows if r["hemolytic"] == "0"
    ][:20]
    (folder / "labels.csv").write_text(
        "id,hemolytic\n" + "".join(f"{r['id']},{r['hemolytic']}\n" for r in keep)
    )
    slice_fasta(EXAMPLES / "hemolytic.fasta", folder / "peptides.fasta", [r["id"] for r in keep])
    return tmp_path / "data"


@pytest.fixture
def copied(tmp_path: Path) -> Path:
    """The script copied out of the checkout, without example_data/ beside it."""
    (tmp_path / "tools" / "scripts").mkdir(parents=True)
    shutil.copy(SCRIPT, tmp_path / "tools" / "scripts" / "reproduce.py")
    assert not (tmp_path / "tools" / "example_data").exists()
    return tmp_path / "tools" / "scripts" / "reproduce.py"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["/nonexist", "--rows", "hemolytic_peptides", "--configs", EXAMPLES / "reproduce"],
            f"/nonexist: no such data folder; {LAYOUT}",
        ),
        (
            ["data", "--rows", "hemolytic_peptides,nope"],
            f"unknown row(s) nope; choose from {', '.join(ROWS)}",
        ),
        (
            ["data", "--epochs", "two"],
            "argument --epochs: invalid int value: 'two' "
            "(see 'python scripts/reproduce.py --help')",
        ),
        (["data", "--limit", "0"], "--limit must be at least 1, not 0"),
        (
            [],
            "the following arguments are required: data (see 'python scripts/reproduce.py --help')",
        ),
        (
            ["data", "--configs", "nowhere"],
            "nowhere: no such folder (--configs: the folder of the <row>.yaml configs)",
        ),
        (
            ["data", "--rows", "hemolytic_peptides", "--configs", "data"],
            "data/hemolytic_peptides.yaml: cannot read config: No such file or directory",
        ),
        (
            ["data", "--out", "missing/r.json"],
            "missing/r.json: cannot write: directory 'missing' does not exist",
        ),
    ],
)
@pytest.mark.slow
def test_usage_errors_are_one_line_exit_2(peptides: Path, args: list[str], message: str) -> None:
    proc = reproduce(*args, cwd=peptides.parent)
    one_error(proc, 2, message)
    assert not (peptides.parent / "reproduce_results.json").exists()


@pytest.mark.slow
def test_missing_dataset_files_are_one_line_exit_1(peptides: Path) -> None:
    (peptides / "hemolytic_peptides" / "peptides.fasta").unlink()
    proc = reproduce("data", "--rows", "hemolytic_peptides", cwd=peptides.parent)
    one_error(proc, 1, f"data/hemolytic_peptides: missing peptides.fasta; {LAYOUT}")
    # every requested row is checked before the first one trains
    proc = reproduce("data", "--rows", "hemolytic_peptides,gb1_fitness", cwd=peptides.parent)
    one_error(proc, 1, f"data/hemolytic_peptides: missing peptides.fasta; {LAYOUT}")
    (peptides / "hemolytic_peptides" / "peptides.fasta").write_text(">a\nGIG\n")
    proc = reproduce("data", "--rows", "hemolytic_peptides,gb1_fitness", cwd=peptides.parent)
    one_error(proc, 1, f"data/gb1_fitness: no such dataset folder; {LAYOUT}")


@pytest.mark.slow
def test_results_file_that_is_not_json_is_one_line_exit_1(peptides: Path) -> None:
    out = peptides.parent / "r.json"
    out.write_text("not json\n")
    proc = reproduce("data", "--rows", "hemolytic_peptides", "--out", "r.json", cwd=peptides.parent)
    one_error(
        proc,
        1,
        "r.json: not a results file of this command (not JSON); choose another --out or remove it",
    )
    assert out.read_text() == "not json\n"


@pytest.mark.slow
def test_error_while_training_is_one_line_exit_1(peptides: Path) -> None:
    fasta = peptides / "hemolytic_peptides" / "peptides.fasta"
    lines = fasta.read_text().splitlines()
    lines[1] = "9" + lines[1][1:]  # a digit in the first peptide
    fasta.write_text("\n".join(lines) + "\n")
    proc = reproduce(
        "data",
        "--rows",
        "hemolytic_peptides",
        "--epochs",
        "1",
        "--quiet",
        "--workdir",
        "w",
        "--out",
        "r.json",
        cwd=peptides.parent,
    )
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if "error" in line]
    assert errors == [
        "reproduce: error: row hemolytic_peptides: w/hemolytic_peptides/"
        "hemolytic_peptides_fold0_train.fasta: line 2, column 1: record 'peptide_pm_1': "
        "invalid protein symbol '9' at position 1 (use --on-invalid skip or mask, or "
        "--alphabet)"
    ]
    assert proc.stderr.endswith(errors[0] + "\n")
    assert proc.stdout == "" and not (peptides.parent / "r.json").exists()


@pytest.mark.slow
def test_debug_shows_the_traceback(peptides: Path) -> None:
    proc = reproduce("/nonexist", "--rows", "hemolytic_peptides", "--debug", cwd=peptides.parent)
    assert proc.returncode == 2
    assert proc.stderr.startswith("Traceback") and "UsageError" in proc.stderr
    assert proc.stderr.endswith(f"reproduce: error: /nonexist: no such data folder; {LAYOUT}\n")


@pytest.mark.slow
def test_a_copy_without_configs_says_what_it_tried(peptides: Path, copied: Path) -> None:
    work = peptides.parent
    proc = reproduce("data", "--rows", "hemolytic_peptides", cwd=work, script=copied)
    one_error(
        proc,
        2,
        (
            f"no configs folder found (tried {copied.parent.parent.resolve()}/example_data/"
            "reproduce and "
            f"{work.resolve()}/example_data/reproduce); run from the bioseqnn checkout or name the "
            "folder of the <row>.yaml configs with --configs DIR"
        ),
    )


@pytest.mark.slow
def test_a_copy_finds_the_configs_of_the_checkout_it_runs_from(
    peptides: Path, copied: Path
) -> None:
    work = peptides.parent  # holds data/ and, as a checkout does, example_data/reproduce/
    shutil.copytree(EXAMPLES / "reproduce", work / "example_data" / "reproduce")
    proc = reproduce(
        "data",
        "--rows",
        "hemolytic_peptides",
        "--epochs",
        "1",
        "--out",
        "r.json",
        "--quiet",
        cwd=work,
        script=copied,
    )
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    entry = json.loads((work / "r.json").read_text())["rows"]["hemolytic_peptides"]
    assert entry["config"] == "example_data/reproduce/hemolytic_peptides.yaml"
    assert entry["reduced"] == "--epochs 1" and len(entry["folds"]["accuracy"]) == 5
    assert 0.0 <= entry["results"]["5-fold CV accuracy"] <= 1.0
    assert "(`example_data/reproduce/hemolytic_peptides.yaml`) |" in proc.stdout
    assert "| hemolytic_peptides | 5-fold CV accuracy |" in proc.stdout
