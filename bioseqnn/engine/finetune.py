"""Fine-tuning: a training run that starts from another model file's weights.

The parent's network settings become the run's (a setting given otherwise is refused,
except those that hold no weights); its backbone, and attention pooling's weights, are
copied into every new model; its head too when the task's outputs are the same, else the
new model keeps a freshly initialised head. ``freeze`` keeps the backbone as it is: no
gradients, and run as in prediction (batch-norm statistics and its inner dropout fixed).
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
from torch import nn

from ..alphabets import Alphabet
from ..bundle import load_bundle
from ..config import ModelConfig
from ..digest import seen_in_training
from ..errors import ModelFileError, UsageError
from ..io.files import display_name
from ..modelfile import model_input, read_manifest
from ..models.base import AUTO, Ensemble, SequenceModel, count_parameters
from ..structure import StructureInput
from ..tasks import TaskSpec
from ..variants.series import SeriesSpec

log = logging.getLogger("bioseqnn")
T = TypeVar("T")

NO_WEIGHTS = ("dropout", "max_length")
"""Network settings that hold no weights: a fine-tuning run may set them otherwise."""
AUTOMATIC = {"arch": AUTO, "pooling": AUTO, "pool_sizes": []}
"""Automatic values: given so, a setting takes the parent's."""


@dataclass
class Parent:
    """The model file a run starts from (one member of an ensemble)."""

    path: str
    sha256: str
    manifest: dict[str, Any]
    model: SequenceModel
    member: int | None
    """The ensemble member taken (1-based); None for a single model."""
    train_digest: np.ndarray | None = None
    """The digests of the parent's training sequences (None: its file keeps none)."""

    @property
    def name(self) -> str:
        return display_name(self.path)

    @property
    def settings(self) -> dict[str, Any]:
        """The network settings of the model taken (its member's, in an ensemble)."""
        return dataclasses.asdict(self.model.config)

    @property
    def task(self) -> TaskSpec:
        return TaskSpec.from_dict(self.manifest["task"])

    def record(self, frozen: bool) -> dict[str, Any]:
        """The manifest's ``init_from``."""
        return {
            "fingerprint_sha256": self.sha256,
            "path": self.path,
            "frozen": frozen,
            **({"member": self.member} if self.member is not None else {}),
        }


def file_sha256(path: str | os.PathLike[str]) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _named(read: Callable[[Any], T], path: str | os.PathLike[str]) -> T:
    """``read(path)``, its refusal of a file that is no model file said of --init-from
    (without the hint about the order of the arguments, which is for a model argument)."""
    try:
        return read(path)
    except ModelFileError as exc:
        raise ModelFileError(f"--init-from {str(exc).split('; it starts like')[0]}") from None


def load_parent(path: str | os.PathLike[str], member: int | None = None) -> Parent:
    """The parent model file, read once; an ensemble needs ``member`` (1-based)."""
    name = display_name(path)
    if str(path) == "-":
        raise UsageError("--init-from needs a model file's path, not '-'")
    bundle = _named(load_bundle, path)
    sha = file_sha256(path)
    model = bundle.model
    if isinstance(model, Ensemble):
        count = len(model.members)
        what = (
            "a cross-validated model"
            if isinstance(bundle.manifest.get("metrics", {}).get("cv"), dict)
            else "an ensemble"
        )
        if member is None:
            raise UsageError(
                f"--init-from {name}: {what} of {count} members; choose the "
                f"one to start from with --init-member 1..{count}"
            )
        if not 1 <= member <= count:
            raise UsageError(f"--init-member {member}: {name} has members 1..{count}")
        model = model.members[member - 1]  # type: ignore[assignment]
        log.info("starting from member %d of %d of %s", member, count, name)
    elif member not in (None, 1):
        raise UsageError(f"--init-member {member}: {name} is a single model, not an ensemble")
    else:
        member = None
    assert isinstance(model, SequenceModel)
    return Parent(str(path), sha, bundle.manifest, model, member, bundle.train_digest)


def conflicts(settings: dict[str, Any], given: dict[str, Any], pools: bool) -> list[str]:
    """The ``given`` network settings that differ from a parent's ``settings``, as
    'hidden-size 64 here, 128 in the parent' (automatic values and settings that hold no
    weights left out); ``pools``: the parent pools its states."""
    out = []
    for key, value in given.items():
        if key in NO_WEIGHTS or value is None or AUTOMATIC.get(key, object()) == value:
            continue
        if key == "pooling" and not pools:
            continue  # a per-position or language-model parent has none to differ from
        if value != settings.get(key):
            out.append(
                f"{key.replace('_', '-')} {_shown(value)} here, "
                f"{_shown(settings.get(key))} in the parent"
            )
    return out


def refuse_conflicts(name: str, found: list[str]) -> None:
    if found:
        raise UsageError(
            f"--init-from {name}: {'; '.join(found)} (the network settings "
            "are the parent's: leave them out)"
        )


def check_given(path: str | os.PathLike[str], member: int | None, given: dict[str, Any]) -> None:
    """Network settings given explicitly (command-line flags: a default value given on
    purpose counts too) against the parent's, read from its manifest alone."""
    manifest, _ = _named(read_manifest, path)
    configs = manifest.get("member_models") or [manifest["model"]]
    settings = configs[min(max((member or 1) - 1, 0), len(configs) - 1)]
    refuse_conflicts(
        display_name(path), conflicts(settings, given, not manifest.get("per_position", False))
    )


def _shown(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):
        return ",".join(map(str, value))
    return str(value)


