"""Stream records -> encoded chunks -> length-sorted batches -> prediction rows in input order."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import torch

from .alphabets import byte_histogram, detect_alphabet, protein_only_fraction
from .bundle import Bundle
from .data import SequenceEncoder, SequenceSet, batch_indices, chunked, collate
from .encoding import OneHot, check_fits
from .errors import DataError
from .models.base import SequenceModel, check_lengths
from .seqio import Record
from .strands import complement_table, reverse_complement_set
from .tasks import TaskSpec

log = logging.getLogger("bioseqnn")


@torch.inference_mode()
def infer(
    model: SequenceModel,
    onehot: OneHot,
    data: SequenceSet,
    batch_size: int,
    device: torch.device,
) -> torch.Tensor:
    """Raw model outputs (logits) for every sequence of ``data``, in its order, on the CPU."""
    was_training = model.training
    model.eval()
    out: torch.Tensor | None = None
    for index in batch_indices(data.lengths, batch_size):
        codes, lengths = collate(data, index)
        codes = codes.to(device, non_blocking=True)
        logits = model(onehot(codes), lengths.to(device)).float().cpu()
        if out is None:
            out = torch.empty((len(data), *logits.shape[1:]), dtype=torch.float32)
        out[torch.from_numpy(index)] = logits
    model.train(was_training)
    if out is None:
        return torch.empty((0, 0))
    return out


@dataclass
class PredictStats:
    records: int = 0
    skipped: int = 0


def predict_rows(
    bundle: Bundle,
    records: Iterable[Record],
    source: str,
    batch_size: int = 256,
    device: torch.device | str = "cpu",
    on_invalid: str = "error",
    stats: PredictStats | None = None,
    rc_average: bool | None = None,
) -> Iterator[list[str]]:
    """Yield one output row per record (id first), in input order, chunk by chunk.

    Memory stays flat: only one chunk of records is held at a time. ``rc_average``
    (None: the model's default) reports the mean over both strands (DNA/RNA).
    """
    device = torch.device(device)
    model_alphabet = bundle.alphabet
    task = bundle.task
    if rc_average is None:
        rc_average = bool((bundle.manifest.get("training") or {}).get("rc_average", False))
    complement = complement_table(model_alphabet) if rc_average else None
    onehot = OneHot(model_alphabet).to(device)
    encoder = SequenceEncoder(source, model_alphabet, on_invalid)
    stats = stats if stats is not None else PredictStats()
    chunk_size = max(batch_size * 16, 1024)
    for i, chunk in enumerate(chunked(records, chunk_size)):
        if i == 0:
            counts = byte_histogram(r.seq for r in chunk[:2000])
            guess = detect_alphabet(counts)
            # A nucleotide model refuses input only where protein-only letters are common;
            # a stray invalid symbol is left to the encoder, which names its position.
            if model_alphabet.name == "protein" or protein_only_fraction(counts) > 0.1:
                check_fits(guess.alphabet, model_alphabet, source)
        kept, codes, offsets = encoder.encode_chunk(chunk)
        stats.records += len(chunk)
        if not kept:
            continue
        data = SequenceSet([r.id for r in kept], codes, offsets)
        check_lengths(bundle.model, data.ids, data.lengths, source)
        out = both_strands(bundle.model, onehot, task, data, batch_size, device, complement)
        for rid, cells in zip(data.ids, task.format_rows(out), strict=True):
            yield [rid, *cells]
    stats.skipped = encoder.skipped
    if stats.records == 0:
        raise DataError(f"{source}: no sequence records")


def both_strands(
    model: SequenceModel, onehot: OneHot, task: TaskSpec, data: SequenceSet, batch_size: int,
    device: torch.device, complement: np.ndarray | None = None,
) -> np.ndarray:
    """Task outputs of every sequence; with ``complement``, the mean of both strands."""
    out = task.outputs(infer(model, onehot, data, batch_size, device))
    if complement is not None:
        rc = reverse_complement_set(data, complement)
        out = (out + task.outputs(infer(model, onehot, rc, batch_size, device))) / 2
    return out.numpy()


def output_header(bundle: Bundle) -> list[str]:
    return ["id", *bundle.task.columns()]


def resolve_device(name: str) -> torch.device:
    from .errors import UsageError

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
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


