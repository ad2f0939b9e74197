"""Export a model file to ONNX or TorchScript, checked against PyTorch before it is written.

The exported graph is the model plus its task's output step, so it is usable alone:

    inputs   onehot  (batch, length, channels) float32: the one-hot (fractional for
                     ambiguity codes) encoding of right-padded sequences, zero rows as padding
             lengths (batch,) int64: the true length of each sequence
    outputs  outputs (batch, K) float32: class probabilities (binary: [P(first class),
                     P(second class)]), label probabilities (multilabel) or values in the
                     targets' original units (regression); per-position models give
                     (batch, length, K) class probabilities, zero past a length; a
                     language model (batch, length + 1, K): at 0-based position i the
                     distribution of residue i + 1 given the residues before it, at
                     position length that of the end, zero past it

A numeric series model's graph reads raw values instead, ``values`` (batch, length,
channels) float32, and normalises them itself (padding: any value, e.g. 0; NaN reads as
the channel's mean).

Batch and length axes are dynamic. A JSON sidecar (``NAME.json`` beside the export)
holds the encoding table, the output columns, the task and the parity figures.

Before anything is written the export is run (onnxruntime, or the TorchScript loaded
back) on real sequences -- ``check`` or generated ones at several lengths -- as one padded
batch and one by one, and compared with the PyTorch model as ``predict`` runs it. A
difference above ``tolerance`` stops the export and leaves no file.

The models' export path (models.base.exporting) swaps code that does not trace (the
recurrent CPU kernels and their worker threads, shape-dependent branches,
nn.MultiheadAttention's fixed shapes) for plain operations with the same numerics.
onnx and onnxruntime are imported only here, only for ONNX (extra ``bioseqnn[export]``).
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .._version import __version__
from ..arguments import checked
from ..bundle import Bundle, given_model
from ..data.batches import collate
from ..data.reading import SequenceEncoder, read_inputs
from ..data.sets import SequenceSet
from ..encoding import Encoder, pad_codes
from ..engine.predict import infer
from ..errors import ModelFileError, UsageError
from ..io.files import display_name
from ..io.outputs import atomic_output, check_output_path
from ..io.series import SeriesOptions
from ..io.sniff import read_sequences
from ..models.base import check_lengths
from ..models.inputs import featurizer
from ..structure import LEVELS, StructureInput, with_structure
from ..tasks import TaskSpec, output_activation
from ..variants.series import SeriesSpec, series_options

FORMATS = {".onnx": "onnx", ".pt": "torchscript"}
OPSET = 17
TOLERANCE = 1e-4
CHECK_LENGTHS = (1, 2, 5, 17, 64, 150)
"""Lengths of the generated parity sequences (two of each), capped at the model's limit."""
INSTALL_HINT = "pip install 'bioseqnn[export]'"


@dataclass
class ExportResult:
    output: Path
    sidecar: Path
    format: str
    max_abs_diff: float
    sequences: int
    lengths: tuple[int, int]
    """Shortest and longest checked sequence."""
    check_source: str


