"""Prediction without torch, for a run too small to wait for torch's import.

Importing torch takes 1-3 s (2.5 s on a 2-core AMD EPYC), longer than a small model
takes to predict thousands of sequences. ``bioseqnn predict`` of one input file whose
work (:func:`light_work`) is at most :data:`LIGHT_WORK`, with a model this module runs,
computes in numpy instead, and gives the same rows, digit for digit:

- the convolutions (each with its batch norm and ReLU) and the recurrent layers go
  through the same compiled kernels as torch's inference (bioseqnn/csrc/rnn.c, loaded
  without torch by bioseqnn.kernels), on the same float32 inputs, so their states are
  torch's bit for bit; the pooling windows after a convolution and 'last' and 'max'
  pooling over positions pick values, exactly;
- the head is computed in float64 and rounded to float32, as torch's prediction head
  is, and class probabilities in float64 and rounded (TaskSpec.outputs does the same);
- the input is read and checked by the same code (bioseqnn/engine/inputs.py) and the
  rows written by the same task code.

It runs LSTM, GRU (stacked, bidirectional), CNN, CNN-LSTM or CNN-GRU networks (the
default) with 'last' or 'max' pooling that predict labels or values for each sequence
of an alphabet (binary, multiclass, multilabel, regression), one or an ensemble of
them (``--cv``, ``bioseqnn ensemble``: the members combined in float64 and rounded, as
models.base.combine_members does), where the kernels are built. Everything else goes
to torch: 'mean' or 'attention' pooling (whose sums torch orders otherwise, so a last
digit could differ), the Elman RNN and the transformer, per-position
and language models, numeric series, RNA structure channels, ``--rc-average``, genome
intervals, several inputs, standard input, a GPU, more work than LIGHT_WORK, and any run
with ``BIOSEQNN_LIGHT=0`` in the environment. A model file this module cannot read as
expected (a tensor missing, of another shape, not finite) goes to torch too, whose
loading names the fault. The command line sets the memory ceiling first
(machine.cap_memory), and a run that runs out of memory here is made again through
torch, which halves its batches and names a record too long to predict on its own.
tests/unit/test_light.py compares both ways.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import kernels
from ..alphabets import Alphabet
from ..config import ModelConfig
from ..data.batches import batch_indices
from ..digest import TENSOR as DIGEST_TENSOR
from ..encoding import pad_codes
from ..io.files import COMPRESSED, GZIP_MAGIC, _regular_file
from ..modelfile import ModelFile, member_models, model_input
from ..modelspec import model_size, resolve_model, resolve_pooling
from ..tasks import TaskSpec

LIGHT_WORK = 2.4e10
"""The most work a run may take to be made without torch: the input's bytes (at least
its residues) times the network's weights, each used once per position it is applied
at (:func:`light_work`). At the rates measured on a 2-core AMD EPYC (0.8e10
multiply-adds a second for an LSTM of 32 units, 1.2-1.9e10 for 128, 1.2e10 for the
default CNN-GRU) that is 1.3-3 s on one thread, about what importing torch takes (2-3
s) before torch's way predicts anything: not much slower on a machine of many cores,
faster on a small one (the default network at this limit: 1.9 s against 4.5 s through
torch on two cores; docs/performance-log.md)."""

COMPRESSED_RATIO = 4
"""A compressed input is counted as this many times its size on disk."""

ARCHITECTURES = ("lstm", "gru", "cnn", "cnn-lstm", "cnn-gru")
POOLINGS = ("last", "max")
KINDS = ("binary", "multiclass", "multilabel", "regression")
BATCH_POSITIONS = 1 << 16
"""A batch's padded positions at most (records x its longest), records in length order."""
BATCH_RECORDS = 256
NORM_EPS = 1e-5
"""The batch norms' epsilon (torch's default, which models.conv keeps)."""


class NotLight(Exception):
    """This model file is not one this module runs (torch will)."""


# ----------------------------------------------------------------------------- weights


