"""Both strands of DNA/RNA: reverse complements of stored codes and of one-hot batches.

A symbol's complement is another symbol of the same alphabet (R <-> Y, K <-> M, N <-> N),
so the reverse complement is computed on the uint8 codes: reverse each sequence within
its own length, then look up the complementary code. Padding (code 0) stays padding.
"""

from __future__ import annotations

import numpy as np
import torch

from .alphabets import Alphabet
from .data.sets import SequenceSet
from .errors import UsageError


def complement_table(alphabet: Alphabet, flags: str = "--rc-augment / --rc-average") -> np.ndarray:
    """Code -> complementary code (index 0, padding, maps to 0); ``flags`` names the
    options that asked for it, for the error message."""
    if not alphabet.is_nucleotide:
        raise UsageError(
            f"reverse complements need DNA or RNA; these sequences are {alphabet.name} "
            f"(drop {flags})"
        )
    return alphabet.complement_codes()


def reverse_complement_set(data: SequenceSet, table: np.ndarray) -> SequenceSet:
    """Every record of ``data`` as its reverse complement (same ids, order and targets)."""
    lengths = data.lengths
    starts = np.repeat(data.offsets[:-1], lengths)
    ends = np.repeat(data.offsets[1:], lengths)
    # position p of a record [start, end) takes the code from start + end - 1 - p
    source = starts + ends - 1 - np.arange(len(data.codes), dtype=np.int64)
    return SequenceSet(list(data.ids), table[data.codes[source]], data.offsets.copy(), data.targets)


def reverse_complement_codes(
    codes: torch.Tensor,
    lengths: torch.Tensor,
    table: torch.Tensor,
    flip: torch.Tensor | None = None,
) -> torch.Tensor:
    """Reverse-complement the rows of a right-padded (B, L) code batch.

    With ``flip`` (B,) bool only those rows change; the others are returned as they are.
    """
    width = codes.shape[1]
    pos = torch.arange(width, device=codes.device)[None, :]
    last = (lengths.to(codes.device) - 1)[:, None]
    index = torch.where(pos <= last, last - pos, pos)
    rc = table[codes.gather(1, index).long()].to(codes.dtype)
    if flip is None:
        return rc
    return torch.where(flip.to(codes.device)[:, None], rc, codes)


def reverse_complement_onehot(
    x: torch.Tensor, lengths: torch.Tensor, alphabet: Alphabet
) -> torch.Tensor:
    """The reverse complement of a fractional one-hot batch (B, L, C).

    The channels of a nucleotide alphabet (ACGT or ACGU) are ordered so that reversing
    them complements every base; a fractional row (R = A/2 + G/2) becomes its
    complement's row (Y = C/2 + T/2).
    """
    complement_table(alphabet)
    width = x.shape[1]
    pos = torch.arange(width, device=x.device)[None, :]
    last = (lengths.to(x.device) - 1)[:, None]
    index = torch.where(pos <= last, last - pos, pos)
    out = x.gather(1, index[..., None].expand(-1, -1, x.shape[2])).flip(-1)
    valid = pos < lengths.to(x.device)[:, None]
    return out * valid[..., None].to(x.dtype)
