"""Reading and checking a model file's header and manifest, without torch.

A model file is a safetensors file whose header carries a JSON manifest (see
:mod:`bioseqnn.bundle` for writing one and building its model). This module reads the
header and validates the manifest, the size of the model it describes included, before
anything is allocated; ``bioseqnn info`` uses it alone, so it never imports torch.
"""

from __future__ import annotations

import json
import math
import os
import re
import stat
import struct
import typing
from dataclasses import fields
from typing import Any

from ._version import __version__
from .alphabets import ALPHABETS, Alphabet
from .config import MODEL_LIST_MAX, MODEL_NUMBER_MAX
from .digest import TENSOR as DIGEST_TENSOR
from .errors import ModelFileError, UsageError, shorten
from .modelspec import MAX_WEIGHTS, ModelConfig, model_size, too_large
from .structure import KINDS as STRUCTURE_KINDS
from .structure import StructureInput
from .tasks import CONTROL, MAX_NAME, PER_POSITION_KINDS, TASKS, TaskSpec
from .variants.series import SeriesSpec

if typing.TYPE_CHECKING:
    from .config import RunConfig

FORMAT = "bioseqnn-model"
FORMAT_VERSION = 4
"""The newest format this version reads. Format 2 added ensembles (``ensemble``: the
number of members; ``member_models``: each member's architecture settings, present only
when they differ, else every member has ``model``'s); format 3 added numeric series input
(``input`` in place of ``alphabet``); format 4 added RNA structure input (``structure``:
the folding that adds input channels) and the digests of the training sequences (the
tensor ``bioseqnn.train_digest``, described in ``data.digest``). A file is written in the
oldest format that holds it, so older versions read what they can (every model file that
train writes now holds digests: format 4)."""
MAX_MEMBERS = 64
MANIFEST_KEY = "bioseqnn"
MAX_HEADER = 64 * 1024 * 1024
"""The longest safetensors header (its JSON, the manifest included) read."""


def model_input(manifest: dict[str, Any]) -> Alphabet | SeriesSpec | StructureInput:
    """What a (validated) manifest's network reads: an alphabet, an alphabet with folding
    channels, or a series' channels."""
    if "input" in manifest:
        return SeriesSpec.from_dict(manifest["input"])
    alphabet = ALPHABETS[manifest["alphabet"]]
    if "structure" in manifest:
        return StructureInput.from_dict(alphabet, manifest["structure"])
    return alphabet


