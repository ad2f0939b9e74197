"""SIGINT and SIGTERM during train and predict: exit 130/143, one line, no partial output.

(Resumable checkpoints do not exist yet; when they do, the train case here should also
assert that an interrupted run leaves one that 'train --resume' accepts.)
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import AMINO, SIX, SIX_LABELS, fasta, random_records, train_tiny

SIGNALS = [(signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "terminated")]


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("signal-model")
    return train_tiny(d, random_records(12, AMINO, 12, seed=21), ["0", "1"] * 6, "m")


def _interactive() -> None:
    """Ctrl-C's disposition in a foreground command: a test suite started in the background
    (`pytest &` in a script) ignores SIGINT, and its children would inherit that."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _start(*args: str | Path, cwd: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "bioseqnn", *map(str, args)],
        cwd=cwd,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        preexec_fn=_interactive,
    )


def _wait_for(condition, what: str, timeout: float = 60) -> None:
    start = time.monotonic()
    while not condition():
        assert time.monotonic() - start < timeout, f"timed out waiting for {what}"
        time.sleep(0.02)


@pytest.mark.parametrize(("sig", "code", "word"), SIGNALS, ids=["SIGINT", "SIGTERM"])
@pytest.mark.slow
def test_signal_during_predict_leaves_no_output(
    model: Path, tmp_path: Path, sig: int, code: int, word: str
) -> None:
    # Input from a pipe that stays open: predict is mid-stream, its output file open. The
    # output opens once the first chunk (1024 records at --batch-size 1) is predicted.
    p = _start(
        "predict", model, "-", "-o", "out.tsv", "--threads", "1", "--batch-size", "1", cwd=tmp_path
    )
    assert p.stdin is not None
    p.stdin.write(fasta(random_records(1100, AMINO, 12, seed=5)))
    p.stdin.flush()
    _wait_for(lambda: list(tmp_path.glob(".out.tsv.*.part")), "the temporary output")
    p.send_signal(sig)
    out, err = p.communicate(timeout=60)
    assert p.returncode == code
    assert err.decode().splitlines() == [f"bioseqnn: error: {word}"]
    assert out == b""
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("sig", "code", "word"), SIGNALS, ids=["SIGINT", "SIGTERM"])
@pytest.mark.slow
def test_signal_during_training_leaves_no_model(
    tmp_path: Path, sig: int, code: int, word: str
) -> None:
    (tmp_path / "s.fa").write_bytes(SIX)
    (tmp_path / "l.csv").write_bytes(SIX_LABELS)
    p = _start(
        "train",
        "s.fa",
        "l.csv",
        "-o",
        "m.bsnn",
        "--epochs",
        "100000",
        "--hidden-size",
        "8",
        "--threads",
        "1",
        "--val-fraction",
        "0",
        cwd=tmp_path,
    )
    assert p.stderr is not None
    seen = []
    while not any(line.startswith("bioseqnn: epoch 2/") for line in seen):
        line = p.stderr.readline().decode()
        assert line, "train ended before its second epoch: " + "".join(seen)
        seen.append(line)
    p.send_signal(sig)
    _, rest = p.communicate(timeout=60)
    assert p.returncode == code
    after = rest.decode().splitlines()
    assert after[-1] == f"bioseqnn: error: {word}"
    assert all(line.startswith("bioseqnn: epoch ") for line in after[:-1])
    assert "Traceback" not in rest.decode()
    # No model and no temporary file; the metrics log keeps the epochs that finished,
    # each row whole.
    assert sorted(x.name for x in tmp_path.iterdir()) == ["l.csv", "m.log.tsv", "s.fa"]
    rows = (tmp_path / "m.log.tsv").read_text().splitlines()
    assert rows[0].split("\t")[:2] == ["epoch", "train_loss"]
    assert len(rows) >= 2 and len({len(r.split("\t")) for r in rows}) == 1
    assert [int(r.split("\t")[0]) for r in rows[1:]] == list(range(1, len(rows)))
