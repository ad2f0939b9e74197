"""Convolutional backbone: stacked 1D convolutions over one-hot input.

Padding invariance: padded positions are zeroed before every convolution, so a real
position near the end of a sequence sees the same zeros whether they come from the
convolution's own border padding (sequence alone) or from batch padding. Max-pooling
uses windows that tile the sequence from its start and drops a trailing partial window
(length // pool), so no window mixes real positions with padding -- except for a
sequence shorter than one window, which keeps one position whose window holds its
real states and zeros in either case.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from . import native
from .base import (
    Backbone,
    Dropout,
    ModelConfig,
    exporting,
    length_mask,
    register,
    stepwise,
)


class MaskedBatchNorm(nn.BatchNorm1d):
    """BatchNorm1d whose training statistics come from real positions only.

    Plain batch norm would count padding, so a sequence's training signal would depend on
    what it was batched with; in eval both use the running statistics.
    """

    def forward(self, h: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        if not self.training or mask is None:
            return super().forward(h)
        # Statistics and normalisation in float32, also under autocast (the running
        # statistics are float32, and half-precision sums over a batch lose digits).
        # Two passes (the mean, then squared deviations), so a channel whose mean is
        # large against its spread keeps its variance; padded positions are zeroed so
        # plain sums are sums over real positions; the output is one fused
        # h * scale + shift.
        weight = mask.to(torch.float32)  # (B, 1, L)
        h = h.float()
        count = weight.sum().clamp(min=2)
        mean = (h * weight).sum(dim=(0, 2)) / count
        deviation = (h - mean[None, :, None]) * weight
        var = (deviation * deviation).sum(dim=(0, 2)) / count
        with torch.no_grad():
            m = self.momentum if self.momentum is not None else 0.1
            assert self.running_mean is not None and self.running_var is not None
            self.running_mean.lerp_(mean.detach(), m)
            self.running_var.lerp_(var.detach() * count / (count - 1), m)
            if self.num_batches_tracked is not None:
                self.num_batches_tracked += 1
        scale = self.weight * torch.rsqrt(var + self.eps)
        shift = self.bias - mean * scale
        return torch.addcmul(shift[None, :, None], h, scale[None, :, None])


class ConvStack(Backbone):
    """Convolution -> ReLU -> optional max-pool, per layer; states are (B, L', channels[-1])."""

    def __init__(self, config: ModelConfig, in_channels: int) -> None:
        super().__init__()
        self.convs = nn.ModuleList()
        self.norms = nn.ModuleList()
        self.pads: list[tuple[int, int]] = []
        self.pools: list[int] = list(config.pool_sizes)
        size = in_channels
        for channels, kernel, dilation in zip(
            config.channels, config.kernel_sizes, config.dilations, strict=True
        ):
            self.convs.append(nn.Conv1d(size, channels, kernel, dilation=dilation, bias=False))
            self.norms.append(MaskedBatchNorm(channels))
            span = (kernel - 1) * dilation
            # 'same' output length; an even kernel puts the extra position on the right
            self.pads.append((span // 2, span - span // 2))
            size = channels
        self.out_dim = size
        self.drop = Dropout(config.dropout)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self._compiled(x):
            return self._infer(x, lengths)
        if x.shape[0] == 1 and not self.training and not exporting():
            # oneDNN convolves a batch of one sequence by another algorithm than a larger
            # batch, and the last bits differ (seen on an Intel Xeon: 3e-8 on a
            # probability); a prediction must not depend on its company, so a lone
            # sequence goes through as a pair (every larger batch agrees).
            h, lengths = self.forward(torch.cat([x, x]), torch.cat([lengths, lengths]))
            return h[:1], lengths[:1]
        h = x.transpose(1, 2)  # (B, C, L): the layout Conv1d wants
        # A batch without padding (every sequence as long as the batch: fixed-length data,
        # or a length-sorted bucket) needs no masks, and its batch norm is the fused one
        # (the same statistics): masking is most of a CNN step's elementwise work on CPU.
        padded = exporting() or bool((lengths < h.shape[2]).any())
        for i, (conv, norm, pad, pool) in enumerate(
            zip(self.convs, self.norms, self.pads, self.pools, strict=True)
        ):
            if i:
                h = self.drop(h)
            mask = None
            if padded:
                mask = length_mask(lengths, h.shape[2]).unsqueeze(1)
                h = h * mask.to(h.dtype)
            h = torch.relu(norm(conv(F.pad(h, pad)), mask))
            if pool > 1:
                if padded:
                    h = h * length_mask(lengths, h.shape[2]).unsqueeze(1).to(h.dtype)
                if exporting():
                    # no branch on the width: ceil_mode gives the same window values (all
                    # inputs are >= 0 after the ReLU and the mask) and at most one more
                    # window, past every sequence's length, which later masks ignore
                    h = F.max_pool1d(h, pool, ceil_mode=True)
                else:
                    # a pool wider than the positions is one window, their max: the zeros
                    # padding would add (all values are >= 0 here) change nothing, and
                    # would take memory in proportion to the pool (--pool-sizes 1000000)
                    h = window_max(h, min(pool, h.shape[2]))
                lengths = torch.div(lengths, pool, rounding_mode="floor").clamp(min=1)
        return h.transpose(1, 2), lengths

    def _compiled(self, x: torch.Tensor) -> bool:
        """Whether this forward pass is an inference the compiled kernel makes: float32
        on the CPU without gradients, autocast, export or DeepLIFT's stepwise calls."""
        return (
            not self.training
            and not torch.is_grad_enabled()
            and not exporting()
            and not stepwise()
            and not _cpu_autocast()
            and native.usable(x, *self.parameters())
            and all(
                native.conv_fits(conv.kernel_size[0], conv.in_channels, conv.out_channels)
                for conv in self.convs
                if isinstance(conv, nn.Conv1d)
            )
        )

    def _infer(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """forward() in inference through the compiled kernel, layer by layer (the same
        calls as bioseqnn.engine.light): (B, L, C) -> (B, L', channels[-1]). A
        position past its sequence's length comes out 0 before pooling; a window
        past the pooled length may hold real values, which the layers after mask."""
        h = x.contiguous()
        lens = lengths.to(torch.int32)
        for conv, norm, pool in zip(self.convs, self.norms, self.pools, strict=True):
            assert isinstance(conv, nn.Conv1d) and isinstance(norm, nn.BatchNorm1d)
            h = native.conv_layer_infer(h, lens, conv.weight, norm, conv.dilation[0])
            if pool > 1:
                span = min(pool, h.shape[1])  # wider than the positions: their max
                width = h.shape[1] // span
                h = h[:, : width * span].unflatten(1, (width, span)).amax(dim=2)
                lens = torch.div(lens, pool, rounding_mode="floor").clamp(min=1)
        return h, lens.to(lengths.dtype)


def _cpu_autocast() -> bool:
    try:
        return torch.is_autocast_enabled("cpu")
    except TypeError:  # torch before 2.4 takes no device type
        return torch.is_autocast_cpu_enabled()


def window_max(h: torch.Tensor, pool: int) -> torch.Tensor:
    """max_pool1d(h, pool): the max of each of the length // pool windows (B, C, L) from
    the start, its gradient to each window's first maximum.

    max_pool1d's values without gradients (no indices: 8x faster than a max with them,
    0.35 ms against 2.9 for 64 x 128 x 200 values in windows of 3); with gradients
    _WindowMax, which finds the first maxima again in the backward pass instead of
    keeping their indices (the max with indices was a fifth of the default network's
    prediction, and torch's max_pool1d with indices is slower still). Under
    :func:`~bioseqnn.models.base.stepwise` (DeepLIFT) it is a max over a (windows, pool)
    view, the call whose rule interpret/deeplift.py gives."""
    if stepwise():
        return _windows(h, pool, h.shape[2] // pool).max(dim=3).values
    if torch.is_grad_enabled() and h.requires_grad:
        return _WindowMax.apply(h, pool)
    return F.max_pool1d(h, pool)


def _windows(t: torch.Tensor, pool: int, width: int) -> torch.Tensor:
    """(B, C, L) -> a (B, C, width, pool) view of its first width whole windows."""
    return t[:, :, : width * pool].unflatten(2, (width, pool))


class _WindowMax(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, h: torch.Tensor, pool: int) -> torch.Tensor:
        out = F.max_pool1d(h, pool)
        ctx.save_for_backward(h, out)
        ctx.pool = pool
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        h, out = ctx.saved_tensors
        pool, width = ctx.pool, out.shape[2]
        windows = _windows(h, pool, width)
        dh = h.new_empty(h.shape)
        dh[:, :, width * pool :].zero_()  # past the last whole window
        slots = _windows(dh, pool, width)
        taken: torch.Tensor | None = None
        for k in range(pool):
            first = windows[..., k].eq(out)
            if taken is None:
                taken = first.clone()
            else:
                first.logical_and_(taken.logical_not())
                taken.logical_or_(first)
            torch.mul(grad, first, out=slots[..., k])
        return dh, None


@register("cnn")
def _cnn(config: ModelConfig, in_channels: int) -> Backbone:
    return ConvStack(config, in_channels)
