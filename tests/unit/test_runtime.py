"""runtime: the CPUs a process may use, read from cgroup files laid out as Linux does."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bioseqnn import machine, runtime
from bioseqnn.errors import UsageError


def _tree(tmp_path: Path, files: dict[str, str], membership: str) -> tuple[str, str]:
    root = tmp_path / "cgroup"
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    (tmp_path / "self_cgroup").write_text(membership)
    return str(root), str(tmp_path / "self_cgroup")


@pytest.mark.parametrize(
    "files, membership, expected",
    [
        # cgroup v2, a quota of 1.5 CPUs on the container's own group
        ({"job/cpu.max": "150000 100000\n"}, "0::/job\n", 1.5),
        # v2 without a quota, and a parent group that holds one (the tighter one wins)
        (
            {
                "a/b/cpu.max": "max 100000\n",
                "a/cpu.max": "300000 100000\n",
                "cpu.max": "800000 100000\n",
            },
            "0::/a/b\n",
            3.0,
        ),
        # v1: the cpu controller's CFS quota (-1: none) in its own hierarchy
        (
            {
                "cpu,cpuacct/docker/x/cpu.cfs_quota_us": "200000\n",
                "cpu,cpuacct/docker/x/cpu.cfs_period_us": "100000\n",
            },
            "12:memory:/docker/x\n3:cpu,cpuacct:/docker/x\n",
            2.0,
        ),
        (
            {"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"},
            "1:cpu:/\n0::/\n",
            None,
        ),
        ({}, "0::/\n", None),
    ],
)
def test_cgroup_cpu_limit_reads_v1_and_v2_quotas(tmp_path, files, membership, expected) -> None:
    root, member = _tree(tmp_path, files, membership)
    assert runtime.cgroup_cpu_limit(root, member) == expected


def test_default_threads_follow_the_quota(tmp_path, monkeypatch) -> None:
    """A quota of 1.5 CPUs gives 2 threads, 0.5 gives 1, never more than the CPU set."""
    monkeypatch.delenv("SLURM_CPUS_PER_TASK", raising=False)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    cpus = len(os.sched_getaffinity(0))
    for quota, threads in ((1.5, 2), (0.5, 1), (None, cpus), (1000.0, cpus)):
        monkeypatch.setattr(machine, "cgroup_cpu_limit", lambda q=quota: q)
        assert runtime.default_threads() == min(threads, cpus)


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="needs two CPUs")
@pytest.mark.parametrize("length, batch, expected", [(21, 16, 1), (200, 64, 2)])
def test_small_training_steps_run_on_one_thread(length: int, batch: int, expected: int) -> None:
    """A step under runtime.SMALL_STEP positions runs single-threaded; a larger one on
    every thread the run has; and the run's thread count is back afterwards."""
    import numpy as np
    import torch

    from bioseqnn.alphabets import get_alphabet
    from bioseqnn.config import TrainConfig
    from bioseqnn.data.sets import SequenceSet
    from bioseqnn.engine.train import fit
    from bioseqnn.models import ModelConfig, SequenceModel
    from bioseqnn.models.inputs import OneHot
    from bioseqnn.tasks import TaskSpec

    rng = np.random.default_rng(0)
    n = 2 * batch
    offsets = np.arange(n + 1, dtype=np.int64) * length
    data = SequenceSet(
        [f"s{i}" for i in range(n)],
        rng.integers(1, 5, n * length, dtype=np.uint8),
        offsets,
        rng.integers(0, 2, n).astype(np.int64),
    )
    model = SequenceModel(
        ModelConfig(arch="cnn", channels=[8], kernel_sizes=[3], dilations=[1], pool_sizes=[1]), 4, 1
    )
    seen: list[int] = []
    model.register_forward_pre_hook(lambda *_: seen.append(torch.get_num_threads()))
    before = torch.get_num_threads()
    runtime.configure_threads(2)
    try:
        cfg = TrainConfig(
            epochs=1, batch_size=batch, val_fraction=0.0, monitor="train_loss", seed=0
        )
        task = TaskSpec("binary", ["y"], classes=["0", "1"])
        fit(model, task, OneHot(get_alphabet("dna")), data, None, cfg, torch.device("cpu"))
        assert length * batch < runtime.SMALL_STEP or expected == 2
        assert seen == [expected, expected]  # two steps
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_one_thread_restores_the_thread_count_even_when_the_block_fails() -> None:
    import torch

    before = torch.get_num_threads()
    runtime.set_threads(2)
    try:
        with runtime.one_thread():
            assert torch.get_num_threads() == 1
        assert torch.get_num_threads() == 2
        with pytest.raises(RuntimeError), runtime.one_thread():
            raise RuntimeError("a failing step")
        assert torch.get_num_threads() == 2
    finally:
        runtime.set_threads(before)


def _memory_tree(tmp_path: Path, files: dict[str, str], membership: str, available_kb: int):
    root, member = _tree(tmp_path, files, membership)
    meminfo = tmp_path / "meminfo"
    meminfo.write_text(
        f"MemTotal:       24683792 kB\nMemFree:         1000000 kB\n"
        f"MemAvailable:   {available_kb:>8} kB\nBuffers:          100000 kB\n"
    )
    return root, member, str(meminfo)


GiB = 1 << 30


