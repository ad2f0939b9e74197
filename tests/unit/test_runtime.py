"""runtime: the CPUs a process may use, read from cgroup files laid out as Linux does."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

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


def _write_stat(path: Path, ticks: dict[int, list[int]]) -> None:
    """A /proc/stat of these CPUs' (user, nice, system, idle, iowait, irq, softirq,
    steal) ticks, with the machine-wide line and the lines that follow the CPUs."""
    total = [sum(col) for col in zip(*ticks.values(), strict=True)]
    lines = ["cpu  " + " ".join(map(str, total)) + " 0 0"]
    lines += [f"cpu{n} " + " ".join(map(str, t)) + " 0 0" for n, t in ticks.items()]
    lines += ["intr 123 4 5", "ctxt 99", "btime 1700000000", "processes 10"]
    path.write_text("\n".join(lines) + "\n")


def test_cpu_busy_ticks_count_the_given_cpus_without_idle_time(tmp_path) -> None:
    stat = tmp_path / "stat"
    _write_stat(stat, {0: [100, 10, 20, 1000, 50, 1, 2, 3], 1: [200, 0, 0, 500, 0, 0, 0, 0]})
    assert machine.cpu_busy_ticks({0}, str(stat)) == 136
    assert machine.cpu_busy_ticks({1}, str(stat)) == 200
    assert machine.cpu_busy_ticks({0, 1}, str(stat)) == 336
    assert machine.cpu_busy_ticks(None, str(stat)) == 336
    assert machine.cpu_busy_ticks({7}, str(stat)) is None  # none of this process's CPUs
    assert machine.cpu_busy_ticks({0}, str(tmp_path / "missing")) is None
    stat.write_text("cpu0 1 2 x 4\n")
    assert machine.cpu_busy_ticks({0}, str(stat)) is None


def test_load_watch_leaves_a_cpu_to_what_other_processes_keep_busy(tmp_path) -> None:
    """Ticks this process did not spend, a CPU's worth, cost one thread of two; none cost
    none; and between readings (``every``) the answer stays as it was."""
    stat = tmp_path / "stat"
    quiet = [10, 0, 10, 1000, 0, 0, 0, 0]
    _write_stat(stat, {0: quiet, 1: quiet})
    watch = machine.LoadWatch(every=0.2, stat=str(stat))
    watch.cpus = {0, 1}
    assert watch.threads(2) == 2  # no reading yet
    start = time.monotonic()
    time.sleep(0.3)
    busy = round((time.monotonic() - start) * watch.tick)  # one CPU busy all along
    _write_stat(stat, {0: [10 + busy, 0, 10, 1000, 0, 0, 0, 0], 1: quiet})
    assert watch.threads(2) == 1
    assert watch.others is not None and 0.6 < watch.others < 1.4
    assert watch.threads(1) == 1
    _write_stat(stat, {0: quiet, 1: quiet})  # not read again before 0.2 s have passed
    assert watch.threads(2) == 1
    time.sleep(0.3)
    assert watch.threads(2) == 2  # nobody else busy since
    assert watch.others == 0.0


def test_load_watch_gives_every_thread_without_proc_stat(tmp_path) -> None:
    watch = machine.LoadWatch(every=0.0, stat=str(tmp_path / "missing"))
    assert [watch.threads(n) for n in (1, 2, 8)] == [1, 2, 8]


@pytest.mark.skipif(
    not hasattr(os, "sched_getaffinity") or len(os.sched_getaffinity(0)) < 2,
    reason="needs two CPUs",
)
def test_load_watch_sees_a_real_busy_process() -> None:
    """Two CPUs, one of them kept busy by another process: one thread."""
    script = """
import os, subprocess, sys, time
from bioseqnn.machine import LoadWatch
cpus = sorted(os.sched_getaffinity(0))[:2]
os.sched_setaffinity(0, cpus)
hog = subprocess.Popen(
    [sys.executable, "-c", "while True: pass"],
    preexec_fn=lambda: os.sched_setaffinity(0, cpus[:1]),
)
try:
    time.sleep(0.3)
    watch = LoadWatch(every=0.5)
    time.sleep(0.7)
    print(watch.threads(2), watch.others)
finally:
    hog.kill()
    hog.wait()
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    threads, others = done.stdout.split()
    assert threads == "1"
    assert float(others) > 0.5


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="needs two CPUs")
@pytest.mark.parametrize(
    "arch, bidirectional",
    [("lstm", False), ("gru", True), ("rnn", False), ("cnn-gru", True), ("transformer", False)],
)
def test_training_on_fewer_threads_under_load_gives_the_same_model(
    arch: str, bidirectional: bool, monkeypatch
) -> None:
    """Training may run a step on one thread while other processes are busy
    (machine.ThreadChoice); the step is still cut into the pieces two threads would run,
    and the model comes out with the same bits (MKL's products under MKL_CBWR=...,STRICT,
    which the command line and conftest.py set)."""
    assert runtime.threads_may_vary()
    busy, seen_busy = _fit_on(arch, bidirectional, 1, monkeypatch)
    quiet, seen_quiet = _fit_on(arch, bidirectional, 2, monkeypatch)
    assert seen_busy == [1] * 4 and seen_quiet == [2] * 4  # two epochs of two steps
    assert busy.keys() == quiet.keys()
    differ = [k for k in busy if not torch.equal(busy[k], quiet[k])]
    assert differ == []


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="needs two CPUs")
def test_training_keeps_its_threads_where_the_products_could_differ(monkeypatch) -> None:
    """Without MKL's strict reproducibility, MKL's matrix products may split their sums by
    the threads that run them: then a step never moves to fewer threads, whatever the
    load, and the model does not depend on it."""
    monkeypatch.setenv("MKL_CBWR", "AUTO")
    if not torch.backends.mkl.is_available():
        pytest.skip("torch without MKL: the threads may always vary")
    assert not runtime.threads_may_vary()
    _, seen = _fit_on("transformer", False, 1, monkeypatch)
    assert seen == [2] * 4


