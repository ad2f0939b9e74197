"""Real subprocess pipelines: stdin, gzip, '| head', exit codes."""

from __future__ import annotations

import gzip
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import run_bioseqnn

import bioseqnn


@pytest.mark.slow
def test_gzip_on_stdin_to_file_matches_plain_path(
    hemolytic_model: Path, examples: Path, tmp_path: Path
) -> None:
    fasta = examples / "hemolytic.fasta"
    out = tmp_path / "p.tsv"
    p = run_bioseqnn(
        "predict", hemolytic_model, "-", "-o", out, stdin=gzip.compress(fasta.read_bytes())
    )
    assert p.returncode == 0, p.stderr
    assert p.stdout == b""
    direct = run_bioseqnn("predict", hemolytic_model, fasta)
    assert direct.returncode == 0
    assert out.read_bytes() == direct.stdout
    assert direct.stdout.count(b"\n") == 1105


@pytest.mark.slow
def test_gzip_output_by_name(hemolytic_model: Path, examples: Path, tmp_path: Path) -> None:
    out = tmp_path / "p.tsv.gz"
    p = run_bioseqnn("predict", hemolytic_model, examples / "hemolytic.fasta", "-o", out)
    assert p.returncode == 0
    lines = gzip.decompress(out.read_bytes()).decode().splitlines()
    assert lines[0].startswith("id\tpredicted") and len(lines) == 1105


@pytest.mark.slow
def test_head_closes_the_pipe_without_a_traceback(
    hemolytic_model: Path, examples: Path, tmp_path: Path
) -> None:
    # Enough records that predict is still writing when head exits.
    big = tmp_path / "big.fa"
    text = (examples / "hemolytic.fasta").read_text()
    big.write_text("".join(text.replace(">", f">r{i}_") for i in range(20)))
    cmd = (
        f"cat {big} | {sys.executable} -m bioseqnn predict {hemolytic_model} - | head -5; "
        'echo "${PIPESTATUS[1]}" >&2'
    )
    p = subprocess.run(["bash", "-c", cmd], capture_output=True, timeout=300)
    assert p.stdout.decode().count("\n") == 5
    assert b"Traceback" not in p.stderr and b"BrokenPipe" not in p.stderr
    # bioseqnn's own status (cat upstream may die of SIGPIPE, as any writer would).
    assert p.stderr.decode().strip().splitlines()[-1] == "0", p.stderr


@pytest.mark.slow
def test_a_reader_of_dev_stdout_that_goes_away_ends_it_quietly(
    hemolytic_model: Path, examples: Path, tmp_path: Path
) -> None:
    """-o /dev/stdout is written directly; a reader that goes away (| head) ends the
    command as it does for -o -: exit 0, nothing on stderr."""
    big = tmp_path / "big.fa"
    text = (examples / "hemolytic.fasta").read_text()
    big.write_text("".join(text.replace(">", f">r{i}_") for i in range(20)))
    cmd = (
        f"{sys.executable} -m bioseqnn predict {hemolytic_model} {big} -o /dev/stdout "
        '| head -3; echo "${PIPESTATUS[0]}" >&2'
    )
    p = subprocess.run(["bash", "-c", cmd], capture_output=True, timeout=300)
    assert p.stdout.decode().count("\n") == 3
    assert p.stderr.decode().splitlines() == ["0"]


def test_console_script_and_module_agree(examples: Path) -> None:
    exe = shutil.which("bioseqnn", path=str(Path(sys.executable).parent))
    assert exe is not None
    a = subprocess.run([exe, "--version"], capture_output=True, text=True)
    b = run_bioseqnn("--version")
    assert a.returncode == b.returncode == 0
    # one line, as pipelines parse it
    assert a.stdout == b.stdout.decode() == f"bioseqnn {bioseqnn.__version__}\n"
    from bioseqnn.models import native

    detail = subprocess.run([exe, "version", "--verbose"], capture_output=True, text=True)
    assert detail.returncode == 0, detail.stderr
    lines = detail.stdout.splitlines()
    assert lines[0] == a.stdout.strip()
    fields = dict(line.split(": ", 1) for line in lines[1:])
    assert fields["torch"].startswith(f"{torch.__version__} (")
    assert fields["python"].startswith(".".join(map(str, sys.version_info[:3])))
    isa = native.instruction_set()
    kernels = fields["CPU kernels for LSTM/GRU"]
    assert kernels.endswith(isa) == native.available()
    assert ("not built" in kernels) == (isa == "none")
    assert fields["numpy"] == np.__version__