@pytest.mark.parametrize(
    "files, membership, expected",
    [
        # no cgroup limit (v1's "none" is 2^63 rounded to pages): the machine's free memory
        (
            {
                "memory/job/memory.limit_in_bytes": "9223372036854771712\n",
                "memory/job/memory.usage_in_bytes": f"{3 * GiB}\n",
            },
            "4:memory:/job\n0::/\n",
            20 * GiB,
        ),
        # cgroup v1 (SLURM --mem 8G): 8 GiB less 3 GiB used, of which 1 GiB inactive cache
        (
            {
                "memory/job/memory.limit_in_bytes": f"{8 * GiB}\n",
                "memory/job/memory.usage_in_bytes": f"{3 * GiB}\n",
                "memory/job/memory.stat": f"cache 5\ntotal_inactive_file {GiB}\n",
            },
            "4:memory:/job\n",
            6 * GiB,
        ),
        # cgroup v2 (docker --memory 4g) on the parent group, none on the process's own
        (
            {
                "a/b/memory.max": "max\n",
                "a/b/memory.current": f"{GiB}\n",
                "a/memory.max": f"{4 * GiB}\n",
                "a/memory.current": f"{GiB}\n",
                "a/memory.stat": "anon 1\ninactive_file 0\n",
            },
            "0::/a/b\n",
            3 * GiB,
        ),
        # a cgroup limit looser than the machine: the machine's free memory
        (
            {"job/memory.max": f"{64 * GiB}\n", "job/memory.current": f"{GiB}\n"},
            "0::/job\n",
            20 * GiB,
        ),
    ],
)
def test_memory_room_is_the_tightest_of_machine_and_cgroups(
    tmp_path, files, membership, expected
) -> None:
    root, member, meminfo = _memory_tree(tmp_path, files, membership, 20 * GiB >> 10)
    assert runtime.memory_room(root, member, meminfo) == expected


def test_memory_room_is_unknown_without_meminfo(tmp_path) -> None:
    assert runtime.memory_room(str(tmp_path), str(tmp_path / "no"), str(tmp_path / "no")) is None


@pytest.mark.parametrize(
    "text, expected",
    [("8G", 8 * GiB), ("1.5g", 3 * GiB // 2), ("500M", 500 << 20), ("64kB", 64 << 10)]
    + [("2GiB", 2 * GiB), ("1073741824", GiB), (" 3T ", 3 << 40)],
)
def test_parse_size_reads_sizes_in_powers_of_1024(text: str, expected: int) -> None:
    assert runtime.parse_size(text) == expected


@pytest.mark.parametrize("text", ["8X", "", "G", "-1G", "nanG", "inf"])
def test_parse_size_refuses_what_is_no_size(text: str) -> None:
    with pytest.raises(UsageError, match="BIOSEQNN_MAX_MEMORY: .* is not a size"):
        runtime.parse_size(text)


@pytest.mark.slow
@pytest.mark.skipif(
    not hasattr(os, "sched_getaffinity") or len(os.sched_getaffinity(0)) < 2,
    reason="needs two CPUs",
)
def test_a_busy_neighbour_changes_neither_the_threads_nor_the_model() -> None:
    """The same command with the same seed gives the same model on CPU, whatever else
    runs: each step runs on the threads planned from its shape and --threads, also while
    another process keeps one of the two CPUs busy. (A step moved to one thread under load
    gave a CNN other bits on an Intel Xeon: oneDNN's convolutions and MKL's products
    split their sums by the threads that run them.)"""
    script = """
import os, subprocess, sys, time
import numpy as np, torch
from bioseqnn import runtime
from bioseqnn.alphabets import get_alphabet
from bioseqnn.config import TrainConfig
from bioseqnn.data.sets import SequenceSet
from bioseqnn.engine.train import fit
from bioseqnn.models import ModelConfig, SequenceModel
from bioseqnn.models.inputs import OneHot
from bioseqnn.tasks import TaskSpec

cpus = sorted(os.sched_getaffinity(0))[:2]
os.sched_setaffinity(0, cpus)
runtime.configure_threads(2)
rng = np.random.default_rng(0)
n, length = 256, 100  # steps of 64 x 100 positions: planned for two threads
data = SequenceSet(
    [f"s{i}" for i in range(n)],
    rng.integers(1, 5, n * length, dtype=np.uint8),
    np.arange(n + 1, dtype=np.int64) * length,
    rng.integers(0, 2, n).astype(np.int64),
)

def train():
    torch.manual_seed(0)
    model = SequenceModel(ModelConfig(arch="cnn"), 4, 1)
    seen = []
    model.register_forward_pre_hook(lambda *_: seen.append(torch.get_num_threads()))
    cfg = TrainConfig(epochs=2, batch_size=64, val_fraction=0.0, monitor="train_loss", seed=0)
    task = TaskSpec("binary", ["y"], classes=["0", "1"])
    fit(model, task, OneHot(get_alphabet("dna")), data, None, cfg, torch.device("cpu"))
    return model.state_dict(), seen

quiet, seen_quiet = train()
hog = subprocess.Popen(
    [sys.executable, "-c", "while True: pass"],
    preexec_fn=lambda: os.sched_setaffinity(0, cpus[:1]),
)
try:
    time.sleep(1.5)  # the neighbour is busy before training starts, and all along
    busy, seen_busy = train()
finally:
    hog.kill()
    hog.wait()
same = all(torch.equal(quiet[k], busy[k]) for k in quiet)
print(set(seen_quiet), set(seen_busy), len(seen_busy), same)
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["{2}", "{2}", "8", "True"]