def inherit(parent: Parent, config: ModelConfig, pools: bool) -> ModelConfig:
    """The run's network settings: the parent's, with those that hold no weights as
    given. A setting given otherwise (anything but its default) is refused in one line.
    ``pools``: the new model pools its states (one output per sequence)."""
    defaults = ModelConfig()
    given = {
        f.name: getattr(config, f.name)
        for f in dataclasses.fields(config)
        if getattr(config, f.name) != getattr(defaults, f.name)
    }
    refuse_conflicts(
        parent.name, conflicts(parent.settings, given, parent.model.pooling is not None)
    )
    settings = parent.settings
    for key in NO_WEIGHTS:
        if key in given and given[key] != settings[key]:
            log.info(
                "--init-from: %s %s (the parent's: %s)",
                key.replace("_", "-"),
                _shown(given[key]),
                _shown(settings[key]),
            )
            settings[key] = given[key]
    if pools and parent.model.pooling is None:
        settings["pooling"] = config.pooling  # the parent had none: this run's choice
    elif not pools:
        settings["pooling"] = AUTO  # unused (one output per position)
    return ModelConfig(**settings)


def describe_input(spec: Alphabet | SeriesSpec | StructureInput) -> str:
    if isinstance(spec, SeriesSpec):
        return f"numeric series of channels {', '.join(spec.channels)}"
    if isinstance(spec, StructureInput):
        return f"{spec.alphabet.name} with {spec.kind} structure channels"
    return spec.name


def check_input(parent: Parent, spec: Alphabet | SeriesSpec | StructureInput) -> None:
    """The new data must be read as the parent's was: the same alphabet, series channels
    or structure channels (a series' normalisation is this run's own)."""
    here, there = describe_input(spec), describe_input(model_input(parent.manifest))
    if here != there:
        raise UsageError(
            f"--init-from {parent.name}: the input is {here} here, {there} in "
            "the parent; fine-tuning needs the same input"
        )


def same_outputs(parent: TaskSpec, task: TaskSpec) -> bool:
    """The head can be copied: the same kind of task with the same classes and targets in
    the same order."""
    return (
        parent.kind == task.kind
        and list(parent.classes) == list(task.classes)
        and list(parent.targets) == list(task.targets)
    )


def head_message(parent: Parent, task: TaskSpec) -> str | None:
    """Why the head starts anew (None: it is copied)."""
    old = parent.task
    if same_outputs(old, task):
        return None
    if old.kind == "language-model":
        arch = parent.model.config.arch
        how = "now attending in both directions" if arch == "transformer" else "read left to right"
        return (
            f"the parent is a language model: its backbone ({arch}, {how}) starts this "
            f"{task.kind} model; new head"
        )
    if (
        old.classes
        and task.classes
        and (old.kind == "per-position") == (task.kind == "per-position")
    ):
        if len(old.classes) != len(task.classes):
            return f"new head: {len(task.classes)} classes here, the parent's {len(old.classes)}"
        return (
            f"new head: classes {', '.join(task.classes)} here, the parent's "
            f"{', '.join(old.classes)}"
        )
    if old.kind == task.kind:
        return (
            f"new head: targets {', '.join(task.targets)} here, the parent's "
            f"{', '.join(old.targets)}"
        )
    return f"new head: a {task.kind} task here, the parent's is {old.kind}"


def start_from(model: SequenceModel, parent: Parent, task: TaskSpec, freeze: bool) -> None:
    """Copy the parent's backbone (and attention pooling, and the head when the outputs
    match) into ``model``; with ``freeze`` the backbone stays as it is."""
    model.backbone.load_state_dict(parent.model.backbone.state_dict())
    if (
        model.pooling is not None
        and parent.model.pooling is not None
        and model.pooling.mode == parent.model.pooling.mode
    ):
        model.pooling.load_state_dict(parent.model.pooling.state_dict())
    if same_outputs(parent.task, task):
        model.head.load_state_dict(parent.model.head.state_dict())
    if freeze:
        for p in model.backbone.parameters():
            p.requires_grad_(False)
        model.backbone_frozen = True


def check_overlap(parent: Parent, held_out: np.ndarray) -> None:
    """Warn when validation records (their digests ``held_out``) have the sequence of a
    record of the parent's training data (its validation part included, which chose its
    best epoch): the run's validation figures then overstate how well it generalises."""
    if parent.train_digest is None or not len(held_out):
        return
    seen = int(seen_in_training(held_out, parent.train_digest).sum())
    if seen:
        log.warning(
            "--init-from %s: %d of %d validation record(s) (%.1f%%) have the sequence "
            "of a record of the parent's training data: the validation figures "
            "overstate how well the model generalises",
            parent.name,
            seen,
            len(held_out),
            100 * seen / len(held_out),
        )


def trainable(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def report(model: SequenceModel, parent: Parent, task: TaskSpec, freeze: bool) -> None:
    """The log lines of a fine-tuning run (once, for its first model)."""
    message = head_message(parent, task)
    log.info(
        "--init-from %s: backbone%s copied%s",
        parent.name,
        " and attention pooling"
        if model.pooling is not None
        and model.pooling.mode == "attention"
        and parent.model.pooling is not None
        else "",
        "; " + message if message else ", head too (the same outputs)",
    )
    if freeze:
        log.info(
            "--freeze-backbone: %s of %s parameters train (the head%s)",
            f"{trainable(model):,}",
            f"{count_parameters(model):,}",
            " and pooling"
            if model.pooling is not None and model.pooling.mode == "attention"
            else "",
        )