def member_models(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    """The network settings of each of a (validated) manifest's members: one for a
    single model, the same settings for each seed of ``--ensemble``, each member's own
    for a mixed ensemble (``member_models``)."""
    if "member_models" in manifest:
        return list(manifest["member_models"])
    return [manifest["model"]] * int(manifest.get("ensemble", 1))


MAX_TENSORS = 100_000
MAX_PAYLOAD = 8 * MAX_WEIGHTS
"""Bytes of weights read from a pipe at most (a regular file's size is known)."""
MAX_DEPTH = 32
MAX_ITEMS = 100_000
MAX_STRING = 100_000


def _json(text: str | bytes, name: str, what: str) -> Any:
    """Parse JSON from a model file; anything unreadable (or absurdly nested) is an error."""
    try:
        return json.loads(text)
    # ValueError: JSONDecodeError, or an integer of more digits than Python converts
    except (UnicodeDecodeError, ValueError, RecursionError, TypeError):
        raise ModelFileError(f"{name}: not a bioseqnn model file (unreadable {what})") from None


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _check_header(raw: bytes, name: str, payload: int | None) -> dict[str, Any]:
    """The safetensors header (``raw``: its JSON text), with every tensor entry checked
    against the ``payload`` (bytes after the header; None: unknown, a pipe)."""
    header = _json(raw, name, "header")
    if not isinstance(header, dict) or len(header) > MAX_TENSORS:
        raise ModelFileError(f"{name}: not a bioseqnn model file")
    for key, info in header.items():
        if key == "__metadata__":
            continue
        offsets = info.get("data_offsets") if isinstance(info, dict) else None
        shape = info.get("shape") if isinstance(info, dict) else None
        if not (
            isinstance(offsets, list)
            and len(offsets) == 2
            and all(map(_is_int, offsets))
            and 0 <= offsets[0] <= offsets[1]
            and isinstance(shape, list)
            and len(shape) <= 8
            and all(_is_int(d) and d >= 0 for d in shape)
        ):
            raise ModelFileError(f"{name}: damaged tensor entry {shorten(key)!r}")
        if offsets[1] > (MAX_PAYLOAD if payload is None else payload):
            raise ModelFileError(
                f"{name}: model file is truncated (tensor {shorten(key)!r} incomplete)"
            )
    return header


def _not_a_model(name: str, head: bytes) -> ModelFileError:
    """The refusal of a file whose first bytes are no safetensors header; a sequence file
    (arguments in the wrong order) is named as one."""
    first = head.lstrip(b"\xef\xbb\xbf")[:1]
    hint = ""
    if first in (b">", b"@"):
        hint = (
            f"; it starts like {'FASTA' if first == b'>' else 'FASTQ'}: is the order of "
            "the arguments right? The model file comes first, then the sequences"
        )
    return ModelFileError(f"{name}: not a bioseqnn model file (no safetensors header){hint}")


class ModelFile:
    """A model file opened for reading: its header and manifest are read and checked
    first (a few bytes, then at most MAX_HEADER), the weights only when asked for.

    A path that is no regular file or pipe (a directory, /dev/zero, a terminal) is
    refused before anything is read, and nothing is read past what the header claims:
    a multi-gigabyte FASTA given as the model costs its first 8 bytes.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.name = name = str(path)
        self.handle = _open_model(path)
        try:
            st = os.fstat(self.handle.fileno())
            self.size = st.st_size if stat.S_ISREG(st.st_mode) else None
            prefix = self.handle.read(8)
            if len(prefix) < 8:
                raise ModelFileError(f"{name}: not a bioseqnn model file (too short)")
            (length,) = struct.unpack("<Q", prefix)
            if length > MAX_HEADER or length < 2:
                raise _not_a_model(name, prefix)
            if self.size is not None and 8 + length > self.size:
                if self.handle.read(1) != b"{":
                    raise _not_a_model(name, prefix)
                raise ModelFileError(f"{name}: model file is truncated (header runs past the end)")
            raw = self.handle.read(length)
            if raw[:1] != b"{":
                raise _not_a_model(name, prefix)
            if len(raw) < length:
                raise ModelFileError(f"{name}: model file is truncated (header runs past the end)")
            self.prefix = prefix + raw
            payload = None if self.size is None else self.size - 8 - length
            self.header = _check_header(raw, name, payload)
            meta = self.header.get("__metadata__") or {}
            if not isinstance(meta, dict) or not isinstance(meta.get(MANIFEST_KEY), str):
                raise ModelFileError(
                    f"{name}: a safetensors file, but not a bioseqnn model (no manifest)"
                )
            self.manifest = validate_manifest(_json(meta[MANIFEST_KEY], name, "manifest"), name)
            self._check_weights()
        except BaseException:
            self.handle.close()
            raise

    def __enter__(self) -> ModelFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.handle.close()

    def _check_weights(self) -> None:
        """The weights the manifest's model needs are no more than the file holds (a
        cheap comparison before the exact one, which builds the model)."""
        sizes = [model_size(c, *_size_args(self.manifest)) for c in _member_configs(self.manifest)]
        needed = sum(s.weights for s in sizes)
        held = sum(math.prod(shape) for shape in self.shapes().values())
        if needed > held:
            raise ModelFileError(
                f"{self.name}: weights do not fit the manifest (it describes a model of "
                f"{needed:,} weights, the file holds {held:,})"
            )

    def check_digest(self) -> None:
        """The training sequences' digests, where the file has them, are a vector of
        64-bit values in a file of format 4 or later."""
        entry = self.header.get(DIGEST_TENSOR)
        if entry is not None:
            expect(
                entry.get("dtype") == "I64"
                and len(entry["shape"]) == 1
                and self.manifest["format_version"] >= 4,
                self.name,
                f"{DIGEST_TENSOR} must be a vector of 64-bit digests (format 4)",
            )

    def shapes(self) -> dict[str, tuple[int, ...]]:
        return {
            k: tuple(v["shape"])
            for k, v in self.header.items()
            if k not in ("__metadata__", DIGEST_TENSOR)
        }

    def contents(self) -> bytes:
        """The whole file (header and weights), as safetensors reads it."""
        if self.size is not None:
            want = self.size - len(self.prefix)
        else:  # a pipe: as far as the last tensor reaches
            ends = [v["data_offsets"][1] for k, v in self.header.items() if k != "__metadata__"]
            want = max(ends, default=0)
        rest = self.handle.read(want)
        if len(rest) < want:
            raise ModelFileError(f"{self.name}: model file is truncated (the weights end early)")
        return self.prefix + rest


def _open_model(path: str | os.PathLike[str]) -> Any:
    """Open a model path for reading bytes; what is not a file is refused unread."""
    name = str(path)
    if name == "-":
        raise UsageError(
            "MODEL '-': a model is read from a file (or a pipe such as <(zcat m.bsnn.gz)), "
            "not from standard input"
        )
    try:
        mode = os.stat(path).st_mode
        if stat.S_ISDIR(mode):
            raise IsADirectoryError
        if not (stat.S_ISREG(mode) or stat.S_ISFIFO(mode)):
            raise ModelFileError(
                f"{name}: not a bioseqnn model file (a device or socket, not a file)"
            )
        return open(path, "rb")  # noqa: SIM115
    except FileNotFoundError:  # a missing input is a usage error, as for every input
        raise UsageError(f"{name}: no such model file") from None
    except IsADirectoryError:
        raise UsageError(f"{name}: is a directory, not a model file") from None
    except PermissionError:
        raise ModelFileError(f"{name}: permission denied") from None
    except OSError as exc:  # a loop of symbolic links, an I/O error
        raise ModelFileError(f"{name}: cannot read: {exc.strerror or exc}") from None


def expect(cond: bool, name: str, what: str) -> None:
    if not cond:
        raise ModelFileError(f"{name}: invalid manifest: {what}")


def _check_plain(value: Any, name: str, depth: int = 0) -> None:
    """JSON values only, bounded in depth, length and size (before any field is read)."""
    expect(depth <= MAX_DEPTH, name, "nested too deeply")
    if isinstance(value, str):
        expect(len(value) <= MAX_STRING, name, "a text field is too long")
    elif isinstance(value, (list, dict)):
        expect(len(value) <= MAX_ITEMS, name, "a field has too many items")
        items = value.values() if isinstance(value, dict) else value
        for item in items:
            _check_plain(item, name, depth + 1)


def is_name(x: Any) -> bool:
    """Text of 1 to MAX_NAME characters without control characters: what is written as
    a column name or a row's cell (a TAB or a newline would break the TSV)."""
    return isinstance(x, str) and 0 < len(x) <= MAX_NAME and not CONTROL.search(x)


