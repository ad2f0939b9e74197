"""Model configuration, the architecture registry, pooling and the prediction head.

An architecture contributes only a *backbone*: per-position states (B, L', H) and the
true lengths L' of each sequence. Pooling and the head are shared, so the training loop
and prediction never branch on the architecture.
"""

from __future__ import annotations

import contextvars
import math
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

# The settings live with the other settings (bioseqnn.config, importable without torch);
# these names stay importable from here.
from ..config import (  # noqa: E402,F401
    ARCHITECTURES,
    AUTO,
    CONV_FIELDS,
    DEFAULT_ARCH,
    DEFAULT_CAUSAL_ARCH,
    POOLINGS,
    RECURRENT_FIELDS,
    ModelConfig,
    setting,
)
from ..errors import UsageError

# What a model is from its settings alone lives in bioseqnn.modelspec (no torch there);
# these names stay importable from here.
from ..modelspec import (  # noqa: E402,F401
    AUTO_POOL,
    AUTO_POOL_LENGTH,
    CAUSAL_ARCHS,
    MAX_TENSORS,
    MAX_WEIGHTS,
    Size,
    architecture_name,
    check_causal,
    check_lengths,
    config_dict,
    describe,
    linear_size,
    model_size,
    resolve_model,
    resolve_pooling,
    sizing_settings,
    too_large,
)


class Backbone(nn.Module):
    """Per-position states from one-hot input. Subclasses set ``out_dim`` and ``directions``.

    ``directions == 2`` means the state vector is [forward half, backward half], so
    'last' pooling takes the forward half at the last real position and the backward
    half at position 0 (where the backward pass ends).
    """

    out_dim: int
    directions: int = 1
    # the longest sequence the backbone accepts (None: any length)
    max_length: int | None = None
    # position i may read positions <= i only (a language model); set by SequenceModel
    causal: bool = False

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError


@dataclass(frozen=True)
class Architecture:
    name: str
    build: Callable[[ModelConfig, int], Backbone]
    default_pooling: str
    poolings: tuple[str, ...]
    summary: str
    uses: tuple[str, ...]


REGISTRY: dict[str, Architecture] = {}


def register(
    name: str,
) -> Callable[[Callable[[ModelConfig, int], Backbone]], Callable[[ModelConfig, int], Backbone]]:
    """Register a backbone builder for the architecture ``name`` of
    bioseqnn.config.ARCHITECTURES (its poolings, the settings it reads and its help);
    bioseqnn.modelspec.SIZES computes what it holds (tests/unit/test_models.py checks it
    against the built module)."""
    info = ARCHITECTURES[name]

    def deco(fn: Callable[[ModelConfig, int], Backbone]) -> Callable[[ModelConfig, int], Backbone]:
        REGISTRY[name] = Architecture(
            name, fn, info.default_pooling, info.poolings, info.summary, info.uses
        )
        return fn

    return deco


def exporting() -> bool:
    """True while torch.jit.trace or torch.onnx.export records the model.

    Code that records badly (worker threads, Python loops over time steps, branches on a
    tensor's shape) then gives way to plain torch operations with the same numerics, so
    the exported graph keeps dynamic batch and length axes (see bioseqnn/ops/export.py).
    """
    # torch.onnx is imported lazily (with torch.export, ~0.15 s); when nothing has imported
    # it, no ONNX export can be running, so look before touching the attribute.
    onnx = sys.modules.get("torch.onnx")
    return torch.jit.is_tracing() or (onnx is not None and onnx.is_in_onnx_export())


_STEPWISE: contextvars.ContextVar[bool] = contextvars.ContextVar("bioseqnn_stepwise", default=False)


def stepwise() -> bool:
    """True inside :func:`stepwise_operations`: recurrent layers then run one step at a
    time and the transformer with plain operations (same parameters and equations), so
    that every nonlinearity is a torch function call, which DeepLIFT's rules reach
    (bioseqnn/interpret/deeplift.py). Slower than the fused kernels."""
    return _STEPWISE.get()


