"""Data-parallel training over several processes, as launched by ``torchrun``.

The same ``bioseqnn train`` command runs in every process. Each reads the whole data set
(compact uint8 codes), draws the same seeded list of global batches and trains on its
own share of each (:func:`bioseqnn.data.batches.shard`); DistributedDataParallel averages the
gradients, with each rank's loss weighted by its share of the global batch, so a step
equals the single-process step on the whole global batch. Validation is split across
the ranks and gathered, so every rank computes the same metrics; the epoch record is
then taken from rank 0, so early-stopping decisions agree. Only rank 0 writes files.

NCCL joins GPU processes (one GPU per process, ``cuda:LOCAL_RANK``), gloo CPU processes.
"""

from __future__ import annotations

import atexit
import datetime as _dt
import logging
import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from ..errors import UsageError

log = logging.getLogger("bioseqnn")

TIMEOUT = _dt.timedelta(minutes=30)
"""How long a collective waits for the other ranks (data loading happens before any)."""


@dataclass(frozen=True)
class Dist:
    """Where this process stands among the training processes."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def main(self) -> bool:
        return self.rank == 0


SINGLE = Dist()


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "")
    try:
        return int(value) if value else default
    except ValueError:
        raise UsageError(f"environment variable {name}={value!r} is not an integer") from None


def launched() -> bool:
    """True in a process started by torchrun (or a launcher that sets the same variables)
    with more than one process in all."""
    return _env_int("WORLD_SIZE", 1) > 1


def setup(device: str | None) -> tuple[Dist, str | None]:
    """Join torchrun's process group; returns this process's place and the device to use.

    Outside torchrun nothing happens (``SINGLE``, ``device`` unchanged). Under torchrun a
    CUDA device (auto with a GPU present, or cuda) becomes ``cuda:LOCAL_RANK`` with NCCL;
    otherwise the processes train on the CPU and talk through gloo.
    """
    if not launched():
        return SINGLE, device
    ctx = Dist(_env_int("RANK", 0), _env_int("WORLD_SIZE", 1), _env_int("LOCAL_RANK", 0))
    name = device or "auto"
    if name.startswith("cuda") and name != "cuda":
        raise UsageError(
            f"--device {name}: under torchrun each process uses the GPU of its "
            "local rank; give --device cuda (or auto)"
        )
    use_cuda = name == "cuda" or (name == "auto" and torch.cuda.is_available())
    if use_cuda:
        if not torch.cuda.is_available():
            raise UsageError("--device cuda: CUDA is not available here")
        if ctx.local_rank >= torch.cuda.device_count():
            raise UsageError(
                f"local rank {ctx.local_rank} has no GPU: only "
                f"{torch.cuda.device_count()} here; start at most that many "
                "processes per node (--nproc-per-node)"
            )
        torch.cuda.set_device(ctx.local_rank)
        name = f"cuda:{ctx.local_rank}"
    else:
        name = "cpu"
    if not dist.is_initialized():
        dist.init_process_group("nccl" if use_cuda else "gloo", timeout=TIMEOUT)
        atexit.register(teardown)
    if not ctx.main:  # one copy of every message: rank 0's
        log.setLevel(max(log.level, logging.ERROR))
    log.info(
        "distributed training: %d processes (%s), rank 0 of them on %s",
        ctx.world,
        dist.get_backend(),
        name,
    )
    return ctx, name


def teardown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def wrap(model: torch.nn.Module, ctx: Dist, device: torch.device) -> torch.nn.Module:
    """The module to call in training steps: ``model`` itself, or a DDP wrapper around it
    whose backward pass averages the gradients of all ranks."""
    if not ctx.enabled:
        return model
    from torch.nn.parallel import DistributedDataParallel

    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids)


def all_sum(values: list[float], ctx: Dist, device: torch.device) -> list[float]:
    """Element-wise sums over the ranks (the values themselves in one process)."""
    if not ctx.enabled:
        return values
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return [float(x) for x in t.cpu()]


def global_mean_loss(
    loss: torch.Tensor, value: float, share: int, batch: int, ctx: Dist, device: torch.device
) -> tuple[torch.Tensor, float]:
    """A rank's mean ``loss`` (``value`` as a float) over its ``share`` of a global batch
    of ``batch`` records: the loss to differentiate, weighted by the rank's share (DDP
    averages gradients over the ranks), and the global batch's mean loss (non-finite on
    every rank if on any, so that all stop together)."""
    if not ctx.enabled:
        return loss, value
    weighted, count = all_sum([value * share, share], ctx, device)
    return loss * (share * ctx.world / batch), weighted / count


def global_position_loss(
    summed: torch.Tensor, weight: float, per_batch: float, ctx: Dist, device: torch.device
) -> tuple[torch.Tensor, float, float]:
    """A per-position batch: the loss to differentiate (the summed loss over the mean
    scored weight per batch; DDP averages the ranks' gradients, so each rank's sum counts
    world times), the global batch's mean loss per scored position, and its weight."""
    loss = summed * (ctx.world / per_batch)
    part = [float(summed.detach()), weight]
    if ctx.enabled:
        part = all_sum(part, ctx, device)
    return loss, part[0] / max(part[1], 1e-12), part[1]


def from_main(obj: Any, ctx: Dist) -> Any:
    """Rank 0's ``obj`` on every rank (picklable plain data only)."""
    if not ctx.enabled:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def sync_buffers(model: torch.nn.Module, ctx: Dist) -> None:
    """Give every rank rank 0's buffers (batch-norm running statistics): DDP copies them at
    the start of each training forward, after which each rank updates its own."""
    if ctx.enabled:
        for buffer in model.buffers():
            dist.broadcast(buffer, src=0)


def shares(n: int, ctx: Dist) -> list[np.ndarray]:
    """Contiguous parts of range(n), one per rank, for splitting inference."""
    return np.array_split(np.arange(n), ctx.world)


def gather_rows(
    mine: torch.Tensor, sizes: list[int], ctx: Dist, device: torch.device
) -> torch.Tensor:
    """Concatenate every rank's rows (in rank order); trailing dimensions are padded with
    zeros to the largest of any rank (per-position outputs of sets of other lengths)."""
    if not ctx.enabled:
        return mine
    shapes: list[Any] = [None] * ctx.world
    dist.all_gather_object(shapes, tuple(mine.shape))
    dims = [s for s in shapes if len(s) > 1 and s[0] > 0] or [tuple(mine.shape)]
    trailing = tuple(max(s[d] for s in dims) for d in range(1, len(dims[0])))
    rows = max(sizes)
    padded = torch.zeros((rows, *trailing), dtype=torch.float32, device=device)
    if mine.numel():
        padded[tuple(slice(0, k) for k in mine.shape)] = mine.to(device)
    parts = [torch.empty_like(padded) for _ in range(ctx.world)]
    dist.all_gather(parts, padded)
    return torch.cat([p[:k] for p, k in zip(parts, sizes, strict=True)]).cpu()


def epoch_seed(seed: int, epoch: int, ctx: Dist) -> None:
    """Dropout (and other torch randomness) of one rank in one epoch, from the seed alone,
    so that ranks draw different masks and a resumed run draws the same ones again."""
    if ctx.enabled:
        torch.manual_seed(int(np.random.default_rng([seed, 4, epoch, ctx.rank]).integers(2**62)))
