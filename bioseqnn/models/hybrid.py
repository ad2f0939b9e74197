"""CNN + bidirectional LSTM (the DanQ design): convolutions find motifs, the LSTM reads
their order and spacing. The convolutional part is the cnn backbone; pooling there
shortens the sequence the LSTM has to read.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from .base import (
    CONV_FIELDS,
    Backbone,
    ModelConfig,
    Size,
    get_architecture,
    length_mask,
    register,
)
from .conv import ConvStack, conv_size


class ConvLSTM(Backbone):
    def __init__(self, config: ModelConfig, in_channels: int) -> None:
        super().__init__()
        self.conv = ConvStack(config, in_channels)
        self.drop = nn.Dropout(config.dropout)
        # the registered lstm backbone, whichever implementation recurrent.py provides
        self.lstm = get_architecture("lstm").build(
            dataclasses.replace(config, bidirectional=True), self.conv.out_dim
        )
        self.directions = self.lstm.directions
        self.out_dim = self.lstm.out_dim

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h, lengths = self.conv(x, lengths)
        # zero the padding the LSTM reads after each sequence (it never reaches real states)
        h = h * length_mask(lengths, h.shape[1]).unsqueeze(-1).to(h.dtype)
        return self.lstm(self.drop(h), lengths)


def _size(config: ModelConfig, in_channels: int) -> tuple[Size, int]:
    conv, out = conv_size(config, in_channels)
    lstm, dim = get_architecture("lstm").size(dataclasses.replace(config, bidirectional=True), out)
    return conv + lstm, dim


@register(
    "cnn-lstm", "max", uses=CONV_FIELDS + ("hidden_size", "layers"),
    summary="CNN then BiLSTM (DanQ): motifs plus their order; long DNA with regulatory grammar",
    size=_size,
)
def _cnn_lstm(config: ModelConfig, in_channels: int) -> Backbone:
    return ConvLSTM(config, in_channels)
