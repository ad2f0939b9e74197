"""The model file: a safetensors file whose header carries a JSON manifest.

safetensors holds raw tensors and a JSON header, nothing executable, so loading a
model file can never run code stored in it. The manifest says everything ``predict``
needs: alphabet, task, architecture, training settings, data fingerprint, metrics.
"""

from __future__ import annotations

import json
import os
import struct
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from . import __version__
from .alphabets import ALPHABETS, Alphabet
from .errors import ModelFileError, UsageError
from .models.base import ModelConfig, SequenceModel
from .seqio import write_bytes_atomic
from .tasks import TASKS, TaskSpec

FORMAT = "bioseqnn-model"
FORMAT_VERSION = 1
MANIFEST_KEY = "bioseqnn"
MAX_HEADER = 64 * 1024 * 1024


@dataclass
class Bundle:
    model: SequenceModel
    manifest: dict[str, Any]

    @property
    def alphabet(self) -> Alphabet:
        return ALPHABETS[self.manifest["alphabet"]]

    @property
    def task(self) -> TaskSpec:
        return TaskSpec.from_dict(self.manifest["task"])


def save_bundle(path: str | os.PathLike[str], model: SequenceModel, manifest: dict[str, Any]) -> None:
    manifest = {"format": FORMAT, "format_version": FORMAT_VERSION,
                "bioseqnn_version": __version__, **manifest}
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    data = st_save(tensors, metadata={MANIFEST_KEY: json.dumps(manifest, allow_nan=True)})
    write_bytes_atomic(path, data)


def _read_header(data: bytes, name: str) -> dict[str, Any]:
    if len(data) < 8:
        raise ModelFileError(f"{name}: not a bioseqnn model file (too short)")
    (size,) = struct.unpack("<Q", data[:8])
    if size > MAX_HEADER or size == 0:
        raise ModelFileError(f"{name}: not a bioseqnn model file (no safetensors header)")
    if 8 + size > len(data):
        raise ModelFileError(f"{name}: model file is truncated (header runs past the end)")
    try:
        header = json.loads(data[8 : 8 + size])
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ModelFileError(f"{name}: not a bioseqnn model file (unreadable header)") from None
    if not isinstance(header, dict):
        raise ModelFileError(f"{name}: not a bioseqnn model file")
    end = 8 + size
    for key, info in header.items():
        if key == "__metadata__":
            continue
        offsets = info.get("data_offsets") if isinstance(info, dict) else None
        if not (isinstance(offsets, list) and len(offsets) == 2):
            raise ModelFileError(f"{name}: damaged tensor entry {key!r}")
        if end + int(offsets[1]) > len(data):
            raise ModelFileError(f"{name}: model file is truncated (tensor {key!r} incomplete)")
    return header


def _expect(cond: bool, name: str, what: str) -> None:
    if not cond:
        raise ModelFileError(f"{name}: invalid manifest: {what}")


def validate_manifest(m: Any, name: str) -> dict[str, Any]:
    """Check types and sizes of every manifest field used before anything uses it."""
    _expect(isinstance(m, dict), name, "not a mapping")
    _expect(m.get("format") == FORMAT, name, "not a bioseqnn model")
    version = m.get("format_version")
    _expect(isinstance(version, int), name, "format_version is not an integer")
    if version > FORMAT_VERSION:
        raise ModelFileError(
            f"{name}: model file format {version} is newer than this bioseqnn "
            f"({__version__}) reads (format {FORMAT_VERSION}); upgrade bioseqnn"
        )
    _expect(m.get("alphabet") in ALPHABETS, name, "unknown alphabet")
    task = m.get("task")
    _expect(isinstance(task, dict), name, "task is missing")
    _expect(task.get("kind") in TASKS, name, "unknown task kind")
    for key in ("targets", "classes", "target_mean", "target_std", "class_weights"):
        value = task.get(key, [])
        _expect(isinstance(value, list) and len(value) <= 100_000, name, f"task.{key}")
    _expect(all(isinstance(x, str) and len(x) < 1000 for x in task.get("targets", [])
                + task.get("classes", [])), name, "names must be short strings")
    for key in ("target_mean", "target_std", "class_weights"):
        _expect(all(isinstance(x, (int, float)) for x in task.get(key, [])), name, f"task.{key}")
    _expect(set(task) <= {f.name for f in fields(TaskSpec)}, name, "unknown task fields")
    model = m.get("model")
    _expect(isinstance(model, dict), name, "model config is missing")
    known = {f.name: f for f in fields(ModelConfig)}
    _expect(set(model) <= set(known), name, f"unknown model keys {sorted(set(model) - set(known))}")
    for key, value in model.items():
        default = getattr(ModelConfig(), key)
        if isinstance(default, list):
            ok = isinstance(value, list) and len(value) <= 64 and all(
                isinstance(v, int) and 0 <= v <= 1 << 20 for v in value)
        elif isinstance(default, bool):
            ok = isinstance(value, bool)
        elif isinstance(default, int):
            ok = isinstance(value, int) and 0 <= value <= 1 << 20
        elif isinstance(default, float):
            ok = isinstance(value, (int, float)) and 0 <= value < 1
        else:
            ok = isinstance(value, str) and len(value) < 100
        _expect(ok, name, f"model.{key} has an invalid value")
    return m


def read_manifest(path: str | os.PathLike[str]) -> tuple[dict[str, Any], bytes]:
    name = str(path)
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise ModelFileError(f"{name}: no such model file") from None
    except IsADirectoryError:
        raise ModelFileError(f"{name}: is a directory, not a model file") from None
    except PermissionError:
        raise ModelFileError(f"{name}: permission denied") from None
    header = _read_header(data, name)
    meta = header.get("__metadata__") or {}
    if not isinstance(meta, dict) or MANIFEST_KEY not in meta:
        raise ModelFileError(f"{name}: a safetensors file, but not a bioseqnn model (no manifest)")
    try:
        manifest = json.loads(meta[MANIFEST_KEY])
    except (TypeError, json.JSONDecodeError):
        raise ModelFileError(f"{name}: invalid manifest (not JSON)") from None
    return validate_manifest(manifest, name), data


def build_model(manifest: dict[str, Any]) -> SequenceModel:
    config = ModelConfig(**manifest["model"])
    alphabet = ALPHABETS[manifest["alphabet"]]
    task = TaskSpec.from_dict(manifest["task"])
    return SequenceModel(config, alphabet.size, task.n_outputs,
                         per_position=manifest.get("per_position", False))


def load_bundle(path: str | os.PathLike[str], device: str | torch.device = "cpu") -> Bundle:
    """Load a model file, rebuilding the model from its manifest alone."""
    name = str(path)
    manifest, data = read_manifest(path)
    try:
        tensors = st_load(data)
    except Exception as exc:  # safetensors raises its own error types
        raise ModelFileError(f"{name}: damaged weights ({exc})") from None
    try:
        model = build_model(manifest)
        model.load_state_dict(tensors, strict=True)
    except (RuntimeError, ValueError, TypeError, UsageError) as exc:
        first = str(exc).strip().splitlines()[0]
        raise ModelFileError(f"{name}: weights do not fit the manifest ({first})") from None
    model.to(device).eval()
    return Bundle(model, manifest)
