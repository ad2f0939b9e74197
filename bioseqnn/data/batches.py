"""Splits and batches: seeded, stratified validation splits; batches of similar length
within a padded-size cap; padding a batch into tensors.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import numpy as np

from ..encoding import pad_codes
from ..errors import DataError
from ..tasks import TaskSpec
from .sets import SequenceSet

if TYPE_CHECKING:  # torch only where a batch becomes tensors: batching needs none
    import torch

log = logging.getLogger("bioseqnn")

# --------------------------------------------------------------------------- splits


def split_indices(
    n: int, fraction: float, seed: int, strata: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Seeded (and, given strata, stratified) train/validation split of range(n)."""
    rng = np.random.default_rng([seed, 1])
    if fraction <= 0:
        return np.arange(n), np.zeros(0, dtype=np.int64)
    if strata is None:
        perm = rng.permutation(n)
        n_val = max(1, int(round(n * fraction)))
        if n_val >= n:
            raise DataError(f"a validation fraction of {fraction} leaves no training data")
        return np.sort(perm[n_val:]), np.sort(perm[:n_val])
    val_parts = []
    for cls in np.unique(strata):
        members = rng.permutation(np.flatnonzero(strata == cls))
        k = int(round(len(members) * fraction))
        if len(members) >= 2:
            k = min(max(k, 1), len(members) - 1)
        val_parts.append(members[:k])
    val = np.sort(np.concatenate(val_parts)) if val_parts else np.zeros(0, np.int64)
    asked = max(1, int(round(n * fraction)))
    if len(val) > 2 * asked:
        # many small classes: one of each would hold out far more than asked (200
        # classes of two records: half of them)
        log.warning(
            "validation: a record of each class would hold out %d of %d records; holding "
            "out %d (--val-fraction %g) at random instead, so some classes have no "
            "validation record",
            len(val),
            n,
            asked,
            fraction,
        )
        val = _capped_split(strata, asked, rng)
    train = np.setdiff1d(np.arange(n), val)
    if len(val) == 0:
        raise DataError(
            f"no record can be held out for validation: {n} record(s), and no class has "
            "two; give more records, --val-fasta, or --val-fraction 0 to train without "
            "validation"
        )
    return train, val


def _capped_split(strata: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """``size`` records at random, none from a class of one, each class keeping at
    least one training record."""
    classes, inverse, counts = np.unique(strata, return_inverse=True, return_counts=True)
    room = counts - 1  # records each class may give
    taken = np.zeros(len(classes), np.int64)
    chosen = []
    for i in rng.permutation(len(strata)):
        c = inverse[i]
        if taken[c] < room[c]:
            taken[c] += 1
            chosen.append(i)
            if len(chosen) == size:
                break
    return np.sort(np.asarray(chosen, np.int64))


# --------------------------------------------------------------------------- batches


def batch_indices(
    lengths: np.ndarray,
    batch_size: int,
    rng: np.random.Generator | None = None,
    window: int = 50,
    max_tokens: int | None = None,
    ranks: int = 1,
) -> list[np.ndarray]:
    """Batches of similar length.

    With an rng (training) the order is shuffled, then sorted by length within windows
    of ``window`` batches, and the batches themselves are shuffled. Without (inference)
    all records are sorted by length; callers restore the input order.

    ``max_tokens`` caps the padded size of a batch (records x its longest length), so
    batches of long sequences hold fewer records; a record longer than the cap is a
    batch of its own. With ``ranks`` > 1 (distributed training) each batch is a global
    batch that :func:`shard` deals out to the ranks: it holds up to ``batch_size *
    ranks`` records, and each rank's share keeps within ``batch_size`` and ``max_tokens``.
    """
    n = len(lengths)
    size = batch_size * ranks
    if rng is None:
        return cut_sorted(np.argsort(lengths, kind="stable"), lengths, size, max_tokens, ranks)
    perm = rng.permutation(n)
    span = size * window
    batches = []
    for start in range(0, n, span):
        part = perm[start : start + span]
        part = part[np.argsort(lengths[part], kind="stable")]
        batches.extend(cut_sorted(part, lengths, size, max_tokens, ranks))
    return [batches[i] for i in rng.permutation(len(batches))]


def cut_sorted(
    order: np.ndarray,
    lengths: np.ndarray,
    size: int,
    max_tokens: int | None = None,
    ranks: int = 1,
) -> list[np.ndarray]:
    """Cut ``order`` (records sorted by ascending length) into consecutive batches of at
    most ``size`` records whose padded size per rank stays within ``max_tokens``."""
    if not max_tokens:
        return [order[i : i + size] for i in range(0, len(order), size)]
    sorted_lengths = lengths[order].astype(np.int64)
    batches = []
    start = 0
    while start < len(order):
        head = sorted_lengths[start : start + size]
        # k records pad to head[k - 1] (lengths ascend); the largest rank share is
        # ceil(k / ranks) records
        k = np.arange(1, len(head) + 1, dtype=np.int64)
        fits = (k + ranks - 1) // ranks * head <= max_tokens
        take = max(1, int(np.argmin(fits)) if not fits.all() else len(head))
        batches.append(order[start : start + take])
        start += take
    return batches


def shard(index: np.ndarray, rank: int, ranks: int) -> np.ndarray:
    """This rank's share of a global batch: every ``ranks``-th record from ``rank`` on."""
    return index[rank::ranks]


def collate(data: SequenceSet, index: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """The codes of records ``index`` padded to (B, longest) (a series: (B, longest,
    channels), padded with NaN, which its input layer reads as 0) and their lengths."""
    import torch

    fill = np.nan if data.codes.dtype.kind == "f" else 0
    codes, lengths = pad_codes(data.codes, data.offsets, index, fill=fill)  # type: ignore[arg-type]
    return torch.from_numpy(codes), torch.from_numpy(lengths)


def position_batch(data: SequenceSet, index: np.ndarray, end: int | None = None) -> torch.Tensor:
    """The per-position targets of records ``index``: (B, longest) int64, -1 past each
    length. ``end`` (a language model's end class) adds a column and puts ``end`` at
    each record's length, after its last residue."""
    import torch

    assert data.positions is not None
    out, lengths = pad_codes(
        data.positions, data.offsets, index, fill=-1, extra=0 if end is None else 1
    )
    y = out.astype(np.int64)
    if end is not None:
        y[np.arange(len(lengths)), lengths] = end
    return torch.from_numpy(y)


def batch_targets(task: TaskSpec, data: SequenceSet, index: np.ndarray) -> torch.Tensor:
    """The targets of records ``index`` in the form ``task.loss`` takes."""
    import torch

    if task.kind == "per-position":
        return position_batch(data, index)
    if task.kind == "language-model":  # the end class is the last
        return position_batch(data, index, end=task.n_outputs - 1)
    assert data.targets is not None
    return torch.from_numpy(data.targets[np.asarray(index, dtype=np.int64)])
