"""Settings as dataclasses: YAML in and out, command-line overrides, strict validation."""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .errors import UsageError
from .models.base import ModelConfig


@dataclass
class TrainConfig:
    """Training settings."""

    epochs: int = 20
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    val_fraction: float = 0.1
    patience: int = 5
    seed: int = 0
    device: str = "auto"
    threads: int = 0


@dataclass
class RunConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    training: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


_SECTIONS = {"model": ModelConfig, "training": TrainConfig}


def _check_value(key: str, value: Any, annotation: Any) -> Any:
    """Validate (and lightly coerce int -> float) one value against its annotation."""
    hint = annotation
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if value is None:
            return None
        hint, origin = args[0], typing.get_origin(args[0])
    if origin is list:
        (item,) = typing.get_args(hint)
        if not isinstance(value, list):
            raise UsageError(f"config key {key!r}: expected a list, got {value!r}")
        return [_check_value(f"{key}[{i}]", v, item) for i, v in enumerate(value)]
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint is int and isinstance(value, bool):
        raise UsageError(f"config key {key!r}: expected an integer, got {value!r}")
    if not isinstance(value, hint):
        raise UsageError(f"config key {key!r}: expected {hint.__name__}, got {value!r}")
    return value


def _apply(target: Any, section: str, values: dict[str, Any]) -> None:
    hints = typing.get_type_hints(type(target))
    names = {f.name for f in dataclasses.fields(target)}
    for key, value in values.items():
        if key not in names:
            raise UsageError(
                f"unknown config key '{section}.{key}'; known keys: {', '.join(sorted(names))}"
            )
        setattr(target, key, _check_value(f"{section}.{key}", value, hints[key]))


def config_from_dict(data: dict[str, Any], base: RunConfig | None = None) -> RunConfig:
    cfg = base or RunConfig()
    if not isinstance(data, dict):
        raise UsageError("a config file must be a mapping with 'model' and 'training' sections")
    for section, values in data.items():
        if section not in _SECTIONS:
            raise UsageError(
                f"unknown config section {section!r}; expected: {', '.join(_SECTIONS)}"
            )
        if values is None:
            continue
        if not isinstance(values, dict):
            raise UsageError(f"config section {section!r} must be a mapping")
        _apply(getattr(cfg, section), section, values)
    return cfg


def load_config(path: str | Path) -> RunConfig:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"{path}: cannot read config: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise UsageError(f"{path}: not valid YAML: {str(exc).splitlines()[0]}") from None
    try:
        return config_from_dict(data or {})
    except UsageError as exc:
        raise UsageError(f"{path}: {exc}") from None


def apply_overrides(cfg: RunConfig, overrides: dict[str, dict[str, Any]]) -> RunConfig:
    """Command-line values (None = not given) override the file's."""
    for section, values in overrides.items():
        given = {k: v for k, v in values.items() if v is not None}
        _apply(getattr(cfg, section), section, given)
    return cfg


def validate(cfg: RunConfig) -> None:
    """Range checks shared by the CLI, YAML files and library callers."""
    t, m = cfg.training, cfg.model
    checks = [
        (t.epochs >= 1, "epochs must be at least 1"),
        (t.batch_size >= 1, "batch-size must be at least 1"),
        (t.lr > 0, "lr must be positive"),
        (t.weight_decay >= 0, "weight-decay must be >= 0"),
        (t.grad_clip >= 0, "grad-clip must be >= 0 (0 disables clipping)"),
        (0 <= t.val_fraction < 1, "val-fraction must be in [0, 1)"),
        (t.patience >= 0, "patience must be >= 0"),
        (t.threads >= 0, "threads must be >= 0 (0 = automatic)"),
        (m.hidden_size >= 1, "hidden-size must be at least 1"),
        (m.layers >= 1, "layers must be at least 1"),
        (0 <= m.dropout < 1, "dropout must be in [0, 1)"),
    ]
    for ok, message in checks:
        if not ok:
            raise UsageError(message)


def dump_yaml(cfg: RunConfig) -> str:
    return yaml.safe_dump(cfg.to_dict(), sort_keys=False)
