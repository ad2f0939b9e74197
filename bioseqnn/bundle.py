"""The model file: a safetensors file whose header carries a JSON manifest.

safetensors holds raw tensors and a JSON header, nothing executable, so loading a
model file can never run code stored in it. The manifest says everything ``predict``
needs: alphabet, task, architecture, training settings, data fingerprint, metrics.
"""

from __future__ import annotations

import json
import os
import typing
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from ._version import __version__
from .alphabets import Alphabet
from .digest import DESCRIPTION as DIGEST_DESCRIPTION
from .digest import TENSOR as DIGEST_TENSOR
from .errors import DataError, ModelFileError, UsageError, shorten
from .io.files import display_name
from .io.outputs import write_bytes_atomic
from .modelfile import (
    FORMAT,
    MANIFEST_KEY,
    ModelFile,
    member_models,
    model_input,
    validate_manifest,
)
from .models.base import (
    Ensemble,
    ModelConfig,
    Predictor,
    SequenceModel,
    config_dict,
    resolve_pooling,
)
from .structure import StructureInput
from .tasks import TaskSpec
from .variants.series import SeriesSpec

if typing.TYPE_CHECKING:
    pass


@dataclass
class Bundle:
    model: Predictor
    manifest: dict[str, Any]
    train_digest: np.ndarray | None = None
    """The sorted distinct digests (uint64) of the training sequences (bioseqnn/digest.py);
    None for a model file written before they were kept."""
    path: str | os.PathLike[str] | None = field(default=None, compare=False)
    """The model file it was loaded from (None: built in memory), which no output of a
    prediction made with it may replace."""

    @property
    def input(self) -> Alphabet | SeriesSpec:
        """What the model reads: an alphabet's sequences, or a numeric series' channels."""
        spec = model_input(self.manifest)
        return spec.alphabet if isinstance(spec, StructureInput) else spec

    @property
    def features(self) -> Alphabet | SeriesSpec | StructureInput:
        """What the network's input layer reads (see models.inputs.featurizer): ``input``, or
        for a model trained with ``--structure`` its residues and folding channels."""
        return model_input(self.manifest)

    @property
    def structure(self) -> StructureInput | None:
        spec = model_input(self.manifest)
        return spec if isinstance(spec, StructureInput) else None

    @property
    def series(self) -> SeriesSpec | None:
        spec = self.input
        return spec if isinstance(spec, SeriesSpec) else None

    @property
    def alphabet(self) -> Alphabet:
        """The model's alphabet; a series model has none (what needs one is refused)."""
        spec = self.input
        if isinstance(spec, SeriesSpec):
            raise UsageError(
                "this model reads numeric series, not sequences: "
                "this operation needs a sequence model"
            )
        return spec

    @property
    def task(self) -> TaskSpec:
        return TaskSpec.from_dict(self.manifest["task"])


def save_bundle(
    path: str | os.PathLike[str],
    model: Predictor,
    manifest: dict[str, Any],
    train_digest: np.ndarray | None = None,
) -> dict[str, Any]:
    """Write ``model`` with ``manifest`` (format fields set here) and, when given, the
    digests of its training sequences; returns the manifest written."""
    configs = model.configs if isinstance(model, Ensemble) else [model.config]
    members = len(configs)
    oldest = (
        4
        if "structure" in manifest or train_digest is not None
        else 3
        if "input" in manifest
        else 2
        if members > 1
        else 1
    )
    version = {"format": FORMAT, "format_version": oldest, "bioseqnn_version": __version__}
    manifest = {**version, **{k: v for k, v in manifest.items() if k not in version}}
    manifest.pop("member_models", None)
    if members > 1:
        manifest["ensemble"] = members
        written = [{**config_dict(c), "pooling": resolve_pooling(c)} for c in configs]
        if any(c != written[0] for c in written):
            manifest["model"], manifest["member_models"] = written[0], written
    else:
        manifest.pop("ensemble", None)
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    if train_digest is None and "digest" in manifest.get("data", {}):
        manifest["data"] = {k: v for k, v in manifest["data"].items() if k != "digest"}
    if train_digest is not None:
        digest = np.unique(np.asarray(train_digest, dtype=np.uint64))
        tensors[DIGEST_TENSOR] = torch.from_numpy(digest.view(np.int64))
        manifest["data"] = {
            **manifest.get("data", {}),
            "digest": {
                "kind": DIGEST_DESCRIPTION,
                "tensor": DIGEST_TENSOR,
                "sequences": len(digest),
            },
        }
    text = json.dumps(manifest, allow_nan=True)
    try:  # never write a file that loading refuses
        validate_manifest(json.loads(text), os.fspath(path))
    except ModelFileError as exc:
        raise DataError(f"{exc}; the model file was not written") from None
    data = st_save(tensors, metadata={MANIFEST_KEY: text})
    write_bytes_atomic(path, data)
    return manifest


