"""The search space of ``bioseqnn tune``: one data structure, printed as YAML
(``--show-space``), read back from YAML (``--space``) and sampled by an Optuna trial.

A setting's value in the space says how it is searched:

- a list: the choices (categorical);
- a mapping ``{low: A, high: B}`` (optionally ``log: true``, ``step: S``): a range, of
  integers when the setting is an integer, else of floats;
- anything else: a fixed value, the same in every trial.

``families`` lists the architectures searched (leave one out to never try it). The four
convolution settings (channels, kernel_sizes, dilations, pool_sizes) describe one layer:
each layer picks its own, and ``conv_layers`` sets how many layers there are. A setting
is only sampled for a family that reads it (config.ARCHITECTURES), ``bidirectional``
only for the plain recurrent families, ``class_weight`` only for classes and
``rc_augment`` only for DNA/RNA, ``structure`` (RNA secondary structure as input
channels) only for DNA/RNA labelled records and only where ViennaRNA is installed.
Nothing here imports torch or optuna.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import typing
from pathlib import Path
from typing import Any

import yaml

from ..config import (
    ARCHITECTURES,
    CONV_FIELDS,
    MODEL_LIST_MAX,
    POOLINGS,
    SCHEDULES,
    STRUCTURE_KINDS,
    Bounds,
    ModelConfig,
    TrainConfig,
    check_setting,
    check_value,
)
from ..errors import SettingError, UsageError, printable, shown
from ..yamlio import SettingsDumper, read_yaml

DEFAULT_SPACE: dict[str, Any] = {
    "families": ["lstm", "gru", "cnn", "cnn-lstm", "cnn-gru", "transformer"],
    "model": {
        "bidirectional": [False, True],
        "hidden_size": {"low": 16, "high": 256, "log": True},
        "layers": {"low": 1, "high": 2},
        "conv_layers": {"low": 1, "high": 3},
        "channels": [32, 64, 128, 256],
        "kernel_sizes": [3, 5, 9, 15],
        "dilations": [1, 2, 4],
        "pool_sizes": [1, 2, 3],
        "pooling": ["last", "mean", "max", "attention"],
        "dropout": {"low": 0.0, "high": 0.5},
        "d_model": [32, 64, 128],
        "heads": [2, 4],
        "ff_size": [64, 128, 256],
        "max_length": 2048,
    },
    "training": {
        "lr": {"low": 1.0e-4, "high": 1.0e-2, "log": True},
        "weight_decay": {"low": 1.0e-6, "high": 1.0e-1, "log": True},
        "batch_size": [16, 32, 64, 128],
        "schedule": ["none", "plateau", "cosine", "onecycle"],
        "class_weight": ["none", "balanced"],
        "rc_augment": [False, True],
        "structure": ["none", "mfe"],
        "epochs": 30,
        "patience": 5,
    },
}
"""The default search space (``bioseqnn tune --show-space``)."""

# settings the command line owns: searching them would make trials incomparable
# (seed, monitor, validation split) or is another command's job
_NOT_IN_SPACE = {
    "arch": "list architectures under 'families'",
    "seed": "set it with --seed",
    "monitor": "set it with --monitor",
    "cv": "tune validates on one split",
    "ensemble": "use --ensemble-top",
    "checkpoint_dir": "tune keeps every trial's model instead",
}
# settings that may be set but not searched: every trial must read the same data alike
_FIXED_ONLY = (
    "val_fraction",
    "device",
    "threads",
    "precision",
    "max_tokens",
    "rc_average",
    "max_length",
)
_CHOICES = {"pooling": POOLINGS, "schedule": SCHEDULES, "structure": STRUCTURE_KINDS}
_HINTS = {
    "model": typing.get_type_hints(ModelConfig),
    "training": typing.get_type_hints(TrainConfig),
}
_EXTRA = {"model": {"conv_layers": int}, "training": {}}
_CONV_LAYERS = Bounds(at_least=1, at_most=MODEL_LIST_MAX)
"""The convolution layers a trial may build: each takes an entry of the per-layer
settings (channels, ...), which train bounds by MODEL_LIST_MAX."""


def default_space() -> dict[str, Any]:
    return copy.deepcopy(DEFAULT_SPACE)


def space_yaml(space: dict[str, Any] | None = None) -> str:
    header = (
        "# bioseqnn tune search space: a list is the choices, {low, high, log, step} a "
        "range,\n# any other value is fixed; edit and pass with --space FILE.\n"
    )
    return header + yaml.dump(space or DEFAULT_SPACE, Dumper=SettingsDumper, sort_keys=False)


def _hint(section: str, key: str) -> Any:
    if key in _EXTRA[section]:
        return _EXTRA[section][key]
    hint = _HINTS[section][key]
    if key in CONV_FIELDS:
        return int  # one layer's value
    return hint


def _check_range(name: str, value: dict[str, Any], hint: Any) -> None:
    unknown = set(value) - {"low", "high", "log", "step"}
    if unknown or not {"low", "high"} <= set(value):
        raise UsageError(
            f"space key {name!r}: a range is {{low: A, high: B}} with optional "
            f"log and step (got keys {printable(', '.join(map(str, value)))})"
        )
    if hint not in (int, float):
        raise UsageError(
            f"space key {name!r}: a range needs a number setting; give a list of choices"
        )
    low = check_value(f"{name}.low", value["low"], hint)
    high = check_value(f"{name}.high", value["high"], hint)
    _check_setting(f"{name}.low", low)
    _check_setting(f"{name}.high", high)
    if low > high:
        raise UsageError(f"space key {name!r}: low ({low}) is above high ({high})")
    log = value.get("log", False)
    if not isinstance(log, bool):
        raise UsageError(f"space key {name!r}: log must be true or false")
    if log and low <= 0:
        raise UsageError(f"space key {name!r}: a log range needs low > 0")
    if "step" in value:
        step = check_value(f"{name}.step", value["step"], hint)
        if not math.isfinite(step) or step <= 0 or log:  # nan crashed the sampler
            raise UsageError(
                f"space key {name!r}: step must be a finite number above 0, and not with log"
            )
        steps = (high - low) / step
        if abs(steps - round(steps)) > 1e-9 * max(1.0, abs(steps)):
            # Optuna lowered high to the last step below it, with a two-line warning
            raise UsageError(
                f"space key {name!r}: step {step:g} does not divide high - low "
                f"({high:g} - {low:g}); give a high of low + a whole number of steps"
            )


def _check_setting(name: str, value: Any) -> None:
    """A choice, or either end of a range, as train would check the setting it gives
    (``name``: section.key, then .low or .high): within the setting's bounds, finite. A
    value train would refuse made every trial that drew it fail, after the search began,
    or (inf, 1e308) crashed the sampler."""
    section, key = name.split(".")[:2]
    if key == "conv_layers":
        if not _CONV_LAYERS.admits(value):
            raise UsageError(
                f"space key {name!r} must be {_CONV_LAYERS} (each layer takes an entry of "
                f"{', '.join(CONV_FIELDS)}; got {value:,})"
            )
        return
    settings = ModelConfig if section == "model" else TrainConfig
    field = next((f for f in dataclasses.fields(settings) if f.name == key), None)
    if field is None:
        return  # not one of train's settings
    try:
        check_setting(field, [value] if key in CONV_FIELDS else value)
    except SettingError as exc:
        raise UsageError(exc.named(lambda _: f"space key {name!r}")) from None


def _check_value(name: str, section: str, key: str, value: Any) -> None:
    hint = _hint(section, key)
    if isinstance(value, dict):
        _check_range(name, value, hint)
        if key in _FIXED_ONLY:
            raise UsageError(f"space key {name!r} can be fixed but not searched")
        return
    values = value if isinstance(value, list) else [value]
    if isinstance(value, list):
        if not value:
            raise UsageError(f"space key {name!r}: an empty list of choices")
        if key in _FIXED_ONLY:
            raise UsageError(f"space key {name!r} can be fixed but not searched")
    for v in values:
        if isinstance(v, (list, dict)):
            raise UsageError(f"space key {name!r}: a choice must be a single value, got {shown(v)}")
        check_value(name, v, hint)
        _check_setting(name, v)
        if key in _CHOICES and v not in _CHOICES[key]:
            raise UsageError(
                f"space key {name!r}: {shown(v)} is not one of {', '.join(_CHOICES[key])}"
            )


def validate_space(space: Any, source: str = "the search space") -> dict[str, Any]:
    """Check a space (as read from YAML); every error is one line naming the key."""
    if not isinstance(space, dict):
        raise UsageError(f"{source}: a search space is a mapping with families, model and training")
    unknown = set(space) - {"families", "model", "training"}
    if unknown:
        raise UsageError(
            f"{source}: unknown space key {shown(sorted(unknown, key=str)[0])}; expected "
            "families, model, training"
        )
    families = space.get("families", DEFAULT_SPACE["families"])
    if not isinstance(families, list) or not families:
        raise UsageError(f"{source}: space key 'families' must be a list of architectures")
    for name in families:
        if not isinstance(name, str) or name not in ARCHITECTURES:
            raise UsageError(
                f"{source}: space key 'families': unknown architecture {shown(name)}; "
                f"choose from {', '.join(ARCHITECTURES)}"
            )
    out: dict[str, Any] = {"families": list(dict.fromkeys(families))}
    for section in ("model", "training"):
        values = space.get(section) or {}
        if not isinstance(values, dict):
            raise UsageError(f"{source}: space key {section!r} must be a mapping")
        for key, value in values.items():
            name = f"{section}.{key}"
            if key in _NOT_IN_SPACE:
                raise UsageError(
                    f"{source}: space key {name!r} is not searched: {_NOT_IN_SPACE[key]}"
                )
            if key not in _HINTS[section] and key not in _EXTRA[section]:
                raise UsageError(f"{source}: unknown space key {shown(name)}")
            try:
                _check_value(name, section, key, value)
            except UsageError as exc:
                raise UsageError(f"{source}: {exc}") from None
        out[section] = dict(values)
    model = out["model"]
    if ("d_model" in model or "heads" in model) and "transformer" in out["families"]:
        d_models = _finite_values(model.get("d_model", ModelConfig().d_model))
        heads = _finite_values(model.get("heads", ModelConfig().heads))
        if d_models and heads and any(d % h for d in d_models for h in heads):
            raise UsageError(
                f"{source}: space key 'model.d_model': every choice must be "
                f"divisible by every 'model.heads' choice ({d_models} / {heads})"
            )
    return out


def _finite_values(value: Any) -> list[int] | None:
    if isinstance(value, dict):
        return None
    return value if isinstance(value, list) else [value]


def load_space(path: str | Path) -> dict[str, Any]:
    data = read_yaml(path, "search space")
    return validate_space(data if data is not None else {}, str(path))


# ----------------------------------------------------------------------------- sampling


def _suggest(trial: Any, name: str, spec: Any) -> Any:
    """One setting from its space entry through an Optuna trial (a fixed value is not a
    parameter of the study)."""
    if isinstance(spec, dict):
        low, high = spec["low"], spec["high"]
        log = bool(spec.get("log", False))
        if isinstance(low, int) and isinstance(high, int) and not isinstance(low, bool):
            return trial.suggest_int(name, low, high, log=log, step=spec.get("step", 1))
        return trial.suggest_float(name, float(low), float(high), log=log, step=spec.get("step"))
    if isinstance(spec, list):
        return spec[0] if len(spec) == 1 else trial.suggest_categorical(name, spec)
    return spec


@dataclasses.dataclass(frozen=True)
class DataFacts:
    """What the space depends on, found by reading the data once (api.train's on_ready)."""

    task: str
    strands: bool
    """DNA or RNA labelled records: the strand settings and RNA structure apply."""
    longest: int
    folding: bool = False
    """ViennaRNA is installed (``--structure`` can be searched)."""


CLASS_TASKS = ("binary", "multiclass", "multilabel")


def families_for(space: dict[str, Any], facts: DataFacts) -> list[str]:
    """The families a study searches: a transformer only when the longest training
    sequence fits its max_length."""
    limit = space.get("model", {}).get("max_length", ModelConfig().max_length)
    return [f for f in space["families"] if f != "transformer" or facts.longest <= limit]


def sample(
    trial: Any, space: dict[str, Any], facts: DataFacts, families: list[str]
) -> dict[str, dict[str, Any]]:
    """One trial's settings: {'model': {...}, 'training': {...}} for a RunConfig."""
    model_space = {**space.get("model", {})}
    arch = _suggest(trial, "arch", families)
    info = ARCHITECTURES[arch]
    model: dict[str, Any] = {"arch": arch}
    if "max_length" in model_space:
        model["max_length"] = model_space["max_length"]
    if any(key in info.uses for key in CONV_FIELDS):
        model.update(_sample_conv(trial, model_space, facts))
    for key in info.uses:
        if key in CONV_FIELDS or key == "max_length" or key not in model_space:
            continue
        model[key] = _suggest(trial, key, model_space[key])
    if "dropout" in model_space:
        model["dropout"] = _suggest(trial, "dropout", model_space["dropout"])
    if "pooling" in model_space and facts.task not in ("per-position", "language-model"):
        pooling = _sample_pooling(trial, model_space["pooling"], info.poolings)
        if pooling is not None:
            model["pooling"] = pooling
    return {"model": model, "training": _sample_training(trial, space, facts)}


def _sample_conv(trial: Any, model_space: dict[str, Any], facts: DataFacts) -> dict[str, list[Any]]:
    """The number of convolutions, then each one's settings."""
    n = _suggest(trial, "conv_layers", model_space.get("conv_layers", 2))
    out = {}
    for key in CONV_FIELDS:
        default = getattr(ModelConfig(), key)
        entry = model_space.get(key, default[0] if default else 1)
        if key == "pool_sizes" and facts.task == "per-position":
            entry = 1  # one output per position: the sequence keeps its length
        out[key] = [_suggest(trial, f"{key[:-1]}_{i}", entry) for i in range(n)]
    return out


def _sample_pooling(trial: Any, spec: Any, poolings: Any) -> str | None:
    """The pooling among those the family takes (None: none of the space's)."""
    if isinstance(spec, list):
        allowed = [p for p in spec if p in poolings]
        # a categorical parameter keeps its choices for the whole study: a family
        # that takes fewer poolings gets a parameter of its own
        name = "pooling" if allowed == spec else f"pooling({','.join(allowed)})"
        return _suggest(trial, name, allowed) if allowed else None
    return spec if spec in poolings else None


def _sample_training(trial: Any, space: dict[str, Any], facts: DataFacts) -> dict[str, Any]:
    training: dict[str, Any] = {}
    # structure first: folded inputs have no reverse complement, so a trial that folds
    # does not sample the strand settings
    for key, spec in sorted(
        space.get("training", {}).items(), key=lambda item: item[0] != "structure"
    ):
        if key == "class_weight" and facts.task not in CLASS_TASKS:
            continue
        if key in ("rc_augment", "rc_average") and (
            not facts.strands or training.get("structure", "none") != "none"
        ):
            continue
        if key == "structure" and isinstance(spec, list) and not (facts.strands and facts.folding):
            continue  # searched only where it can be computed
        training[key] = _suggest(trial, key, spec)
    return training


def fixed_settings(space: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The space's fixed values that apply to train's defaults as they stand (the
    ``defaults`` trial): every fixed training value, and the fixed model values other than
    the per-layer convolution settings (those describe the space's own layers)."""
    model = {
        k: v
        for k, v in space.get("model", {}).items()
        if not isinstance(v, (list, dict)) and k not in CONV_FIELDS and k in _HINTS["model"]
    }
    training = {
        k: v for k, v in space.get("training", {}).items() if not isinstance(v, (list, dict))
    }
    return {"model": model, "training": training}


def summary(settings: dict[str, dict[str, Any]]) -> str:
    """A short text of a trial's settings for its log line."""
    parts = []
    for section in ("model", "training"):
        for key, value in settings[section].items():
            if key == "max_length":
                continue
            if isinstance(value, float):
                value = f"{value:.3g}"
            elif isinstance(value, list):
                value = ",".join(map(str, value))
            parts.append(f"{key}={value}")
    return " ".join(parts)
