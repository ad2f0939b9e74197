"""Settings as dataclasses: YAML in and out, command-line overrides, strict validation."""

from __future__ import annotations

import dataclasses
import math
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .errors import UsageError

POOLINGS = ("last", "mean", "max", "attention")


def setting(
    default: Any,
    help: str,
    *,
    flags: tuple[str, ...] = (),
    metavar: str | None = None,
    panel: str | None = None,
) -> Any:
    """A dataclass field: a setting's default and its one help text, which 'bioseqnn
    config' writes above it and the command line shows for its option (bioseqnn.cli
    generates train's options from these fields). ``flags`` (default: --name-with-dashes),
    ``metavar`` (default: by type) and ``panel`` (the group of --help; default: the
    section's) say how the command line presents it."""
    metadata = {"help": help, "flags": flags, "metavar": metavar, "panel": panel}
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=metadata)
    return field(default=default, metadata=metadata)


@dataclass
class ModelConfig:
    """Architecture settings. Fields that an architecture does not use are ignored by it."""

    arch: str = setting("auto", "architecture, one of:", metavar="ARCH")
    hidden_size: int = setting(128, "recurrent units per direction")
    layers: int = setting(1, "stacked recurrent or encoder layers")
    bidirectional: bool = setting(
        False,
        "read both directions (cnn-lstm and cnn-gru always do)",
        flags=("--bidirectional/--unidirectional",),
    )
    dropout: float = setting(0.2, "dropout between layers and before the head")
    pooling: str = setting(
        "auto",
        "per-position states to one vector: last, mean, max, attention, "
        "or auto (the architecture's default)",
        metavar="|".join(("auto",) + POOLINGS),
    )
    # convolutional layers (cnn, cnn-lstm, cnn-gru): one entry per layer, all four lists
    # equally long
    channels: list[int] = setting([128, 128], "convolution filters per layer")
    kernel_sizes: list[int] = setting([9, 5], "convolution width per layer, in positions")
    dilations: list[int] = setting([1, 1], "dilation per layer (1 = contiguous)")
    pool_sizes: list[int] = setting(
        [],
        "max-pool window (and stride) after each layer "
        "(1 = none); shortens the sequence by that factor; "
        "empty (auto): 3 after the first layer when the "
        "training sequences' median length is 100 or more, "
        "else 1, and 1 everywhere for a model with one output "
        "per position",
    )
    # transformer
    d_model: int = setting(128, "model width (divisible by heads)")
    heads: int = setting(4, "attention heads per layer")
    ff_size: int = setting(256, "feed-forward width")
    max_length: int = setting(2048, "longest sequence accepted; a longer one is an error")


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

    epochs: int = setting(100, "maximum epochs (early stopping usually ends sooner)")
    batch_size: int = setting(64, "sequences per batch (per process under torchrun)")
    lr: float = setting(1e-3, "AdamW learning rate")
    weight_decay: float = setting(0.01, "AdamW weight decay")
    grad_clip: float = setting(1.0, "gradient-norm clip (0 = off)")
    val_fraction: float = setting(
        0.1,
        "fraction held out for validation (stratified for "
        "classes); unused with an explicit validation set",
    )
    patience: int = setting(
        10, "epochs without a better monitored metric before stopping (0 = never stop early)"
    )
    seed: int = setting(0, "seed for the split, batch order and initial weights", panel="Run")
    device: str = setting(
        "auto",
        "auto (CUDA when present), cpu, cuda or cuda:N",
        metavar="auto|cpu|cuda[:N]",
        panel="Run",
    )
    threads: int = setting(
        0, "CPU threads for torch (0 = cores available)", flags=("--threads", "-j"), panel="Run"
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
        metavar="|".join(SCHEDULES),
    )
    warmup_epochs: float = setting(
        0.0,
        "linear learning-rate warm-up over this many epochs "
        "(fractions allowed; onecycle: its rising phase)",
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
        metavar="|".join(STRUCTURE_KINDS),
    )
    cv: int = setting(
        0,
        "cross-validation: split the records into this many folds (by "
        "class for classes), train one model per fold with early stopping "
        "on its own held-out fold, report the out-of-fold metrics and save "
        "the models as one ensemble file; 0 = off",
        metavar="K",
    )
    max_tokens: int = setting(
        0,
        "cap on padded positions per batch (sequences x the "
        "longest of them), so batches of long sequences hold "
        "fewer; 0 = no cap",
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
            raise UsageError(f"config key {key!r}: expected a list, got {value!r}")
        return [check_value(f"{key}[{i}]", v, item) for i, v in enumerate(value)]
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        try:
            return float(value)
        except OverflowError:
            raise UsageError(f"config key {key!r}: {value} is too large a number") from None
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
        setattr(target, key, check_value(f"{section}.{key}", value, hints[key]))


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


MAX_CONFIG = 1 << 20
"""Bytes of a config file read at most (the full default config is about 5 kB)."""


def load_config(path: str | Path) -> RunConfig:
    try:
        with open(path, "rb") as fh:
            raw = fh.read(MAX_CONFIG + 1)
        if len(raw) > MAX_CONFIG:
            raise UsageError(f"{path}: not a YAML config (longer than {MAX_CONFIG >> 20} MB)")
        text = raw.decode("utf-8")
    except OSError as exc:
        raise UsageError(f"{path}: cannot read config: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise UsageError(f"{path}: not a YAML config (not UTF-8 text)") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        what = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise UsageError(f"{path}: {where}not valid YAML: {what}") from None
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
    _check_finite(t)
    _check_finite(m)
    checks = [
        (t.epochs >= 1, "epochs must be at least 1"),
        (t.batch_size >= 1, "batch-size must be at least 1"),
        (t.max_tokens >= 0, "max-tokens must be >= 0 (0 = no cap)"),
        (t.lr > 0, "lr must be positive"),
        (t.weight_decay >= 0, "weight-decay must be >= 0"),
        (t.grad_clip >= 0, "grad-clip must be >= 0 (0 disables clipping)"),
        (0 <= t.val_fraction < 1, "val-fraction must be in [0, 1)"),
        (t.patience >= 0, "patience must be >= 0"),
        (1 <= t.ensemble <= 64, "ensemble must be from 1 to 64 members"),
        (t.cv == 0 or 2 <= t.cv <= 64, "cv must be 0 (off) or from 2 to 64 folds"),
        (
            t.structure in STRUCTURE_KINDS,
            f"structure must be one of: {', '.join(STRUCTURE_KINDS)} (got {t.structure!r})",
        ),
        (
            t.cv == 0 or t.ensemble == 1,
            "cv trains one model per fold already: drop ensemble "
            "(an ensemble of folds is what --cv writes)",
        ),
        (t.threads >= 0, "threads must be >= 0 (0 = automatic)"),
        (t.init_member >= 0, "init-member must be >= 1 (0 = not an ensemble)"),
        (
            bool(t.init_from) or not (t.freeze_backbone or t.init_member),
            f"{'freeze-backbone' if t.freeze_backbone else 'init-member'} goes with init-from "
            "(the model file to start from)",
        ),
        (0 <= t.seed < 2**63, "seed must be from 0 to 2^63 - 1"),
        (
            t.schedule in SCHEDULES,
            f"schedule must be one of: {', '.join(SCHEDULES)} (got {t.schedule!r})",
        ),
        (t.warmup_epochs >= 0, "warmup-epochs must be >= 0"),
        (
            t.precision in PRECISIONS,
            f"precision must be one of: {', '.join(PRECISIONS)} (got {t.precision!r})",
        ),
        (
            t.monitor in ("auto", "train_loss") or t.monitor.startswith("val_"),
            f"monitor must be auto, train_loss or a validation metric such as val_loss, "
            f"val_auroc or val_r2 (got {t.monitor!r})",
        ),
    ]
    for ok, message in checks:
        if not ok:
            raise UsageError(message)
    validate_model(m)


def validate_model(m: ModelConfig) -> None:
    """Range checks of architecture settings (also run on a model file's)."""
    _check_finite(m)
    checks = [
        (m.hidden_size >= 1, "hidden-size must be at least 1"),
        (m.layers >= 1, "layers must be at least 1"),
        (0 <= m.dropout < 1, "dropout must be in [0, 1)"),
        (
            m.pooling == "auto" or m.pooling in POOLINGS,
            f"pooling must be auto or one of: {', '.join(POOLINGS)} (got {m.pooling!r})",
        ),
        (len(m.channels) >= 1, "channels needs at least one layer"),
        (all(v >= 1 for v in m.channels), "channels must all be at least 1"),
        (all(v >= 1 for v in m.kernel_sizes), "kernel-sizes must all be at least 1"),
        (all(v >= 1 for v in m.dilations), "dilations must all be at least 1"),
        (all(v >= 1 for v in m.pool_sizes), "pool-sizes must all be at least 1 (1 = no pooling)"),
        (
            m.d_model >= 1 and m.heads >= 1 and m.ff_size >= 1,
            "d-model, heads and ff-size must be at least 1",
        ),
        (
            m.heads < 1 or m.d_model % m.heads == 0,
            f"d-model ({m.d_model}) must be divisible by heads ({m.heads})",
        ),
        (m.max_length >= 1, "max-length must be at least 1"),
    ]
    for ok, message in checks:
        if not ok:
            raise UsageError(message)
    n = len(m.channels)
    for key in ("kernel_sizes", "dilations", "pool_sizes"):
        if key == "pool_sizes" and not m.pool_sizes:
            continue  # automatic (models.base.resolve_model)
        if len(getattr(m, key)) != n:
            raise UsageError(
                f"model.{key} has {len(getattr(m, key))} entries but model.channels has {n}: "
                "give one value per convolution layer"
            )


def _check_finite(settings: Any) -> None:
    """Every number setting is finite: inf and nan pass comparisons such as 'lr > 0' (or
    fail them with a misleading message) and only fail later, in training."""
    for f in dataclasses.fields(settings):
        value = getattr(settings, f.name)
        if isinstance(value, float) and not math.isfinite(value):
            raise UsageError(f"{f.name.replace('_', '-')} must be a finite number (got {value})")


def dump_yaml(cfg: RunConfig) -> str:
    return yaml.safe_dump(cfg.to_dict(), sort_keys=False)


def _yaml_value(value: Any) -> str:
    text = yaml.safe_dump(value, default_flow_style=True, width=1000).strip()
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