def build_model(manifest: dict[str, Any]) -> Predictor:
    configs = member_models(manifest)
    task = TaskSpec.from_dict(manifest["task"])
    members = [
        SequenceModel(
            ModelConfig(**config),
            model_input(manifest).size,
            task.n_outputs,
            per_position=manifest.get("per_position", False),
            causal=task.kind == "language-model",
        )
        for config in configs
    ]
    return Ensemble(members, task.kind) if len(members) > 1 else members[0]


def load_bundle(path: str | os.PathLike[str], device: str | torch.device = "cpu") -> Bundle:
    """Load a model file, rebuilding the model from its manifest alone.

    The architecture is first built without memory (on the 'meta' device) and its
    tensor shapes compared with the file's, so a manifest cannot make us allocate
    more than the weights the file really holds.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise UsageError(f"load_bundle: expected a model file's path; got {type(path).__name__}")
    name = str(path)
    with ModelFile(path) as model_file:
        manifest = model_file.manifest
        needed = _needed_shapes(manifest, name)
        in_file = model_file.shapes()
        if needed != in_file:
            diff = _shape_diff(needed, in_file)
            raise ModelFileError(f"{name}: weights do not fit the manifest ({diff})")
        model_file.check_digest()
        data = model_file.contents()
    try:
        tensors = st_load(data)
    except Exception as exc:  # safetensors raises its own error types
        raise ModelFileError(f"{name}: damaged weights ({exc})") from None
    digest = tensors.pop(DIGEST_TENSOR, None)
    for key, tensor in tensors.items():  # training never writes these: a damaged file
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise ModelFileError(f"{name}: weight {key!r} holds NaN or infinite values")
    try:
        model = build_model(manifest)
        model.load_state_dict(tensors, strict=True)
    except (RuntimeError, ValueError, TypeError, UsageError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ModelFileError(f"{name}: weights do not fit the manifest ({first})") from None
    model.to(device).eval()
    return Bundle(
        model, manifest, None if digest is None else digest.numpy().view(np.uint64).copy(), path
    )


IN_MEMORY = "the model in memory"


def model_file(model: Any) -> str | os.PathLike[str] | None:
    """The file a model given as :func:`given_model` takes it was read from (or, for
    what ``bioseqnn.train`` returned, saved to): what no output may replace. None for a
    model held in memory only, or a value that is no model (its loading says so)."""
    if isinstance(model, Bundle) or isinstance(getattr(model, "model", None), Bundle):
        model = getattr(model, "path", None)  # a loaded Bundle, or what train returned
    return model if isinstance(model, (str, os.PathLike)) else None


def given_model(model: Any, device: str | torch.device = "cpu") -> tuple[Bundle, Any, str]:
    """A model given as a file, a loaded :class:`Bundle` or what ``bioseqnn.train``
    returned (its ``model``): the bundle on ``device``, the file it came from (None for
    one held in memory only) and its name for messages."""
    inner = getattr(model, "model", None)
    if isinstance(inner, Bundle):  # bioseqnn.train's result: in memory, maybe saved too
        path = getattr(model, "path", None)
        inner.model.to(device)
        return inner, path, IN_MEMORY if path is None else display_name(path)
    if isinstance(model, Bundle):
        model.model.to(device)
        return model, None, IN_MEMORY
    if not isinstance(model, (str, os.PathLike)):
        raise UsageError(
            f"model: expected a model file, a Bundle or what bioseqnn.train returned; got "
            f"{type(model).__name__}"
        )
    return load_bundle(model, device), model, display_name(model)


def _needed_shapes(manifest: dict[str, Any], name: str) -> dict[str, tuple[int, ...]]:
    """The tensor shapes the manifest's model has, found without memory ('meta')."""
    try:
        with torch.device("meta"):
            needed = {k: tuple(v.shape) for k, v in build_model(manifest).state_dict().items()}
    except (RuntimeError, ValueError, TypeError, UsageError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ModelFileError(f"{name}: the manifest describes no valid model ({first})") from None
    return needed


def _shape_diff(needed: dict[str, tuple[int, ...]], found: dict[str, tuple[int, ...]]) -> str:
    missing = sorted(set(needed) - set(found))
    if missing:
        return f"tensor {shorten(missing[0])!r} is missing"
    extra = sorted(set(found) - set(needed))
    if extra:
        return f"unexpected tensor {shorten(extra[0])!r}"
    key = next(k for k in needed if needed[k] != found[k])
    return (
        f"tensor {shorten(key)!r} has shape {list(found[key])}, "
        f"the manifest needs {list(needed[key])}"
    )