@pytest.mark.parametrize(
    "environ, strict",
    [
        ({"MKL_CBWR": "AUTO,STRICT"}, True),
        ({"MKL_CBWR": "avx512,strict"}, True),
        ({"MKL_CBWR": "COMPATIBLE"}, False),
        ({"MKL_CBWR": "AUTO"}, False),
        ({}, False),
    ],
)
def test_threads_may_vary_only_under_strict_reproducibility(environ, strict) -> None:
    mkl = torch.backends.mkl.is_available()
    assert runtime.threads_may_vary(environ) == (strict or not mkl)


def _fit_on(
    arch: str, bidirectional: bool, threads: int, monkeypatch
) -> tuple[dict[str, torch.Tensor], list[int]]:
    """Train a small model for two epochs of two 64 x 80 steps (planned for two threads)
    while machine.ThreadChoice would choose ``threads``: its weights, and the intra-op
    threads each step ran on."""
    import numpy as np

    from bioseqnn.alphabets import get_alphabet
    from bioseqnn.config import TrainConfig
    from bioseqnn.data.sets import SequenceSet
    from bioseqnn.engine.train import fit
    from bioseqnn.models import ModelConfig, SequenceModel
    from bioseqnn.models.inputs import OneHot
    from bioseqnn.tasks import TaskSpec

    rng = np.random.default_rng(0)
    n, length = 128, 80  # a step of 64 x 80 positions is planned for two threads
    assert 64 * length >= runtime.SMALL_STEP
    data = SequenceSet(
        [f"s{i}" for i in range(n)],
        rng.integers(1, 5, n * length, dtype=np.uint8),
        np.arange(n + 1, dtype=np.int64) * length,
        rng.integers(0, 2, n).astype(np.int64),
    )
    config = ModelConfig(
        arch=arch, hidden_size=16, layers=2, bidirectional=bidirectional, d_model=16, heads=2
    )

    monkeypatch.setattr(machine.ThreadChoice, "next", lambda self: min(self.most, threads))
    before = torch.get_num_threads()
    runtime.configure_threads(2)
    try:
        torch.manual_seed(0)
        model = SequenceModel(config, 4, 1)
        seen: list[int] = []
        model.register_forward_pre_hook(lambda *_: seen.append(torch.get_num_threads()))
        cfg = TrainConfig(epochs=2, batch_size=64, val_fraction=0.0, monitor="train_loss", seed=0)
        task = TaskSpec("binary", ["y"], classes=["0", "1"])
        fit(model, task, OneHot(get_alphabet("dna")), data, None, cfg, torch.device("cpu"))
    finally:
        torch.set_num_threads(before)
    return model.state_dict(), seen


class _Watch:
    """A LoadWatch whose answer the test sets."""

    def __init__(self, free: int) -> None:
        self.free, self.others = free, 0.0

    def threads(self, most: int) -> int:
        return min(most, self.free)


def test_thread_choice_keeps_every_thread_while_the_cpus_are_free() -> None:
    choice = machine.ThreadChoice(2, _Watch(2), steps=3)
    assert [choice.next() for _ in range(5)] == [2] * 5


@pytest.mark.parametrize("faster, chosen", [(1, 1), (2, 2)])
def test_thread_choice_times_both_counts_under_load_and_keeps_the_faster(
    faster: int, chosen: int
) -> None:
    """Beside a busy process each count runs three steps in turn, timed per position;
    then the faster one stays until the load changes."""
    watch = _Watch(1)
    choice = machine.ThreadChoice(2, watch, steps=3, retry=3600.0)
    ran = []
    for _ in range(6):
        n = choice.next()
        ran.append(n)
        choice.timed(n, 1.0 if n == faster else 1.5, 1000)
    assert ran == [2, 1, 2, 1, 2, 1]
    assert [choice.next() for _ in range(4)] == [chosen] * 4
    watch.free = 2  # the other process ended
    assert choice.next() == 2
    watch.free = 1  # and another began: timed again
    assert choice.next() == 2 and choice._queue == [2, 1] * 3


def test_thread_choice_times_a_count_per_position_and_only_when_asked() -> None:
    """Steps of other sizes compare per position; a step the queue did not ask for (a
    small one, run on one thread whatever the load) is not counted."""
    choice = machine.ThreadChoice(2, _Watch(1), steps=1, retry=3600.0)
    assert choice.next() == 2
    choice.timed(1, 0.1, 100)  # not the step asked for: ignored
    choice.timed(2, 2.0, 10_000)  # 2e-4 s a position
    assert choice.next() == 1
    choice.timed(1, 0.5, 1_000)  # 5e-4 s a position: slower
    assert choice.next() == 2
