"""Settings as dataclasses: YAML in and out, command-line overrides, strict validation."""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import SettingError, UsageError, shorten, shown

POOLINGS = ("last", "mean", "max", "attention")


@dataclass(frozen=True)
class Bounds:
    """The numbers a setting takes (every item, for a list of numbers): from ``at_least``
    or ``above`` to ``at_most`` or ``below``, each side open where not given; ``off``, a
    value outside them that turns the setting off (cv: 0)."""

    at_least: float | None = None
    above: float | None = None
    at_most: float | None = None
    below: float | None = None
    off: float | None = None

    def admits(self, value: float) -> bool:
        return value == self.off or (
            (self.at_least is None or value >= self.at_least)
            and (self.above is None or value > self.above)
            and (self.at_most is None or value <= self.at_most)
            and (self.below is None or value < self.below)
        )

    def __str__(self) -> str:
        low = self.at_least if self.above is None else self.above
        high = self.at_most if self.below is None else self.below
        if low is not None and high is not None:
            if self.above is None and self.below is None:
                text = f"from {_number(low)} to {_number(high)}"
            else:
                opening = "[" if self.above is None else "("
                closing = "]" if self.below is None else ")"
                text = f"in {opening}{_number(low)}, {_number(high)}{closing}"
        elif self.above == 0 and high is None:
            text = "positive"
        elif low is not None:
            text = f"{'at least' if self.above is None else 'above'} {_number(low)}"
        else:
            text = f"{'at most' if self.below is None else 'below'} {_number(high)}"
        return text if self.off is None else f"{_number(self.off)} (off) or {text}"


def _number(value: float | None) -> str:
    """A bound as a message shows it: 9223372036854775807 as 2^63 - 1."""
    if isinstance(value, int) and value > 1 << 32 and (value + 1).bit_count() == 1:
        return f"2^{value.bit_length()} - 1"
    return f"{value:g}" if isinstance(value, float) else str(value)


def setting(
    default: Any,
    help: str,
    *,
    at_least: float | None = None,
    above: float | None = None,
    at_most: float | None = None,
    below: float | None = None,
    off: float | None = None,
    choices: tuple[str, ...] = (),
    flags: tuple[str, ...] = (),
    metavar: str | None = None,
    panel: str | None = None,
) -> Any:
    """A dataclass field: a setting's default, its one help text, which 'bioseqnn config'
    writes above it and the command line shows for its option (bioseqnn.cli generates
    train's options from these fields), and the values it takes, which :func:`validate`
    checks: numbers within bounds (see :class:`Bounds`; a list's every item) or one of
    ``choices``. ``flags`` (default: --name-with-dashes), ``metavar`` (default: by type)
    and ``panel`` (the group of --help; default: the section's) say how the command line
    presents it."""
    given = {"at_least": at_least, "above": above, "at_most": at_most, "below": below}
    bounds = Bounds(**given, off=off) if any(v is not None for v in given.values()) else None
    metadata = {
        "help": help,
        "bounds": bounds,
        "choices": choices,
        "flags": flags,
        "metavar": metavar,
        "panel": panel,
    }
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=metadata)
    return field(default=default, metadata=metadata)


def setting_range(f: dataclasses.Field[Any]) -> str:
    """What a number setting's bounds admit, as its help shows them ("at least 1"; "each
    at least 1" for a list); empty where it has none. (Choices are in the help text.)"""
    bounds = f.metadata.get("bounds")
    if bounds is None:
        return ""
    return f"each {bounds}" if str(f.type).startswith("list") else str(bounds)


