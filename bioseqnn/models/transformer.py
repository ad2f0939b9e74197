"""A small Transformer encoder: per-position linear embedding of the one-hot input,
sinusoidal positional encoding, pre-norm encoder layers with a key padding mask.

Max-length policy: a sequence longer than ``max_length`` is an error (train and predict
name the record before the model sees it). Attention costs memory quadratic in length,
so the limit is a guard the user raises deliberately, never a silent truncation.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .base import (
    Backbone,
    ModelConfig,
    exporting,
    length_mask,
    register,
    stepwise,
)


def sinusoidal_positions(width: int, dim: int, device: torch.device) -> torch.Tensor:
    """(width, dim) fixed encoding: sin on even channels, cos on odd, geometric wavelengths."""
    pos = torch.arange(width, device=device, dtype=torch.float32)[:, None]
    rate = torch.exp(
        torch.arange(0, dim, 2, device=device, dtype=torch.float32) * (-math.log(10000.0) / dim)
    )
    table = torch.zeros(width, dim, device=device)
    table[:, 0::2] = torch.sin(pos * rate)
    table[:, 1::2] = torch.cos(pos * rate[: dim // 2])
    return table


class StableLayerNorm(nn.LayerNorm):
    """nn.LayerNorm whose weight and bias gradients have the same bits on any number of
    threads.

    torch's fused layer norm sums the rows of those two gradients in pieces that follow
    the intra-op thread count (a transformer trained on one thread and on two differed
    there alone). Normalising without the affine part and then scaling leaves those
    sums to autograd's broadcast reduction, which does not depend on the thread count;
    training may then change its thread count with the machine's load without changing
    the model. Same parameters, same equation."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.weight is None or self.bias is None:
            return super().forward(x)
        normed = F.layer_norm(x, self.normalized_shape, None, None, self.eps)
        return torch.addcmul(self.bias, normed, self.weight)


class TransformerBackbone(Backbone):
    def __init__(self, config: ModelConfig, in_channels: int) -> None:
        super().__init__()
        self.d_model = config.d_model
        self.max_length = config.max_length
        self.embed = nn.Linear(in_channels, config.d_model)
        layer = nn.TransformerEncoderLayer(
            config.d_model,
            config.heads,
            config.ff_size,
            config.dropout,
            batch_first=True,
            norm_first=True,
        )
        layer.norm1 = StableLayerNorm(config.d_model, eps=layer.norm1.eps)
        layer.norm2 = StableLayerNorm(config.d_model, eps=layer.norm2.eps)
        # nested tensors would also skip padded positions, but only in some eval paths;
        # one code path keeps training and inference numerically alike
        self.encoder = nn.TransformerEncoder(layer, config.layers, enable_nested_tensor=False)
        self.norm = StableLayerNorm(config.d_model)
        self.out_dim = config.d_model

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        width = x.shape[1]
        if exporting():
            return self._export_forward(x, lengths)
        if self.max_length is not None and width > self.max_length:
            from ..errors import DataError

            raise DataError(
                f"a sequence of {width} positions is longer than the transformer's "
                f"max-length {self.max_length}"
            )
        if stepwise():
            return self._export_forward(x, lengths)
        h = self.embed(x) * math.sqrt(self.d_model)
        h = h + sinusoidal_positions(width, self.d_model, x.device).to(h.dtype)
        if self.causal:
            # Each position attends to itself and earlier ones. Padding only follows the
            # real positions, so no real position sees it: no padding mask is needed.
            future = torch.ones(width, width, dtype=torch.bool, device=x.device).triu(1)
            h = self.encoder(h, mask=future, is_causal=True)
        else:
            h = self.encoder(h, src_key_padding_mask=~length_mask(lengths, width))
        return self.norm(h), lengths

    def _export_forward(
        self, x: torch.Tensor, lengths: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The eval-mode forward written with plain operations, for torch.jit.trace and
        torch.onnx.export (nn.MultiheadAttention records its batch and length as
        constants) and for DeepLIFT (its fused kernel hides the softmax and products).
        Same parameters and equations (pre-norm layers, masked softmax attention); the
        max-length check is left to the caller (the exported graph cannot raise)."""
        width = x.shape[1]
        h = self.embed(x) * math.sqrt(self.d_model)
        h = h + sinusoidal_positions(width, self.d_model, x.device).to(h.dtype)
        padding = ~length_mask(lengths, width)[:, None, None, :]  # (B, 1, 1, L) keys
        if self.causal:
            future = torch.ones(width, width, dtype=torch.bool, device=x.device).triu(1)
            padding = padding | future
        for layer in self.encoder.layers:
            attn = layer.self_attn
            heads = attn.num_heads
            q, k, v = F.linear(layer.norm1(h), attn.in_proj_weight, attn.in_proj_bias).chunk(3, -1)
            q, k, v = (t.unflatten(-1, (heads, attn.head_dim)).transpose(1, 2) for t in (q, k, v))
            scores = (q @ k.transpose(-1, -2)) / math.sqrt(attn.head_dim)
            weights = torch.softmax(scores.masked_fill(padding, float("-inf")), dim=-1)
            h = h + attn.out_proj((weights @ v).transpose(1, 2).flatten(2))
            h = h + layer.linear2(layer.activation(layer.linear1(layer.norm2(h))))
        return self.norm(h), lengths


@register("transformer")
def _transformer(config: ModelConfig, in_channels: int) -> Backbone:
    return TransformerBackbone(config, in_channels)
