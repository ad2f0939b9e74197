"""Step-by-step decoding of causal models (language models): one input vector at a time,
through the same equations as the whole-sequence forward, carrying a recurrent model's
state or a transformer's keys and values.
"""

from __future__ import annotations

import math
from typing import Any, cast

import torch
import torch.nn.functional as F

from ..errors import UsageError
from .base import Ensemble, Predictor, SequenceModel, combine_members
from .recurrent import RecurrentBackbone
from .transformer import TransformerBackbone, sinusoidal_positions


class _RecurrentSteps:
    """One step at a time through a unidirectional recurrent model, carrying its state:
    the same equations as its whole-sequence forward (nn.LSTM/GRU/RNN modules)."""

    def __init__(self, model: SequenceModel) -> None:
        assert isinstance(model.backbone, RecurrentBackbone)
        self.model = model
        self.layers = list(model.backbone.forward_layers)
        self.state: list[Any] = [None] * len(self.layers)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        h = x[:, None, :]
        for i, layer in enumerate(self.layers):
            h, self.state[i] = layer(h, self.state[i])
        return self.model.head(h[:, 0])


class _TransformerSteps:
    """One step at a time through a causal transformer, keeping every layer's keys and
    values (a cache): each step attends from the new position to the ones before, the
    equations of TransformerBackbone (pre-norm layers) at a cost linear in the length."""

    def __init__(self, model: SequenceModel) -> None:
        assert isinstance(model.backbone, TransformerBackbone)
        self.model = model
        self.backbone = model.backbone
        self.keys: list[torch.Tensor | None] = [None] * len(self.backbone.encoder.layers)
        self.values: list[torch.Tensor | None] = [None] * len(self.backbone.encoder.layers)
        self.position = 0

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        bb = self.backbone
        if bb.max_length is not None and self.position >= bb.max_length:
            raise UsageError(
                f"a sample of {self.position} positions is longer than the "
                f"transformer's max-length {bb.max_length - 1}"
            )
        h = bb.embed(x[:, None, :]) * math.sqrt(bb.d_model)
        table = sinusoidal_positions(self.position + 1, bb.d_model, x.device)
        h = h + table[self.position].to(h.dtype)
        for i, layer in enumerate(bb.encoder.layers):
            attn = layer.self_attn
            heads = attn.num_heads
            q, k, v = F.linear(layer.norm1(h), attn.in_proj_weight, attn.in_proj_bias).chunk(3, -1)
            q, k, v = (t.unflatten(-1, (heads, attn.head_dim)).transpose(1, 2) for t in (q, k, v))
            past_k, past_v = self.keys[i], self.values[i]
            k = k if past_k is None else torch.cat([past_k, k], dim=2)
            v = v if past_v is None else torch.cat([past_v, v], dim=2)
            self.keys[i], self.values[i] = k, v
            weights = torch.softmax((q @ k.transpose(-1, -2)) / math.sqrt(attn.head_dim), -1)
            h = h + attn.out_proj((weights @ v).transpose(1, 2).flatten(2))
            h = h + layer.linear2(layer.activation(layer.linear1(layer.norm2(h))))
        self.position += 1
        return self.model.head(bb.norm(h)[:, 0])


class StepDecoder:
    """Next-symbol logits of a model or an ensemble, one input vector at a time."""

    def __init__(self, model: Predictor) -> None:
        members = (
            cast(list[SequenceModel], list(model.members))
            if isinstance(model, Ensemble)
            else [model]
        )
        self.kind = "language-model"  # a causal model is a language model
        self.steps: list[_RecurrentSteps | _TransformerSteps] = [
            _RecurrentSteps(m)
            if isinstance(m.backbone, RecurrentBackbone)
            else _TransformerSteps(m)  # the only other causal backbone (CAUSAL_ARCHS)
            for m in members
        ]

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        outs = [step(x) for step in self.steps]
        return outs[0] if len(outs) == 1 else combine_members(self.kind, torch.stack(outs))