@dataclass
class ModelConfig:
    """Architecture settings. Fields that an architecture does not use are ignored by it."""

    arch: str = setting("auto", "architecture, one of:", metavar="ARCH")
    hidden_size: int = setting(128, "recurrent units per direction", at_least=1)
    layers: int = setting(1, "stacked recurrent or encoder layers", at_least=1)
    bidirectional: bool = setting(
        False,
        "read both directions (cnn-lstm and cnn-gru always do)",
        flags=("--bidirectional/--unidirectional",),
    )
    dropout: float = setting(0.2, "dropout between layers and before the head", at_least=0, below=1)
    pooling: str = setting(
        "auto",
        "per-position states to one vector: last, mean, max, attention, "
        "or auto (the architecture's default)",
        choices=("auto",) + POOLINGS,
        metavar="|".join(("auto",) + POOLINGS),
    )
    # convolutional layers (cnn, cnn-lstm, cnn-gru): one entry per layer, all four lists
    # equally long
    channels: list[int] = setting([128, 128], "convolution filters per layer", at_least=1)
    kernel_sizes: list[int] = setting(
        [9, 5], "convolution width per layer, in positions", at_least=1
    )
    dilations: list[int] = setting(
        [1, 1],
        "dilation per layer (1 = contiguous; all 1, the default, fits any number of layers)",
        at_least=1,
    )
    pool_sizes: list[int] = setting(
        [],
        "max-pool window (and stride) after each layer "
        "(1 = none); shortens the sequence by that factor; "
        "empty (auto): 3 after the first layer when the "
        "training sequences' median length is 100 or more, "
        "else 1, and 1 everywhere for a model with one output "
        "per position",
        at_least=1,
    )
    # transformer
    d_model: int = setting(128, "model width (divisible by heads)", at_least=1)
    heads: int = setting(4, "attention heads per layer", at_least=1)
    ff_size: int = setting(256, "feed-forward width", at_least=1)
    max_length: int = setting(
        2048, "longest sequence accepted; a longer one is an error", at_least=1
    )


# --------------------------------------------------------------------------- architectures

AUTO = "auto"
DEFAULT_ARCH = "cnn-gru"
"""What ``arch: auto`` (the default) builds: the recipe chosen by the comparison in
docs/accuracy.md (scripts/compare_defaults.py)."""
DEFAULT_CAUSAL_ARCH = "gru"
"""What ``arch: auto`` builds for a language model, which must read left to right: the
recurrent part of the recipe, one direction."""

# The settings a plain recurrent backbone reads, and a convolution stack's
RECURRENT_FIELDS = ("hidden_size", "layers", "bidirectional")
CONV_FIELDS = ("channels", "kernel_sizes", "dilations", "pool_sizes")


@dataclass(frozen=True)
class ArchitectureInfo:
    """What an architecture is to its settings and to people, known without torch: its
    default pooling and the poolings it takes, the settings it reads, one line of help.
    bioseqnn.models registers the network that goes with each."""

    default_pooling: str
    poolings: tuple[str, ...]
    uses: tuple[str, ...]
    summary: str


ARCHITECTURES: dict[str, ArchitectureInfo] = {
    "rnn": ArchitectureInfo(
        "last", POOLINGS, RECURRENT_FIELDS, "Elman RNN (tanh): the simplest recurrent baseline"
    ),
    "lstm": ArchitectureInfo(
        "last", POOLINGS, RECURRENT_FIELDS, "LSTM: long-range order and context"
    ),
    "gru": ArchitectureInfo(
        "last", POOLINGS, RECURRENT_FIELDS, "GRU: as LSTM with fewer parameters, often as accurate"
    ),
    "cnn": ArchitectureInfo(
        "max",
        ("mean", "max", "attention"),
        CONV_FIELDS,
        "1D CNN: motif detectors, fast; the strong baseline when position matters little",
    ),
    "cnn-lstm": ArchitectureInfo(
        "max",
        POOLINGS,
        CONV_FIELDS + ("hidden_size", "layers"),
        "CNN then BiLSTM (DanQ): motifs plus their order; long DNA with regulatory grammar",
    ),
    "cnn-gru": ArchitectureInfo(
        "max",
        POOLINGS,
        CONV_FIELDS + ("hidden_size", "layers"),
        "CNN then BiGRU: as cnn-lstm with a lighter recurrent cell",
    ),
    "transformer": ArchitectureInfo(
        "mean",
        ("mean", "max", "attention"),
        ("d_model", "heads", "ff_size", "layers", "max_length"),
        "Transformer encoder: global interactions at any distance; needs more data",
    ),
}


