"""The process-wide settings a command's torch work gets before torch loads."""

from __future__ import annotations

import os

OPENMP_SPIN = "1000"
"""GOMP_SPINCOUNT that main() sets before torch loads (an explicit setting in the
environment wins). OpenMP's threads spin this many times at a barrier before they
sleep; with the default (300,000) a thread spun on a core that another process needed,
and a CNN step beside one busy process ran at 0.36-0.74x its one-thread speed with two
threads, against 0.68-0.99x with 1,000; quiet, it may cost a little at 200 nt (CNN
1.51-1.52x of one thread against 1.71x; docs/performance.md).
A library user sets it in the environment before importing torch (see runtime.tune)."""

_torch_prepared = False


def prepare_torch() -> None:
    """The process-wide settings torch work gets before torch loads (runtime.tune), and
    the memory ceiling (runtime.cap_memory, which leaves out a GPU machine); once."""
    global _torch_prepared
    if _torch_prepared:
        return
    os.environ.setdefault("GOMP_SPINCOUNT", OPENMP_SPIN)
    from .. import runtime

    runtime.tune()
    runtime.cap_memory()  # memory that runs out is an error, not the OOM killer
    _torch_prepared = True


def forget() -> None:
    """A command has ended: the next one in this process prepares again (main() runs
    commands in-process, each with its own memory ceiling)."""
    global _torch_prepared
    _torch_prepared = False