class Exported(nn.Module):
    """The model and its task's output step: (onehot, lengths) -> outputs, as
    :meth:`bioseqnn.tasks.TaskSpec.outputs` computes them after the model."""

    def __init__(self, model: nn.Module, task: TaskSpec, prepare: nn.Module | None = None) -> None:
        super().__init__()
        self.model = model
        self.prepare = prepare  # a numeric series' normalisation, inside the graph
        self.kind = task.kind
        self.per_position = bool(getattr(model, "per_position", False))
        self.extra = 1 if getattr(model, "causal", False) else 0  # a language model's end
        k = task.n_outputs
        self.register_buffer("mean", torch.tensor(task.target_mean or [0.0] * k))
        self.register_buffer("std", torch.tensor(task.target_std or [1.0] * k))

    def forward(self, onehot: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        mean: torch.Tensor = self.mean  # type: ignore[assignment]
        std: torch.Tensor = self.std  # type: ignore[assignment]
        if self.prepare is not None:
            onehot = self.prepare(onehot)
        out = output_activation(self.kind, self.model(onehot, lengths), mean, std)
        if self.per_position:
            # zero past each sequence's outputs; this also keeps ``lengths`` an input of
            # graphs that would not otherwise read it (a left-to-right RNN)
            real = (
                torch.arange(out.shape[1], device=out.device)[None, :]
                < (lengths + self.extra)[:, None]
            )
            out = out * real.unsqueeze(-1).to(out.dtype)
        return out


def export_format(output: str | os.PathLike[str]) -> str:
    """'onnx' or 'torchscript', from the output's suffix."""
    suffix = Path(output).suffix.lower()
    if str(output) == "-" or suffix not in FORMATS:
        raise UsageError(
            f"cannot tell the export format from {str(output)!r}: name the output "
            "NAME.onnx (ONNX) or NAME.pt (TorchScript)"
        )
    return FORMATS[suffix]


def sidecar_path(output: str | os.PathLike[str]) -> Path:
    """model.onnx -> model.onnx.json."""
    p = Path(output)
    return p.with_name(p.name + ".json")


@checked
def export(
    model: str | os.PathLike[str] | Bundle | Any,
    output: str | os.PathLike[str],
    *,
    check: str | os.PathLike[str] | None = None,
    tolerance: float = TOLERANCE,
    id_column: str | None = None,
) -> ExportResult:
    """Export ``model`` to ``output`` (.onnx or .pt) and its JSON sidecar, after a parity
    check on the sequences of ``check`` (default: generated ones)."""
    fmt = export_format(output)
    if not (tolerance > 0 and math.isfinite(tolerance)):
        raise UsageError("the parity tolerance must be a positive (finite) number")
    side = sidecar_path(output)
    bundle, path, name = given_model(model, "cpu")
    if path is None:
        raise UsageError(
            "export records the model file it came from (its SHA-256): save the model "
            "first (Trained.save) and export the file"
        )
    inputs = {"MODEL": path, "--check": check}
    check_output_path(output, inputs)
    check_output_path(side, inputs)
    if fmt == "onnx":
        _require_onnx()
    options = series_options(bundle, id_column)
    data, source = _check_set(bundle, check, options)
    # a structure model's graph reads the residues' and the folding channels: folding
    # (ViennaRNA) happens before the graph, as predict does it
    data = with_structure(data, bundle.features)
    prepare = featurizer(bundle.features)
    expected = _reference(bundle, prepare, data)
    # a series graph normalises its raw values itself; sequences come in one-hot
    inside = prepare if bundle.series is not None else None
    onehot = None if inside is not None else prepare
    input_name = "values" if inside else "onehot"
    wrapper = Exported(bundle.model, bundle.task, inside).eval()
    example = _batch(data, onehot, np.arange(len(data)))
    arch = bundle.model.config.arch
    per_position = bundle.model.per_position
    blob, traced = _trace(wrapper, example, fmt, per_position, input_name, name, arch)
    run = _onnx_runner(blob, input_name) if fmt == "onnx" else _torchscript_runner(blob)
    diff, worst = _compare(run, data, onehot, expected, per_position, wrapper.extra)
    if not diff <= tolerance:
        raise ModelFileError(
            f"{name}: the {_FORMAT_NAMES[fmt]} export of this {arch} model differs from "
            f"PyTorch by {diff:.3g} (tolerance {tolerance:g}) on record {data.ids[worst]!r} "
            f"of {source}; nothing written"
        )
    lengths = (int(data.lengths.min()), int(data.lengths.max()))
    meta = _sidecar(
        bundle,
        Path(path),
        fmt,
        {
            "max_abs_diff": diff,
            "tolerance": tolerance,
            "sequences": len(data),
            "lengths": list(lengths),
            "source": source,
            "runs": "one padded batch of all sequences, then each sequence alone",
        },
    )
    if traced is not None:  # the sidecar travels inside the TorchScript file too
        blob = _save_torchscript(traced, {"bioseqnn.json": json.dumps(meta)})
    _write(output, side, blob, meta)
    return ExportResult(Path(output), side, fmt, diff, len(data), lengths, source)


_FORMAT_NAMES = {"onnx": "ONNX", "torchscript": "TorchScript"}


def _reference(bundle: Bundle, prepare: nn.Module, data: SequenceSet) -> np.ndarray:
    """The outputs the export must match: the model's as predict runs it (eager, the CPU
    speed paths included), as one batch."""
    logits = infer(bundle.model, prepare, data, len(data), torch.device("cpu"))
    return bundle.task.outputs(logits).numpy()


def _trace(
    wrapper: Exported,
    example: tuple[torch.Tensor, torch.Tensor],
    fmt: str,
    per_position: bool,
    input_name: str,
    name: str,
    arch: str,
) -> tuple[bytes, Any]:
    """The wrapped model exported as ``fmt``, and the traced module (TorchScript; None for
    ONNX); an exporter's failure is a ModelFileError that names its first line."""
    traced: Any = None
    try:
        with warnings.catch_warnings(), torch.no_grad():
            # the legacy exporter's deprecation notice and the tracer's warnings about
            # Python values it records as constants: the parity check is the judge
            warnings.simplefilter("ignore")
            if fmt == "onnx":
                blob = _to_onnx(wrapper, example, per_position, bool(wrapper.extra), input_name)
            else:
                traced = torch.jit.trace(wrapper, example, check_trace=False)
                blob = _save_torchscript(traced, {})
    except Exception as exc:  # the exporters raise many types; name the first line
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ModelFileError(
            f"{name}: this {arch} model cannot be exported to {_FORMAT_NAMES[fmt]}: {first}"
        ) from None
    return blob, traced


def _require_onnx() -> None:
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError as exc:
        raise UsageError(
            f"ONNX export needs the onnx and onnxruntime packages ({exc.name} is "
            f"not installed): {INSTALL_HINT}"
        ) from None


def _check_set(
    bundle: Bundle, check: str | os.PathLike[str] | None, options: SeriesOptions | None = None
) -> tuple[SequenceSet, str]:
    """The parity sequences: those of ``check``, or two random ones per length."""
    spec = bundle.series
    if spec is not None:
        return _check_series(bundle, spec, check, options)
    alphabet = bundle.alphabet
    if check is not None:
        source = display_name(check)
        encoder = SequenceEncoder(source, alphabet, "error", hint=False)
        records = list(read_sequences(check))
        if not records:
            raise UsageError(f"{source}: no sequences for the parity check")
        kept, codes, offsets = encoder.encode_chunk(records)
        data = SequenceSet([r.id for r in kept], codes, offsets)
        check_lengths(bundle.model, data.ids, data.lengths, source)
        return data, source
    limit = bundle.model.max_length
    lengths = sorted({min(n, limit) if limit else n for n in CHECK_LENGTHS})
    rng = np.random.default_rng(0)
    letters = np.frombuffer(alphabet.letters.encode(), dtype=np.uint8)
    seqs = [letters[rng.integers(0, len(letters), n)].tobytes() for n in lengths for _ in range(2)]
    codes, offsets, _ = Encoder(alphabet).encode(seqs)
    ids = [f"random_{i + 1}_len{len(s)}" for i, s in enumerate(seqs)]
    return SequenceSet(ids, codes, offsets), f"{len(seqs)} random {alphabet.name} sequences"


def _check_series(
    bundle: Bundle,
    spec: SeriesSpec,
    check: str | os.PathLike[str] | None,
    options: SeriesOptions | None = None,
) -> tuple[SequenceSet, str]:
    """A series model's parity series: those of the table ``check``, or two per length
    drawn around the training records' mean and spread."""
    if check is not None:
        source = display_name(check)
        data, _, _ = read_inputs(check, spec, "error", series=options)
        check_lengths(bundle.model, data.ids, data.lengths, source)
        return data, source
    limit = bundle.model.max_length
    lengths = sorted({min(n, limit) if limit else n for n in CHECK_LENGTHS})
    rng = np.random.default_rng(0)
    mean, std = np.array(spec.mean), np.array(spec.std)
    parts = [
        (mean + std * rng.standard_normal((n, spec.size))).astype(np.float32)
        for n in lengths
        for _ in range(2)
    ]
    offsets = np.zeros(len(parts) + 1, dtype=np.int64)
    np.cumsum([len(p) for p in parts], out=offsets[1:])
    ids = [f"random_{i + 1}_len{len(p)}" for i, p in enumerate(parts)]
    return (
        SequenceSet(ids, np.concatenate(parts), offsets),
        f"{len(parts)} random series of {spec.size} channel(s)",
    )


def _batch(
    data: SequenceSet, onehot: nn.Module | None, index: np.ndarray
) -> tuple[torch.Tensor, torch.Tensor]:
    """The exported graph's inputs: one-hot sequences, or (``onehot`` None) a series'
    raw values padded with zeros."""
    if onehot is None:
        values, raw_lengths = pad_codes(data.codes, data.offsets, index, fill=0.0)
        return torch.from_numpy(values).float().contiguous(), torch.from_numpy(raw_lengths)
    codes, lengths = collate(data, index)
    return onehot(codes).float().contiguous(), lengths.to(torch.int64)


def _compare(
    run: Any,
    data: SequenceSet,
    onehot: nn.Module | None,
    expected: np.ndarray,
    per_position: bool,
    extra: int = 0,
) -> tuple[float, int]:
    """Largest |export - PyTorch| over one padded batch of everything and each sequence
    alone (per position: at its real positions, and ``extra`` more: a language model's
    end), and the record where it is."""
    per_record = np.zeros(len(data))
    everything = np.arange(len(data))
    for index in [everything, *([i] for i in everything)]:
        index = np.asarray(index)
        got = run(*_batch(data, onehot, index)).astype(np.float64)
        want = expected[index]
        if per_position:  # compare real positions only: (B, width, K) -> (B, longest, K)
            width = int(data.lengths[index].max()) + extra
            want = want[:, :width]
            real = np.arange(width)[None, :] < data.lengths[index][:, None] + extra
            got = np.where(real[..., None], got, 0.0) if got.shape == want.shape else got
            want = np.where(real[..., None], want, 0.0)
        if got.shape != want.shape:
            raise ModelFileError(
                f"the export gives outputs of shape {list(got.shape)}, PyTorch {list(want.shape)}"
            )
        err = np.abs(got - want).reshape(len(index), -1).max(1)
        err[np.isnan(err)] = np.inf
        per_record[index] = np.maximum(per_record[index], err)
    worst = int(per_record.argmax())
    return float(per_record[worst]), worst


def _to_onnx(
    wrapper: nn.Module,
    example: tuple[torch.Tensor, torch.Tensor],
    per_position: bool,
    causal: bool = False,
    input_name: str = "onehot",
) -> bytes:
    """``causal``: a language model, whose outputs have one position more than its input
    (their axis is named apart so that shape inference does not take them as equal)."""
    buf = io.BytesIO()
    positions = "length_plus_1" if causal else "length"
    # the legacy exporter writes to a file object as well as to a path
    torch.onnx.export(
        wrapper,
        example,
        buf,  # type: ignore[arg-type]
        dynamo=False,
        opset_version=OPSET,
        input_names=[input_name, "lengths"],
        output_names=["outputs"],
        dynamic_axes={
            input_name: {0: "batch", 1: "length"},
            "lengths": {0: "batch"},
            "outputs": {0: "batch", 1: positions} if per_position else {0: "batch"},
        },
    )
    return buf.getvalue()


def _onnx_runner(blob: bytes, input_name: str = "onehot") -> Any:
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3  # errors only: no notes about unused initializers
    session = onnxruntime.InferenceSession(blob, options, providers=["CPUExecutionProvider"])

    def run(x: torch.Tensor, lengths: torch.Tensor) -> np.ndarray:
        return session.run(None, {input_name: x.numpy(), "lengths": lengths.numpy()})[0]

    return run


def _save_torchscript(traced: Any, extra: dict[str, str]) -> bytes:
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit's deprecation notice
        torch.jit.save(traced, buf, _extra_files=extra)
    return buf.getvalue()


def _torchscript_runner(blob: bytes) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit.load's deprecation notice
        loaded = torch.jit.load(io.BytesIO(blob), map_location="cpu")

    def run(x: torch.Tensor, lengths: torch.Tensor) -> np.ndarray:
        with torch.no_grad():
            return loaded(x, lengths).numpy()

    return run


def _sidecar(bundle: Bundle, model: Path, fmt: str, parity: dict[str, Any]) -> dict[str, Any]:
    task, m = bundle.task, bundle.manifest
    outputs = {
        "binary": "class probabilities",
        "multiclass": "class probabilities",
        "multilabel": "label probabilities",
    }.get(task.kind, "values in original units")
    columns = task.columns()
    if task.kind in ("binary", "multiclass"):
        columns = columns[1:]  # the exported graph gives probabilities, not the argmax name
    elif task.kind == "per-position":
        columns = [f"prob_{c}" for c in task.classes]
        outputs = "class probabilities at each position (zero past a length)"
    elif task.kind == "language-model":
        columns = [f"prob_{c}" for c in task.classes]
        outputs = (
            "at 0-based position i, the probabilities of residue i + 1 given the "
            "residues before it; at position length, of the end; zero past it"
        )
    axes = {"per-position": ["length"], "language-model": ["length + 1"]}
    shape: list[Any] = ["batch", *axes.get(task.kind, []), len(columns)]
    return {
        "format": "bioseqnn-export",
        "format_version": 1,
        "exported_as": fmt,
        **({"onnx_opset": OPSET} if fmt == "onnx" else {}),
        "bioseqnn_version": __version__,
        "torch_version": torch.__version__,
        "source_model": model.name,
        "source_sha256": hashlib.sha256(model.read_bytes()).hexdigest(),
        **_input_fields(bundle),
        "outputs": [
            {
                "name": "outputs",
                "dtype": "float32",
                "shape": shape,
                "meaning": outputs,
                "columns": columns,
            },
        ],
        "max_length": bundle.model.max_length,
        "task": task.to_dict(),
        **(
            {
                "strands": (
                    "the model's predict averages both strands (rc_average): feed the "
                    "reverse complement too and average"
                    if (m.get("training") or {}).get("rc_average")
                    else "the given strand only"
                )
            }
            if bundle.series is None
            else {}
        ),
        "parity": parity,
    }


LENGTHS_INPUT = {
    "name": "lengths",
    "dtype": "int64",
    "shape": ["batch"],
    "meaning": "true length of each sequence (padding never changes an output)",
}


def _input_fields(bundle: Bundle) -> dict[str, Any]:
    """The sidecar's description of the graph's inputs and how to make them."""
    spec = bundle.series
    if spec is not None:
        return {
            "inputs": [
                {
                    "name": "values",
                    "dtype": "float32",
                    "shape": ["batch", "length", spec.size],
                    "meaning": "one row per time step, the channels in 'channels' order, raw "
                    "(the graph normalises them); right-pad shorter series with any "
                    "value (zeros); NaN reads as the channel's mean",
                },
                LENGTHS_INPUT,
            ],
            "input": "numeric series",
            "channels": list(spec.channels),
            "normalisation": {
                "mean": list(spec.mean),
                "std": list(spec.std),
                "applied": "inside the graph: (value - mean) / std",
            },
        }
    alphabet = bundle.alphabet
    table = alphabet.onehot_table()
    folded = bundle.features if isinstance(bundle.features, StructureInput) else None
    source = "'encoding', then 'structure'" if folded else "'encoding'"
    fields: dict[str, Any] = {
        "inputs": [
            {
                "name": "onehot",
                "dtype": "float32",
                "shape": ["batch", "length", folded.size if folded else alphabet.size],
                "meaning": f"one row per position from {source} (uppercase symbol); "
                "right-pad shorter sequences with zero rows",
            },
            LENGTHS_INPUT,
        ],
        "alphabet": alphabet.name,
        "channels": list(folded.channels if folded else alphabet.letters),
        "encoding": {
            sym: [float(v) for v in table[code]]
            for code, sym in enumerate(alphabet.symbol_list, start=1)
        },
        "lowercase": "reads as uppercase",
    }
    if folded is not None:
        fields["structure"] = _structure_fields(folded)
    return fields


def _structure_fields(folded: StructureInput) -> dict[str, Any]:
    """How the folding channels after the residues' are made (train --structure)."""
    states = {
        "unpaired": "'.' in the minimum free energy structure",
        "paired_downstream": "'(' (paired with a partner further on)",
        "paired_upstream": "')' (paired with a partner before it)",
    }
    if folded.kind == "bpp":
        states["pair_probability"] = (
            "the position's probability of being paired (the sum of its base-pair "
            f"probabilities from the partition function), in steps of 1/{LEVELS}"
        )
    return {
        "tool": "ViennaRNA",
        "version": folded.version,
        "kind": folded.kind,
        "channels": states,
        "made": "each sequence folded on its own at 37 C with ViennaRNA's defaults, DNA "
        "as RNA (T read as U), ambiguity codes as N; the three state channels are 0/1, "
        "one of them 1 per position; padding rows all zero. bioseqnn predict folds "
        "before the graph in the same way",
    }


def _write(output: str | os.PathLike[str], side: Path, blob: bytes, meta: dict[str, Any]) -> None:
    """The export, then its sidecar, each complete or absent; no export without sidecar."""
    with atomic_output(output, binary=True) as fh:
        fh.write(blob)
    try:
        with atomic_output(side) as fh:
            fh.write(json.dumps(meta, indent=2) + "\n")
    except BaseException:
        Path(output).unlink(missing_ok=True)
        raise
