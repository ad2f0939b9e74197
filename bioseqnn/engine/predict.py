"""Stream records -> encoded chunks -> length-sorted batches -> prediction rows in input order."""

from __future__ import annotations

import errno
import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import torch

from ..bundle import Bundle
from ..data.batches import batch_indices, batch_targets, collate
from ..data.sets import SequenceSet
from ..errors import DataError, UsageError
from ..io.fasta import Record
from ..io.series import SeriesReader
from ..models.base import Predictor
from ..models.inputs import featurizer
from ..runtime import ceiling_note
from ..strands import complement_table, reverse_complement_set
from ..tasks import TaskSpec
from .inputs import PredictStats, encoded_chunks

log = logging.getLogger("bioseqnn")

OOM_ERRORS: tuple[type[BaseException], ...] = (torch.OutOfMemoryError,)
"""What counts as running out of accelerator memory (torch.cuda.OutOfMemoryError is this)."""


def out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` says that memory ran out: on a GPU (torch.OutOfMemoryError), or on
    the CPU, where Python and numpy raise MemoryError, torch's allocator a RuntimeError
    and the system an OSError with ENOMEM, or an ImportError where the library an import
    loads could not be mapped."""
    return (
        isinstance(exc, (torch.OutOfMemoryError, MemoryError))
        or (isinstance(exc, RuntimeError) and "can't allocate memory" in str(exc))
        or (isinstance(exc, OSError) and exc.errno == errno.ENOMEM)
        or (isinstance(exc, ImportError) and "failed to map segment" in str(exc))
    )


INFER_TOKENS = 1 << 18
"""The default cap on a prediction batch's padded positions (records x longest length).

A batch of 2^18 positions holds 256 sequences of 1,000 residues, so shorter sequences
fill --batch-size as before. Longer ones gain from the smaller batch: the default
cnn-gru's activations take about 4 kB a position, and 48 sequences of 20,000 nt
predicted in 7.3-8.0 s at a 1.2 GB peak against 12.2-12.8 s and 3.7 GB with 2^20
(fresh memory is faulted in page by page; a smaller working set stays in cache).
Predictions do not depend on it."""


@dataclass
class BatchLimit:
    """The most sequences per forward pass: halved on out-of-memory and kept smaller for
    the rest of the run (one object can be shared by several :func:`infer` calls)."""

    size: int


@torch.inference_mode()
def infer(
    model: Predictor,
    onehot: torch.nn.Module,
    data: SequenceSet,
    batch_size: int,
    device: torch.device,
    limit: BatchLimit | None = None,
    oom: tuple[type[BaseException], ...] = OOM_ERRORS,
    max_tokens: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> torch.Tensor:
    """Raw model outputs (logits) for every sequence of ``data``, in its order, on the CPU.

    A per-position model gives (N, longest, K) (a language model (N, longest + 1, K): its
    outputs run to the end after the last residue); positions past a sequence's outputs
    mean nothing.
    A batch that runs out of memory (an ``oom`` exception) is retried in halves, with a
    warning, down to one sequence; the smaller size is kept in ``limit`` for later batches.
    Batching never changes a prediction, so the outputs are those of an unconstrained run.
    ``progress`` is called with each batch's positions (its sequences' lengths summed).
    """
    was_training = model.training
    model.eval()
    limit = limit if limit is not None else BatchLimit(batch_size)
    out: torch.Tensor | None = None
    per_position = getattr(model, "per_position", False)
    for index, logits in batches_in_memory(
        model, onehot, data, batch_size, device, limit, oom, max_tokens
    ):
        if out is None:
            shape: tuple[int, ...] = tuple(logits.shape[1:])
            if per_position:
                extra = 1 if getattr(model, "causal", False) else 0
                shape = (int(data.lengths.max()) + extra, *logits.shape[2:])
            out = torch.zeros((len(data), *shape), dtype=torch.float32)
        if per_position:
            out[torch.from_numpy(index), : logits.shape[1]] = logits
        else:
            out[torch.from_numpy(index)] = logits
        if progress is not None:
            progress(int(data.lengths[index].sum()))
    model.train(was_training)
    if out is None:
        return torch.empty((0, 0))
    return out


def batches_in_memory(
    model: Predictor,
    onehot: torch.nn.Module,
    data: SequenceSet,
    batch_size: int,
    device: torch.device,
    limit: BatchLimit,
    oom: tuple[type[BaseException], ...],
    max_tokens: int | None = None,
) -> Iterator[tuple[np.ndarray, torch.Tensor]]:
    """(index, logits on the CPU) for every batch, each split while it does not fit;
    ``max_tokens`` caps a batch's padded positions (records x its longest length); None
    or 0: INFER_TOKENS, so that a very long record is not padded to with a whole batch of
    others (predictions do not depend on the batch)."""
    for index in batch_indices(data.lengths, batch_size, max_tokens=max_tokens or INFER_TOKENS):
        start = 0
        while start < len(index):
            part = index[start : start + limit.size]
            logits = _forward(model, onehot, data, part, device, oom)
            if logits is None:  # out of memory; the exception and its frames are gone
                _halve(limit, data, part, device)
                continue
            yield part, logits
            start += len(part)


def _forward(
    model: Predictor,
    onehot: torch.nn.Module,
    data: SequenceSet,
    index: np.ndarray,
    device: torch.device,
    oom: tuple[type[BaseException], ...],
) -> torch.Tensor | None:
    """Logits of the sequences ``index`` on the CPU, or None when memory ran out."""
    try:
        codes, lengths = collate(data, index)
        codes = codes.to(device, non_blocking=True)
        return model(onehot(codes), lengths.to(device)).float().cpu()
    except Exception as exc:
        if isinstance(exc, oom) or out_of_memory(exc):
            return None
        raise


def _halve(limit: BatchLimit, data: SequenceSet, part: np.ndarray, device: torch.device) -> None:
    """Free the allocator's cache and halve the limit; one sequence that does not fit is
    an error naming it."""
    if device.type == "cuda":
        torch.cuda.empty_cache()
    if len(part) <= 1:
        i = int(part[0])
        other = "use --device cpu, or " if device.type != "cpu" else ""
        ceiling = ceiling_note() if device.type == "cpu" else ""
        raise DataError(
            f"out of memory on {device}{ceiling} predicting record {data.ids[i]!r} "
            f"({int(data.lengths[i]):,} positions) on its own; {other}split or trim the "
            "longest sequences"
        )
    limit.size = max(1, len(part) // 2)
    log.warning(
        "out of memory on %s with a batch of %d sequences; retrying with %d",
        device,
        len(part),
        limit.size,
    )


@dataclass
class Scored:
    """A per-position model's outputs at the scored positions of a set of records."""

    logits: torch.Tensor
    """(M, K), one row per scored position (records in length order, then positions)."""
    y: torch.Tensor
    """(M,) their target classes."""
    loss_sum: float
    """The loss summed over them (class weights included) ..."""
    weight: float
    """... and their total weight: the loss is ``loss_sum / weight``."""

    @property
    def loss(self) -> float:
        return self.loss_sum / self.weight if self.weight else 0.0


@torch.inference_mode()
def infer_scored(
    model: Predictor,
    onehot: torch.nn.Module,
    task: TaskSpec,
    data: SequenceSet,
    batch_size: int,
    device: torch.device,
    max_tokens: int | None = None,
) -> Scored:
    """A per-position model's logits and targets at the scored positions of ``data``
    (padding, masked positions and ambiguity codes left out), and its loss there.

    Batch by batch: memory follows the scored positions, never the records times the
    longest record (one long chain among many short ones would make that huge).
    """
    was_training = model.training
    model.eval()
    logits_parts: list[torch.Tensor] = []
    y_parts: list[torch.Tensor] = []
    loss_sum = weight = 0.0
    for index, logits in batches_in_memory(
        model, onehot, data, batch_size, device, BatchLimit(batch_size), OOM_ERRORS, max_tokens
    ):
        y = batch_targets(task, data, index)[:, : logits.shape[1]]
        summed, w = task.position_loss_sum(logits, y)
        loss_sum += float(summed)
        weight += float(w)
        keep = y >= 0
        logits_parts.append(logits[keep])
        y_parts.append(y[keep])
    model.train(was_training)
    k = task.n_outputs
    return Scored(
        torch.cat(logits_parts) if logits_parts else torch.zeros((0, k)),
        torch.cat(y_parts) if y_parts else torch.zeros(0, dtype=torch.int64),
        loss_sum,
        weight,
    )


def predict_rows(
    bundle: Bundle,
    records: Iterable[Record] | SeriesReader,
    source: str,
    batch_size: int = 256,
    device: torch.device | str = "cpu",
    on_invalid: str = "error",
    stats: PredictStats | None = None,
    rc_average: bool | None = None,
    max_tokens: int | None = None,
) -> Iterator[list[str]]:
    """Yield one output row per record (id first), in input order, chunk by chunk.

    ``records`` may be a :class:`SeriesReader` for a numeric series model (see
    :func:`open_model_input`).
    Memory stays flat: only one chunk of records is held at a time. ``rc_average``
    (None: the model's default) reports the mean over both strands (DNA/RNA).
    ``max_tokens`` caps the padded positions of a batch (long sequences go in smaller
    batches); batching never changes a prediction.
    """
    device = torch.device(device)
    task = bundle.task
    if rc_average is None:
        rc_average = bool((bundle.manifest.get("training") or {}).get("rc_average", False))
    complement = complement_table(bundle.alphabet, "--rc-average") if rc_average else None
    if complement is not None and bundle.structure is not None:
        raise UsageError(
            "--rc-average: a model that reads RNA structure cannot average "
            "strands (the reverse complement folds otherwise)"
        )
    onehot = featurizer(bundle.features).to(device)
    stats = stats if stats is not None else PredictStats()
    limit = BatchLimit(batch_size)  # shrinks for the rest of the run on out-of-memory
    for _, data in encoded_chunks(bundle, records, source, batch_size, on_invalid, stats):
        out = both_strands(
            bundle.model, onehot, task, data, batch_size, device, complement, limit, max_tokens
        )
        for rid, cells in zip(data.ids, task.rows(out), strict=True):
            yield [rid, *cells]


def both_strands(
    model: Predictor,
    onehot: torch.nn.Module,
    task: TaskSpec,
    data: SequenceSet,
    batch_size: int,
    device: torch.device,
    complement: np.ndarray | None = None,
    limit: BatchLimit | None = None,
    max_tokens: int | None = None,
) -> np.ndarray:
    """Task outputs of every sequence; with ``complement``, the mean of both strands."""
    out = task.outputs(infer(model, onehot, data, batch_size, device, limit, max_tokens=max_tokens))
    if complement is not None:
        rc = reverse_complement_set(data, complement)
        out = (
            out
            + task.outputs(
                infer(model, onehot, rc, batch_size, device, limit, max_tokens=max_tokens)
            )
        ) / 2
    return out.numpy()


def output_header(bundle: Bundle) -> list[str]:
    return ["id", *bundle.task.columns()]


def resolve_device(name: str | None) -> torch.device:
    """The torch device for a --device value: auto, cpu, cuda or cuda:N.

    Without CUDA, auto runs on the CPU. ``None`` (no --device given) does so quietly, so a
    CPU machine's every command is not a warning; an explicit 'auto' (the user asked for
    a GPU where there is one) warns that there is none.
    """

    if name is None or name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        why = "torch was built without CUDA" if torch.version.cuda is None else "no CUDA device"
        if name == "auto":
            log.warning("--device auto: %s; running on the CPU", why)
        else:
            log.debug("no --device given and %s; running on the CPU", why)
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UsageError(f"unknown device {name!r}; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise UsageError("--device cuda: CUDA is not available here (use --device cpu or auto)")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise UsageError(f"--device {name}: only {torch.cuda.device_count()} GPU(s) present")
    elif device.type != "cpu":
        raise UsageError(f"unsupported device {name!r}; use auto, cpu, cuda or cuda:N")
    return device
