"""Shared fixtures: example data paths, an in-process CLI runner and a subprocess runner."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "example_data"
# the tools that are not the library (scripts/reproduce.py, benchmarks/bench_memory.py)
sys.path[:0] = [str(ROOT / "scripts"), str(ROOT / "benchmarks")]


@dataclass
class CliResult:
    code: int
    out: str
    err: str


@pytest.fixture
def examples() -> Path:
    return EXAMPLES


@pytest.fixture
def cli(capfd: pytest.CaptureFixture[str]):
    """Run ``bioseqnn ARGS`` in-process through the real entry point (error funnel included)."""
    from bioseqnn.cli import main

    def run(*args: str | os.PathLike[str]) -> CliResult:
        capfd.readouterr()
        code = main([str(a) for a in args])
        out, err = capfd.readouterr()
        return CliResult(code, out, err)

    return run


def run_bioseqnn(
    *args: str | os.PathLike[str], stdin: bytes | None = None, cwd: Path | None = None,
    timeout: float = 600,
) -> subprocess.CompletedProcess[bytes]:
    """Run the installed command in a real subprocess."""
    return subprocess.run(
        [sys.executable, "-m", "bioseqnn", *map(str, args)], input=stdin, capture_output=True,
        cwd=cwd, timeout=timeout, check=False,
    )


@pytest.fixture(scope="session")
def hemolytic_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small LSTM trained briefly on the hemolytic peptides (shared by read-only tests)."""
    from bioseqnn.cli import main

    out = tmp_path_factory.mktemp("models") / "hemolytic.bsnn"
    code = main([
        "train", str(EXAMPLES / "hemolytic.fasta"), str(EXAMPLES / "hemolytic.csv"),
        "-o", str(out), "--epochs", "3", "--hidden-size", "32", "--quiet"])
    assert code == 0
    return out


@pytest.fixture(scope="session")
def promoter_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small GRU regressor on the promoter subset (DNA)."""
    from bioseqnn.cli import main

    out = tmp_path_factory.mktemp("models") / "promoters.bsnn"
    code = main(["train", str(EXAMPLES / "promoters.fasta"), str(EXAMPLES / "promoters.csv"),
                 "-o", str(out), "--epochs", "2", "--arch", "gru", "--hidden-size", "16",
                 "--quiet"])
    assert code == 0
    return out
