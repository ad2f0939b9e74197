"""CNN + bidirectional LSTM or GRU (the DanQ design): convolutions find motifs, the
recurrent layers read their order and spacing. The convolutional part is the cnn
backbone; pooling there shortens the sequence the recurrent layers have to read.
"""

from __future__ import annotations

import dataclasses

import torch

from .base import (
    Backbone,
    Dropout,
    ModelConfig,
    get_architecture,
    length_mask,
    register,
)
from .conv import ConvStack


class ConvRecurrent(Backbone):
    def __init__(self, cell: str, config: ModelConfig, in_channels: int) -> None:
        super().__init__()
        self.conv = ConvStack(config, in_channels)
        self.drop = Dropout(config.dropout)
        # the registered recurrent backbone, whichever implementation recurrent.py provides;
        # the attribute keeps its name for both cells, so cnn-lstm model files still load
        self.lstm = get_architecture(cell).build(
            dataclasses.replace(config, bidirectional=True), self.conv.out_dim
        )
        self.directions = self.lstm.directions
        self.out_dim = self.lstm.out_dim

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h, lengths = self.conv(x, lengths)
        # zero the padding the recurrence reads after each sequence (it never reaches
        # real states)
        h = h * length_mask(lengths, h.shape[1]).unsqueeze(-1).to(h.dtype)
        return self.lstm(self.drop(h), lengths)


ConvLSTM = ConvRecurrent  # the name older code imports


@register("cnn-lstm")
def _cnn_lstm(config: ModelConfig, in_channels: int) -> Backbone:
    return ConvRecurrent("lstm", config, in_channels)


@register("cnn-gru")
def _cnn_gru(config: ModelConfig, in_channels: int) -> Backbone:
    return ConvRecurrent("gru", config, in_channels)