STRUCTURE_KINDS = ("none", "mfe", "bpp")
"""--structure: none, the minimum-free-energy pairing, or base-pair probabilities (see
bioseqnn.structure)."""
SCHEDULES = ("none", "plateau", "cosine", "onecycle")
NOMINAL_CHANNELS = 20
"""Input channels assumed when settings are checked before the data is read (protein's:
the largest alphabet)."""
PRECISIONS = ("32", "bf16", "16-mixed")


@dataclass
class TrainConfig:
    """Training settings."""

    epochs: int = setting(100, "maximum epochs (early stopping usually ends sooner)", at_least=1)
    batch_size: int = setting(64, "sequences per batch (per process under torchrun)", at_least=1)
    lr: float = setting(1e-3, "AdamW learning rate", above=0)
    weight_decay: float = setting(0.01, "AdamW weight decay", at_least=0)
    grad_clip: float = setting(1.0, "gradient-norm clip (0 = off)", at_least=0)
    val_fraction: float = setting(
        0.1,
        "fraction held out for validation (stratified for "
        "classes); unused with an explicit validation set",
        at_least=0,
        below=1,
    )
    patience: int = setting(
        10,
        "epochs without a better monitored metric before stopping (0 = never stop early)",
        at_least=0,
    )
    seed: int = setting(
        0,
        "seed for the split, batch order and initial weights",
        at_least=0,
        at_most=2**63 - 1,
        panel="Run",
    )
    device: str = setting(
        "auto",
        "auto (CUDA when present), cpu, cuda or cuda:N",
        metavar="auto|cpu|cuda[:N]",
        panel="Run",
    )
    threads: int = setting(
        0,
        "CPU threads for torch (0 = cores available)",
        at_least=0,
        flags=("--threads", "-j"),
        panel="Run",
    )
    # settings of the training issue (train.py, schedules.py, checkpoint.py, strands.py)
    monitor: str = setting(
        "auto",
        "validation metric for early stopping, best-weights "
        "restore and the plateau schedule: val_loss, val_auroc, "
        "val_mcc, val_r2, ... (losses and errors are minimised, "
        "scores maximised); auto: val_loss, or for imbalanced "
        "classes val_auprc (binary, multilabel) or val_mcc",
        metavar="METRIC",
    )
    schedule: str = setting(
        "plateau",
        "learning-rate schedule: none, plateau (halve after "
        "max(1, patience / 2) epochs without progress), cosine "
        "(to zero at the last epoch) or onecycle",
        choices=SCHEDULES,
        metavar="|".join(SCHEDULES),
    )
    warmup_epochs: float = setting(
        0.0,
        "linear learning-rate warm-up over this many epochs "
        "(fractions allowed; onecycle: its rising phase)",
        at_least=0,
    )
    class_weight: str = setting(
        "auto",
        "none, balanced (inverse class frequency; "
        "multilabel: negatives / positives per label), auto "
        "(balanced when the rarest class is under half an "
        "even share of the training records: under 25% for "
        "two classes) or explicit weights in class order "
        "(1,4) or by name (neg=1,pos=4)",
        metavar="WEIGHTS",
    )
    rc_augment: bool = setting(
        False,
        "DNA/RNA: train on a random strand of each sequence "
        "(reverse complement with probability 1/2)",
        flags=("--rc-augment/--no-rc-augment",),
    )
    rc_average: bool = setting(
        False,
        "DNA/RNA: predict the mean of both strands (stored as the model's default for predict)",
        flags=("--rc-average/--no-rc-average",),
    )
    precision: str = setting(
        "32",
        "32, bf16 or 16-mixed (automatic mixed precision; CUDA only, CPU always trains in 32-bit)",
        choices=PRECISIONS,
        metavar="|".join(PRECISIONS),
        panel="Run",
    )
    checkpoint_dir: str | None = setting(
        None,
        "folder for a checkpoint after every epoch "
        "(model, optimiser, schedule, RNG states); "
        "continue a killed run with --resume",
        metavar="DIR",
        panel="Run",
    )
    ensemble: int = setting(
        1,
        "train this many models (seeds seed, seed + 1, ...) on the "
        "same records and save them as one model file that "
        "predicts their mean probability (regression: mean value)",
        at_least=1,
        at_most=64,
        metavar="N",
    )
    structure: str = setting(
        "none",
        "RNA secondary structure as input channels (RNA, and "
        "DNA read as RNA; needs bioseqnn[structure]): none, mfe "
        "(ViennaRNA's pairing state of every position: unpaired, "
        "paired downstream or upstream) or bpp (also each "
        "position's probability of being paired; about 3x the "
        "folding time)",
        choices=STRUCTURE_KINDS,
        metavar="|".join(STRUCTURE_KINDS),
    )
    cv: int = setting(
        0,
        "cross-validation: split the records into this many folds (by "
        "class for classes), train one model per fold with early stopping "
        "on its own held-out fold, report the out-of-fold metrics and save "
        "the models as one ensemble file",
        at_least=2,
        at_most=64,
        off=0,
        metavar="K",
    )
    max_tokens: int = setting(
        0,
        "cap on padded positions per batch (sequences x the "
        "longest of them), so batches of long sequences hold "
        "fewer; 0 = no cap",
        at_least=0,
    )
    init_from: str | None = setting(
        None,
        "fine-tune: start from this model file's weights "
        "(its network settings become this run's; the "
        "head too when the classes or targets are the "
        "same)",
        metavar="MODEL",
        panel="Fine-tuning",
    )
    freeze_backbone: bool = setting(
        False,
        "with init_from: keep the parent's backbone "
        "fixed; only the head (and attention pooling) "
        "train",
        flags=("--freeze-backbone/--no-freeze-backbone",),
        panel="Fine-tuning",
    )
    init_member: int = setting(
        0,
        "with init_from an ensemble or cross-validated model: "
        "the member to start from (1, 2, ...); 0 = a single model",
        at_least=0,
        metavar="N",
        panel="Fine-tuning",
    )


