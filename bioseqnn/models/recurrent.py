"""Recurrent backbones: Elman RNN, LSTM and GRU, stacked and optionally bidirectional.

Batches are right-padded. The forward direction never sees padding (it comes after
every real position). The backward direction runs on each sequence reversed *within
its own length*, so it too starts at the sequence's true end. This keeps predictions
independent of padding without pack_padded_sequence, whose backward pass on CPU is
dozens of times slower than a padded batch.
"""

from __future__ import annotations

import torch
from torch import nn

from .base import Backbone, ModelConfig, register

_CELLS: dict[str, type[nn.RNNBase]] = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}


def reverse_index(lengths: torch.Tensor, width: int) -> torch.Tensor:
    """(B, width) index that reverses positions < length and leaves padding in place."""
    pos = torch.arange(width, device=lengths.device)[None, :]
    last = (lengths - 1)[:, None]
    return torch.where(pos <= last, last - pos, pos)


class RecurrentBackbone(Backbone):
    def __init__(self, cell: str, config: ModelConfig, in_channels: int) -> None:
        super().__init__()
        cls = _CELLS[cell]
        hidden, layers = config.hidden_size, config.layers
        self.directions = 2 if config.bidirectional else 1
        self.out_dim = hidden * self.directions
        kwargs = {"nonlinearity": "tanh"} if cell == "rnn" else {}
        sizes = [in_channels] + [self.out_dim] * (layers - 1)
        self.forward_layers = nn.ModuleList(
            cls(size, hidden, batch_first=True, **kwargs) for size in sizes
        )
        self.backward_layers = nn.ModuleList(
            cls(size, hidden, batch_first=True, **kwargs) for size in sizes
        ) if config.bidirectional else nn.ModuleList()
        self.between = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = x
        rev = None
        if self.directions == 2:
            rev = reverse_index(lengths, x.shape[1]).unsqueeze(-1)
        for i, fwd in enumerate(self.forward_layers):
            if i:
                h = self.between(h)
            out_f, _ = fwd(h)
            if rev is not None:
                h_rev = h.gather(1, rev.expand(-1, -1, h.shape[2]))
                out_b, _ = self.backward_layers[i](h_rev)
                out_b = out_b.gather(1, rev.expand(-1, -1, out_b.shape[2]))
                h = torch.cat([out_f, out_b], dim=2)
            else:
                h = out_f
        return h, lengths


@register("rnn", "last", summary="Elman RNN (tanh): the simplest recurrent baseline")
def _rnn(config: ModelConfig, in_channels: int) -> Backbone:
    return RecurrentBackbone("rnn", config, in_channels)


@register("lstm", "last", summary="LSTM: long-range order, the default for most sequence tasks")
def _lstm(config: ModelConfig, in_channels: int) -> Backbone:
    return RecurrentBackbone("lstm", config, in_channels)


@register("gru", "last", summary="GRU: as LSTM with fewer parameters, often as accurate")
def _gru(config: ModelConfig, in_channels: int) -> Backbone:
    return RecurrentBackbone("gru", config, in_channels)
