"""torchrun: two CPU processes (gloo) against one process with the same global batch."""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import run_bioseqnn

from bioseqnn import api
from bioseqnn.bundle import load_bundle
from bioseqnn.config import RunConfig

TORCHRUN = shutil.which("torchrun", path=os.path.dirname(sys.executable))

# The same global batch of 32 records (2 ranks x 16 against 1 x 32), no dropout: the
# steps are the same sums, but the gradient all-reduce adds the two halves in another
# order than one backward pass over the whole batch, so float32 weights drift by a few
# ulps per step; after two epochs (64 steps) the largest difference measured is ~1e-7.
WEIGHT_ATOL = 1e-5
# an LSTM (no batch norm, whose statistics are per process) with the schedule of 0.1
ARGS = [
    "--arch",
    "lstm",
    "--epochs",
    "2",
    "--hidden-size",
    "16",
    "--dropout",
    "0",
    "--schedule",
    "none",
    "--patience",
    "1",
    "--seed",
    "3",
]


def cores_per_process(processes: int) -> int:
    slurm = os.environ.get("SLURM_CPUS_PER_TASK", "")
    cores = int(slurm) if slurm.isdigit() and int(slurm) > 0 else len(os.sched_getaffinity(0))
    return max(1, cores // processes)


def read_log(path: Path) -> list[dict[str, str]]:
    with open(path) as fh:
        return list(csv.DictReader(fh, delimiter="\t"))


@pytest.fixture(scope="module")
def torchrun_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A model trained by ``torchrun --nproc-per-node 2 -m bioseqnn train`` on the CPU."""
    if TORCHRUN is None:
        pytest.skip("torchrun is not installed beside this Python")
    root = Path(__file__).resolve().parents[2]
    out = tmp_path_factory.mktemp("ddp")
    env = {k: v for k, v in os.environ.items() if k != "CUDA_VISIBLE_DEVICES"}
    env["CUDA_VISIBLE_DEVICES"] = ""  # gloo on the CPU even where a GPU is present
    proc = subprocess.run(
        [
            TORCHRUN,
            "--standalone",
            "--nproc-per-node",
            "2",
            "-m",
            "bioseqnn",
            "train",
            str(root / "example_data/hemolytic.fasta"),
            str(root / "example_data/hemolytic.csv"),
            "-o",
            str(out / "ddp.bsnn"),
            "--batch-size",
            "16",
            "--checkpoint-dir",
            str(out / "ck"),
            *ARGS,
        ],
        capture_output=True,
        text=True,
        cwd=out,
        env=env,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out / "ddp.bsnn", proc.stderr


def test_two_ranks_match_one_process_with_the_same_global_batch(
    torchrun_model: tuple[Path, str],
    examples: Path,
    tmp_path: Path,
) -> None:
    ddp_path, _ = torchrun_model
    cfg = RunConfig()
    cfg.model.arch, cfg.model.hidden_size, cfg.model.dropout = "lstm", 16, 0.0
    t = cfg.training
    t.schedule = "none"
    t.epochs, t.batch_size, t.patience, t.seed, t.device, t.threads = 2, 32, 1, 3, "cpu", 1
    single = api.train(
        examples / "hemolytic.fasta", examples / "hemolytic.csv", tmp_path / "one.bsnn", cfg
    )
    ddp = load_bundle(ddp_path).model.state_dict()
    one = single.model.state_dict() if single.model is not None else {}
    assert ddp.keys() == one.keys()
    worst = max(float((ddp[k] - one[k]).abs().max()) for k in one)
    assert worst < WEIGHT_ATOL
    moved = max(
        float((one[k] - load_bundle(tmp_path / "one.bsnn").model.state_dict()[k]).abs().max())
        for k in one
    )
    assert moved == 0.0
    # the per-epoch records agree too: train loss reduced over ranks, validation gathered
    ddp_log = read_log(ddp_path.with_name("ddp.log.tsv"))
    one_log = read_log(tmp_path / "one.log.tsv")
    assert len(ddp_log) == len(one_log) == 2
    for a, b in zip(ddp_log, one_log, strict=True):
        for key in ("train_loss", "val_loss", "val_accuracy", "val_auroc"):
            assert float(a[key]) == pytest.approx(float(b[key]), rel=1e-4, abs=1e-6), key
    manifest = load_bundle(ddp_path).manifest
    assert manifest["data"]["train_records"] == single.manifest["data"]["train_records"]
    assert manifest["training"]["batch_size"] == 16


def test_only_rank_zero_writes_and_logs(torchrun_model: tuple[Path, str]) -> None:
    path, err = torchrun_model
    files = sorted(p.name for p in path.parent.iterdir())
    assert files == ["ck", "ddp.bsnn", "ddp.log.tsv"]
    assert [p.name for p in (path.parent / "ck").iterdir()] == ["checkpoint.safetensors"]
    assert err.count("bioseqnn: epoch 1/2") == 1
    assert err.count("bioseqnn: wrote ") == 1
    assert "distributed training: 2 processes (gloo)" in err
    # threads default to this process's share of the cores
    assert f"device: cpu, {cores_per_process(2)} CPU thread(s)" in err


@pytest.mark.slow
def test_a_resumed_distributed_run_refuses_another_world_size(
    torchrun_model: tuple[Path, str],
    examples: Path,
    tmp_path: Path,
) -> None:
    path, _ = torchrun_model
    result = run_bioseqnn(
        "train",
        examples / "hemolytic.fasta",
        examples / "hemolytic.csv",
        "-o",
        tmp_path / "m.bsnn",
        "--batch-size",
        "16",
        "--checkpoint-dir",
        path.parent / "ck",
        "--resume",
        "--device",
        "cpu",
        *ARGS,
    )
    assert result.returncode == 2
    assert b"ranks: 2 -> null" in result.stderr
    assert not (tmp_path / "m.bsnn").exists()


@pytest.mark.slow
def test_threads_option_sets_torch_threads(
    hemolytic_model: Path, examples: Path, monkeypatch
) -> None:
    monkeypatch.setenv("BIOSEQNN_LIGHT", "0")  # through torch, whatever the input's size
    result = run_bioseqnn(
        "predict",
        hemolytic_model,
        examples / "hemolytic.fasta",
        "-o",
        os.devnull,
        "--threads",
        "1",
        "--debug",
    )
    assert result.returncode == 0, result.stderr
    assert b"bioseqnn: 1 CPU thread(s)" in result.stderr


@pytest.mark.slow
def test_language_model_two_ranks_match_one_process(examples: Path, tmp_path: Path) -> None:
    """Per-position losses are sums over each rank's positions, scaled by the global mean
    per batch: two ranks take the steps one process takes on the same global batches."""
    if TORCHRUN is None:
        pytest.skip("torchrun is not installed beside this Python")
    env = {k: v for k, v in os.environ.items() if k != "CUDA_VISIBLE_DEVICES"}
    env["CUDA_VISIBLE_DEVICES"] = ""
    settings = [
        "--epochs",
        "2",
        "--hidden-size",
        "16",
        "--seed",
        "3",
        "--arch",
        "gru",
        "--dropout",
        "0",
    ]
    proc = subprocess.run(
        [
            TORCHRUN,
            "--standalone",
            "--nproc-per-node",
            "2",
            "-m",
            "bioseqnn",
            "train",
            str(examples / "hemolytic.fasta"),
            "--task",
            "language-model",
            "-o",
            str(tmp_path / "ddp.bsnn"),
            "--batch-size",
            "16",
            *settings,
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    cfg = RunConfig()
    cfg.model.arch, cfg.model.hidden_size, cfg.model.dropout = "gru", 16, 0.0
    t = cfg.training
    t.epochs, t.batch_size, t.seed, t.device, t.threads = 2, 32, 3, "cpu", 1
    single = api.train(
        examples / "hemolytic.fasta", None, tmp_path / "one.bsnn", cfg, task="language-model"
    )
    ddp = load_bundle(tmp_path / "ddp.bsnn").model.state_dict()
    one = single.model.state_dict() if single.model is not None else {}
    assert ddp.keys() == one.keys()
    assert max(float((ddp[k] - one[k]).abs().max()) for k in one) < WEIGHT_ATOL
    for a, b in zip(
        read_log(tmp_path / "ddp.log.tsv"), read_log(tmp_path / "one.log.tsv"), strict=True
    ):
        for key in ("train_loss", "val_loss", "val_perplexity"):
            assert float(a[key]) == pytest.approx(float(b[key]), rel=1e-4), key


@pytest.mark.slow
def test_numeric_series_two_ranks_match_one_process(examples: Path, tmp_path: Path) -> None:
    """A series table trains under torchrun as in one process: every rank reads the table,
    fits the same normalisation and takes its share of each global batch."""
    if TORCHRUN is None:
        pytest.skip("torchrun is not installed beside this Python")
    env = {k: v for k, v in os.environ.items() if k != "CUDA_VISIBLE_DEVICES"}
    env["CUDA_VISIBLE_DEVICES"] = ""
    settings = [
        "--epochs",
        "2",
        "--hidden-size",
        "16",
        "--seed",
        "3",
        "--arch",
        "gru",
        "--dropout",
        "0",
    ]
    proc = subprocess.run(
        [
            TORCHRUN,
            "--standalone",
            "--nproc-per-node",
            "2",
            "-m",
            "bioseqnn",
            "train",
            str(examples / "motions_train.tsv"),
            str(examples / "motions_train.csv"),
            "-o",
            str(tmp_path / "ddp.bsnn"),
            "--batch-size",
            "8",
            *settings,
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    cfg = RunConfig()
    cfg.model.arch, cfg.model.hidden_size, cfg.model.dropout = "gru", 16, 0.0
    t = cfg.training
    t.epochs, t.batch_size, t.seed, t.device, t.threads = 2, 16, 3, "cpu", 1
    single = api.train(
        examples / "motions_train.tsv", examples / "motions_train.csv", tmp_path / "one.bsnn", cfg
    )
    ddp_bundle = load_bundle(tmp_path / "ddp.bsnn")
    assert ddp_bundle.manifest["input"] == single.manifest["input"]
    ddp = ddp_bundle.model.state_dict()
    one = single.model.state_dict() if single.model is not None else {}
    assert ddp.keys() == one.keys()
    assert max(float((ddp[k] - one[k]).abs().max()) for k in one) < WEIGHT_ATOL


@pytest.mark.slow
def test_cross_validation_two_ranks_match_one_process(examples: Path, tmp_path: Path) -> None:
    """--cv under torchrun: every rank builds the same folds, trains each fold's member on
    its share of the global batches and predicts the held-out fold; rank 0 writes."""
    if TORCHRUN is None:
        pytest.skip("torchrun is not installed beside this Python")
    env = {k: v for k, v in os.environ.items() if k != "CUDA_VISIBLE_DEVICES"}
    env["CUDA_VISIBLE_DEVICES"] = ""
    settings = [
        "--epochs",
        "2",
        "--hidden-size",
        "16",
        "--seed",
        "3",
        "--arch",
        "gru",
        "--dropout",
        "0",
        "--cv",
        "2",
    ]
    proc = subprocess.run(
        [
            TORCHRUN,
            "--standalone",
            "--nproc-per-node",
            "2",
            "-m",
            "bioseqnn",
            "train",
            str(examples / "hemolytic.fasta"),
            str(examples / "hemolytic.csv"),
            "-o",
            str(tmp_path / "ddp.bsnn"),
            "--batch-size",
            "16",
            *settings,
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stderr.count("cross-validation, 2 folds") == 1  # rank 0 alone logs
    cfg = RunConfig()
    cfg.model.arch, cfg.model.hidden_size, cfg.model.dropout = "gru", 16, 0.0
    t = cfg.training
    t.epochs, t.batch_size, t.seed, t.device, t.threads, t.cv = 2, 32, 3, "cpu", 1, 2
    single = api.train(
        examples / "hemolytic.fasta", examples / "hemolytic.csv", tmp_path / "one.bsnn", cfg
    )
    ddp = load_bundle(tmp_path / "ddp.bsnn").model.state_dict()
    one = single.model.state_dict() if single.model is not None else {}
    assert ddp.keys() == one.keys() and any(k.startswith("members.1.") for k in one)
    assert max(float((ddp[k] - one[k]).abs().max()) for k in one) < WEIGHT_ATOL
    a = read_log(tmp_path / "ddp.oof.tsv")
    b = read_log(tmp_path / "one.oof.tsv")
    assert [r["id"] for r in a] == [r["id"] for r in b] and len(a) == 1104
    assert (
        max(abs(float(x["prob_1"]) - float(y["prob_1"])) for x, y in zip(a, b, strict=True)) < 1e-4
    )