@dataclass
class RunConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    training: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


_SECTIONS = {"model": ModelConfig, "training": TrainConfig}


def check_value(key: str, value: Any, annotation: Any) -> Any:
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
            raise UsageError(f"config key {key!r}: expected a list, got {shown(value)}")
        return [check_value(f"{key}[{i}]", v, item) for i, v in enumerate(value)]
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        try:
            return float(value)
        except OverflowError:
            raise UsageError(f"config key {key!r}: {value} is too large a number") from None
    if hint is int and isinstance(value, bool):
        raise UsageError(f"config key {key!r}: expected an integer, got {shown(value)}")
    if not isinstance(value, hint):
        raise UsageError(f"config key {key!r}: expected {hint.__name__}, got {shown(value)}")
    return value


def _apply(target: Any, section: str, values: dict[str, Any]) -> None:
    hints = typing.get_type_hints(type(target))
    names = {f.name for f in dataclasses.fields(target)}
    for key, value in values.items():
        if key not in names:
            raise UsageError(
                f"unknown config key {shown(f'{section}.{key}')}; known keys: "
                f"{', '.join(sorted(names))}"
            )
        setattr(target, key, check_value(f"{section}.{key}", value, hints[key]))


def config_from_dict(data: dict[str, Any], base: RunConfig | None = None) -> RunConfig:
    cfg = base or RunConfig()
    if not isinstance(data, dict):
        raise UsageError("a config file must be a mapping with 'model' and 'training' sections")
    for section, values in data.items():
        if section not in _SECTIONS:
            raise UsageError(
                f"unknown config section {shown(section)}; expected: {', '.join(_SECTIONS)}"
            )
        if values is None:
            continue
        if not isinstance(values, dict):
            raise UsageError(f"config section {section!r} must be a mapping")
        _apply(getattr(cfg, section), section, values)
        _check_given(getattr(cfg, section), section, values)
    return cfg