def _short_names(values: Any, name: str, what: str, nonempty: bool = False) -> None:
    expect(
        isinstance(values, list) and all(map(is_name, values)),
        name,
        f"{what} must be names (1 to {MAX_NAME} characters, no control characters)",
    )
    expect(len(set(values)) == len(values), name, f"{what} are not unique")
    expect(not nonempty or len(values) > 0, name, f"{what} are missing")


# Optional top-level fields and their types: read by 'info', 'evaluate' and others.
_OPTIONAL_FIELDS: dict[str, Any] = {
    "bioseqnn_version": str,
    "torch_version": str,
    "created": str,
    "device": str,
    "max_length_policy": str,
    "parameters": int,
    "seed": int,
    "per_position": bool,
    "encoding": dict,
    "training": dict,
    "data": dict,
    "metrics": dict,
    "init_from": dict,
}
"""``init_from`` (a fine-tuned model's parent: its file's sha256, its path as given, whether
the backbone was frozen, the member taken from an ensemble) came after format 4 without a
new version: older readers leave a field they do not know alone."""


_TYPE_NAMES = {str: "text", int: "an integer", bool: "true or false", dict: "a mapping"}


def _check_optional(m: dict[str, Any], name: str) -> None:
    for key, kind in _OPTIONAL_FIELDS.items():
        if key not in m:
            continue
        value = m[key]
        ok = _is_int(value) if kind is int else isinstance(value, kind)
        expect(ok, name, f"{key} must be {_TYPE_NAMES[kind]}")
    for key, value in m.get("encoding", {}).items():
        expect(isinstance(value, str), name, f"encoding.{key} must be text")
    _check_training(m.get("training", {}), name)
    _check_init_from(m.get("init_from", {}), name)
    data = m.get("data", {})
    if "sources" in data:
        expect(
            isinstance(data["sources"], list) and all(isinstance(x, str) for x in data["sources"]),
            name,
            "data.sources",
        )
    for key in ("records", "train_records", "val_records"):
        expect(key not in data or _is_int(data[key]), name, f"data.{key} must be an integer")
    for key in ("fingerprint_sha256", "val_fingerprint_sha256", "note"):
        expect(isinstance(data.get(key, ""), str), name, f"data.{key} must be text")
    lengths = data.get("lengths", {})
    expect(
        isinstance(lengths, dict)
        and all(_is_number(x) and math.isfinite(x) and x >= 0 for x in lengths.values()),
        name,
        "data.lengths must hold numbers",
    )
    _check_metrics(m.get("metrics", {}), name, "metrics")
    members = m.get("metrics", {}).get("members", [])
    expect(
        isinstance(members, list)
        and len(members) <= MAX_MEMBERS
        and all(isinstance(x, dict) for x in members),
        name,
        "metrics.members must list one mapping per member",
    )
    for i, member in enumerate(members):
        _check_metrics(member, name, f"metrics.members[{i}]")
        expect(
            member.get("seed") is None or _is_int(member["seed"]),
            name,
            f"metrics.members[{i}].seed must be an integer",
        )
        expect(
            isinstance(member.get("source", ""), str),
            name,
            f"metrics.members[{i}].source must be text",
        )