class _Weights:
    """The file's tensors, each taken once with the shape the network needs; a missing
    tensor, another shape or a value that is not finite is NotLight."""

    def __init__(self, tensors: dict[str, np.ndarray]) -> None:
        self.tensors = tensors
        self.taken: set[str] = set()

    def get(self, name: str, shape: tuple[int, ...]) -> np.ndarray:
        t = self.tensors.get(name)
        if t is None or tuple(t.shape) != shape or t.dtype != np.float32:
            raise NotLight(name)
        if not np.isfinite(t).all():
            raise NotLight(name)
        self.taken.add(name)
        return t

    def skip(self, name: str) -> None:
        """A tensor inference does not read (a batch norm's count of batches)."""
        if name not in self.tensors:
            raise NotLight(name)
        self.taken.add(name)

    def done(self) -> None:
        if set(self.tensors) - self.taken - {DIGEST_TENSOR}:
            raise NotLight("unexpected tensors")


# ------------------------------------------------------------------------------ layers


def length_mask(lengths: np.ndarray, width: int) -> np.ndarray:
    """(B, width) bool, True at real positions."""
    return np.arange(width)[None, :] < lengths[:, None]


def reverse_index(lengths: np.ndarray, width: int) -> np.ndarray:
    """(B, width): positions < length reversed, padding left in place."""
    pos = np.arange(width)[None, :]
    last = (lengths - 1)[:, None]
    return np.where(pos <= last, last - pos, pos)


def _ptr(a: np.ndarray) -> int:
    return a.ctypes.data


class _Recurrent:
    """An LSTM or GRU direction of one layer through the compiled kernel (the same call
    as bioseqnn.models.native's inference)."""

    def __init__(self, cell: str, w: _Weights, prefix: str, inputs: int, hidden: int) -> None:
        g = (4 if cell == "lstm" else 3) * hidden
        self.cell, self.hidden = cell, hidden
        w_ih = w.get(f"{prefix}.weight_ih_l0", (g, inputs))
        w_hh = w.get(f"{prefix}.weight_hh_l0", (g, hidden))
        b_ih = w.get(f"{prefix}.bias_ih_l0", (g,))
        b_hh = w.get(f"{prefix}.bias_hh_l0", (g,))
        self.wih_t = np.ascontiguousarray(w_ih.T)
        self.wt = np.ascontiguousarray(w_hh.T)
        if cell == "lstm":
            self.biases: tuple[np.ndarray, ...] = (np.ascontiguousarray(b_ih + b_hh),)
        else:
            self.biases = (np.ascontiguousarray(b_ih), np.ascontiguousarray(b_hh))

    def __call__(self, x: np.ndarray, reverse: bool) -> np.ndarray:
        """(B, T, C) float32 -> (B, T, H); ``reverse``: backwards in time."""
        b, steps, c = x.shape
        hid = self.hidden
        if b == 0 or steps == 0:
            return np.zeros((b, steps, hid), np.float32)
        x_tm = np.ascontiguousarray(x.transpose(1, 0, 2)).reshape(steps * b, c)
        hs = np.empty((steps + 1, b, hid), np.float32)
        hs[-1 if reverse else 0] = 0
        lib = kernels.library()
        if self.cell == "lstm":
            cs, act = np.zeros((2, b, hid), np.float32), np.empty((b, 4 * hid), np.float32)
            lib.bsnn_lstm_forward(
                steps, b, hid, c, _ptr(x_tm), _ptr(self.wih_t), _ptr(self.biases[0]),
                _ptr(self.wt), _ptr(hs), _ptr(cs), _ptr(act), 0, int(reverse),
            )  # fmt: skip
        else:
            rz, n = np.empty((b, 2 * hid), np.float32), np.empty((b, hid), np.float32)
            hgn, work = np.empty((b, hid), np.float32), np.empty((2, b, 3 * hid), np.float32)
            lib.bsnn_gru_forward(
                steps, b, hid, c, _ptr(x_tm), _ptr(self.wih_t), _ptr(self.biases[0]),
                _ptr(self.wt), _ptr(self.biases[1]), _ptr(hs), _ptr(rz), _ptr(n), _ptr(hgn),
                _ptr(work[0]), _ptr(work[1]), 0, int(reverse),
            )  # fmt: skip
        out = hs[:-1] if reverse else hs[1:]
        return out.transpose(1, 0, 2)


