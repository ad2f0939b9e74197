"""The input layer of a network: codes (or a series' values) -> the tensor its first
layer reads. One-hot by indexing a small table (bioseqnn/encoding.py makes the codes),
with the folding channels of RNA structure, or per-channel z-scores for a series."""

from __future__ import annotations

from typing import Any

import torch

from ..alphabets import Alphabet
from ..structure import LEVELS, STATES, StructureInput
from ..variants.series import SeriesSpec


class OneHot(torch.nn.Module):
    """Codes (B, L) -> fractional one-hot (B, L, C) on whatever device the codes are."""

    def __init__(self, alphabet: Alphabet) -> None:
        super().__init__()
        self.register_buffer("table", torch.from_numpy(alphabet.onehot_table()), persistent=False)

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        table: torch.Tensor = self.table  # type: ignore[assignment]
        return table[codes.long()]


class SeriesInput(torch.nn.Module):
    """Raw values (B, L, C) -> per-channel z-scores; a missing value (NaN, also the
    padding) becomes 0, the channel's mean."""

    def __init__(self, spec: SeriesSpec) -> None:
        super().__init__()
        if len(spec.mean) != spec.size or len(spec.std) != spec.size:
            raise ValueError("the series normalisation is not fitted")
        self.register_buffer("mean", torch.tensor(spec.mean, dtype=torch.float32), persistent=False)
        self.register_buffer(
            "scale", 1.0 / torch.tensor(spec.std, dtype=torch.float32), persistent=False
        )

    def forward(self, values: torch.Tensor) -> torch.Tensor:
        mean: torch.Tensor = self.mean  # type: ignore[assignment]
        scale: torch.Tensor = self.scale  # type: ignore[assignment]
        z = (values.float() - mean) * scale
        return torch.where(torch.isnan(z), torch.zeros_like(z), z)


class StructuredOneHot(torch.nn.Module):
    """Codes (B, L, 2) -> the residues' fractional one-hot, the three pairing states and,
    with ``bpp``, the pairing probability: (B, L, C). Padding (code 0) is all zero."""

    def __init__(self, spec: StructureInput) -> None:
        super().__init__()
        self.bpp = spec.kind == "bpp"
        self.register_buffer(
            "table", torch.from_numpy(spec.alphabet.onehot_table()), persistent=False
        )

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        table: torch.Tensor = self.table  # type: ignore[assignment]
        residues = codes[..., 0].long()
        folded = codes[..., 1].long()
        real = (residues > 0).unsqueeze(-1).to(table.dtype)
        parts = [
            table[residues],
            torch.nn.functional.one_hot(folded % 3, len(STATES)).to(table.dtype) * real,
        ]
        if self.bpp:
            parts.append((folded // 3).to(table.dtype).unsqueeze(-1) / LEVELS * real)
        return torch.cat(parts, dim=-1)


def featurizer(spec: Any) -> torch.nn.Module:
    """The input layer of a model reading ``spec``: one-hot for an alphabet (with the
    folding channels for a structure.StructureInput), per-channel normalisation for a
    series."""
    if isinstance(spec, StructureInput):
        return StructuredOneHot(spec)
    return SeriesInput(spec) if isinstance(spec, SeriesSpec) else OneHot(spec)