@contextmanager
def stepwise_operations() -> Iterator[None]:
    token = _STEPWISE.set(True)
    try:
        yield
    finally:
        _STEPWISE.reset(token)


DROP_LEVELS = 1 << 15
"""A CPU dropout mask compares 15 random bits per value: the drop rate is p rounded to
a multiple of 1 / 32,768 (0.2 drops 6,554 / 32,768 = 0.20001 of the values)."""


class Dropout(nn.Dropout):
    """nn.Dropout, whose CPU training masks cost a quarter as much.

    torch's CPU dropout draws each mask value through a Bernoulli sampler: 13.8 ms for
    a 64 x 128 x 200 activation on the test machine, where multiplying by the mask
    takes 0.4 ms (the default network drops out three times a step). Here one 32-bit
    draw of torch's generator makes two values' 15-bit numbers,
    compared with the drop rate (:data:`DROP_LEVELS`); the kept values are scaled by
    1 / (1 - rate), so the expectation is unchanged. The masks come from the seeded
    generator and do not depend on the thread count. Elsewhere (a GPU, evaluation,
    export) it is nn.Dropout.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or x.device.type != "cpu" or exporting() or self.inplace:
            return super().forward(x)
        drop = round(self.p * DROP_LEVELS)
        if drop == 0:
            return x
        if drop >= DROP_LEVELS:
            return super().forward(x)
        return _CPUDropout.apply(x, drop)


class _CPUDropout(torch.autograd.Function):
    """x * keep / (1 - rate), keep from :func:`_keep_mask`; the gradient is the same
    product. The mask is saved as one byte a value, as torch's dropout saves it, and
    multiplied as uint8 (a quarter faster than as bool)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, drop: int) -> torch.Tensor:
        keep = _keep_mask(x.shape, drop).view(torch.uint8)
        ctx.save_for_backward(keep)
        ctx.scale = DROP_LEVELS / (DROP_LEVELS - drop)
        return x.mul(keep).mul_(ctx.scale)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        (keep,) = ctx.saved_tensors
        return grad.mul(keep).mul_(ctx.scale), None