def _check_given(target: Any, section: str, values: dict[str, Any]) -> None:
    """Check the values a config file gives, naming each by its key there (the rules
    between two settings are checked once the command line's are in: see validate)."""
    if section == "model" and "arch" in values and target.arch not in (AUTO, *ARCHITECTURES):
        # checked here (not only when the model is built) to name the key
        raise UsageError(
            f"config key 'model.arch': unknown architecture {shown(target.arch)}; choose "
            f"one of: {', '.join((AUTO, *ARCHITECTURES))}"
        )
    try:
        for f in dataclasses.fields(target):
            if f.name in values:
                check_setting(f, getattr(target, f.name))
    except SettingError as exc:
        raise UsageError(exc.named(lambda key: f"config key '{section}.{key}'")) from None


def load_config(path: str | Path) -> RunConfig:
    from .yamlio import read_yaml

    data = read_yaml(path, "config")
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


MAX_CLASS_WEIGHT = 1e6
"""The largest explicit --class-weight. One past float32's range (1e308) became an
infinite weight, a NaN loss and advice to lower --lr; a class's weight is relative to
the others' (a multilabel weight to a negative's 1), and a million is far past any
imbalance that training on both could bear."""


def check_class_weight(setting: str) -> None:
    """Refuse explicit weights that are no numbers, negative, infinite or too large, before
    any data is read; their count and class names are checked against the data later
    (``engine.train.resolve_class_weights``)."""
    setting = setting.strip()
    if setting in ("", "none", "auto", "balanced"):
        return
    given, named = explicit_class_weights(setting)
    if given and not named and not any(weight > 0 for _, weight in given):
        raise UsageError("--class-weight: at least one weight must be positive")


def explicit_class_weights(setting: str) -> tuple[list[tuple[str, float]], bool]:
    """Explicit --class-weight as (name, weight) pairs ('' for each name when they are
    in class order) and whether they are named ('neg=1,pos=4')."""
    parts = [p.strip() for p in setting.split(",") if p.strip()]
    named = any("=" in p for p in parts)
    split = [p.partition("=")[::2] if named else ("", p) for p in parts]
    return [(name.strip(), _weight(value)) for name, value in split], named