def _check_init_from(parent: dict[str, Any], name: str) -> None:
    if not parent:
        return
    sha = parent.get("fingerprint_sha256")
    expect(
        isinstance(sha, str) and re.fullmatch("[0-9a-f]{64}", sha) is not None,
        name,
        "init_from.fingerprint_sha256 must be a SHA-256 in hex",
    )
    expect(is_name(parent.get("path")), name, "init_from.path must be a path")
    expect(isinstance(parent.get("frozen"), bool), name, "init_from.frozen must be true or false")
    member = parent.get("member", 1)
    expect(
        _is_int(member) and 1 <= member <= MAX_MEMBERS,
        name,
        "init_from.member must be a member number",
    )
    expect(
        set(parent) <= {"fingerprint_sha256", "path", "frozen", "member"},
        name,
        "unknown init_from fields",
    )


def _check_metrics(metrics: dict[str, Any], name: str, where: str) -> None:
    for key in ("best", "final"):
        record = metrics.get(key, {})
        expect(
            isinstance(record, dict)
            and all(_is_number(v) or v is None or isinstance(v, str) for v in record.values()),
            name,
            f"{where}.{key} must map names to numbers",
        )
    for key in ("best_epoch", "epochs_run", "resumed_from"):
        expect(
            metrics.get(key) is None or _is_int(metrics[key]),
            name,
            f"{where}.{key} must be an integer",
        )
    expect(isinstance(metrics.get("monitor", ""), str), name, f"{where}.monitor must be text")
    expect(
        isinstance(metrics.get("stopped_early", False), bool),
        name,
        f"{where}.stopped_early must be true or false",
    )
    expect(_is_number(metrics.get("seconds", 0)), name, f"{where}.seconds must be a number")


def _check_training(training: dict[str, Any], name: str) -> None:
    """The training settings the file records: each known one of its type (a key of a
    newer version is left alone); read by predict (rc_average) and 'config --from'."""
    from .config import TrainConfig, check_value

    hints = typing.get_type_hints(TrainConfig)
    for key, value in training.items():
        if key not in hints:
            continue
        try:
            check_value(f"training.{key}", value, hints[key])
        except UsageError:
            raise ModelFileError(
                f"{name}: invalid manifest: training.{key} has an invalid value"
            ) from None


def _check_task(task: dict[str, Any], name: str, m_per_position: Any = False) -> None:
    expect(set(task) <= {f.name for f in fields(TaskSpec)}, name, "unknown task fields")
    kind = task.get("kind")
    expect(isinstance(kind, str) and kind in TASKS, name, "unknown task kind")
    targets, classes = task.get("targets") or [], task.get("classes", [])
    _short_names(targets, name, "task.targets", nonempty=True)
    _short_names(classes, name, "task.classes")
    if kind == "binary":
        expect(len(classes) == 2, name, "a binary task needs exactly two classes")
    elif kind in ("multiclass", *PER_POSITION_KINDS):
        expect(len(classes) >= 2, name, f"a {kind} task needs two or more classes")
    else:
        expect(not classes, name, f"a {kind} task has no classes")
    expect(
        (kind in PER_POSITION_KINDS) == bool(m_per_position),
        name,
        "per_position must be true exactly for a per-position or language-model task",
    )
    if kind in ("binary", "multiclass", *PER_POSITION_KINDS):
        expect(len(targets) == 1, name, f"a {kind} task has one target")
    for key in ("target_mean", "target_std", "class_weights"):
        values = task.get(key, [])
        expect(
            isinstance(values, list) and all(_is_number(x) and math.isfinite(x) for x in values),
            name,
            f"task.{key} must hold finite numbers",
        )
    for key in ("target_mean", "target_std"):
        expect(len(task.get(key, [])) in (0, len(targets)), name, f"task.{key} length")
    expect(all(x > 0 for x in task.get("target_std", [])), name, "task.target_std must be > 0")
    weights = task.get("class_weights", [])
    expect(len(weights) in (0, len(classes) or len(targets)), name, "task.class_weights length")
    expect(all(x >= 0 for x in weights), name, "task.class_weights must be >= 0")