@pytest.mark.slow
def test_bad_data_exits_1_usage_exits_2(hemolytic_model: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.fa"
    bad.write_text(">a\nMKV3L\n")
    p = run_bioseqnn("predict", hemolytic_model, bad, "-o", tmp_path / "x.tsv")
    assert p.returncode == 1
    assert (
        p.stderr.decode().strip().splitlines()
        == [
            f"bioseqnn: error: {bad}: record 'a': invalid protein symbol '3' at position 4 "
            "(use --on-invalid skip or mask, or --alphabet)"
        ]
        or b"position 4" in p.stderr
    )
    assert not (tmp_path / "x.tsv").exists()
    p = run_bioseqnn("predict", hemolytic_model, bad, "--batch-size", "0")
    assert p.returncode == 2


@pytest.mark.slow
def test_evaluate_writes_its_files_before_the_tables_reach_a_closed_pipe(
    hemolytic_model: Path, examples: Path, tmp_path: Path
) -> None:
    """stderr into '| head -2': the tables meet a closed pipe, the metrics JSON and the
    MultiQC file are written all the same (they come first), and the command exits 0
    (Rich's console exits 1 at a broken pipe)."""
    out, mqc = tmp_path / "m.json", tmp_path / "h_mqc.json"
    cmd = (
        f"{sys.executable} -m bioseqnn evaluate {hemolytic_model} "
        f"{examples / 'hemolytic.fasta'} {examples / 'hemolytic.csv'} -o {out} "
        f"--multiqc {mqc} 2>&1 | head -2; exit ${{PIPESTATUS[0]}}"
    )
    p = subprocess.run(["bash", "-c", cmd], capture_output=True, timeout=300)
    assert p.returncode == 0, p.stderr.decode()
    assert p.stdout.decode().count("\n") == 2
    import json

    assert json.loads(out.read_text())["records"] == 1104
    assert json.loads(mqc.read_text())["plot_type"] == "table"


@pytest.mark.slow
def test_records_then_nul_bytes_on_stdin_stop_at_that_line(
    hemolytic_model: Path, examples: Path, tmp_path: Path
) -> None:
    """A stream that turns into NUL bytes (a file cut into /dev/zero, a binary file) is
    refused at its line, without reading it as one endless line; the same for a labels
    table. 50 MB of NUL bytes stand for /dev/zero, so a regression fails instead of
    hanging."""
    fasta = examples / "hemolytic.fasta"
    lines = fasta.read_text().count("\n")
    for args, head, where in (
        (["predict", hemolytic_model, "-"], fasta, f"<stdin>: line {lines + 1}: "),
        (
            ["train", fasta, "-", "-o", tmp_path / "m.bsnn", "--epochs", "1"],
            examples / "hemolytic.csv",
            f"<stdin>: line {(examples / 'hemolytic.csv').read_text().count(chr(10)) + 1}: ",
        ),
    ):
        command = " ".join(f"'{a}'" for a in [sys.executable, "-m", "bioseqnn", *map(str, args)])
        done = subprocess.run(
            ["bash", "-c", f"(cat '{head}'; head -c 50000000 /dev/zero) | {command} -q"],
            capture_output=True,
            timeout=300,
            check=False,
        )
        assert done.returncode == 1
        assert done.stderr.decode().splitlines()[-1] == (
            f"bioseqnn: error: {where}not text (a NUL byte); is this a binary file?"
        )
    assert not (tmp_path / "m.bsnn").exists()


@pytest.mark.slow
def test_dash_on_a_terminal_is_refused_instead_of_waiting(hemolytic_model: Path) -> None:
    """'-' (the default input of ism-map and variants) on an interactive terminal would
    wait for typing that never comes: it is a usage error at once."""
    import pty

    _, terminal = pty.openpty()
    for args in (["predict", hemolytic_model, "-"], ["ism-map", hemolytic_model]):
        done = subprocess.run(
            [sys.executable, "-m", "bioseqnn", *map(str, args)],
            stdin=terminal,
            capture_output=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 2 and done.stdout == b""
        assert done.stderr.decode().splitlines() == [
            "bioseqnn: error: '-' reads standard input, which is a terminal here: pipe the "
            "input in (... | bioseqnn ...) or give a file name"
        ]
    # closed (a scheduler's or daemon's way to start a command): said as such
    done = subprocess.run(
        [sys.executable, "-m", "bioseqnn", "predict", str(hemolytic_model), "-"],
        capture_output=True,
        preexec_fn=lambda: os.close(0),
        timeout=120,
        check=False,
    )
    assert done.returncode == 2 and done.stdout == b""
    assert done.stderr.decode().splitlines() == [
        "bioseqnn: error: '-' reads standard input, which is closed here: pipe the input "
        "in (... | bioseqnn ...) or give a file name"
    ]