def _keep_mask(shape: torch.Size, drop: int) -> torch.Tensor:
    """A bool mask of ``shape``, each value False with probability drop / DROP_LEVELS.

    An int32 draw of torch's CPU generator is uniform on [0, 2^31): its low and high
    16-bit halves, masked to 15 bits, are two independent uniform numbers below 2^15.
    """
    n = math.prod(shape)
    words = torch.empty((n + 1) // 2, dtype=torch.int32).random_()
    levels = words.view(torch.int16)[:n].bitwise_and_(DROP_LEVELS - 1)
    return levels.ge(drop).view(shape)


def length_mask(lengths: torch.Tensor, width: int) -> torch.Tensor:
    """(B, width) bool, True at real positions."""
    return torch.arange(width, device=lengths.device)[None, :] < lengths[:, None]


def _last_of_both(states: torch.Tensor, last: torch.Tensor) -> torch.Tensor:
    """The forward half of the states at each sequence's last position, the backward
    half at position 0 (where the backward pass ends)."""
    rows = torch.arange(states.shape[0], device=states.device)
    half = states.shape[2] // 2
    return torch.cat([states[rows, last, :half], states[:, 0, half:]], dim=1)


class _LastOfBoth(torch.autograd.Function):
    """'last' pooling of two directions: the forward half at each sequence's last
    position, the backward half at position 0. Its gradient is one zero tensor with two
    rows set per sequence; the two indexings it replaces each made and filled a zero
    tensor of the states' size, then added them (a twentieth of a BiLSTM step)."""

    @staticmethod
    def forward(ctx: Any, states: torch.Tensor, last: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(last)
        ctx.shape = states.shape
        # time-major states (a recurrent backbone's) get a time-major gradient
        ctx.time_major = states.shape[0] > 1 and states.transpose(0, 1).is_contiguous()
        return _last_of_both(states, last)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        (last,) = ctx.saved_tensors
        rows = torch.arange(grad.shape[0], device=grad.device)
        b, steps, dim = ctx.shape
        half = dim // 2
        if ctx.time_major:
            out = grad.new_zeros((steps, b, dim)).transpose(0, 1)
        else:
            out = grad.new_zeros(ctx.shape)
        out[rows, last, :half] = grad[:, :half]
        out[:, 0, half:] = grad[:, half:]
        return out, None


class Pooling(nn.Module):
    def __init__(self, mode: str, dim: int, directions: int) -> None:
        super().__init__()
        self.mode = mode
        self.directions = directions
        if mode == "attention":
            self.score = nn.Sequential(nn.Linear(dim, dim), nn.Tanh(), nn.Linear(dim, 1))

    def forward(self, states: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        b, width, dim = states.shape
        mask = length_mask(lengths, width)
        if self.mode == "last":
            at = (lengths - 1).clamp(min=0)
            if self.directions == 1:
                return states[torch.arange(b, device=states.device), at]
            if states.requires_grad and not exporting():
                return _LastOfBoth.apply(states, at)
            return _last_of_both(states, at)
        if self.mode == "mean":
            summed = (states * mask.unsqueeze(-1).to(states.dtype)).sum(dim=1)
            return summed / lengths.clamp(min=1).unsqueeze(-1).to(states.dtype)
        if self.mode == "max":
            return states.masked_fill(~mask.unsqueeze(-1), float("-inf")).amax(dim=1)
        scores = self.score(states).squeeze(-1).masked_fill(~mask, float("-inf"))
        weights = torch.softmax(scores, dim=1)
        return torch.einsum("bl,bld->bd", weights, states)


class SequenceModel(nn.Module):
    """Backbone + pooling + linear head: one-hot (B, L, C) and lengths -> outputs (B, K).

    With ``per_position`` the head is applied at every position instead: (B, L, K).

    With ``causal`` (a language model, see bioseqnn/variants/lm.py) the output at position i reads
    positions before i only: a zero start vector goes in front of every sequence, so the
    output is (B, L + 1, K), the distribution of residue 1, 2, ..., L and then of the end.
    The backbone must read left to right (lm.check_causal); a transformer masks the future.
    """

    def __init__(
        self,
        config: ModelConfig,
        in_channels: int,
        n_outputs: int,
        per_position: bool = False,
        causal: bool = False,
    ) -> None:
        super().__init__()
        config = resolve_model(config, per_position, causal)
        arch = get_architecture(config.arch)
        self.config = config
        self.per_position = per_position or causal
        self.causal = causal
        if causal:
            check_causal(config)
        self.backbone = arch.build(config, in_channels)
        self.backbone.causal = causal
        if causal and self.backbone.max_length is not None:
            self.backbone.max_length += 1  # the start position: --max-length counts residues
        per_position = self.per_position
        dim = self.backbone.out_dim
        self.pooling = (
            None
            if per_position
            else Pooling(resolve_pooling(config), dim, self.backbone.directions)
        )
        self.dropout = Dropout(config.dropout)
        self.head = nn.Linear(dim, n_outputs)

    backbone_frozen: bool = False
    """Fine-tuning with a frozen backbone (bioseqnn/engine/finetune.py): it runs as in prediction
    while the rest trains, so its batch-norm statistics and inner dropout stay fixed."""

    def train(self, mode: bool = True) -> SequenceModel:
        super().train(mode)
        if self.backbone_frozen:
            self.backbone.eval()
        return self

    @property
    def max_length(self) -> int | None:
        limit = self.backbone.max_length
        # a language model's backbone reads the start position too
        return limit - 1 if limit is not None and self.causal else limit

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        if self.causal:
            x = nn.functional.pad(x, (0, 0, 1, 0))  # the start position: all channels 0
            lengths = lengths + 1
        states, lengths = self.backbone(x, lengths)
        if self.pooling is None:
            return self.head(self.dropout(states))
        pooled = self.dropout(self.pooling(states, lengths))
        if self.training:
            return self.head(pooled)
        # Predictions: the head in float64, rounded back. A float32 product's last bits
        # depend on how many rows it has and on where they lie in memory, so a
        # sequence's prediction could change with the batch it lands in (--max-tokens,
        # streaming chunks) or from run to run; float64 differences of that kind are far
        # below float32's rounding.
        w, b = self.head.weight, self.head.bias
        return nn.functional.linear(pooled.double(), w.double(), b.double()).to(pooled.dtype)


class Ensemble(nn.Module):
    """Several models of one task: seeds of one architecture, or different architectures.

    Its output has the members' form (logits, or scaled regression values), so prediction,
    evaluation, explanation and export treat it as one model: for classes, the log of the
    members' mean probabilities (binary and multilabel: the logit of the mean), which
    softmax or sigmoid turns back into that mean; for regression, the members' mean.
    """

    def __init__(self, members: list[SequenceModel], kind: str) -> None:
        super().__init__()
        if not members:
            raise ValueError("an ensemble needs at least one member")
        self.members = nn.ModuleList(members)
        self.kind = kind
        self.config = members[0].config
        self.configs = [m.config for m in members]  # each member's network settings
        self.per_position = members[0].per_position
        self.causal = members[0].causal
        limits = [m.max_length for m in members if m.max_length is not None]
        self._max_length = min(limits) if limits else None  # every member must accept it

    @property
    def max_length(self) -> int | None:
        return self._max_length

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        outs = torch.stack([member(x, lengths) for member in self.members])
        return combine_members(self.kind, outs)


def combine_members(kind: str, outs: torch.Tensor) -> torch.Tensor:
    """Members' outputs stacked on dim 0 -> one output of the same form (see Ensemble).

    Computed in float64 and rounded to the members' precision, so that the prediction
    without torch (engine/light.py), taking the same steps in numpy, gives the same
    digits: the two libraries' float64 results may differ in a last bit, which the
    rounding leaves out."""
    wide = outs.double()
    if kind == "regression":
        return wide.mean(dim=0).to(outs.dtype)
    log_n = math.log(outs.shape[0])
    if kind in ("multiclass", "per-position", "language-model"):
        combined = torch.logsumexp(torch.log_softmax(wide, dim=-1), dim=0) - log_n
    else:  # binary, multilabel: log(mean p) - log(mean (1 - p)), the logit of the mean p
        positive = torch.logsumexp(nn.functional.logsigmoid(wide), dim=0)
        negative = torch.logsumexp(nn.functional.logsigmoid(-wide), dim=0)
        combined = positive - negative
    return combined.to(outs.dtype)


Predictor = SequenceModel | Ensemble
"""What a model file holds: one model, or an ensemble of them."""


def get_architecture(name: str) -> Architecture:
    from .. import models  # noqa: F401  (importing the package registers every family)

    return REGISTRY[architecture_name(name)]


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def check_keeps_positions(model: SequenceModel, config: ModelConfig, in_channels: int) -> None:
    """A per-position head needs one state per residue: no length-reducing pooling."""
    arch = get_architecture(config.arch)
    if "pool_sizes" in arch.uses and any(p > 1 for p in config.pool_sizes):
        sizes = ",".join(map(str, config.pool_sizes))
        ones = ",".join("1" for _ in config.pool_sizes)
        raise UsageError(
            f"per-position labelling needs one output per residue, but "
            f"--pool-sizes {sizes} shortens the sequence; use --pool-sizes {ones}"
        )
    width = 16
    was_training = model.training
    model.eval()
    with torch.no_grad():
        x = torch.zeros(1, width, in_channels)
        _, lengths = model.backbone(x, torch.tensor([width]))
    model.train(was_training)
    if int(lengths[0]) != width:
        raise UsageError(
            f"per-position labelling needs an architecture that keeps every "
            f"position; {config.arch} with these settings does not"
        )