def validate_manifest(m: Any, name: str) -> dict[str, Any]:
    """Check types and sizes of every manifest field before anything uses it: each one's
    type first (tests/unit/test_modelfile_fuzz.py tries every field with values of every
    type, inside and beyond its range)."""
    expect(isinstance(m, dict), name, "not a mapping")
    _check_plain(m, name)
    expect(m.get("format") == FORMAT, name, "not a bioseqnn model")
    version = m.get("format_version")
    expect(_is_int(version), name, "format_version is not an integer")
    if version > FORMAT_VERSION:
        raise ModelFileError(
            f"{name}: model file format {version} is newer than this bioseqnn "
            f"({__version__}) reads (format {FORMAT_VERSION}); upgrade bioseqnn"
        )
    expect(version >= 1, name, f"format_version {version}")
    if "ensemble" in m:
        members = m["ensemble"]
        expect(version >= 2, name, "an ensemble needs format_version 2")
        expect(
            _is_int(members) and 2 <= members <= MAX_MEMBERS,
            name,
            f"ensemble must be a member count from 2 to {MAX_MEMBERS}",
        )
    if "input" in m:
        _check_series(m["input"], name)
        expect(version >= 3, name, "numeric series input needs format_version 3")
        expect("alphabet" not in m, name, "a series model has no alphabet")
    else:
        alphabet = m.get("alphabet")
        expect(isinstance(alphabet, str) and alphabet in ALPHABETS, name, "unknown alphabet")
    expect(
        isinstance(m.get("per_position", False), bool), name, "per_position must be true or false"
    )
    if "structure" in m:
        _check_structure(m["structure"], m, name)
        expect(version >= 4, name, "structure input needs format_version 4")
    task = m.get("task")
    expect(isinstance(task, dict), name, "task is missing")
    _check_task(task, name, m.get("per_position", False))
    expect(
        "input" not in m or task["kind"] not in PER_POSITION_KINDS,
        name,
        "a series model predicts one row per series",
    )
    _check_model_config(m.get("model"), name, "model")
    if "member_models" in m:
        configs = m["member_models"]
        expect(
            "ensemble" in m and isinstance(configs, list) and len(configs) == m["ensemble"],
            name,
            "member_models must list one config per ensemble member",
        )
        for i, config in enumerate(configs):
            _check_model_config(config, name, f"member_models[{i}]")
    _check_optional(m, name)
    rc_average = m.get("training", {}).get("rc_average", False)
    expect(
        not rc_average or m.get("alphabet") in ("dna", "rna"),
        name,
        "training.rc_average is for DNA/RNA models",
    )
    _check_size(m, name)
    return m


def _member_configs(m: dict[str, Any]) -> list[ModelConfig]:
    """Each member's architecture settings (one for a single model)."""
    if "member_models" in m:
        return [ModelConfig(**c) for c in m["member_models"]]
    return [ModelConfig(**m["model"])] * m.get("ensemble", 1)


def _size_args(m: dict[str, Any]) -> tuple[int, int, bool]:
    """What sizes a manifest's model besides its settings: input channels, outputs, and
    whether it has an output per position."""
    return (
        model_input(m).size,
        TaskSpec.from_dict(m["task"]).n_outputs,
        bool(m.get("per_position", False)),
    )


def _check_size(m: dict[str, Any], name: str) -> None:
    """The model the manifest describes is within what bioseqnn builds (computed from
    its settings, nothing built)."""
    try:
        problem = too_large(_member_configs(m), *_size_args(m))
    except UsageError as exc:  # an unknown architecture or pooling
        raise ModelFileError(f"{name}: invalid manifest: {exc}") from None
    expect(problem is None, name, str(problem))


MAX_CHANNELS = 4096