class _ConvStack:
    """models.conv.ConvStack in inference: each convolution with its batch norm and ReLU
    through kernels.conv_forward (as models.native.conv_layer_infer calls it), then
    the max over each window of its pooling."""

    directions = 1

    def __init__(self, config: ModelConfig, w: _Weights, prefix: str, inputs: int) -> None:
        self.layers: list[tuple[np.ndarray, np.ndarray, np.ndarray, int, int]] = []
        size = inputs
        for i, (channels, kernel, dilation, pool) in enumerate(
            zip(
                config.channels,
                config.kernel_sizes,
                config.dilations,
                config.pool_sizes,
                strict=True,
            )
        ):
            if not kernels.conv_fits(kernel, size, channels):
                raise NotLight(f"{prefix}.convs.{i}.weight")
            weight = w.get(f"{prefix}.convs.{i}.weight", (channels, size, kernel))
            norm = f"{prefix}.norms.{i}"
            gamma, beta, mean, var = (
                w.get(f"{norm}.{name}", (channels,))
                for name in ("weight", "bias", "running_mean", "running_var")
            )
            w.skip(f"{norm}.num_batches_tracked")
            scale, shift = kernels.norm_fold(gamma, beta, mean, var, NORM_EPS)
            packed = np.ascontiguousarray(weight.transpose(2, 1, 0))  # (Kw, C, F)
            self.layers.append((packed, scale, shift, dilation, pool))
            size = channels
        self.out_dim = size

    def __call__(self, x: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(B, L, C) float32 -> (B, L', F), and the pooled lengths."""
        h = np.ascontiguousarray(x, np.float32)
        lens = np.ascontiguousarray(lengths, np.int32)
        for packed, scale, shift, dilation, pool in self.layers:
            b, width, _ = h.shape
            f = packed.shape[2]
            out = np.empty((b, width, f), np.float32)
            kernels.conv_forward(h, lens, packed, scale, shift, dilation, out)
            h = out
            if pool > 1:
                # a pool wider than the positions: one window, their max (the padding it
                # would take holds zeros, and every value is >= 0 after the ReLU)
                span = min(pool, width)
                windows = width // span
                h = h[:, : windows * span].reshape(b, windows, span, f).max(axis=2)
                lens = np.maximum(lens // pool, 1).astype(np.int32)
        return h, lens.astype(lengths.dtype)


class _ConvRecurrent:
    """models.hybrid.ConvRecurrent in inference: the convolutions, then a bidirectional
    LSTM or GRU over their states."""

    def __init__(
        self, cell: str, config: ModelConfig, w: _Weights, prefix: str, inputs: int
    ) -> None:
        self.conv = _ConvStack(config, w, f"{prefix}.conv", inputs)
        self.recurrent = _RecurrentStack(cell, config, w, f"{prefix}.lstm", self.conv.out_dim, True)
        self.directions, self.out_dim = 2, self.recurrent.out_dim

    def __call__(self, x: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        h, lengths = self.conv(x, lengths)
        return self.recurrent(h, lengths)


def _backbone(config: ModelConfig, w: _Weights, prefix: str, inputs: int) -> Any:
    if config.arch == "cnn":
        return _ConvStack(config, w, prefix, inputs)
    if config.arch.startswith("cnn-"):
        return _ConvRecurrent(config.arch[4:], config, w, prefix, inputs)
    return _RecurrentStack(config.arch, config, w, prefix, inputs, config.bidirectional)


class _RecurrentStack:
    """models.recurrent.RecurrentBackbone in inference: layers of one or two directions,
    the backward one over each sequence reversed within its length."""

    def __init__(
        self, cell: str, config: ModelConfig, w: _Weights, prefix: str, inputs: int, bi: bool
    ) -> None:
        hidden = config.hidden_size
        self.directions = 2 if bi else 1
        self.out_dim = hidden * self.directions
        sizes = [inputs] + [self.out_dim] * (config.layers - 1)
        self.forward_layers = [
            _Recurrent(cell, w, f"{prefix}.forward_layers.{i}", s, hidden)
            for i, s in enumerate(sizes)
        ]
        self.backward_layers = (
            [
                _Recurrent(cell, w, f"{prefix}.backward_layers.{i}", s, hidden)
                for i, s in enumerate(sizes)
            ]
            if bi
            else []
        )

    def __call__(self, x: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        h = x
        width = x.shape[1]
        rev = reverse_index(lengths, width)[:, :, None] if self.backward_layers else None
        flip = rev is not None and len(lengths) > 0 and int(lengths.min()) == width
        for i, fwd in enumerate(self.forward_layers):
            out = fwd(h, False)
            if rev is not None:
                back = self.backward_layers[i]
                if flip:
                    out_b = back(h, True)
                else:
                    h_rev = np.take_along_axis(h, rev, axis=1)
                    out_b = np.take_along_axis(back(h_rev, False), rev, axis=1)
                out = np.concatenate([out, out_b], axis=2)
            h = out
        return h, lengths


class _Network:
    """models.base.SequenceModel in inference: backbone, pooling, the head in float64;
    ``prefix``: its tensors' (an ensemble member's "members.2.")."""

    def __init__(
        self, config: ModelConfig, w: _Weights, prefix: str, inputs: int, outputs: int
    ) -> None:
        self.config = config
        self.backbone = _backbone(config, w, f"{prefix}backbone", inputs)
        dim = self.backbone.out_dim
        self.pooling = resolve_pooling(config)
        self.head_w = w.get(f"{prefix}head.weight", (outputs, dim)).astype(np.float64)
        self.head_b = w.get(f"{prefix}head.bias", (outputs,)).astype(np.float64)

    @property
    def max_length(self) -> int | None:
        return None  # no architecture run here has one

    def __call__(self, x: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        states, lengths = self.backbone(x, lengths)
        pooled = self._pool(states, lengths)
        out = pooled.astype(np.float64) @ self.head_w.T + self.head_b
        return out.astype(np.float32)

    def _pool(self, states: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        b, width, dim = states.shape
        mask = length_mask(lengths, width)
        if self.pooling == "last":
            at = np.maximum(lengths - 1, 0)
            rows = np.arange(b)
            if self.backbone.directions == 1:
                return states[rows, at]
            half = dim // 2
            return np.concatenate([states[rows, at, :half], states[:, 0, half:]], axis=1)
        return np.where(mask[:, :, None], states, -np.inf).max(axis=1).astype(np.float32)


class _Ensemble:
    """models.base.Ensemble in inference: the members' outputs combined as
    models.base.combine_members does, in float64 and rounded to float32."""

    def __init__(self, members: list[_Network], kind: str) -> None:
        self.members, self.kind = members, kind

    max_length = None  # as _Network's

    def __call__(self, x: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        wide = np.stack([member(x, lengths) for member in self.members]).astype(np.float64)
        if self.kind == "regression":
            return wide.mean(axis=0).astype(np.float32)
        log_n = np.log(len(self.members))
        if self.kind == "multiclass":
            return (_logsumexp(_log_softmax(wide)) - log_n).astype(np.float32)
        # binary, multilabel: the logit of the members' mean probability
        return (_logsumexp(_logsigmoid(wide)) - _logsumexp(_logsigmoid(-wide))).astype(np.float32)


def _log_softmax(z: np.ndarray) -> np.ndarray:
    """Over the last axis, as torch.log_softmax computes it."""
    shifted = z - z.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def _logsigmoid(z: np.ndarray) -> np.ndarray:
    """log(sigmoid(z)), as torch computes it: min(z, 0) - log1p(exp(-|z|))."""
    return np.minimum(z, 0) - np.log1p(np.exp(-np.abs(z)))


def _logsumexp(z: np.ndarray) -> np.ndarray:
    """Over the first axis (the members), as torch.logsumexp computes it."""
    top = z.max(axis=0)
    top = np.where(np.isinf(top), 0.0, top)
    return np.log(np.exp(z - top).sum(axis=0)) + top


def output_activation(task: TaskSpec, logits: np.ndarray) -> np.ndarray:
    """TaskSpec.outputs: class probabilities computed in float64 (as there) and rounded
    to float32, or values in the targets' units."""
    if task.kind == "binary":
        p = 1 / (1 + np.exp(-logits.reshape(-1).astype(np.float64)))
        return np.stack([1 - p, p], axis=1).astype(np.float32)
    if task.kind == "multiclass":
        z = logits.astype(np.float64)
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)
    if task.kind == "multilabel":
        return (1 / (1 + np.exp(-logits.astype(np.float64)))).astype(np.float32)
    mean = np.asarray(task.target_mean or [0.0] * task.n_outputs, np.float32)
    std = np.asarray(task.target_std or [1.0] * task.n_outputs, np.float32)
    return logits * std + mean


# ------------------------------------------------------------------------------- model


@dataclass
class LightModel:
    """A model file's networks, ready to predict in numpy; it has what engine/inputs.py
    reads of a bundle (``alphabet``, ``input``, ``features``, ``series``, and ``model``
    with its ``max_length``)."""

    alphabet: Alphabet
    task: TaskSpec
    network: _Network | _Ensemble

    @property
    def features(self) -> Alphabet:
        return self.alphabet

    @property
    def input(self) -> Alphabet:
        return self.alphabet

    series = None  # a sequence model

    @property
    def model(self) -> _Network | _Ensemble:
        return self.network

    def outputs(self, codes: np.ndarray, offsets: np.ndarray) -> np.ndarray:
        """What a prediction row reports for each stored sequence, in their order."""
        lengths = np.diff(offsets)
        table = self.alphabet.onehot_table()
        width = 2 if self.task.kind == "binary" else self.task.n_outputs
        out = np.zeros((len(lengths), width), np.float32)
        for index in batch_indices(lengths, BATCH_RECORDS, max_tokens=BATCH_POSITIONS):
            padded, batch_lengths = pad_codes(codes, offsets, index)
            # extreme weights overflow to inf as in torch, which says nothing either
            with np.errstate(all="ignore"):
                logits = self.network(table[padded], batch_lengths)
                out[index] = output_activation(self.task, logits)
        return out


def runs(manifest: dict[str, Any]) -> bool:
    """Whether this module runs the model a (validated) manifest describes."""
    task = manifest.get("task") or {}
    if task.get("kind") not in KINDS or manifest.get("per_position"):
        return False
    if not isinstance(model_input(manifest), Alphabet):  # series, structure channels
        return False
    if (manifest.get("training") or {}).get("rc_average"):
        return False
    return kernels.available() and all(
        config.arch in ARCHITECTURES and resolve_pooling(config) in POOLINGS
        for config in _configs(manifest)
    )


def _configs(manifest: dict[str, Any]) -> list[ModelConfig]:
    """The network settings of each member (one for a single model)."""
    return [resolve_model(ModelConfig(**config)) for config in member_models(manifest)]


def light_work(manifest: dict[str, Any], residues: int) -> float:
    """Multiply-adds a prediction of ``residues`` costs: each weight once per position
    it is applied at, a residue's position for the first convolution and the recurrent
    layers without one, one position in p after a pooling window of p; the sum over an
    ensemble's members."""
    task = TaskSpec.from_dict(manifest["task"])
    inputs = model_input(manifest).size
    return sum(_network_work(c, inputs, task.n_outputs, residues) for c in _configs(manifest))


def _network_work(config: ModelConfig, inputs: int, outputs: int, residues: int) -> float:
    weights = float(model_size(config, inputs, outputs).weights)
    if not config.arch.startswith("cnn"):
        return float(residues) * weights
    cost, stride = 0.0, 1
    for channels, kernel, pool in zip(
        config.channels, config.kernel_sizes, config.pool_sizes, strict=True
    ):
        layer = inputs * kernel * channels
        cost += layer / stride
        weights -= layer
        stride *= pool
        inputs = channels
    return float(residues) * (cost + weights / stride)


def _load(model_file: ModelFile) -> LightModel:
    """An opened model file (its manifest one :func:`runs`) as a LightModel; NotLight
    where its weights are not what the network needs."""
    from safetensors.numpy import load as st_load

    manifest = model_file.manifest
    model_file.check_digest()
    try:
        w = _Weights(st_load(model_file.contents()))
    except Exception:  # safetensors' own errors: torch's loading names them
        raise NotLight("weights") from None
    alphabet = model_input(manifest)
    assert isinstance(alphabet, Alphabet)
    task = TaskSpec.from_dict(manifest["task"])
    configs = _configs(manifest)
    network: _Network | _Ensemble
    if len(configs) == 1:
        network = _Network(configs[0], w, "", alphabet.size, task.n_outputs)
    else:
        members = [
            _Network(config, w, f"members.{i}.", alphabet.size, task.n_outputs)
            for i, config in enumerate(configs)
        ]
        network = _Ensemble(members, task.kind)
    w.done()
    return LightModel(alphabet, task, network)


# ------------------------------------------------------------------------------ the run


def enabled() -> bool:
    return os.environ.get("BIOSEQNN_LIGHT", "1").strip().lower() not in ("0", "off", "no")


def input_bytes(paths: Sequence[str | os.PathLike[str]]) -> int | None:
    """The inputs' size on disk, a compressed one counted COMPRESSED_RATIO times; None
    where one is no regular file (standard input, a pipe) or cannot be read."""
    total = 0
    for path in paths:
        if os.fspath(path) == "-":
            return None
        try:
            st = os.stat(path)
            if not stat.S_ISREG(st.st_mode):
                return None
            with open(path, "rb") as handle:
                magic = handle.read(6)
        except OSError:
            return None
        compressed = magic.startswith(GZIP_MAGIC) or any(map(magic.startswith, COMPRESSED))
        total += st.st_size * (COMPRESSED_RATIO if compressed else 1)
    return total


def choose(
    model: str | os.PathLike[str], paths: Sequence[str | os.PathLike[str]]
) -> LightModel | None:
    """The model to predict ``paths`` with in numpy, or None where torch should: a model
    this module does not run, inputs that are not files, or more work than LIGHT_WORK."""
    if not enabled() or not _regular_file(model):  # a model from a pipe is read once
        return None
    size = input_bytes(paths)
    if size is None:
        return None
    try:
        with ModelFile(model) as model_file:
            manifest = model_file.manifest
            if not runs(manifest) or light_work(manifest, size) > LIGHT_WORK:
                return None
            return _load(model_file)
    except Exception:  # NotLight, or a damaged file: torch's loading reports what is wrong
        return None


def predict(
    light: LightModel,
    model: str | os.PathLike[str],
    path: str | os.PathLike[str],
    output: str | os.PathLike[str],
    on_invalid: str,
    threads: int = 0,
) -> Any:
    """ops.predict.predict for one input file, in numpy: one row per record, in input
    order, written atomically to ``output``. Returns the PredictStats. It runs on one
    thread, within any ``threads`` (checked as torch's are: machine.thread_count)."""
    from ..io.files import display_name
    from ..io.outputs import check_one_stdin, check_output_path, write_table
    from ..machine import thread_count
    from .inputs import PredictStats, encoded_chunks, open_model_input

    inputs: dict[str, str | os.PathLike[str] | None] = {"MODEL": model, "SEQUENCES": path}
    check_one_stdin(**inputs)
    check_output_path(output, inputs)
    thread_count(threads)  # after the paths, as ops.predict checks them
    stats = PredictStats()
    source = display_name(path)

    def rows() -> Any:
        records = open_model_input(light, path, on_invalid)
        for _, data in encoded_chunks(light, records, source, BATCH_RECORDS, on_invalid, stats):
            out = light.outputs(data.codes, data.offsets)
            for rid, cells in zip(data.ids, light.task.rows(out), strict=True):
                yield [rid, *cells]

    write_table(output, ["id", *light.task.columns()], rows())
    return stats