def _weight(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise UsageError(
            f"--class-weight: {shorten(text.strip())!r} is not a number (use auto, "
            "balanced, none, 1,4 or name=weight)"
        ) from None
    if not (math.isfinite(value) and value >= 0):
        raise UsageError(
            f"--class-weight: weights must be finite and >= 0, got {shorten(text.strip())}"
        )
    if value > MAX_CLASS_WEIGHT:
        raise UsageError(
            f"--class-weight: {shorten(text.strip())} is more than {MAX_CLASS_WEIGHT:,.0f}; "
            "give smaller weights"
        )
    return value


def validate(cfg: RunConfig) -> None:
    """Check every setting: its declared values (:func:`check_setting`), then the rules
    that involve two settings. Shared by the CLI, YAML files and library callers; raises
    :class:`SettingError`, which names the settings by their keys."""
    t = cfg.training
    check_settings(t)
    check_class_weight(t.class_weight)
    if t.monitor not in ("auto", "train_loss") and not t.monitor.startswith("val_"):
        raise SettingError(
            "{monitor} must be auto, train_loss or a validation metric such as val_loss, "
            "val_auroc or val_r2 (got {value})",
            value=shown(t.monitor),
        )
    if t.warmup_epochs > t.epochs:
        raise SettingError(
            "{warmup_epochs} ({w:g}) must be at most {epochs} ({e}): the warm-up would not "
            "end before training does",
            w=t.warmup_epochs,
            e=t.epochs,
        )
    if t.cv and t.ensemble != 1:
        raise SettingError(
            "{cv} trains one model per fold already (an ensemble of folds): drop {ensemble}"
        )
    if not t.init_from and (t.freeze_backbone or t.init_member):
        given = "{freeze_backbone}" if t.freeze_backbone else "{init_member}"
        raise SettingError(given + " goes with {init_from} (the model file to start from)")
    validate_model(cfg.model)


MODEL_NUMBER_MAX = 1 << 20
"""The largest number an architecture setting takes (a width, a kernel, a length): what a
model file's manifest holds (bioseqnn.modelfile checks the same)."""
MODEL_LIST_MAX = 64
"""The most entries a per-layer list setting takes (channels, kernel sizes, ...)."""


@functools.cache
def _model_numbers() -> frozenset[str]:
    """The architecture settings that are numbers or lists of numbers: bounded by
    MODEL_NUMBER_MAX and MODEL_LIST_MAX."""
    return frozenset(
        f.name
        for f in dataclasses.fields(ModelConfig)
        if type(getattr(ModelConfig(), f.name)) in (int, list)
    )


def validate_model(m: ModelConfig) -> None:
    """Check architecture settings as :func:`validate` does (also run on a model file's)."""
    check_settings(m)
    if not m.channels:
        raise SettingError("{channels} needs at least one layer")
    if m.d_model % m.heads:
        raise SettingError(
            "{d_model} ({d}) must be divisible by {heads} ({h})", d=m.d_model, h=m.heads
        )
    n = len(m.channels)
    for key in ("kernel_sizes", "dilations", "pool_sizes"):
        if key == "pool_sizes" and not m.pool_sizes:
            continue  # automatic (modelspec.resolve_model)
        if key == "dilations" and set(m.dilations) == {1}:
            continue  # none anywhere: as many as layers (modelspec.resolve_model)
        if len(getattr(m, key)) != n:
            raise SettingError(
                "{" + key + "} has {given} entries but {channels} has {n}: give one value "
                "per convolution layer",
                given=len(getattr(m, key)),
                n=n,
            )


def check_settings(settings: ModelConfig | TrainConfig) -> None:
    """Check each setting of a section against what its field declares."""
    for f in dataclasses.fields(settings):
        check_setting(f, getattr(settings, f.name))


def check_setting(f: dataclasses.Field[Any], value: Any) -> None:
    """Raise :class:`SettingError` where ``value`` is not one the setting ``f`` takes: a
    number that is not finite (inf and nan pass comparisons such as 'lr > 0', or fail them
    with a misleading message, and failed only in training), out of the bounds it
    declares, or not one of its choices (see :func:`setting`)."""
    key = "{" + f.name + "}"
    items = value if isinstance(value, list) else [value]
    for item in items:
        if isinstance(item, float) and not math.isfinite(item):
            raise SettingError(key + " must be a finite number (got {value})", value=item)
    if f.name in _model_numbers():
        if isinstance(value, list) and len(value) > MODEL_LIST_MAX:
            raise SettingError(
                key + " has {given} entries, more than a model holds ({most})",
                given=len(value),
                most=MODEL_LIST_MAX,
            )
        if any(type(item) is int and item > MODEL_NUMBER_MAX for item in items):
            raise SettingError(
                key + " must be at most {most:,} (got {value:,})",
                most=MODEL_NUMBER_MAX,
                value=max(items),
            )
    bounds = f.metadata.get("bounds")
    if bounds is not None and not all(bounds.admits(item) for item in items):
        verb = "must all be" if isinstance(value, list) else "must be"
        raise SettingError(f"{key} {verb} {{bounds}}", bounds=bounds)
    choices = f.metadata.get("choices")
    if choices and value not in choices:
        raise SettingError(
            key + " must be one of: {choices} (got {value})",
            choices=", ".join(choices),
            value=shown(value),
        )


def dump_yaml(cfg: RunConfig) -> str:
    from .yamlio import dump

    return dump(cfg.to_dict(), sort_keys=False)


def _yaml_value(value: Any) -> str:
    from .yamlio import dump

    text = dump(value, default_flow_style=True, width=1000).strip()
    return text[:-4].strip() if text.endswith("\n...") else text


def commented_yaml(cfg: RunConfig | None = None, header: str | None = None) -> str:
    """The config as YAML with each key's help as a comment above it (``bioseqnn config``).

    Loading the text back with :func:`load_config` gives ``cfg`` again.
    """
    cfg = cfg or RunConfig()
    lines = [f"# {line}" if line else "#" for line in (header or "").splitlines()]
    users: dict[str, list[str]] = {}
    for name, arch in ARCHITECTURES.items():
        for key in arch.uses:
            users.setdefault(key, []).append(name)
    for section in _SECTIONS:
        target = getattr(cfg, section)
        lines += ["", f"{section}:"]
        for f in dataclasses.fields(target):
            help_text = f.metadata.get("help", "")
            if f.name in users and len(users[f.name]) < len(ARCHITECTURES):
                help_text += f" [{', '.join(users[f.name])}]"
            if setting_range(f):
                help_text += f"; {setting_range(f)}"
            if help_text:
                lines.append(f"  # {help_text}")
            if section == "model" and f.name == "arch":
                width = max(map(len, ARCHITECTURES))
                lines.append(
                    f"  #   {AUTO:<{width}}  the default recipe: {DEFAULT_ARCH} (a "
                    f"language model: {DEFAULT_CAUSAL_ARCH})"
                )
                lines += [
                    f"  #   {name:<{width}}  {a.summary}" for name, a in ARCHITECTURES.items()
                ]
            lines.append(f"  {f.name}: {_yaml_value(getattr(target, f.name))}")
    return "\n".join(lines).lstrip("\n") + "\n"


def parse_int_list(values: list[str] | None, option: str) -> list[int] | None:
    """Command-line integer lists: '--channels 64,128' or '--channels 64 --channels 128';
    'auto' is the empty list (a setting's automatic value, e.g. --pool-sizes auto)."""
    if not values:
        return None
    if [v.strip() for v in values] == ["auto"]:
        return []
    out: list[int] = []
    for value in values:
        for part in value.split(","):
            part = part.strip()
            if not part:
                continue
            try:
                out.append(int(part))
            except ValueError:
                raise UsageError(
                    f"{option}: {part!r} is not an integer (give a comma list, e.g. 9,5)"
                ) from None
    if not out:
        raise UsageError(f"{option}: give at least one integer")
    return out


def parse_names(value: str | None, option: str) -> list[str] | None:
    """A comma list of names ('--series-columns a,b,c'); each named once."""
    if value is None:
        return None
    names = [part.strip() for part in value.split(",")]
    if not all(names):
        raise UsageError(
            f"{option}: {value!r} holds an empty name (give a comma list, e.g. dim_1,dim_2)"
        )
    if len(set(names)) != len(names):
        raise UsageError(f"{option}: a column is named twice in {value!r}")
    return names


def write_config(
    output: str | os.PathLike[str] = "-",
    cfg: RunConfig | None = None,
    header: str | None = None,
    source: str | os.PathLike[str] | None = None,
) -> str:
    """Write ``cfg`` (default: the default config) as commented YAML under ``header``;
    ``source``, the model file a resolved config came from (modelfile.model_config), is
    never overwritten. The default config needs no torch (``bioseqnn config`` is
    instant)."""
    from .io.outputs import atomic_output, check_output_path

    if cfg is None:
        header = (
            "bioseqnn configuration: every setting with its default.\n"
            "Use with: bioseqnn train SEQS LABELS --config this.yaml "
            "(command-line flags override it)."
        )
        text = commented_yaml(header=header)
    else:
        text = commented_yaml(cfg, header=header)
    check_output_path(output, {"--from": source})
    with atomic_output(output) as fh:
        fh.write(text)
    return text
