"""Checkpoints: safe format, atomic replacement, and exact resume after SIGKILL mid-epoch."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import run_bioseqnn
from safetensors import safe_open
from safetensors.torch import load_file

from bioseqnn.engine.checkpoint import FILE_NAME, load_checkpoint

N_RECORDS = 1000


@pytest.fixture(scope="module")
def promoters(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    examples = Path(__file__).resolve().parents[2] / "example_data"
    folder = tmp_path_factory.mktemp("promoters")
    fasta, labels = folder / "p.fasta", folder / "p.csv"
    fasta.write_text(
        "\n".join((examples / "promoters.fasta").read_text().splitlines()[: 2 * N_RECORDS]) + "\n"
    )
    labels.write_text(
        "\n".join((examples / "promoters.csv").read_text().splitlines()[: N_RECORDS + 1]) + "\n"
    )
    return fasta, labels


# Dropout, strand augmentation and a one-cycle schedule: every kind of state that a
# resumed run must restore (weights, optimiser moments, schedule step, RNG) matters here.
# Twenty short epochs (about 0.1 s each with the compiled kernels): the kill lands after
# the first checkpoint with several epochs still to run, whatever the machine's load.
EPOCHS = 20
ARGS = [
    "--arch",
    "gru",
    "--hidden-size",
    "64",
    "--batch-size",
    "16",
    "--epochs",
    str(EPOCHS),
    "--dropout",
    "0.2",
    "--rc-augment",
    "--schedule",
    "onecycle",
    "--threads",
    "1",
    "--patience",
    "0",
    "--seed",
    "7",
]


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return load_file(str(path))


def _log(path: Path) -> list[dict[str, str]]:
    lines = path.read_text().splitlines()
    header = lines[0].split("\t")
    return [
        {k: v for k, v in zip(header, line.split("\t"), strict=True) if k != "elapsed_s"}
        for line in lines[1:]
    ]


@pytest.mark.slow
def test_resume_after_sigkill_mid_epoch_gives_the_uninterrupted_weights(
    cli, promoters: tuple[Path, Path], tmp_path: Path
) -> None:
    fasta, labels = promoters
    reference = tmp_path / "reference.bsnn"
    r = cli("train", fasta, labels, "-o", reference, *ARGS, "--quiet")
    assert r.code == 0, r.err

    model, ckdir = tmp_path / "resumed.bsnn", tmp_path / "ck"
    cmd = [
        sys.executable,
        "-m",
        "bioseqnn",
        "train",
        str(fasta),
        str(labels),
        "-o",
        str(model),
        *ARGS,
        "--checkpoint-dir",
        str(ckdir),
        "--quiet",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and proc.poll() is None:
            ck = load_checkpoint(ckdir) if (ckdir / FILE_NAME).exists() else None
            if ck is not None and ck.epoch >= 1:
                break
            time.sleep(0.05)
        time.sleep(0.05)  # inside a later epoch: weights and optimiser have moved on
        assert proc.poll() is None, "training ended before it could be killed"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not model.exists()  # no partial model file
    killed_at = load_checkpoint(ckdir)
    assert killed_at is not None and 1 <= killed_at.epoch < EPOCHS

    done = run_bioseqnn(
        "train", fasta, labels, "-o", model, *ARGS, "--checkpoint-dir", ckdir, "--resume"
    )
    assert done.returncode == 0, done.stderr.decode()
    assert f"resuming from the checkpoint of epoch {killed_at.epoch}" in done.stderr.decode()
    expected, got = _weights(reference), _weights(model)
    assert expected.keys() == got.keys()
    for name in expected:
        assert torch.equal(expected[name], got[name]), name
    # the metrics log is whole again, and the same epoch by epoch
    assert _log(tmp_path / "resumed.log.tsv") == _log(tmp_path / "reference.log.tsv")
    assert [row["epoch"] for row in _log(tmp_path / "resumed.log.tsv")] == [
        str(e) for e in range(1, EPOCHS + 1)
    ]
    info = json.loads(run_bioseqnn("info", model, "--json").stdout)
    assert info["metrics"]["resumed_from"] == killed_at.epoch
    assert info["metrics"]["epochs_run"] == EPOCHS


def test_checkpoint_is_safetensors_with_json_state_no_pickle(
    cli, promoters: tuple[Path, Path], tmp_path: Path
) -> None:
    fasta, labels = promoters
    ckdir = tmp_path / "ck"
    r = cli(
        "train",
        fasta,
        labels,
        "-o",
        tmp_path / "m.bsnn",
        "--arch",
        "cnn",
        "--channels",
        "8",
        "--kernel-sizes",
        "5",
        "--dilations",
        "1",
        "--pool-sizes",
        "1",
        "--epochs",
        "2",
        "--schedule",
        "plateau",
        "--checkpoint-dir",
        ckdir,
        "--quiet",
    )
    assert r.code == 0, r.err
    assert sorted(os.listdir(ckdir)) == [FILE_NAME]  # no temporary file left behind
    raw = (ckdir / FILE_NAME).read_bytes()
    size = int.from_bytes(raw[:8], "little")
    assert raw[8:9] == b"{" and b"\x80\x04" not in raw[: 8 + size]  # JSON header, no pickle
    with safe_open(str(ckdir / FILE_NAME), "pt") as fh:
        meta = json.loads(fh.metadata()["bioseqnn_checkpoint"])
        names = list(fh.keys())
    assert meta["epoch"] == 2 and meta["done"] is True
    assert meta["schedule"]["kind"] == "plateau"
    assert [h["epoch"] for h in meta["history"]] == [1, 2]
    assert any(n.startswith("optim/") and n.endswith("/exp_avg") for n in names)
    assert "rng/torch" in names and any(n.startswith("best/") for n in names)
    # the model inside equals the model file's weights at the best epoch or the last
    ck = load_checkpoint(ckdir)
    assert ck is not None and ck.best_model is not None
    final = _weights(tmp_path / "m.bsnn")
    final.pop("bioseqnn.train_digest")  # the model file's digests are not weights
    assert final.keys() == ck.best_model.keys()
    assert all(torch.equal(final[k], ck.best_model[k]) for k in final)


def test_resume_refuses_other_settings_and_damaged_checkpoints(
    cli, promoters: tuple[Path, Path], tmp_path: Path
) -> None:
    fasta, labels = promoters
    ckdir = tmp_path / "ck"
    base = [
        "train",
        fasta,
        labels,
        "-o",
        tmp_path / "m.bsnn",
        "--arch",
        "cnn",
        "--channels",
        "8",
        "--kernel-sizes",
        "5",
        "--dilations",
        "1",
        "--pool-sizes",
        "1",
        "--epochs",
        "1",
        "--checkpoint-dir",
        ckdir,
        "--quiet",
    ]
    assert cli(*base).code == 0
    r = cli(*base, "--lr", "0.01", "--resume")
    assert r.code == 2
    assert "cannot resume" in r.err and "training.lr: 0.001 -> 0.01" in r.err
    assert len(r.err.strip().splitlines()) == 1

    r = cli("train", fasta, labels, "-o", tmp_path / "x.bsnn", "--resume", "--quiet")
    assert r.code == 2 and "--resume needs --checkpoint-dir" in r.err

    (ckdir / FILE_NAME).write_bytes((ckdir / FILE_NAME).read_bytes()[:200])
    r = cli(*base, "--resume")
    assert r.code == 1
    assert "not a readable bioseqnn checkpoint" in r.err
    assert len(r.err.strip().splitlines()) == 1


@pytest.mark.slow
def test_a_second_run_on_a_busy_checkpoint_folder_stops_at_once(
    cli, promoters: tuple[Path, Path], tmp_path: Path
) -> None:
    """Two runs given one --checkpoint-dir would write over each other's checkpoints:
    the second stops with exit 2, naming the first; a kill frees the folder."""
    import socket

    fasta, labels = promoters
    ckdir = tmp_path / "ck"
    args = [str(fasta), str(labels), *ARGS, "--checkpoint-dir", str(ckdir), "--quiet"]
    first = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bioseqnn",
            "train",
            *args,
            "--epochs",
            "100000",
            "-o",
            str(tmp_path / "first.bsnn"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    lock = ckdir / "bioseqnn.lock"
    holder = f"{first.pid} on {socket.gethostname()}"
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and first.poll() is None:
            if lock.exists() and lock.read_text().strip() == holder:
                break
            time.sleep(0.05)
        assert first.poll() is None, "the first run ended before the second started"
        second = run_bioseqnn("train", *args, "--epochs", "1", "-o", tmp_path / "second.bsnn")
        err = second.stderr.decode()
        assert second.returncode == 2, err
        assert f"another training run is using it (process {holder})" in err
        assert err.count("\n") == 1  # one line, no traceback
        assert not (tmp_path / "second.bsnn").exists()
        assert first.poll() is None  # the first run goes on
    finally:
        first.kill()
        first.wait(timeout=30)
    # the kill released the folder: a new run takes it over
    third = cli("train", *args, "--epochs", "1", "-o", tmp_path / "third.bsnn")
    assert third.code == 0, third.err
    assert (tmp_path / "third.bsnn").exists()
    # and releases it when it ends: the same process trains into the folder again
    again = cli("train", *args, "--epochs", "1", "-o", tmp_path / "again.bsnn")
    assert again.code == 0, again.err
    assert load_checkpoint(ckdir) is not None
    # the lock file exists only while a run holds it
    assert sorted(p.name for p in ckdir.iterdir()) == [FILE_NAME]


def test_a_lock_file_that_is_a_link_is_refused_and_its_target_untouched(
    cli, promoters: tuple[Path, Path], tmp_path: Path
) -> None:
    """The lock file is written to: through a link it could truncate an input."""
    fasta, labels = promoters
    before = fasta.read_bytes()
    for name, make in (("symlink", os.symlink), ("hard link", os.link)):
        ckdir = tmp_path / name.replace(" ", "_")
        ckdir.mkdir()
        make(fasta, ckdir / "bioseqnn.lock")
        r = cli("train", fasta, labels, "-o", tmp_path / "m.bsnn", "--checkpoint-dir", ckdir)
        assert r.code == 2, name
        assert f"--checkpoint-dir {ckdir}: " in r.err
        assert "bioseqnn.lock is not a lock file of bioseqnn's (a link" in r.err, r.err
        assert r.err.count("\n") == 1, r.err
        assert fasta.read_bytes() == before
        assert not (tmp_path / "m.bsnn").exists()


def test_a_checkpoint_half_written_by_a_killed_run_is_removed(
    cli, promoters: tuple[Path, Path], tmp_path: Path
) -> None:
    """kill -9 during a checkpoint's write leaves its temporary file; the next run that
    holds the folder removes it (nothing else can be writing it then)."""
    fasta, labels = promoters
    ckdir = tmp_path / "ck"
    ckdir.mkdir()
    stale = ckdir / f".{FILE_NAME}.k1ll3d.part"
    stale.write_bytes(b"\0" * 4096)
    other = ckdir / "notes.part"  # not bioseqnn's: left alone
    other.write_text("mine")
    args = [str(fasta), str(labels), *ARGS, "--checkpoint-dir", str(ckdir), "--quiet"]
    done = cli("train", *args, "--epochs", "1", "--resume", "-o", tmp_path / "m.bsnn")
    assert done.code == 0, done.err
    assert sorted(p.name for p in ckdir.iterdir()) == [FILE_NAME, "notes.part"]
    assert load_checkpoint(ckdir) is not None


def test_a_second_run_writing_the_same_log_stops(
    cli, promoters: tuple[Path, Path], tmp_path: Path
) -> None:
    """Two runs given one -o (a rule started twice) wrote their epochs into one log, torn
    lines included: the second stops with exit 2 before its first row, and the first
    run's log is left whole."""
    fasta, labels = promoters
    out = tmp_path / "same.bsnn"
    log_file = tmp_path / "same.log.tsv"
    args = [str(fasta), str(labels), *ARGS, "--quiet", "-o", str(out)]
    first = subprocess.Popen(
        [sys.executable, "-m", "bioseqnn", "train", *args, "--epochs", "100000"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and first.poll() is None:
            if log_file.exists() and log_file.read_text().count("\n") >= 3:
                break
            time.sleep(0.05)
        assert first.poll() is None, "the first run ended before the second started"
        second = run_bioseqnn("train", *args, "--epochs", "2")
        err = second.stderr.decode()
        assert second.returncode == 2, err
        assert err == (
            f"bioseqnn: error: {log_file}: another training run is writing this log (the "
            "same -o or --log given twice?); give this run another output name\n"
        )
        assert first.poll() is None  # the first run goes on
    finally:
        first.kill()
        first.wait(timeout=30)
    rows = log_file.read_text().splitlines()
    assert rows[0].startswith("epoch\t")
    epochs = [int(row.split("\t")[0]) for row in rows[1:]]
    assert epochs == list(range(1, len(epochs) + 1))  # one run's rows, none torn
    # the kill released the log: a new run writes it afresh
    again = cli("train", *args, "--epochs", "1")
    assert again.code == 0, again.err
    assert [r.split("\t")[0] for r in log_file.read_text().splitlines()] == ["epoch", "1"]
