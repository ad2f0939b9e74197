"""Process-wide torch settings, applied by :func:`tune` before any other torch work, and
the thread pools of the recurrent fast path.

Importing this module changes nothing: the command line calls :func:`tune` before a
command runs; a library user calls ``bioseqnn.runtime.tune()`` once, before other torch
work, for the same speed (results do not depend on it).
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import sys
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar, cast

import torch

from . import machine
from .machine import (  # noqa: F401  (importable from here as before)
    MEMORY_SHARE,
    MEMORY_VARIABLE,
    _kib_field,
    _local_processes,
    ceiling_note,
    cgroup_cpu_limit,
    default_threads,
    memory_room,
    parse_size,
    release_memory,
    thread_count,
)

_tuned = False


def tune() -> None:
    """Apply bioseqnn's process-wide CPU settings (once; later calls do nothing).

    - Denormal floats flushed to zero: they make recurrent kernels on x86 CPUs up to ~9x
      slower. torch's intra-op worker threads copy this mode when their pool starts, so
      call this before other torch work.
    - Transparent huge pages are left to torch's default (off; THP_MEM_ALLOC_ENABLE=1
      in the environment turns them on). They once saved the page faults of a training
      step's fresh activations; since training keeps its freed memory
      (:func:`tune_malloc_for_training`) there are few such faults, and a huge page
      costs a 2 MiB zeroing and, under the kernel's usual ``defrag=madvise``, a
      compaction stall when it is faulted in: with them on, ``train`` ran 3-49% longer
      on every architecture measured and ``predict`` 15-33% (docs/performance.md).

    Threads (:func:`configure_threads`) and glibc's allocator thresholds
    (:func:`tune_malloc_for_training`) are set by the operations that need them. The
    command line also sets GOMP_SPINCOUNT=1000 before torch loads (see
    ``cli.process.OPENMP_SPIN``); OpenMP reads it when torch is imported, so a library user who
    wants it sets it in the environment first.
    """
    global _tuned
    if _tuned:
        return
    torch.set_flush_denormal(True)
    _tuned = True


def tune_malloc_for_training() -> None:
    """Keep freed memory for reuse instead of returning it to the kernel (glibc only).

    Called by train before it reads its inputs, and by train.fit; not at import:
    prediction streams at flat memory and keeps glibc's defaults, which hand freed
    memory back. Reading gains too: each chunk of a FASTA (a few MB of text, codes and
    cut sequences) reuses memory the chunk before freed instead of new pages, and
    parsing and encoding a 103 MB FASTA went from 173-179 to 202-256 MB/s on a 2-core
    AMD EPYC (docs/performance-log.md).

    glibc serves requests above a threshold with fresh mappings and gives small heap
    tops back when freed, and it moves that threshold as a program runs. A training
    loop frees and allocates the same few hundred MB every step, so the kernel faulted
    in and zeroed them again each time: length-bucketed batches, whose sizes all differ,
    ran at 70-80% of their ideal speed-up late in a process against about 100% with
    a fixed threshold (32 MiB, glibc's largest) and no trimming. Settings given in the
    environment (MALLOC_MMAP_THRESHOLD_, MALLOC_TRIM_THRESHOLD_) are left alone.
    """
    if not sys.platform.startswith("linux") or any(
        k in os.environ for k in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")
    ):
        return
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc
        return
    m_trim_threshold, m_mmap_threshold = -1, -3
    mallopt(m_mmap_threshold, 32 << 20)
    mallopt(m_trim_threshold, 1 << 30)


def cap_memory(environ: Mapping[str, str] | None = None) -> int | None:
    """:func:`bioseqnn.machine.cap_memory`, with no default ceiling where torch sees a
    GPU (the CUDA driver's own mappings would count toward it)."""
    return machine.cap_memory(environ, gpu_present=_gpu_present)


def _gpu_present() -> bool:
    """A CUDA or ROCm device is there (asked of torch only where its build has one)."""
    return (torch.version.cuda is not None or torch.version.hip is not None) and bool(
        torch.cuda.is_available()
    )


def configure_threads(threads: int = 0) -> int:
    """Set torch's intra-op threads (0 = the cores available to this process).

    More threads than the machine has CPUs only slow torch down (and tens of thousands
    make OpenMP fail to start them, or crash): such a number is capped, with a warning.
    """
    n = thread_count(threads)
    set_threads(n)
    return n


_F = TypeVar("_F", bound=Callable[..., Any])


def keeps_threads(fn: _F) -> _F:
    """For a library function that sets torch's intra-op threads for its work
    (:func:`configure_threads`): the caller's thread count is back when it returns or
    raises, so that calling bioseqnn changes no process-wide setting of a notebook's or
    a program's own torch work."""

    @functools.wraps(fn)
    def kept(*args: Any, **kwargs: Any) -> Any:
        with threads_kept():
            return fn(*args, **kwargs)

    return cast(_F, kept)


@contextlib.contextmanager
def threads_kept() -> Iterator[None]:
    """The block may set torch's intra-op threads; the caller's count is back after it."""
    before = torch.get_num_threads()
    try:
        yield
    finally:
        set_threads(before)


SMALL_STEP = 4096
"""Positions (records x padded length) below which a training step runs on one thread.

Splitting a step this small over threads gains little on a quiet machine and loses
when another process competes for a core: each parallel region (an OpenMP one, or the
recurrent path's halves of a batch) then waits for a thread the kernel has put aside.
A CNN on 21-nt sequences (batch 64: 1,344 positions) trained at 0.36-0.68x the speed of
one thread with two threads beside one busy process, and an LSTM at 0.74x; from about
200 nt (12,800 positions) two threads broke even or won (docs/performance.md)."""


def step_threads(positions: int, most: int) -> int:
    """The intra-op threads for a step of ``positions``: one for a small step, else
    ``most``. A function of the step's shape alone, so that a run's results (which
    depend on how the work is split) are the same every time."""
    return 1 if positions < SMALL_STEP else most


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """Run the block with one intra-op thread (a time loop of small torch calls).

    An operation on a few dozen sequences' states is too small to split, yet torch
    hands a product of that size to its OpenMP threads, which sleep between the steps
    after GOMP_SPINCOUNT spins and must be woken each time: the GRU's time loop below
    (models.recurrent) trained at 0.83-0.94x its one-thread speed with two threads,
    and at 1.17-1.19x once its time loops ran on one.
    """
    with threads_kept():
        set_threads(1)
        yield


def set_threads(n: int) -> None:
    """Set torch's intra-op threads when they differ (a change costs ~25 us)."""
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)


# --------------------------------------------------------------------------- concurrency
#
# A recurrence is a chain of small operations; splitting each one over two OpenMP
# threads costs more in synchronisation than it gains. Independent recurrences (the two
# directions of a bidirectional layer, or two halves of a batch) instead run side by
# side, each on a worker thread with one intra-op thread. torch releases the GIL inside
# its operations, so the threads overlap almost completely.

_POOL: ThreadPoolExecutor | None = None
_POOL_SIZE = 0
_POOL_LOCK = threading.Lock()


def _init_worker() -> None:
    torch.set_flush_denormal(True)
    torch.set_num_threads(1)  # thread-local for OpenMP and MKL; see worker_pool


def worker_pool(size: int) -> ThreadPoolExecutor:
    """A pool of ``size`` threads, each running torch with one intra-op thread."""
    global _POOL, _POOL_SIZE
    with _POOL_LOCK:
        if _POOL is None or size > _POOL_SIZE:
            if _POOL is not None:
                _POOL.shutdown(wait=True)
            threads = torch.get_num_threads()
            pool = ThreadPoolExecutor(size, thread_name_prefix="bioseqnn", initializer=_init_worker)
            # Start every thread now, then restore the process-wide default that the
            # initializers changed (it seeds threads created later, never the caller).
            barrier = threading.Barrier(size)
            for f in [pool.submit(barrier.wait) for _ in range(size)]:
                f.result()
            torch.set_num_threads(threads)
            _POOL, _POOL_SIZE = pool, size
        return _POOL


def _on_worker() -> bool:
    """Whether the calling thread is one of worker_pool's."""
    return threading.current_thread().name.startswith("bioseqnn")


def concurrency() -> int:
    """How many independent pieces of work the calling thread should cut its work into:
    one per intra-op thread (a training step's come from its shape and --threads,
    runtime.step_threads, never from the load), one on a worker thread."""
    return 1 if _on_worker() else torch.get_num_threads()


def threads_free() -> bool:
    """Whether the calling thread may hand pieces to worker threads (it has more than one
    intra-op thread, and is not a worker itself)."""
    return not _on_worker() and torch.get_num_threads() > 1


class _Inline:
    """An executor that runs each job when it is submitted, on the calling thread."""

    @staticmethod
    def submit(fn: Callable[..., Any], *args: Any) -> Future[Any]:
        done: Future[Any] = Future()
        done.set_result(fn(*args))
        return done


def map_on_workers(fn: Callable[..., Any], jobs: Sequence[tuple[Any, ...]]) -> list[Any]:
    """``[fn(*args) for args in jobs]``, the jobs on worker threads without gradients,
    under the caller's inference mode (a per-thread setting). With one thread, or one
    job, they run inline."""
    if len(jobs) < 2 or not threads_free():
        return [fn(*args) for args in jobs]
    pool = worker_pool(len(jobs))
    inference = torch.is_inference_mode_enabled()

    def call(args: tuple[Any, ...]) -> Any:
        with torch.inference_mode(inference), torch.no_grad():
            return fn(*args)

    return [f.result() for f in [pool.submit(call, a) for a in jobs]]


def run_concurrently(
    fn: Callable[..., torch.Tensor], jobs: Sequence[tuple[torch.Tensor, ...]]
) -> list[torch.Tensor]:
    """``[fn(*args) for args in jobs]``, the jobs on worker threads, differentiably.

    Tensors may be shared between jobs (weights); their gradients are summed in job
    order, so results are deterministic. With one thread the jobs run inline.
    """
    if len(jobs) < 2:
        return [fn(*args) for args in jobs]
    if not (torch.is_grad_enabled() and any(t.requires_grad for a in jobs for t in a)):
        return map_on_workers(fn, jobs)
    # On one thread the jobs still build separate graphs, so that their gradients are
    # summed as on several (the same bits whatever the thread count).
    pool: Any = worker_pool(len(jobs)) if threads_free() else _Inline()
    flat: list[torch.Tensor] = []
    slot: dict[int, int] = {}
    specs: list[list[int]] = []
    for args in jobs:
        spec = []
        for t in args:
            if id(t) not in slot:
                slot[id(t)] = len(flat)
                flat.append(t)
            spec.append(slot[id(t)])
        specs.append(spec)
    return list(_Concurrent.apply(fn, specs, pool, *flat))


class _Concurrent(torch.autograd.Function):
    """Each job builds its own autograd graph on its worker thread (on detached copies
    of its inputs); the backward pass runs those graphs concurrently too. torch's
    autograd engine would otherwise run the backward of every job on one thread."""

    @staticmethod
    def forward(
        ctx: Any,
        fn: Callable[..., torch.Tensor],
        specs: list[list[int]],
        pool: Any,
        *flat: torch.Tensor,
    ) -> tuple[torch.Tensor, ...]:
        def run(spec: list[int]) -> tuple[list[torch.Tensor], torch.Tensor]:
            leaves = [flat[i].detach().requires_grad_(flat[i].requires_grad) for i in spec]
            with torch.enable_grad():
                return leaves, fn(*leaves)

        ctx.results = [f.result() for f in [pool.submit(run, s) for s in specs]]
        ctx.specs, ctx.pool, ctx.n = specs, pool, len(flat)
        return tuple(out.detach() for _, out in ctx.results)

    @staticmethod
    def backward(ctx: Any, *grads: torch.Tensor | None) -> tuple[torch.Tensor | None, ...]:
        def run(k: int) -> list[torch.Tensor | None]:
            leaves, out = ctx.results[k]
            want = [x for x in leaves if x.requires_grad]
            if not want or not out.requires_grad:
                return [None] * len(leaves)
            g = grads[k]
            if g is None:
                g = torch.zeros_like(out)
            got = iter(_grad(out, want, g))
            return [next(got) if x.requires_grad else None for x in leaves]

        per_job = [f.result() for f in [ctx.pool.submit(run, k) for k in range(len(ctx.specs))]]
        del ctx.results
        total: list[torch.Tensor | None] = [None] * ctx.n
        for spec, job_grads in zip(ctx.specs, per_job, strict=True):
            for i, g in zip(spec, job_grads, strict=True):
                if g is not None:
                    total[i] = g if total[i] is None else total[i] + g
        return (None, None, None, *total)


def _grad(
    out: torch.Tensor, inputs: list[torch.Tensor], grad: torch.Tensor
) -> tuple[torch.Tensor | None, ...]:
    """``torch.autograd.grad(out, inputs, grad, allow_unused=True)`` for a ``grad`` of
    ``out``'s own shape, without the public call's check of that shape: the check
    imports torch's symbolic-shape machinery (sympy with it), 0.6 s of a training
    process's start on a 2-core machine. Torches without the engine's entry point
    take the public call."""
    run = getattr(getattr(torch.autograd, "graph", None), "_engine_run_backward", None)
    if run is None:
        return torch.autograd.grad(out, inputs, grad, allow_unused=True)
    return tuple(run((out,), (grad,), False, False, tuple(inputs), True, accumulate_grad=False))
