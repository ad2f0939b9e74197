"""What this process may use of the machine: CPUs (affinity, SLURM, a cgroup's quota,
torchrun's processes) and memory (free memory, a cgroup's limit). No torch here:
bioseqnn.runtime applies these to torch, and a run without torch (engine/light.py)
reads them too."""

from __future__ import annotations

import logging
import math
import os
import sys
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

from .errors import UsageError


def thread_count(threads: int = 0) -> int:
    """The intra-op threads for ``--threads`` (0 = the cores available to this process).

    More threads than the machine has CPUs only slow torch down (and tens of thousands
    make OpenMP fail to start them, or crash): such a number is capped, with a warning.
    """
    n = threads if threads > 0 else default_threads()
    cpus = os.cpu_count() or 1
    if n > cpus:
        logging.getLogger("bioseqnn").warning(
            "--threads %d: this machine has %d CPU(s); using %d", n, cpus, cpus
        )
        n = cpus
    return n


def default_threads() -> int:
    """Cores this process may use: the scheduler's CPU set, or SLURM's allocation, capped
    by a container's CPU quota (cgroup), shared among the training processes torchrun
    started on this machine."""
    slurm = os.environ.get("SLURM_CPUS_PER_TASK")
    if slurm and slurm.isdigit() and int(slurm) > 0:
        cores = int(slurm)
    else:
        try:
            cores = max(1, len(os.sched_getaffinity(0)))
        except AttributeError:  # not on Linux
            cores = max(1, os.cpu_count() or 1)
    quota = cgroup_cpu_limit()
    if quota is not None:  # e.g. docker --cpus 2 on a 64-core host: 2 threads, not 64
        cores = min(cores, max(1, math.ceil(quota - 1e-9)))
    return max(1, cores // _local_processes())


def cgroup_cpu_limit(
    root: str = "/sys/fs/cgroup", membership: str = "/proc/self/cgroup"
) -> float | None:
    """The CPUs a cgroup quota allows this process (quota / period; the tightest along
    its cgroup path, v2 ``cpu.max`` or v1 ``cpu.cfs_quota_us``), or None without one."""
    limits: list[float] = []
    for v2, folder in _cgroup_folders(root, membership, "cpu", ("cpu,cpuacct",)):
        if v2:  # cpu.max holds "QUOTA PERIOD" or "max PERIOD"
            fields = _read(folder / "cpu.max").split()
            if len(fields) == 2 and fields[0] != "max":
                limits.append(_ratio(fields[0], fields[1]))
        else:
            quota = _read(folder / "cpu.cfs_quota_us")
            period = _read(folder / "cpu.cfs_period_us")
            if quota and period and not quota.startswith("-"):
                limits.append(_ratio(quota, period))
    found = [v for v in limits if v > 0]
    return min(found) if found else None


def _cgroup_folders(
    root: str, membership: str, controller: str, v1_names: tuple[str, ...] = ()
) -> Iterator[tuple[bool, Path]]:
    """(whether cgroup v2, folder) of every cgroup that holds this process's
    ``controller`` settings, its own group first, then each parent up to the root: v2's
    unified tree, or v1's tree of that controller (mounted under its own name, the
    names it shares a mount with, or ``v1_names``)."""
    try:
        lines = Path(membership).read_text().splitlines()
    except OSError:
        return
    for line in lines:
        _, controllers, path = (line.split(":", 2) + ["", ""])[:3]
        if controllers == "":
            for folder in _up_to_root(Path(root), path):
                yield True, folder
        elif controller in controllers.split(","):
            for name in dict.fromkeys((controllers, controller, *v1_names)):
                for folder in _up_to_root(Path(root) / name, path):
                    yield False, folder


def _up_to_root(base: Path, path: str) -> list[Path]:
    parts = [p for p in path.strip().split("/") if p]
    return [base.joinpath(*parts[:i]) for i in range(len(parts), -1, -1)]


def _read(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return ""


def _ratio(quota: str, period: str) -> float:
    try:
        q, p = float(quota), float(period)
    except ValueError:
        return 0.0
    return q / p if p > 0 else 0.0


MEMORY_SHARE = 0.9
"""The share of the memory free at start that a command may take (see :func:`cap_memory`)."""

MEMORY_VARIABLE = "BIOSEQNN_MAX_MEMORY"
"""The environment variable that sets the memory ceiling ('8G', '500M'; '0' or 'off':
none)."""


def memory_room(
    root: str = "/sys/fs/cgroup",
    membership: str = "/proc/self/cgroup",
    meminfo: str = "/proc/meminfo",
) -> int | None:
    """Bytes this process could still take: the machine's available memory
    (MemAvailable), or less where a cgroup's memory limit leaves less room (its limit
    less its working set, the tightest along the process's cgroup path, v1 or v2);
    None where the machine does not say (not Linux)."""
    available = _kib_field(Path(meminfo), "MemAvailable")
    rooms = [] if available is None else [available]
    for v2, folder in _cgroup_folders(root, membership, "memory"):
        if v2:  # memory.max: "max" or bytes
            rooms += _cgroup_room(folder, "memory.max", "memory.current", "inactive_file")
        else:
            rooms += _cgroup_room(
                folder, "memory.limit_in_bytes", "memory.usage_in_bytes", "total_inactive_file"
            )
    return max(0, min(rooms)) if rooms else None


def _cgroup_room(folder: Path, limit_file: str, usage_file: str, cache_key: str) -> list[int]:
    """[limit - working set] of one cgroup folder, or [] where it sets no limit. Its
    inactive file cache does not count as used: the kernel reclaims it first."""
    limit, usage = _read(folder / limit_file), _read(folder / usage_file)
    if not (limit.isdigit() and usage.isdigit()) or int(limit) >= 1 << 62:  # v1's "none"
        return []
    cache = 0
    for line in _read(folder / "memory.stat").splitlines():
        key, _, value = line.partition(" ")
        if key == cache_key and value.strip().isdigit():
            cache = int(value)
    return [int(limit) - max(0, int(usage) - cache)]


def parse_size(text: str) -> int:
    """Bytes of a size such as '8G', '1.5g', '500M', '64k' or '1073741824' (powers of
    1024; a trailing 'B' or 'iB' is allowed)."""
    units = {"": 0, "K": 10, "M": 20, "G": 30, "T": 40}
    body = text.strip().upper().removesuffix("IB").removesuffix("B")
    number, unit = (body[:-1], body[-1]) if body[-1:] in units and body else (body, "")
    try:
        value = float(number)
    except ValueError:
        value = -1.0
    if not math.isfinite(value) or value < 0:
        raise UsageError(f"{MEMORY_VARIABLE}: {text!r} is not a size (e.g. 8G, 500M, 0 for none)")
    return int(value * (1 << units[unit]))


def _kib_field(path: Path, key: str) -> int | None:
    """Bytes of a 'Key:   1234 kB' line of a /proc file (meminfo, status), or None."""
    for line in _read(path).splitlines():
        name, _, value = line.partition(":")
        fields = value.split()
        if name == key and fields and fields[0].isdigit():
            return int(fields[0]) * 1024
    return None


def _local_processes() -> int:
    """Processes torchrun started on this machine (1 outside torchrun)."""
    world, local = os.environ.get("WORLD_SIZE", ""), os.environ.get("LOCAL_WORLD_SIZE", "")
    if world.isdigit() and int(world) > 1 and local.isdigit():
        return max(1, int(local))
    return 1


memory_ceiling: int | None = None
"""The ceiling :func:`cap_memory` set (bytes of data segment), or None."""

_ceiling_source = ""
"""Where :data:`memory_ceiling` comes from, for the messages that name it."""

_limit_before: tuple[int, int] | None = None
"""RLIMIT_DATA as it was before :func:`cap_memory` changed it."""


def cap_memory(
    environ: Mapping[str, str] | None = None, gpu_present: Callable[[], bool] | None = None
) -> int | None:
    """Cap this process's memory so that running out of it is an error, not the kernel's
    out-of-memory killer (Linux, CPU machines; the command line calls this).

    Linux hands out memory it does not have and, when it runs out, kills a process
    (this one, or another of the user's). Under a ceiling on the data segment
    (RLIMIT_DATA) an allocation past it fails instead: torch and numpy raise, and the
    command stops with one line naming what took the memory (a batch is halved first
    where that helps). The ceiling is what the process holds now plus 90% of the memory
    free now (the machine's, or a cgroup's where it leaves less, as under SLURM or
    docker), shared among torchrun's processes on the node. BIOSEQNN_MAX_MEMORY sets
    it ('8G', '500M'; '0' or 'off': none); a lower ``ulimit -d`` is kept, and a lower
    ``ulimit -v`` (address space) is named as the ceiling and left to do the work. Machines with
    a GPU get no default ceiling: the CUDA driver's own mappings count toward it
    (``gpu_present`` says whether there is one; None: a process that loads no GPU
    driver, as a prediction without torch).
    Returns the ceiling in bytes, or None; :func:`release_memory` undoes it.
    """
    global memory_ceiling, _ceiling_source, _limit_before
    env = os.environ if environ is None else environ
    if not sys.platform.startswith("linux"):
        return None
    setting = env.get(MEMORY_VARIABLE, "").strip()
    if setting.lower() in ("0", "off", "none"):
        return None
    if setting:
        limit, source = parse_size(setting), f"from {MEMORY_VARIABLE}"
    else:
        # VmData: the data segment, what RLIMIT_DATA counts
        held, room = _kib_field(Path("/proc/self/status"), "VmData"), memory_room()
        if held is None or room is None or (gpu_present is not None and gpu_present()):
            return None
        limit = held + int(room * MEMORY_SHARE) // _local_processes()
        source = f"90% of the memory free at start; {MEMORY_VARIABLE} sets it"
    import resource

    space = _address_space_ceiling(resource.getrlimit(resource.RLIMIT_AS)[0])
    if space is not None and space[0] <= limit:
        # ulimit -v (SGE's h_vmem sets it) is tighter: allocations past it fail already
        memory_ceiling, _ceiling_source = space[1], "from ulimit -v"
        return space[1]
    soft, hard = resource.getrlimit(resource.RLIMIT_DATA)
    if soft != resource.RLIM_INFINITY and soft <= limit:
        memory_ceiling, _ceiling_source = soft, "from ulimit -d"  # the user's, tighter
        return soft
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    if _limit_before is None:
        _limit_before = (soft, hard)
    resource.setrlimit(resource.RLIMIT_DATA, (limit, hard))
    memory_ceiling, _ceiling_source = limit, source
    return limit


def _address_space_ceiling(soft: int) -> tuple[int, int] | None:
    """(the data segment that fits in the address space left, the limit) where an
    address-space limit (RLIMIT_AS: ``ulimit -v``) is set, else None. It counts every
    mapping (libraries, torch's included), so the data segment may grow by what is left
    of it now."""
    import resource

    if soft == resource.RLIM_INFINITY:
        return None
    status = Path("/proc/self/status")
    size, data = _kib_field(status, "VmSize"), _kib_field(status, "VmData")
    if size is None or data is None:
        return None
    return data + max(0, soft - size), soft


def release_memory() -> None:
    """Undo :func:`cap_memory` (the command line does when a command ends, so that a
    program that runs commands in-process keeps its own limits)."""
    global memory_ceiling, _ceiling_source, _limit_before
    if _limit_before is not None:
        import resource

        resource.setrlimit(resource.RLIMIT_DATA, _limit_before)
    memory_ceiling = _limit_before = None
    _ceiling_source = ""


def ceiling_note() -> str:
    """' (memory ceiling 2.0 GB, from BIOSEQNN_MAX_MEMORY)' while one is set, for the
    messages that say memory ran out; else ''."""
    if memory_ceiling is None:
        return ""
    size = (
        f"{memory_ceiling / (1 << 30):.1f} GB"
        if memory_ceiling >= 1 << 30
        else f"{memory_ceiling / (1 << 20):.0f} MB"
    )
    return f" (memory ceiling {size}, {_ceiling_source})"
