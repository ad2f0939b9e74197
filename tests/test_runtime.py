"""runtime: the CPUs a process may use, read from cgroup files laid out as Linux does."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bioseqnn import runtime


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
        monkeypatch.setattr(runtime, "cgroup_cpu_limit", lambda q=quota: q)
        assert runtime.default_threads() == min(threads, cpus)