def _check_structure(spec: Any, m: dict[str, Any], name: str) -> None:
    expect(
        isinstance(spec, dict) and spec.get("tool") == "ViennaRNA",
        name,
        "structure must name its folding tool",
    )
    expect(spec.get("kind") in STRUCTURE_KINDS[1:], name, "structure.kind")
    expect(isinstance(spec.get("version", ""), str), name, "structure.version must be text")
    expect(isinstance(spec.get("channels", []), list), name, "structure.channels")
    expect(
        "input" not in m and ALPHABETS[m["alphabet"]].is_nucleotide,
        name,
        "structure input needs a nucleotide alphabet",
    )


def _check_series(spec: Any, name: str) -> None:
    expect(
        isinstance(spec, dict) and spec.get("kind") == "series",
        name,
        "input must be a numeric series",
    )
    channels = spec.get("channels")
    _short_names(channels, name, "input.channels", nonempty=True)
    expect(len(channels) <= MAX_CHANNELS, name, f"at most {MAX_CHANNELS} input channels")
    expect(
        isinstance(spec.get("id_column", "id"), str)
        and 0 < len(spec.get("id_column", "id")) <= MAX_NAME,
        name,
        "input.id_column must be a name",
    )
    for key in ("mean", "std"):
        values = spec.get(key)
        expect(
            isinstance(values, list)
            and len(values) == len(channels)
            and all(_is_number(x) and math.isfinite(x) for x in values),
            name,
            f"input.{key} must hold one finite number per channel",
        )
    expect(all(x > 0 for x in spec["std"]), name, "input.std must be > 0")
    expect(
        set(spec) <= {"kind", "id_column", "channels", "mean", "std"}, name, "unknown input fields"
    )


def _check_model_config(model: Any, name: str, label: str) -> None:
    expect(isinstance(model, dict), name, f"{label} config is missing")
    known = {f.name: f for f in fields(ModelConfig)}
    expect(
        set(model) <= set(known), name, f"unknown {label} keys {sorted(set(model) - set(known))}"
    )
    for key, value in model.items():
        default = getattr(ModelConfig(), key)
        if isinstance(default, list):
            ok = (
                isinstance(value, list)
                and len(value) <= MODEL_LIST_MAX
                and all(_is_int(v) and 0 <= v <= MODEL_NUMBER_MAX for v in value)
            )
        elif isinstance(default, bool):
            ok = isinstance(value, bool)
        elif isinstance(default, int):
            ok = _is_int(value) and 0 <= value <= MODEL_NUMBER_MAX
        elif isinstance(default, float):
            ok = _is_number(value) and 0 <= value < 1
        else:
            ok = isinstance(value, str) and len(value) < 100
        expect(ok, name, f"{label}.{key} has an invalid value")
    from .config import validate_model

    try:  # the ranges training checks (a setting of 0 heads would divide by zero)
        validate_model(ModelConfig(**model))
    except UsageError as exc:
        raise ModelFileError(f"{name}: invalid manifest: {label}: {exc}") from None


def read_manifest(path: str | os.PathLike[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The validated manifest and the safetensors header of a model file (its weights are
    not read)."""
    with ModelFile(path) as model_file:
        return model_file.manifest, model_file.header


def model_config(model: str | os.PathLike[str]) -> tuple[RunConfig, str]:
    """A model file's resolved config, and a header that names the file (for
    ``bioseqnn config --from`` and tune's best.yaml, through config.write_config)."""
    from .config import TrainConfig, config_from_dict
    from .io.files import display_name

    manifest, _ = read_manifest(model)
    known = {f.name for f in fields(TrainConfig)}  # not a newer version's
    training = {k: v for k, v in (manifest.get("training") or {}).items() if k in known}
    lm = (manifest.get("task") or {}).get("kind") == "language-model"
    network = dict(manifest["model"])
    if lm or manifest.get("per_position"):  # one output per position: pooling unused,
        network["pooling"] = "auto"  # and a value given for it would be warned about
    try:
        cfg = config_from_dict({"model": network, "training": training})
    except UsageError as exc:  # a setting train would refuse: the file was edited
        raise ModelFileError(f"{display_name(model)}: invalid manifest: {exc}") from None
    header = f"the resolved config of {display_name(model)}"
    if lm:  # the task is not a setting: train is told it, as when it was trained
        header += (
            " (a language model: train again with "
            "bioseqnn train SEQUENCES --task language-model --config THIS.yaml)"
        )
    if "member_models" in manifest:  # one config trains one network per member
        header += (
            " (an ensemble of different networks: this is its first member's; "
            "'bioseqnn info' lists them all)"
        )
    return cfg, header
