"""What a model is from its settings alone, without torch: its size (tensors and
weights, computed, nothing built), its pooling, and a one-line description.

Model files are checked against these figures before anything is allocated, and
``bioseqnn info`` describes a model with them, so they must not import torch (the
networks themselves are in :mod:`bioseqnn.models`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .config import (
    ARCHITECTURES,
    AUTO,
    DEFAULT_ARCH,
    DEFAULT_CAUSAL_ARCH,
    ArchitectureInfo,
    ModelConfig,
)
from .errors import DataError, UsageError, shown


@dataclass(frozen=True)
class Size:
    """What a model holds: its tensors (parameters and buffers, as in its state dict) and
    the numbers in them."""

    tensors: int
    weights: int

    def __add__(self, other: Size) -> Size:
        return Size(self.tensors + other.tensors, self.weights + other.weights)

    def __mul__(self, times: int) -> Size:
        return Size(self.tensors * times, self.weights * times)


MAX_WEIGHTS = 1 << 32
"""The most numbers a model file's tensors hold, all members together (16 GiB as
float32). The defaults hold about 80 thousand; a 24-layer transformer of width 1024 and
feed-forward 4096 about 300 million."""
MAX_TENSORS = 20_000
"""The most tensors a model file holds, all members together (a 64-member ensemble of
24-layer transformers has about 19 thousand). Each is a module built in Python (about
0.1 ms and some kB), so this bounds the time and memory of building a model."""


def linear_size(inputs: int, outputs: int) -> Size:
    """An nn.Linear with a bias."""
    return Size(2, inputs * outputs + outputs)


def architecture_name(name: str) -> str:
    """``name`` as a known architecture ('auto': the default recipe's); an unknown one is
    a UsageError."""
    resolved = DEFAULT_ARCH if name == AUTO else name
    if resolved not in ARCHITECTURES:
        raise UsageError(
            f"unknown architecture {shown(name)}; choose one of: {', '.join(ARCHITECTURES)}"
        )
    return resolved


def architecture(name: str) -> ArchitectureInfo:
    """The architecture ``name`` ('auto': the default recipe's), as settings see it."""
    return ARCHITECTURES[architecture_name(name)]


def conv_size(config: ModelConfig, in_channels: int) -> tuple[Size, int]:
    """What a ConvStack holds: per layer a convolution without bias and a batch norm
    (weight, bias, running mean and variance, batch count); and its out_dim."""
    size, tensors, weights = in_channels, 0, 0
    for channels, kernel in zip(config.channels, config.kernel_sizes, strict=False):
        tensors += 6
        weights += size * channels * kernel + 4 * channels + 1
        size = channels
    return Size(tensors, weights), size


GATES = {"lstm": 4, "gru": 3, "rnn": 1}


def recurrent_size(cell: str, config: ModelConfig, in_channels: int) -> tuple[Size, int]:
    """What a RecurrentBackbone holds (weight_ih, weight_hh and two biases per layer and
    direction), and its out_dim."""
    rows, hidden = GATES[cell] * config.hidden_size, config.hidden_size
    directions = 2 if config.bidirectional else 1
    out_dim = hidden * directions

    def layer(inputs: int) -> int:
        return rows * (inputs + hidden + 2)

    layers = config.layers
    weights = layer(in_channels) + (layers - 1) * layer(out_dim) if layers else 0
    return Size(4 * directions * layers, directions * weights), out_dim


def conv_recurrent_size(cell: str, config: ModelConfig, in_channels: int) -> tuple[Size, int]:
    """What a ConvRecurrent holds: a ConvStack feeding a bidirectional recurrent layer."""
    conv, out = conv_size(config, in_channels)
    recurrent, dim = recurrent_size(cell, dataclasses.replace(config, bidirectional=True), out)
    return conv + recurrent, dim


def transformer_size(config: ModelConfig, in_channels: int) -> tuple[Size, int]:
    """What a TransformerBackbone holds: the embedding, per layer the attention's input
    and output projections, two feed-forward linears and two layer norms, and the final
    norm; and its out_dim."""
    d, ff = config.d_model, config.ff_size
    norm = Size(2, 2 * d)
    attention = Size(2, 3 * d * d + 3 * d) + linear_size(d, d)
    layer = attention + linear_size(d, ff) + linear_size(ff, d) + norm * 2
    return linear_size(in_channels, d) + layer * config.layers + norm, d


SIZES: dict[str, Callable[[ModelConfig, int], tuple[Size, int]]] = {
    "rnn": lambda config, c: recurrent_size("rnn", config, c),
    "lstm": lambda config, c: recurrent_size("lstm", config, c),
    "gru": lambda config, c: recurrent_size("gru", config, c),
    "cnn": conv_size,
    "cnn-lstm": lambda config, c: conv_recurrent_size("lstm", config, c),
    "cnn-gru": lambda config, c: conv_recurrent_size("gru", config, c),
    "transformer": transformer_size,
}
"""Each architecture's backbone size and ``out_dim`` from its settings
(tests/unit/test_models.py checks every one against the built module)."""


def model_size(
    config: ModelConfig, in_channels: int, n_outputs: int, per_position: bool = False
) -> Size:
    """What :class:`SequenceModel` holds, computed without building it."""
    backbone, dim = SIZES[architecture_name(config.arch)](config, in_channels)
    size = backbone + linear_size(dim, n_outputs)
    if not per_position and resolve_pooling(config) == "attention":
        size = size + linear_size(dim, dim) + linear_size(dim, 1)
    return size


def too_large(
    configs: list[ModelConfig], in_channels: int, n_outputs: int, per_position: bool = False
) -> str | None:
    """Why a model of these members is larger than bioseqnn builds (None: it is not),
    e.g. "the model (lstm, hidden-size 8, layers 1000000) would hold 4,000,002 tensors,
    more than bioseqnn builds (20,000)". Computed from the settings: nothing is built."""
    sizes = [model_size(c, in_channels, n_outputs, per_position) for c in configs]
    total = sum(sizes, Size(0, 0))
    if total.tensors > MAX_TENSORS:
        problem = f"{total.tensors:,} tensors, more than bioseqnn builds ({MAX_TENSORS:,})"
    elif total.weights > MAX_WEIGHTS:
        problem = (
            f"{total.weights:,} weights, more than bioseqnn builds ({MAX_WEIGHTS:,}, "
            f"{MAX_WEIGHTS * 4 >> 30} GiB as float32)"
        )
    else:
        return None
    largest = configs[max(range(len(configs)), key=lambda i: sizes[i].weights)]
    members = f", {len(configs)} members" if len(configs) > 1 else ""
    name = architecture_name(largest.arch)
    return f"the model ({name}, {sizing_settings(largest)}{members}) would hold {problem}"


def sizing_settings(config: ModelConfig) -> str:
    """The settings that size ``config``'s backbone, e.g. 'hidden-size 128, layers 1'."""
    arch = architecture(config.arch)
    parts = []
    for key in arch.uses:
        value = getattr(config, key)
        if isinstance(value, bool):
            continue
        shown = ",".join(map(str, value)) if isinstance(value, list) else str(value)
        if key == "pool_sizes" and not value:
            shown = "auto"
        if len(shown) > 40:
            shown = f"{shown[:30]}... ({len(value)} values)"
        parts.append(f"{key.replace('_', '-')} {shown}")
    return ", ".join(parts)


AUTO_POOL = 3
"""The pooling window after the first convolution when ``pool_sizes`` is left empty ..."""
AUTO_POOL_LENGTH = 100
"""... and the training sequences' median length is at least this (see docs/accuracy.md:
pooling helped the long sequences of the comparison and cost the 50-nt promoters)."""


def resolve_model(
    config: ModelConfig,
    per_position: bool = False,
    causal: bool = False,
    median_length: float | None = None,
) -> ModelConfig:
    """``config`` with its automatic settings made concrete: ``arch: auto`` (the default
    recipe's network), dilations of 1 (the default) for as many layers as ``channels``
    has, and empty ``pool_sizes``: a window of 3 after the first convolution
    for one output per sequence when the training sequences are long (``median_length``
    at least AUTO_POOL_LENGTH; unknown counts as long), otherwise 1 everywhere."""
    changes: dict[str, Any] = {}
    if config.arch == AUTO:
        changes["arch"] = DEFAULT_CAUSAL_ARCH if causal else DEFAULT_ARCH
    n = len(config.channels)
    if len(config.dilations) != n and set(config.dilations) == {1}:
        changes["dilations"] = [1] * n
    if not config.pool_sizes:
        pool = not (per_position or causal) and (
            median_length is None or median_length >= AUTO_POOL_LENGTH
        )
        changes["pool_sizes"] = [
            AUTO_POOL if pool and not i else 1 for i in range(len(config.channels))
        ]
    return dataclasses.replace(config, **changes) if changes else config


CAUSAL_ARCHS = ("rnn", "lstm", "gru", "transformer")
"""Architectures that can read strictly left to right (language models)."""


def check_causal(config: ModelConfig) -> None:
    """A language model predicts each residue from the ones before it only."""
    config = resolve_model(config, causal=True)
    if config.arch not in CAUSAL_ARCHS:
        raise UsageError(
            f"a language model reads left to right, and {config.arch} reads "
            f"around each position; choose --arch {', '.join(CAUSAL_ARCHS)}"
        )
    if config.bidirectional and config.arch != "transformer":
        raise UsageError(
            "a language model reads left to right: use --unidirectional (bidirectional: false)"
        )


def resolve_pooling(config: ModelConfig) -> str:
    arch = architecture(config.arch)
    mode = arch.default_pooling if config.pooling == "auto" else config.pooling
    if mode not in arch.poolings:
        raise UsageError(
            f"pooling {mode!r} is not available for {config.arch}; "
            f"choose one of: {', '.join(arch.poolings)}"
        )
    return mode


def describe(
    config: ModelConfig | dict[str, Any], per_position: bool = False, causal: bool = False
) -> str:
    """One line naming the architecture and the settings it actually reads.

    A per-position model has no pooling (one output per position), so none is named; a
    language model (``causal``) is named as one.
    """
    values = (
        config
        if isinstance(config, dict)
        else config_dict(resolve_model(config, per_position, causal))
    )
    name = values.get("arch", "?")
    arch = ARCHITECTURES.get(name)
    parts = [str(name)]
    for key in arch.uses if arch else ():
        value = values.get(key)
        if isinstance(value, list):
            value = ",".join(map(str, value))
        parts.append(f"{key.replace('_', '-')} {value}")
    if causal:
        parts.append("language model")
    elif per_position:
        parts.append("per position")
    else:
        parts.append(f"pooling {values.get('pooling')}")
    parts.append(f"dropout {values.get('dropout')}")
    return ", ".join(parts)


def config_dict(config: ModelConfig) -> dict[str, Any]:
    return dataclasses.asdict(config)


def check_lengths(
    model: Any, ids: list[str], lengths: Any, source: str, advice: str = "retrain"
) -> None:
    """Stop with a DataError naming the first sequence longer than the model accepts;
    ``advice`` says what to do with a larger --max-length ('retrain', or 'train' while
    training). ``model``: a network or an ensemble (it has ``members``), or anything
    with their ``max_length`` and ``config``."""
    limit = model.max_length
    if limit is None or len(ids) == 0:
        return
    import numpy as np

    too_long = np.flatnonzero(np.asarray(lengths) > limit)
    if len(too_long):
        i = int(too_long[0])
        what = "ensemble" if hasattr(model, "members") else f"{model.config.arch} model"
        raise DataError(
            f"{source}: record {ids[i]!r} has {int(lengths[i])} positions, more than this "
            f"{what}'s max-length {limit} ({len(too_long)} record(s) too "
            f"long); split or trim the sequences, or {advice} with a larger --max-length"
        )
