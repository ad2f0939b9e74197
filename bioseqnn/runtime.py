"""Process-wide torch settings, applied before any other torch work."""

from __future__ import annotations

import os

import torch

# Denormal floats make recurrent kernels on x86 CPUs up to ~9x slower. The intra-op
# worker threads copy this mode when the pool starts, so it must be set first.
torch.set_flush_denormal(True)


def default_threads() -> int:
    """Cores this process may use: the scheduler's CPU set, or SLURM's allocation."""
    slurm = os.environ.get("SLURM_CPUS_PER_TASK")
    if slurm and slurm.isdigit() and int(slurm) > 0:
        return int(slurm)
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def configure_threads(threads: int = 0) -> int:
    """Set torch's intra-op threads (0 = the cores available to this process)."""
    n = threads if threads > 0 else default_threads()
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    return n
