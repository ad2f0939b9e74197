"""Shared fixtures: example data paths, an in-process CLI runner and a subprocess runner."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "example_data"
# the tools that are not the library (scripts/reproduce.py, benchmarks/bench_memory.py)
sys.path[:0] = [str(ROOT / "scripts"), str(ROOT / "benchmarks")]


SLOW_FIXTURES = {
    "torchrun_model",
    "peptide_lm",
    "dna_model",
    "motions_model",
    "plain_rows",
    "planted",
    "motif_data",
    "hemolytic_model",
}
"""Fixtures that take over a second to set up (they train models): a test that uses one
is slow even when its own call is quick. Measured with a timing run of the whole suite;
a test whose own call takes over a second carries @pytest.mark.slow itself."""


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """``pytest -m "not slow"`` is the fast tier (about a minute on two cores); the plain
    ``pytest`` runs everything."""
    for item in items:
        if SLOW_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


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


def fresh_python(
    probe: str, *args: str | os.PathLike[str], from_bash: bool = False
) -> subprocess.CompletedProcess[str]:
    """Run ``probe`` (with ``args`` as its sys.argv[1:]) in a new interpreter, without
    THP_MEM_ALLOC_ENABLE in its environment: what a command leaves in sys.modules, or
    changes process-wide, shows there. ``from_bash`` starts it from a bash that waits for
    it, for what looks for the user's shell among the process's ancestors (completion),
    whatever started the tests (a detached runner has no shell above it)."""
    env = {k: v for k, v in os.environ.items() if k != "THP_MEM_ALLOC_ENABLE"}
    shell = ["bash", "-c", '"$0" "$@"; exit $?'] if from_bash else []
    return subprocess.run(
        [*shell, sys.executable, "-c", probe, *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def run_bioseqnn(
    *args: str | os.PathLike[str],
    stdin: bytes | None = None,
    cwd: Path | None = None,
    timeout: float = 600,
) -> subprocess.CompletedProcess[bytes]:
    """Run the installed command in a real subprocess."""
    return subprocess.run(
        [sys.executable, "-m", "bioseqnn", *map(str, args)],
        input=stdin,
        capture_output=True,
        cwd=cwd,
        timeout=timeout,
        check=False,
    )


@pytest.fixture(scope="session")
def hemolytic_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small LSTM trained briefly on the hemolytic peptides (shared by read-only tests)."""
    from bioseqnn.cli import main

    out = tmp_path_factory.mktemp("models") / "hemolytic.bsnn"
    code = main(
        [
            "train",
            str(EXAMPLES / "hemolytic.fasta"),
            str(EXAMPLES / "hemolytic.csv"),
            "-o",
            str(out),
            "--arch",
            "lstm",
            "--epochs",
            "3",
            "--hidden-size",
            "32",
            "--quiet",
        ]
    )
    assert code == 0
    return out


@pytest.fixture(scope="session")
def promoter_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small GRU regressor on the promoter subset (DNA)."""
    from bioseqnn.cli import main

    out = tmp_path_factory.mktemp("models") / "promoters.bsnn"
    code = main(
        [
            "train",
            str(EXAMPLES / "promoters.fasta"),
            str(EXAMPLES / "promoters.csv"),
            "-o",
            str(out),
            "--epochs",
            "2",
            "--arch",
            "gru",
            "--hidden-size",
            "16",
            "--quiet",
        ]
    )
    assert code == 0
    return out


PLANTED_CNN = [
    "--arch",
    "cnn",
    "--channels",
    "16",
    "--kernel-sizes",
    "12",
    "--dilations",
    "1",
    "--pool-sizes",
    "1",
    "--dropout",
    "0",
    "--schedule",
    "none",
    "--epochs",
    "12",
    "--lr",
    "0.02",
    "--threads",
    "1",
    "--quiet",
]
"""Learns the motif planted in example_data/genome (validation accuracy 1.0) in seconds."""


@pytest.fixture(scope="session")
def planted(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The known-answer example: a motif planted in a real genome piece, intervals, labels
    and variants (example_data/genome/make_planted.py, seed 0)."""
    sys.path.insert(0, str(EXAMPLES / "genome"))
    from make_planted import make

    return make(tmp_path_factory.mktemp("planted"), seed=0)


@pytest.fixture(scope="session")
def planted_model(planted: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small CNN trained on the planted intervals in 200-base windows, the plasmid held
    out for validation."""
    from bioseqnn.cli import main

    out = tmp_path_factory.mktemp("genome_models") / "planted.bsnn"
    code = main(
        [
            "train",
            "--genome",
            str(planted["planted.fa"]),
            str(planted["peaks.bed"]),
            str(planted["labels.csv"]),
            "--window",
            "200",
            "--holdout-chroms",
            "NC_005816.1",
            "-o",
            str(out),
            *PLANTED_CNN,
        ]
    )
    assert code == 0
    return out


# --------------------------------------------------------------------------- small data
# Tiny records and models shared by the catalogue of bad inputs (cli/test_bad_input.py)
# and the tests that build on it.

AMINO = "ACDEFGHIKLMNPQRSTVWY"
PEPTIDES = [
    "KLVFFAEDVGSNK",
    "GIGAVLKVLTTGL",
    "FLPLIGRVLSGIL",
    "ILPWKWPWWPWRR",
    "GLFDIVKKVVGAL",
    "KWKLFKKIEKVGQ",
    "RRWWRRWWRRLLE",
    "FFPIVGKLLSGLL",
]


def fasta(records: list[tuple[str, str]], eol: str = "\n") -> bytes:
    return "".join(f">{rid}{eol}{seq}{eol}" for rid, seq in records).encode()


def random_records(
    n: int, letters: str, length: int, seed: int, prefix: str = "r"
) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    return [(f"{prefix}{i}", "".join(rng.choice(letters) for _ in range(length))) for i in range(n)]


def train_tiny(workdir: Path, records: list[tuple[str, str]], labels: list[str], name: str) -> Path:
    """Train a 1-epoch, 8-unit LSTM through the CLI and return the model file."""
    from bioseqnn.cli import main

    fa, csv_ = workdir / f"{name}.fa", workdir / f"{name}.csv"
    fa.write_bytes(fasta(records))
    csv_.write_text(
        "id,y\n" + "".join(f"{r},{y}\n" for (r, _), y in zip(records, labels, strict=True))
    )
    out = workdir / f"{name}.bsnn"
    code = main(
        [
            "train",
            str(fa),
            str(csv_),
            "-o",
            str(out),
            "--arch",
            "lstm",
            "--epochs",
            "1",
            "--hidden-size",
            "8",
            "--threads",
            "1",
            "--quiet",
        ]
    )
    assert code == 0
    return out


SIX = fasta([(f"s{i}", p) for i, p in enumerate(PEPTIDES[:6])])
SIX_LABELS = b"id,y\n" + b"".join(f"s{i},{i % 2}\n".encode() for i in range(6))
