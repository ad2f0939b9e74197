"""Command-line interface: options in, core calls, errors to exit codes; nothing else."""

from __future__ import annotations

import copy
import dataclasses
import errno
import functools
import gc
import inspect
import json
import logging
import math
import os
import re
import signal
import sys
import time
import traceback
import typing
from collections.abc import Callable
from enum import Enum
from typing import TYPE_CHECKING, Annotated, Any

import typer
import typer.core

from ._version import __version__
from .errors import BioseqnnError, SettingError

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress
    from rich.table import Table

    from .config import RunConfig
    from .ops.train import TrainOutcome

log = logging.getLogger("bioseqnn")


@functools.cache
def _defaults() -> dict[str, Any]:
    """The settings a run takes when neither an option nor a config file sets them."""
    from .config import RunConfig

    return RunConfig().to_dict()


def _default(section: str, name: str) -> str:
    """' (default: X)' for a train option, read from the settings' dataclasses (the value a
    run takes when neither the option nor a config file sets it)."""
    value = _defaults()[section][name]
    if isinstance(value, bool):
        shown = "yes" if value else "no"
    elif isinstance(value, list):
        shown = ",".join(map(str, value)) or "auto"
    else:
        shown = str(value)
    return f" (default: {shown})"


class _AbsentValue:
    """What typer's coercion does with a value that was not given (None): None, or ()
    for a parameter that takes several values, whatever the parameter's type; with a
    value of the parameter's own plain type (_needs_no_coercion): the value itself, and
    with texts for a list[str]: their list."""

    @staticmethod
    def coerce(value: Any, param: Any, ctx: Any) -> Any:
        if isinstance(value, (list, tuple)):  # texts of a list[str] parameter
            return list(value)
        if value is not None:
            return value
        return () if param.multiple or param.nargs == -1 else None


def _needs_no_coercion(parameter: Any, value: Any) -> bool:
    """Whether typer's coercer would give ``value`` back unchanged: it is absent (None),
    or of the parameter's own plain type (str, int, float or a choice's Enum, or that |
    None): text from the command line for a text option (or texts for a list[str],
    which becomes a list), or an option's default. A number or choice typed on the
    command line arrives as text, which typer converts and checks."""
    if value is None:
        return True
    kind = type(value)
    descriptor = getattr(parameter, "type_descriptor", None)
    if kind in (list, tuple):
        return getattr(descriptor, "annotation", None) == list[str] and all(
            type(v) is str for v in value
        )
    return (
        (kind in (str, int, float) or isinstance(value, Enum))
        and getattr(descriptor, "annotation", None) is kind
        and getattr(descriptor, "file_annotation", None) is None
    )


def _coerce_absent_values_cheaply() -> bool:
    """Let typer skip building a coercer for a value it would give back unchanged.

    typer (0.29) builds each parameter's coercer, a pydantic TypeAdapter, the first time
    it processes a value, even None, which every coercer passes through unchanged. Its
    own --help and completion flags are None in every run, so every command imported
    pydantic: about 90 ms of the 0.25 s that 'bioseqnn version' or 'train --help' took.
    A text option's value (config's '-o -', info's model path) is text already, which
    the str coercer returns as it is (pydantic's import is 0.17 s on an AVX2 EPYC).
    Other values are coerced by typer as before. Where typer's internals are not the
    ones this expects, nothing changes. Returns whether it applied."""
    parameter = getattr(getattr(typer, "core", None), "_TyperParameter", None)
    process = getattr(parameter, "process_value", None)
    if parameter is None or process is None or not hasattr(parameter, "get_runtime_param"):
        return False
    if getattr(process, "_bioseqnn", False):
        return True

    def process_value(self: Any, ctx: Any, value: Any) -> Any:
        if getattr(self, "_runtime_param", _AbsentValue) is not None or not _needs_no_coercion(
            self, value
        ):
            return process(self, ctx, value)
        self._runtime_param = _AbsentValue
        try:
            return process(self, ctx, value)
        finally:
            self._runtime_param = None  # a later value still gets typer's own coercer

    process_value._bioseqnn = True  # type: ignore[attr-defined]
    parameter.process_value = process_value
    return True


CHEAP_ABSENT_VALUES = _coerce_absent_values_cheaply()

app = typer.Typer(
    name="bioseqnn",
    help="Train and apply neural networks on DNA, RNA and protein sequences and on numeric series.",
    add_completion=True,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


@functools.cache
def _stderr() -> Console:
    """The console of progress bars and tables on stderr (rich loads when one is shown:
    about 40 ms that a command without them need not wait for)."""
    from .progress import console

    return console(stderr=True, highlight=False, soft_wrap=True)


def _choices(values: type[Enum]) -> str:
    """The metavar of an option that takes one of an Enum's values: 'a|b|c', as train's
    setting options show their choices."""
    return "|".join(str(member.value) for member in values)


class Task(str, Enum):
    binary = "binary"
    multiclass = "multiclass"
    multilabel = "multilabel"
    regression = "regression"
    per_position = "per-position"
    language_model = "language-model"


class OutputFormat(str, Enum):
    tsv = "tsv"
    fasta = "fasta"


PositionMask = Annotated[
    str | None,
    typer.Option(
        "--position-mask",
        metavar="FASTA",
        rich_help_panel="Inputs",
        help="Per-position tasks: FASTA of 0/1 per residue (same ids and "
        "lengths); 0 = not scored (left out of loss and metrics).",
    ),
]


class AlphabetChoice(str, Enum):
    auto = "auto"
    dna = "dna"
    rna = "rna"
    protein = "protein"


class OnInvalid(str, Enum):
    error = "error"
    skip = "skip"
    mask = "mask"


TaskOpt = Annotated[
    Task | None,
    typer.Option(
        metavar=_choices(Task), rich_help_panel="Inputs", help="Override the detected task."
    ),
]
AlphabetOpt = Annotated[
    AlphabetChoice,
    typer.Option(
        metavar=_choices(AlphabetChoice), rich_help_panel="Inputs", help="Force the alphabet."
    ),
]

SequenceColumnOpt = Annotated[
    str | None,
    typer.Option(
        "--sequence-column",
        metavar="NAME",
        rich_help_panel="Inputs",
        help="Read sequences from this column of the table instead of a FASTA.",
    ),
]
IgnoreUnmatchedOpt = Annotated[
    bool,
    typer.Option(
        "--ignore-unmatched/--no-ignore-unmatched",
        rich_help_panel="Inputs",
        help="Drop records whose id is in only one of the inputs (warn instead of failing).",
    ),
]


_SECTION_PANELS = {"model": "Model", "training": "Training"}
_SETTING_TYPES: dict[str, Any] = {
    "bool": bool,
    "int": int,
    "float": float,
    "str": str,
    "str | None": str,
    "list[int]": list[str],
}
_TYPE_METAVARS = {"int": "N", "float": "NUMBER", "str": "TEXT", "list[int]": "N,N,..."}


def _setting_help(section: str, field: dataclasses.Field[Any]) -> str:
    """A setting's help as an option's: its one text (config.setting), with the settings
    it names written as flags, the architectures that read it, its range and its
    default."""
    from .config import ARCHITECTURES, AUTO, DEFAULT_ARCH, DEFAULT_CAUSAL_ARCH, setting_range

    text = field.metadata["help"]
    if field.name == "arch":  # the list that 'bioseqnn config' writes below the line
        text = (
            f"architecture: {AUTO} (the default recipe: {DEFAULT_ARCH}; "
            f"{DEFAULT_CAUSAL_ARCH} for a language model), {', '.join(ARCHITECTURES)}"
        )
    text = re.sub(r"\b([a-z]+(?:_[a-z]+)+)\b", _as_flag, text)
    users = [name for name, a in ARCHITECTURES.items() if field.name in a.uses]
    if users and len(users) < len(ARCHITECTURES):
        text += f" [{', '.join(users)}]"
    if setting_range(field):
        text += f"; {setting_range(field)}"
    return text[0].upper() + text[1:] + "." + _default(section, field.name)


def _flag(name: str) -> str:
    """A setting's default flag: init_from -> --init-from."""
    return "--" + name.replace("_", "-")


def _flags(field: dataclasses.Field[Any]) -> tuple[str, ...]:
    """A setting's option's flags: config.setting's, or its default flag."""
    return field.metadata.get("flags") or (_flag(field.name),)


def _setting_flag(key: str) -> str:
    """The flag that names a setting in a message: its option's first (--threads, not -j;
    --bidirectional of --bidirectional/--unidirectional)."""
    from .config import ModelConfig, TrainConfig

    for cls in (ModelConfig, TrainConfig):
        for field in dataclasses.fields(cls):
            if field.name == key:
                return _flags(field)[0].split("/")[0]
    return _flag(key)


@functools.cache
def _setting_names() -> frozenset[str]:
    from .config import ModelConfig, TrainConfig

    return frozenset(f.name for c in (ModelConfig, TrainConfig) for f in dataclasses.fields(c))


def _as_flag(match: re.Match[str]) -> str:
    """A setting's name (init_from) in a help text as its flag (--init-from)."""
    name = match.group(1)
    return _flag(name) if name in _setting_names() else name


def _setting_parameter(section: str, field: dataclasses.Field[Any]) -> inspect.Parameter:
    """The command-line option of one setting of the config dataclasses."""
    meta = field.metadata
    kind = str(field.type)
    options: dict[str, Any] = {
        "help": _setting_help(section, field),
        "rich_help_panel": meta.get("panel") or _SECTION_PANELS[section],
        "show_default": False,
    }
    metavar = meta.get("metavar") or _TYPE_METAVARS.get(kind)
    if kind != "bool" and metavar:
        options["metavar"] = metavar
    if kind == "float":
        options["parser"] = finite
    option = typer.Option(*_flags(field), **options)
    return inspect.Parameter(
        field.name,
        inspect.Parameter.KEYWORD_ONLY,
        default=None,
        annotation=Annotated[_SETTING_TYPES[kind] | None, option],
    )


def _in_panel(annotation: Any, panel: str) -> Any:
    """An ``Annotated[T, typer.Option(...)]`` whose option is shown in ``panel``."""
    base, info, *rest = typing.get_args(annotation)
    info = copy.copy(info)
    info.rich_help_panel = panel
    return Annotated[(base, info, *rest)]  # type: ignore[valid-type]


def with_settings(
    panels: dict[str, str], only: tuple[str, ...] | None = None
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Give a command one option per setting of the config dataclasses (help, default,
    flags, metavar and panel from config.setting; ``only``: these settings), passed to it
    as ``settings``: {"model": {...}, "training": {...}} with None for each option not
    given (integer lists parsed). ``panels`` puts the command's own options in --help
    panels."""
    from .config import ModelConfig, TrainConfig, parse_int_list

    fields = [
        (section, f)
        for section, cls in (("model", ModelConfig), ("training", TrainConfig))
        for f in dataclasses.fields(cls)
        if only is None or f.name in only
    ]

    def wrap(func: Callable[..., Any]) -> Callable[..., Any]:
        signature = inspect.signature(func, eval_str=True)
        own = [
            p.replace(annotation=_in_panel(p.annotation, panels[p.name])) if p.name in panels else p
            for p in signature.parameters.values()
            if p.name != "settings"
        ]
        made = [_setting_parameter(section, f) for section, f in fields]

        @functools.wraps(func)
        def command(*args: Any, **kwargs: Any) -> Any:
            settings: dict[str, dict[str, Any]] = {"model": {}, "training": {}}
            for section, f in fields:
                value = kwargs.pop(f.name)
                if f.type == "list[int]":
                    value = parse_int_list(value, _flag(f.name))
                settings[section][f.name] = value
            return func(*args, settings=settings, **kwargs)

        full = signature.replace(parameters=own + made)
        command.__signature__ = full  # type: ignore[attr-defined]
        command.__annotations__ = {p.name: p.annotation for p in full.parameters.values()}
        del command.__wrapped__  # typer reads __signature__, not the wrapped function's
        return command

    return wrap


_PANEL_ORDER = ("Arguments", "Inputs", "Model", "Training", "Fine-tuning", "", "Run", "Output")
"""The order of --help's groups; "": a command's own groups (Method, Sampling, Search...),
in the order of their first option. "Options" (--help alone) comes last."""


class PanelledCommand(typer.core.TyperCommand):
    """A command whose --help lists its options in groups (each option's
    ``rich_help_panel``: Inputs, Model, Training, Fine-tuning, a command's own, Run,
    Output), in click's plain layout; every command of the app is one."""

    def format_options(self, ctx: Any, formatter: Any) -> None:
        groups: dict[str, list[tuple[str, str]]] = {}
        # in a group, the options' order, but --quiet and --debug close it (settings'
        # options such as --device come after a command's own)
        params = sorted(self.get_params(ctx), key=lambda p: p.name in ("quiet", "debug"))
        for param in params:
            record = param.get_help_record(ctx)
            if record is None:
                continue
            default = "Options"
            if param.param_type_name == "argument":
                default = "Arguments"
                record = (_argument_name(param), record[1])
            groups.setdefault(getattr(param, "rich_help_panel", None) or default, []).append(record)
        for name in sorted(groups, key=_panel_rank):
            with formatter.section(name):
                formatter.write_dl(groups[name])


def _panel_rank(panel: str) -> int:
    if panel == "Options":
        return len(_PANEL_ORDER)
    return _PANEL_ORDER.index(panel if panel in _PANEL_ORDER else "")


def _argument_name(param: Any) -> str:
    """An argument as --help names it: its metavar (MODEL, SEQUENCES...), not Typer's
    'MODEL <str>'."""
    name = str(param.metavar or param.name.upper())
    return name + "..." if param.nargs != 1 else name


def finite(text: str) -> float:
    """The parser of every number option (tests/cli/test_usage_details.py checks that it is):
    a float, finite. Python's float() takes 'inf' and 'nan', which pass range checks such
    as 'lr > 0' and failed only during training."""
    try:
        number = float(text)
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not a number") from None
    if not math.isfinite(number):
        raise typer.BadParameter(f"{text!r} is not a finite number")
    return number


class FigureFormat(str, Enum):
    png = "png"
    pdf = "pdf"
    svg = "svg"


# The figure options of every command that draws (bioseqnn.plots.DPI is the default dpi;
# not imported here, as plots loads numpy and --help stays light).
FigFormat = Annotated[
    FigureFormat | None,
    typer.Option(
        "--format",
        "--plot-format",
        metavar=_choices(FigureFormat),
        rich_help_panel="Output",
        show_default=False,
        help="Figure format: png, pdf or svg (default: png).",
    ),
]
FigDpi = Annotated[
    int | None,
    typer.Option(
        "--dpi",
        metavar="N",
        rich_help_panel="Output",
        min=50,
        max=1200,
        show_default=False,
        help="Resolution of PNG figures in dots per inch (default: 300); PDF and SVG are "
        "vector figures.",
    ),
]
Quiet = Annotated[
    bool, typer.Option("--quiet", "-q", rich_help_panel="Run", help="Print nothing but errors.")
]
Debug = Annotated[
    bool,
    typer.Option("--debug", rich_help_panel="Run", help="Show full tracebacks and debug logging."),
]
Device = Annotated[
    str | None,
    typer.Option(
        metavar="auto|cpu|cuda[:N]",
        rich_help_panel="Run",
        show_default=False,
        help="auto (the default: CUDA when present; given explicitly, warns "
        "when it falls back to the CPU), cpu, cuda or cuda:N.",
    ),
]
Threads = Annotated[
    int,
    typer.Option(
        "--threads",
        "-j",
        metavar="N",
        rich_help_panel="Run",
        min=0,
        help="CPU threads for torch (0 = cores available).",
    ),
]
InvalidOpt = Annotated[
    OnInvalid,
    typer.Option(
        "--on-invalid",
        metavar=_choices(OnInvalid),
        rich_help_panel="Inputs",
        help="Invalid symbols: stop with an error, skip the record, or mask the "
        "symbol as fully ambiguous (N/X). Numeric series: missing or invalid values, masked as "
        "the channel's mean.",
    ),
]


class OnEdge(str, Enum):
    pad = "pad"
    error = "error"


GenomeRef = Annotated[
    str | None,
    typer.Option(
        "--genome",
        metavar="FASTA",
        rich_help_panel="Inputs",
        show_default=False,
        help="Reference genome (FASTA, plain or bgzip, read through its .fai index, built on "
        "first use): SEQUENCES are then intervals on it, a BED file or a table with chrom, "
        "start and end columns (needs bioseqnn[genome]).",
    ),
]
Window = Annotated[
    int | None,
    typer.Option(
        "--window",
        metavar="N",
        rich_help_panel="Inputs",
        min=0,
        show_default=False,
        help="--genome: centre each interval on this many bases (0: each interval's own "
        "length; default: the model's window, in train the intervals' own lengths).",
    ),
]
OnEdgeOpt = Annotated[
    OnEdge | None,
    typer.Option(
        "--on-edge",
        metavar=_choices(OnEdge),
        rich_help_panel="Inputs",
        show_default=False,
        help="--genome: a window that runs off a chromosome end is padded with N (pad, the "
        "default) or an error.",
    ),
]


SeriesId = Annotated[
    str | None,
    typer.Option(
        "--id-column",
        metavar="NAME",
        rich_help_panel="Inputs",
        show_default=False,
        help="Numeric series models: the id column of the series table (default: as in training).",
    ),
]

ModelArg = Annotated[
    str, typer.Argument(metavar="MODEL", help="Model file written by 'bioseqnn train'.")
]


def _shown(text: str) -> str:
    """A message as it can be printed and copied: a file name's bytes that are not UTF-8
    (kept by Python as lone surrogates) are written as \\xNN, as the shell's printf takes
    them, rather than \\udcNN."""
    try:
        raw = text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a surrogate that stands for no byte
        raw = text.encode("utf-8", "backslashreplace")
    return raw.decode("utf-8", "backslashreplace")


class _Formatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        msg = _shown(record.getMessage())
        if record.levelno >= logging.ERROR:
            return f"bioseqnn: error: {msg}"
        if record.levelno >= logging.WARNING:
            return f"bioseqnn: warning: {msg}"
        return f"bioseqnn: {msg}"


def _setup_logging(quiet: bool, debug: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Formatter())
    log.handlers[:] = [handler]
    log.propagate = False
    log.setLevel(logging.DEBUG if debug else logging.ERROR if quiet else logging.INFO)
    for message in _repeated:  # found in the command line by main(), said once it parsed
        log.warning("%s", message)
    _repeated.clear()


_repeated: list[str] = []
"""Warnings about options given more than once, for the running command."""


@functools.cache
def _click_group(only: str | None = None) -> Any:
    """The click command that typer builds from ``app``, once per process.

    With ``only`` (the command the arguments name), a group of that one command: typer
    builds every command's parameters from its signature, about 90 ms for all of them,
    which a run of one command need not wait for. Its help, errors and behaviour are
    those of the full group; the full one answers everything else (the group's help,
    an unknown command, shell completion)."""
    if only == "":  # the version alone: no command is run or listed
        bare = copy.copy(app)
        bare.registered_commands = []
        return typer.main.get_command(bare)
    if only is not None:
        chosen = [c for c in app.registered_commands if _command_name(c) == only]
        if len(chosen) == 1:
            one = copy.copy(app)
            one.registered_commands = chosen
            return typer.main.get_command(one)
    return typer.main.get_command(app)


LISTING_ARGS: tuple[list[str], ...] = ([], ["--help"])
"""Arguments that show the group's help, which lists the commands and none of their
parameters."""


@functools.cache
def _listing_group() -> Any:
    """The group as its help shows it: every command's name and help, without building
    their parameters from the signatures (90 ms of the 0.25 s that 'bioseqnn --help'
    took on an AVX2 EPYC). tests/cli/test_cli.py checks that the help is the full
    group's."""
    listed = copy.copy(app)
    listed.registered_commands = [_without_parameters(c) for c in app.registered_commands]
    return typer.main.get_command(listed)


def _without_parameters(info: Any) -> Any:
    """A registered command's copy whose callback takes nothing, with its name and help."""
    callback = info.callback

    def listed() -> None:
        raise AssertionError("a listed command is not run")  # pragma: no cover

    listed.__doc__ = callback.__doc__
    copied = copy.copy(info)
    copied.name = _command_name(info)
    copied.callback = listed
    return copied


def _command_name(info: Any) -> str:
    """The name a registered command is called by (typer's rule: its function's name,
    lower case, '-' for '_', unless named)."""
    return info.name or typer.main.get_command_name(info.callback.__name__)


def _named_command(args: list[str]) -> str | None:
    """The command the arguments name (the first that is no option), or None; "" for
    '--version' on its own, which needs no command at all."""
    if args == ["--version"]:
        return ""
    return next((a for a in args if not a.startswith("-")), None)


def repeated_options(args: list[str]) -> list[str]:
    """One warning per single-valued option given more than once with different values.

    The rule (as for a config file and flags: what comes later wins): the last value is
    used, as click does, and the user is told which; repeating a value is no warning, and
    options that take several values (--target) are left alone.
    """
    at = next((i for i, a in enumerate(args) if not a.startswith("-")), None)
    if at is None:
        return []
    commands = getattr(_click_group(_named_command(args)), "commands", {})
    if args[at] not in commands:
        return []
    options: dict[str, tuple[Any, Any]] = {}  # an option's spelling -> (its parameter, value)
    for param in commands[args[at]].params:
        if param.param_type_name != "option" or param.multiple:
            continue
        flag = param.is_flag and not param.count
        for spelling in param.opts:
            options[spelling] = (param, True if flag else None)
        for spelling in param.secondary_opts:
            options[spelling] = (param, False)
    given: dict[str, list[tuple[str, Any]]] = {}
    rest = iter(args[at + 1 :])
    for arg in rest:
        if arg == "--":
            break
        spelling, equals, attached = arg.partition("=") if arg.startswith("--") else (arg, "", "")
        if spelling not in options:
            continue
        param, value = options[spelling]
        if value is None:  # an option that takes a value: attached, or the next argument
            value = attached if equals else next(rest, None)
        given.setdefault(param.name, []).append((spelling, value))
    warnings = []
    for uses in given.values():
        if len({repr(value) for _, value in uses}) < 2:
            continue
        names = "/".join(dict.fromkeys(spelling for spelling, _ in uses))
        if isinstance(uses[0][1], bool):
            shown = ", then ".join(spelling for spelling, _ in uses)
            warnings.append(f"{shown} given: the last one, {uses[-1][0]}, is used")
        else:
            values = ", then ".join(str(value) for _, value in uses)
            warnings.append(
                f"{names} given {len(uses)} times ({values}): the last value, "
                f"{uses[-1][1]}, is used"
            )
    return warnings


class RichReporter:
    """Progress bar on a terminal; one log line per epoch either way."""

    def __init__(self, show_bar: bool, headline: str) -> None:
        self.show_bar = show_bar
        self.headline = headline
        self.progress: Progress | None = None
        self.epochs = 0
        self.monitor = "val_loss"

    def start(self, epochs: int, batches: int, monitor: str = "val_loss") -> None:
        self.epochs = epochs
        self.monitor = monitor
        if self.show_bar:
            from rich.progress import (
                BarColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self.progress = Progress(
                TextColumn("epoch {task.fields[epoch]}/{task.fields[epochs]}"),
                BarColumn(),
                TextColumn("loss {task.fields[loss]:.4f}"),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                console=_stderr(),
                transient=True,
            )
            self.progress.start()
            self.task = self.progress.add_task(
                "train", total=batches, epoch=1, epochs=epochs, loss=float("nan")
            )

    def batch(self, epoch: int, loss: float) -> None:
        if self.progress is not None:
            self.progress.update(self.task, advance=1, epoch=epoch, loss=loss)

    def epoch(self, record: dict[str, Any]) -> None:
        from .progress import epoch_line

        line = epoch_line(record, self.epochs, self.headline, self.monitor)
        if self.progress is not None:
            self.progress.console.print("bioseqnn: " + line)
            self.progress.reset(self.task)
        else:
            log.info("%s", line)

    def finish(self) -> None:
        if self.progress is not None:
            self.progress.stop()


def version_details() -> list[str]:
    """What this install runs on, one 'name: value' line each: bioseqnn, Python, torch
    (its build), the CPU kernels, the optional libraries. Read from the installed
    packages' metadata, so nothing here imports torch."""
    import platform
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    from . import kernels

    def of(name: str) -> str:
        try:
            return installed(name)
        except PackageNotFoundError:
            return "not installed"

    torch_version = of("torch")
    build = (
        "CPU-only build"
        if torch_version.endswith("+cpu")
        else "CUDA build"
        if "+cu" in torch_version
        else "CPU or CUDA build: GPUs are looked for when a command runs"
    )
    isa = kernels.instruction_set()
    if isa == "none":
        shown = "not built (torch operations: same results, slower)"
    elif not kernels.available():
        shown = f"{isa}, switched off by BIOSEQNN_NATIVE"
    else:
        shown = isa
    return [
        f"bioseqnn: {__version__}",
        f"python: {platform.python_version()} ({platform.python_implementation()}, "
        f"{platform.system()} {platform.machine()})",
        f"torch: {torch_version} ({build})",
        f"CPU kernels for LSTM/GRU: {shown}",
        *(
            f"{name}: {of(name)}"
            for name in ("numpy", "biopython", "typer", "matplotlib", "onnx", "optuna", "ViennaRNA")
        ),
    ]


def _version(value: bool) -> None:
    """One line, 'bioseqnn X.Y.Z', as pipelines parse it (details: bioseqnn version
    --verbose). Instant: nothing is imported."""
    if value:
        print(f"bioseqnn {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_version,
            is_eager=True,
            help="Print the version ('bioseqnn X.Y.Z') and exit; 'bioseqnn version --verbose' "
            "names torch, its build and the CPU kernels.",
        ),
    ] = False,
) -> None:
    """Train and apply neural networks on DNA, RNA and protein sequences and on numeric
    series."""


@app.command(cls=PanelledCommand)
@with_settings(
    {
        "config": "Inputs",
        "id_column": "Inputs",
        "series_columns": "Inputs",
        "target": "Inputs",
        "sequence_column": "Inputs",
        "task": "Inputs",
        "alphabet": "Inputs",
        "on_invalid": "Inputs",
        "ignore_unmatched": "Inputs",
        "val_fasta": "Inputs",
        "val_labels": "Inputs",
        "position_mask": "Inputs",
        "genome": "Inputs",
        "window": "Inputs",
        "on_edge": "Inputs",
        "holdout_chroms": "Inputs",
        "exclude_chroms": "Inputs",
        "output": "Output",
        "log_file": "Output",
        "plots": "Output",
        "tensorboard": "Output",
        "mlflow": "Output",
        "plot_format": "Output",
        "dpi": "Output",
        "quiet": "Run",
        "debug": "Run",
        "resume": "Training",
    }
)
def train(
    sequences: Annotated[
        str,
        typer.Argument(
            metavar="SEQUENCES",
            help="FASTA/FASTQ (plain or .gz, '-' for stdin), a table with --sequence-column, or "
            "a numeric series table (CSV/TSV: an id column and one column per channel, one row "
            "per time step).",
        ),
    ],
    labels: Annotated[
        str | None,
        typer.Argument(
            metavar="LABELS",
            help="CSV/TSV of labels joined to the FASTA by id; or a FASTA of per-residue label "
            "letters (same ids and lengths), which trains a per-position model.",
        ),
    ] = None,
    output: Annotated[
        str, typer.Option("-o", "--output", metavar="FILE", help="Model file to write.")
    ] = "model.bsnn",
    config: Annotated[
        str | None,
        typer.Option(
            "--config",
            "-c",
            metavar="FILE",
            help="YAML config (see 'bioseqnn config'); flags override it.",
        ),
    ] = None,
    id_column: Annotated[
        str,
        typer.Option(
            metavar="NAME", help="Id column of the labels table (and of a numeric series table)."
        ),
    ] = "id",
    series_columns: Annotated[
        str | None,
        typer.Option(
            metavar="NAME,NAME,...",
            help="Numeric series: the table's columns to read as "
            "channels (default: every column but the id).",
        ),
    ] = None,
    target: Annotated[
        list[str] | None,
        typer.Option(
            "--target",
            "-t",
            metavar="NAME",
            help="Target column (repeat for several; default: all but the id).",
        ),
    ] = None,
    sequence_column: SequenceColumnOpt = None,
    task: TaskOpt = None,
    alphabet: AlphabetOpt = AlphabetChoice.auto,
    on_invalid: InvalidOpt = OnInvalid.error,
    ignore_unmatched: IgnoreUnmatchedOpt = False,
    val_fasta: Annotated[
        str | None,
        typer.Option(metavar="FILE", help="Explicit validation FASTA (or numeric series table)."),
    ] = None,
    val_labels: Annotated[
        str | None, typer.Option(metavar="FILE", help="Labels of the validation FASTA.")
    ] = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue the run checkpointed in --checkpoint-dir.")
    ] = False,
    position_mask: PositionMask = None,
    genome: GenomeRef = None,
    window: Window = None,
    on_edge: OnEdgeOpt = None,
    holdout_chroms: Annotated[
        str | None,
        typer.Option(
            metavar="CHR,CHR",
            show_default=False,
            help="--genome: intervals on these chromosomes are the validation set.",
        ),
    ] = None,
    exclude_chroms: Annotated[
        str | None,
        typer.Option(
            metavar="CHR,CHR",
            show_default=False,
            help="--genome: leave intervals on these chromosomes out (to evaluate on later).",
        ),
    ] = None,
    log_file: Annotated[
        str | None,
        typer.Option(
            "--log",
            metavar="FILE",
            help="Per-epoch metrics TSV (default: beside the model, NAME.log.tsv); "
            "a name ending in .jsonl writes JSON lines.",
        ),
    ] = None,
    plots: Annotated[
        str | None,
        typer.Option(
            "--plots",
            metavar="DIR",
            help="Folder for the learning curves, learning_curves.png (or .pdf/.svg: "
            "--format; needs matplotlib: bioseqnn[plots]).",
        ),
    ] = None,
    tensorboard: Annotated[
        str | None,
        typer.Option(
            "--tensorboard",
            metavar="DIR",
            show_default=False,
            help="Log each epoch's metrics, the settings and the learning curves as TensorBoard "
            "event files in DIR (needs bioseqnn[tracking]).",
        ),
    ] = None,
    mlflow: Annotated[
        str | None,
        typer.Option(
            "--mlflow",
            metavar="[URI]",
            show_default=False,
            help="Log the run to MLflow: settings, each epoch's metrics, the learning curves and "
            "the model file (needs bioseqnn[tracking]). Alone: the local store mlflow.db beside "
            "the model (sqlite); or a tracking URI: http(s)://server, sqlite:///runs.db, "
            "--mlflow=FOLDER.",
        ),
    ] = None,
    plot_format: FigFormat = None,
    dpi: FigDpi = None,
    quiet: Quiet = False,
    debug: Debug = False,
    settings: dict[str, dict[str, Any]] | None = None,
) -> None:
    """Train a model on sequences and their labels."""
    assert settings is not None  # with_settings passes the settings' options
    _setup_logging(quiet, debug)
    if plots is not None:
        from .plots import plot_dir

        plot_dir(plots)  # fail before training when matplotlib or the folder is missing
    from .config import parse_names
    from .ops.train import train as run_train

    cfg = _train_settings(config, settings, (output, log_file))
    lm = task is Task.language_model
    from .variants.intervals import genome_options

    intervals = genome_options(
        genome,
        window=window,
        on_edge=on_edge and on_edge.value,
        holdout_chroms=holdout_chroms,
        exclude_chroms=exclude_chroms,
    )
    fasta, table = (None, sequences) if sequence_column and labels is None else (sequences, labels)
    if table is None and not lm and intervals is None:
        raise typer.BadParameter(
            "a labels table is required (or --sequence-column; "
            "--task language-model learns from sequences alone)",
            param_hint="LABELS",
        )
    show_bar = _stderr().is_terminal and not quiet
    reporter = RichReporter(show_bar, "perplexity" if lm else "accuracy")
    from .tracking import Tracking

    tracking = Tracking.open(tensorboard, mlflow, output)
    try:
        outcome = run_train(
            fasta,
            table,
            output,
            cfg,
            id_column=id_column,
            targets=target or None,
            sequence_column=sequence_column,
            task=task.value if task else None,
            alphabet=alphabet.value,
            on_invalid=on_invalid.value,
            ignore_unmatched=ignore_unmatched,
            val_fasta=val_fasta,
            val_labels=val_labels,
            log_path=log_file,
            reporter=reporter,
            resume=resume,
            position_mask=position_mask,
            series_columns=parse_names(series_columns, "--series-columns"),
            genome=intervals,
            on_epoch=tracking.epoch,
        )
    except BaseException:
        tracking.fail()
        raise
    tracking.finish(outcome)
    log.info(
        "wrote %s (%s); metrics log %s", outcome.output, _train_summary(outcome), outcome.log_path
    )
    if plots is not None and outcome.main:
        _learning_curve_plots(outcome, plots, plot_format, dpi)


def _train_settings(
    config: str | None, settings: dict[str, dict[str, Any]], outputs: tuple[str | None, ...]
) -> RunConfig:
    """The run's settings: the --config file's, then the options given; a fine-tuning
    run's network settings checked against the ones given on purpose."""
    from .config import RunConfig, apply_overrides, load_config
    from .io.outputs import check_not_an_input

    for written in outputs:
        if written is not None:
            check_not_an_input(written, {"--config": config})
    cfg = load_config(config) if config else RunConfig()
    cfg = apply_overrides(cfg, settings)
    if cfg.training.init_from and cfg.training.init_from != "-":
        from .engine.finetune import check_given

        # a setting given on purpose counts even at its default value (the library can
        # only tell settings that differ from the defaults)
        check_given(
            cfg.training.init_from,
            cfg.training.init_member or None,
            _given_model_settings(config, cfg, settings["model"]),
        )
    return cfg


def _train_summary(outcome: TrainOutcome) -> str:
    """What the run gave, for its last log line: the best epoch (or the ensemble's or the
    folds'), with the monitored and the headline validation metric."""
    best = outcome.result.best
    kind = outcome.manifest["task"]["kind"]
    headline = {"regression": "val_r2", "language-model": "val_perplexity"}.get(
        kind, "val_accuracy"
    )
    members = outcome.manifest.get("metrics", {}).get("members")
    folds = outcome.manifest.get("metrics", {}).get("cv")
    summary = (
        f"{folds['folds']} cross-validation models, pooled out-of-fold"
        if folds
        else f"ensemble of {len(members)}{' on validation' if best else ''}"
        if members
        else f"best epoch {outcome.result.best_epoch}"
    )
    for key in dict.fromkeys([outcome.result.monitor, headline]):
        if isinstance(best.get(key), float):
            summary += f", {key} {best[key]:.4f}"
    return summary


def _learning_curve_plots(
    outcome: TrainOutcome, plots: str, plot_format: FigureFormat | None, dpi: int | None
) -> None:
    """--plots: the learning curves of the run (one figure per member)."""
    from .plots import DPI, learning_curves, plot_dir, run_title

    title = run_title(outcome.manifest["data"]["sources"][0], outcome.output)
    history = outcome.result.history
    suffix = (plot_format or FigureFormat.png).value
    for member in sorted({r.get("member", 0) for r in history}):
        name = f"learning_curves_member{member}" if member else "learning_curves"
        figure = learning_curves(
            [r for r in history if r.get("member", 0) == member],
            plot_dir(plots) / f"{name}.{suffix}",
            f"{title}, member {member}" if member else title,
            dpi=dpi or DPI,
        )
        log.info("wrote %s", figure)


@app.command(cls=PanelledCommand)
def predict(
    model: ModelArg,
    sequences: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="SEQUENCES",
            show_default=False,
            help="FASTA/FASTQ to predict (plain or .gz; '-' or none for stdin), or for a numeric "
            "series model its series table; several files: their rows one file after the "
            "other, ids as in the files.",
        ),
    ] = None,
    output: Annotated[
        str,
        typer.Option(
            "-o",
            "--output",
            metavar="FILE",
            rich_help_panel="Output",
            help="Predictions TSV ('.csv' for CSV, '.gz' compresses; '-' stdout).",
        ),
    ] = "-",
    batch_size: Annotated[
        int, typer.Option(metavar="N", rich_help_panel="Run", min=1, help="Sequences per batch.")
    ] = 256,
    max_tokens: Annotated[
        int,
        typer.Option(
            metavar="N",
            rich_help_panel="Run",
            min=0,
            help="Cap on padded positions per batch (sequences x longest length): "
            "batches of long sequences hold fewer (0 = 262144; predictions do not depend "
            "on it).",
        ),
    ] = 0,
    device: Device = None,
    threads: Threads = 0,
    on_invalid: InvalidOpt = OnInvalid.error,
    rc_average: Annotated[
        bool | None,
        typer.Option(
            "--rc-average/--no-rc-average",
            rich_help_panel="Prediction",
            help="DNA/RNA: report the mean over both strands (default: as the model was trained).",
        ),
    ] = None,
    output_format: Annotated[
        OutputFormat,
        typer.Option(
            "--format",
            metavar=_choices(OutputFormat),
            rich_help_panel="Output",
            help="Per-position models: tsv (one row per residue: id, position, "
            "residue, predicted, prob_<class>...) or fasta (predicted labels).",
        ),
    ] = OutputFormat.tsv,
    id_column: SeriesId = None,
    genome: GenomeRef = None,
    window: Window = None,
    on_edge: OnEdgeOpt = None,
    quiet: Quiet = False,
    debug: Debug = False,
) -> None:
    """Predict each sequence (or series): one row per record, in input order, id first."""
    _setup_logging(quiet, debug)
    paths = sequences or ["-"]
    plain = (
        device in (None, "cpu")
        and not rc_average
        and output_format is OutputFormat.tsv
        and id_column is genome is window is on_edge is None
        and len(paths) == 1
        and batch_size >= 1
        and max_tokens >= 0
    )
    if plain:
        from .engine import light

        chosen = light.choose(model, paths)
        if chosen is not None:  # small enough not to wait for torch (engine/light.py)
            from . import machine

            machine.cap_memory()  # no GPU driver in this process: a ceiling on any machine
            try:
                stats = light.predict(chosen, model, paths[0], output, on_invalid.value, threads)
            except MemoryError:  # torch halves its batches, and names a record too long
                log.debug("out of memory without torch; predicting through torch")
                machine.release_memory()
            else:
                log.debug("predicted %d record(s) without torch", stats.records)
                return
    _prepare_torch()
    from .ops.predict import predict as run_predict
    from .variants.intervals import genome_options

    stats = run_predict(
        model,
        paths,
        output,
        batch_size=batch_size,
        max_tokens=max_tokens,
        device=device,
        threads=threads,
        on_invalid=on_invalid.value,
        rc_average=rc_average,
        fmt=output_format.value,
        id_column=id_column,
        genome=genome_options(genome, window=window, on_edge=on_edge and on_edge.value),
    )
    log.debug("predicted %d record(s)", stats.records)


class OnMismatch(str, Enum):
    error = "error"
    skip = "skip"
    warn = "warn"


class VariantFormat(str, Enum):
    tsv = "tsv"
    vcf = "vcf"


@app.command(cls=PanelledCommand)
def variants(
    model: Annotated[
        str,
        typer.Argument(
            metavar="MODEL",
            help="Model file written by 'bioseqnn train' (DNA; one output per sequence).",
        ),
    ],
    vcf: Annotated[
        str,
        typer.Argument(
            metavar="VCF",
            help="Variants: VCF or BCF, plain or compressed (bgzip, gzip, bzip2, xz, zstd; "
            "'-' for stdin).",
        ),
    ] = "-",
    genome: Annotated[
        str,
        typer.Option(
            "--genome",
            metavar="FASTA",
            rich_help_panel="Inputs",
            help="Reference genome the VCF is on (FASTA, plain or "
            "bgzip, read through its .fai index, built on first use; needs bioseqnn[genome]).",
        ),
    ] = "",
    output: Annotated[
        str,
        typer.Option(
            "-o",
            "--output",
            metavar="FILE",
            rich_help_panel="Output",
            help="One row per alternate allele: TSV ('.csv' for CSV, '.gz' "
            "compresses; '-' stdout); or NAME.vcf / NAME.vcf.gz (bgzip): the VCF with the "
            "scores as INFO fields.",
        ),
    ] = "-",
    window: Annotated[
        int | None,
        typer.Option(
            "--window",
            metavar="N",
            rich_help_panel="Inputs",
            min=1,
            show_default=False,
            help="Bases per window, centred on the variant (default: the model's window).",
        ),
    ] = None,
    on_edge: OnEdgeOpt = None,
    on_mismatch: Annotated[
        OnMismatch,
        typer.Option(
            "--on-mismatch",
            metavar=_choices(OnMismatch),
            rich_help_panel="Inputs",
            help="A REF that differs from the genome: stop with an error, skip "
            "the record, or score it with a warning (both counted).",
        ),
    ] = OnMismatch.error,
    rc_average: Annotated[
        bool | None,
        typer.Option(
            "--rc-average/--no-rc-average",
            rich_help_panel="Prediction",
            help="Score the mean over both strands (default: as the model was trained).",
        ),
    ] = None,
    output_format: Annotated[
        VariantFormat | None,
        typer.Option(
            "--format",
            metavar=_choices(VariantFormat),
            rich_help_panel="Output",
            show_default=False,
            help="tsv or vcf (default: from the output's name; tsv for stdout).",
        ),
    ] = None,
    batch_size: Annotated[
        int, typer.Option(metavar="N", rich_help_panel="Run", min=1, help="Windows per batch.")
    ] = 256,
    device: Device = None,
    threads: Threads = 0,
    quiet: Quiet = False,
    debug: Debug = False,
) -> None:
    """Variant effects: each alternate allele's window predicted against the reference's.

    Columns: chrom, pos, id, ref, alt, ref_<class>, alt_<class> (probabilities, or values
    for regression) and diff_<class>: alt - ref, of the log-odds log(p/(1-p)) for classes.
    """
    _setup_logging(quiet, debug)
    from .ops.variant_effects import score_variants
    from .variants.intervals import genome_options

    if not genome:
        raise typer.BadParameter(
            "the reference genome the VCF is on is required", param_hint="--genome"
        )
    options = genome_options(genome, window=window, on_edge=on_edge and on_edge.value)
    assert options is not None
    score_variants(
        model,
        vcf,
        options,
        output,
        fmt=output_format.value if output_format else None,
        on_mismatch=on_mismatch.value,
        rc_average=rc_average,
        batch_size=batch_size,
        device=device,
        threads=threads,
    )


@app.command(cls=PanelledCommand)
def info(
    model: Annotated[str, typer.Argument(metavar="MODEL", help="Model file.")],
    as_json: Annotated[
        bool,
        typer.Option("--json", rich_help_panel="Output", help="Print the whole manifest as JSON."),
    ] = False,
    quiet: Quiet = False,
    debug: Debug = False,
) -> None:
    """Describe a model file: alphabet, task, classes, architecture, data, metrics."""
    _setup_logging(quiet, debug)
    from .modelfile import read_manifest  # the header alone: no torch, no weights read

    manifest, _ = read_manifest(model)
    if as_json:
        print(json.dumps(manifest, indent=2, sort_keys=False))
        return
    rows = [(key, shown(value)) for key, value in _info_rows(manifest)]
    if sys.stdout.isatty():
        from .progress import console

        console(highlight=False).print(_info_table(rows))
    else:  # for pipes and files: one unwrapped, unpadded line per field
        width = max(len(key) for key, _ in rows)
        sys.stdout.write("".join(f"{key:<{width}}  {value}\n" for key, value in rows))


@app.command(cls=PanelledCommand)
def ensemble(
    models: Annotated[
        list[str],
        typer.Argument(
            metavar="MODEL",
            help="Model files to combine (two or more; ensembles are flattened).",
        ),
    ],
    output: Annotated[
        str,
        typer.Option(
            "-o",
            "--output",
            metavar="FILE",
            rich_help_panel="Output",
            help="The ensemble's model file.",
        ),
    ] = "ensemble.bsnn",
    quiet: Quiet = False,
    debug: Debug = False,
) -> None:
    """Combine model files of one task (any architectures) into an ensemble (mean probability)."""
    _setup_logging(quiet, debug)
    from .ops.ensemble import combine

    combine(models, output)


def parse_duration(text: str) -> float:
    """--time: seconds from '90s', '30m', '2h' (a bare number is seconds)."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smh]?)\s*", text)
    if not match:
        raise typer.BadParameter(
            f"{text!r} is not a duration (give e.g. 90s, 30m or 2h)", param_hint="'--time'"
        )
    if float(match.group(1)) <= 0:
        raise typer.BadParameter(
            f"{text!r}: a search needs some time (e.g. 90s, 30m or 2h)", param_hint="'--time'"
        )
    return float(match.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[match.group(2)]


@app.command(cls=PanelledCommand)
@with_settings({}, only=("val_fraction", "device", "threads"))
def tune(
    sequences: Annotated[
        str | None,
        typer.Argument(
            metavar="SEQUENCES",
            help="Training FASTA/FASTQ or table, as for 'train' (the test set is never an "
            "input: trials are scored on train's validation split or --val-fasta).",
        ),
    ] = None,
    labels: Annotated[
        str | None,
        typer.Argument(metavar="LABELS", help="CSV/TSV of labels joined to the sequences by id."),
    ] = None,
    output: Annotated[
        str,
        typer.Option(
            "-o",
            "--output",
            metavar="FILE",
            rich_help_panel="Output",
            help="The best trial's model file; beside it NAME.trials/ (every "
            "trial's model), NAME.trials.tsv, NAME.yaml (the best config) and NAME.tune.log "
            "(the study).",
        ),
    ] = "best.bsnn",
    trials: Annotated[
        int | None,
        typer.Option(
            "--trials",
            metavar="N",
            rich_help_panel="Search",
            min=0,
            help="Run this many trials (in this process); 0 with --resume "
            "writes the outputs from the study.",
        ),
    ] = None,
    time_budget: Annotated[
        str | None,
        typer.Option(
            "--time",
            metavar="DURATION",
            rich_help_panel="Search",
            help="Start no trial after this long (90s, 30m, 2h); "
            "a running trial stops after its current epoch, keeping its best epoch.",
        ),
    ] = None,
    space: Annotated[
        str | None,
        typer.Option(
            "--space",
            metavar="YAML",
            rich_help_panel="Search",
            help="Search space file (start from --show-space): "
            "ranges, choices, fixed values, families.",
        ),
    ] = None,
    show_space: Annotated[
        bool,
        typer.Option(
            "--show-space",
            rich_help_panel="Search",
            help="Print the default search space as YAML and exit.",
        ),
    ] = False,
    seed: Annotated[
        int,
        typer.Option(
            metavar="N",
            rich_help_panel="Run",
            help="Seed of the sampler and of every trial's split, batches and weights.",
        ),
    ] = 0,
    monitor: Annotated[
        str,
        typer.Option(
            metavar="METRIC",
            rich_help_panel="Search",
            help="Metric to optimise: auto (what train monitors: val_loss, or for imbalanced "
            "classes val_auprc or val_mcc), or val_auroc, val_r2, ... (losses and errors are "
            "minimised, scores maximised).",
        ),
    ] = "auto",
    study: Annotated[
        str | None,
        typer.Option(
            "--study",
            metavar="URL|FILE",
            rich_help_panel="Search",
            help="Optuna storage: a journal file (default "
            "NAME.tune.log beside -o), sqlite:///tune.db or postgresql://...",
        ),
    ] = None,
    resume: Annotated[
        bool,
        typer.Option(
            "--resume",
            rich_help_panel="Search",
            help="Continue the study in the storage (it must exist).",
        ),
    ] = False,
    join: Annotated[
        bool,
        typer.Option(
            "--join",
            rich_help_panel="Search",
            help="Create the study or continue it: for several processes (e.g. a "
            "SLURM job array) sharing one storage.",
        ),
    ] = False,
    ensemble_top: Annotated[
        int,
        typer.Option(
            "--ensemble-top",
            metavar="K",
            rich_help_panel="Search",
            min=1,
            help="Write the K best trials' models as one ensemble.",
        ),
    ] = 1,
    id_column: Annotated[
        str,
        typer.Option(
            metavar="NAME", rich_help_panel="Inputs", help="Id column of the labels table."
        ),
    ] = "id",
    target: Annotated[
        list[str] | None,
        typer.Option(
            "--target",
            "-t",
            metavar="NAME",
            rich_help_panel="Inputs",
            help="Target column (repeat for several; default: all but the id).",
        ),
    ] = None,
    sequence_column: SequenceColumnOpt = None,
    task: TaskOpt = None,
    alphabet: AlphabetOpt = AlphabetChoice.auto,
    on_invalid: InvalidOpt = OnInvalid.error,
    ignore_unmatched: IgnoreUnmatchedOpt = False,
    val_fasta: Annotated[
        str | None,
        typer.Option(
            metavar="FILE",
            rich_help_panel="Inputs",
            help="Explicit validation FASTA that scores every trial.",
        ),
    ] = None,
    val_labels: Annotated[
        str | None,
        typer.Option(
            metavar="FILE", rich_help_panel="Inputs", help="Labels of the validation FASTA."
        ),
    ] = None,
    position_mask: PositionMask = None,
    plots: Annotated[
        str | None,
        typer.Option(
            "--plots",
            metavar="DIR",
            rich_help_panel="Output",
            help="Write the optimisation history and the parameter "
            "importances here (needs bioseqnn[plots]).",
        ),
    ] = None,
    plot_format: FigFormat = None,
    dpi: FigDpi = None,
    defaults_first: Annotated[
        bool,
        typer.Option(
            "--defaults-first/--no-defaults-first",
            rich_help_panel="Search",
            help="A new study's first trial is "
            "train's defaults (with the space's fixed values): the search's best is never "
            "below the default on validation.",
        ),
    ] = True,
    quiet: Quiet = False,
    debug: Debug = False,
    settings: dict[str, dict[str, Any]] | None = None,
) -> None:
    """Search architectures and training settings (Optuna) and keep the best model."""
    _setup_logging(quiet, debug)
    from .search.space import default_space, load_space, space_yaml

    if show_space:
        sys.stdout.write(space_yaml(load_space(space) if space else None))
        return
    if sequences is None:
        raise typer.BadParameter(
            "give the training sequences (or --show-space)", param_hint="SEQUENCES"
        )
    budget = parse_duration(time_budget) if time_budget is not None else None
    searched = load_space(space) if space else default_space()
    from .config import RunConfig, apply_overrides
    from .search.study import tune as run_tune

    progress = _search_bar() if _stderr().is_terminal and not quiet else None
    assert settings is not None  # with_settings passes the settings' options
    base = apply_overrides(RunConfig(), {"training": settings["training"], "model": {}})
    fasta, table = (None, sequences) if sequence_column and labels is None else (sequences, labels)
    run_tune(
        fasta,
        table,
        output,
        space=searched,
        trials=trials,
        timeout=budget,
        seed=seed,
        monitor=monitor,
        study=study,
        resume=resume,
        join=join,
        ensemble_top=ensemble_top,
        config=base,
        id_column=id_column,
        targets=target or None,
        sequence_column=sequence_column,
        task=task.value if task else None,
        alphabet=alphabet.value,
        on_invalid=on_invalid.value,
        ignore_unmatched=ignore_unmatched,
        val_fasta=val_fasta,
        val_labels=val_labels,
        position_mask=position_mask,
        plots=plots,
        plot_format=(plot_format or FigureFormat.png).value,
        dpi=dpi,
        quiet_trials=not debug,
        progress=progress,
        defaults_first=defaults_first,
        space_file=space,
    )


def _search_bar() -> Any:
    """tune's progress on a terminal: a live bar (trials done of --trials, or the time
    spent of --time) with the best value so far; the trial lines print above it."""
    from .search.study import SearchProgress

    class SearchBar(SearchProgress):
        def __init__(self) -> None:
            self.progress: Progress | None = None
            self.started = 0.0
            self.timeout: float | None = None
            self.trials: int | None = None

        def start(self, trials: int | None, timeout: float | None) -> None:
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

            self.trials, self.timeout, self.started = trials, timeout, time.monotonic()
            self.progress = Progress(
                TextColumn("search: {task.fields[done]} trial(s), best {task.fields[best]}"),
                BarColumn(),
                TimeElapsedColumn(),
                console=_stderr(),
                transient=True,
            )
            self.progress.start()
            total = float(trials) if trials is not None else timeout
            self.task = self.progress.add_task("tune", total=total, done=0, best="-")

        def _advance(self, done: int | None = None) -> None:
            assert self.progress is not None
            if self.trials is not None and done is not None:
                self.progress.update(self.task, completed=min(done, self.trials))
            elif self.trials is None and self.timeout is not None:
                self.progress.update(
                    self.task, completed=min(time.monotonic() - self.started, self.timeout)
                )

        def tick(self) -> None:
            if self.progress is not None:
                self._advance()

        def trial(self, line: str, done: int, best: float | None) -> None:
            if self.progress is None:
                super().trial(line, done, best)
                return
            self.progress.console.print(f"bioseqnn: {line}", markup=False, highlight=False)
            self.progress.update(self.task, done=done, best="-" if best is None else f"{best:.4f}")
            self._advance(done)

        def finish(self) -> None:
            if self.progress is not None:
                self.progress.stop()
                self.progress = None

    return SearchBar()


class Method(str, Enum):
    saliency = "saliency"
    grad_input = "grad-input"
    ism = "ism"
    integrated_gradients = "integrated-gradients"
    deeplift_shap = "deeplift-shap"


class Reference(str, Enum):
    shuffle = "shuffle"
    uniform = "uniform"
    background = "background"
    zero = "zero"


ReferenceOpt = Annotated[
    Reference | None,
    typer.Option(
        metavar=_choices(Reference),
        rich_help_panel="Method",
        help="integrated-gradients and deeplift-shap: what a sequence is compared with: "
        "dinucleotide shuffles of it (DNA/RNA; deeplift-shap's default), a uniform letter mix "
        "(integrated-gradients' default, and deeplift-shap's for protein), the letter "
        "frequencies of the input, or all zeros.",
    ),
]
ShufflesOpt = Annotated[
    int,
    typer.Option(
        metavar="N",
        rich_help_panel="Method",
        min=1,
        max=1000,
        help="References per sequence with --reference shuffle (averaged).",
    ),
]
StepsOpt = Annotated[
    int,
    typer.Option(
        metavar="N",
        rich_help_panel="Method",
        min=1,
        max=1000,
        help="integrated-gradients: points on the path from reference to sequence.",
    ),
]
SeedOpt = Annotated[
    int,
    typer.Option(
        metavar="N",
        rich_help_panel="Run",
        min=0,
        max=2**63 - 1,
        help="Seed of the shuffled references.",
    ),
]
ClassOpt = Annotated[
    str | None,
    typer.Option(
        metavar="CLASS",
        rich_help_panel="Method",
        help="Class (or target column) explained; default as for explain.",
    ),
]


def _attribution_options(reference: Reference | None, shuffles: int, steps: int, seed: int) -> Any:
    from .interpret.attribution import AttributionOptions

    return AttributionOptions(
        reference=reference.value if reference else None, shuffles=shuffles, steps=steps, seed=seed
    )


@app.command(cls=PanelledCommand)
def evaluate(
    model: ModelArg,
    sequences: Annotated[
        str,
        typer.Argument(
            metavar="SEQUENCES",
            help="FASTA/FASTQ of the test records ('-' for stdin), a table with "
            "--sequence-column, or for a numeric series model its series table.",
        ),
    ],
    labels: Annotated[
        str | None,
        typer.Argument(
            metavar="LABELS",
            help="CSV/TSV of their labels, joined by id (none for a language model).",
        ),
    ] = None,
    output: Annotated[
        str,
        typer.Option(
            "-o",
            "--output",
            metavar="FILE",
            rich_help_panel="Output",
            help="Metrics JSON to write ('-' stdout).",
        ),
    ] = "-",
    plots: Annotated[
        str | None,
        typer.Option(
            "--plots",
            metavar="DIR",
            rich_help_panel="Output",
            help="Folder for the ROC, PR and confusion figures, or the scatter of a "
            "regression (needs bioseqnn[plots]).",
        ),
    ] = None,
    plot_format: FigFormat = None,
    dpi: FigDpi = None,
    title: Annotated[
        str | None,
        typer.Option(
            "--title",
            metavar="TEXT",
            rich_help_panel="Output",
            show_default=False,
            help="Title of the figures (default: the data set "
            "and the model, by their file names: 'test — model').",
        ),
    ] = None,
    id_column: Annotated[
        str | None,
        typer.Option(
            metavar="NAME",
            rich_help_panel="Inputs",
            show_default=False,
            help="Id column of the labels table (default: id) and, when "
            "given, of a numeric series table (default: as in training).",
        ),
    ] = None,
    target: Annotated[
        list[str] | None,
        typer.Option(
            "--target",
            "-t",
            metavar="NAME",
            rich_help_panel="Inputs",
            help="Column holding the model's target, if named otherwise than "
            "in training (repeat for several, in the model's order).",
        ),
    ] = None,
    sequence_column: SequenceColumnOpt = None,
    ignore_unmatched: IgnoreUnmatchedOpt = False,
    batch_size: Annotated[
        int, typer.Option(metavar="N", rich_help_panel="Run", min=1, help="Sequences per batch.")
    ] = 256,
    device: Device = None,
    threads: Threads = 0,
    on_invalid: InvalidOpt = OnInvalid.error,
    position_mask: PositionMask = None,
    genome: GenomeRef = None,
    window: Window = None,
    on_edge: OnEdgeOpt = None,
    chroms: Annotated[
        str | None,
        typer.Option(
            metavar="CHR,CHR",
            rich_help_panel="Inputs",
            show_default=False,
            help="--genome: evaluate the intervals on these chromosomes only.",
        ),
    ] = None,
    multiqc: Annotated[
        str | None,
        typer.Option(
            "--multiqc",
            metavar="NAME_mqc.json",
            rich_help_panel="Output",
            show_default=False,
            help="Also write the summary metrics as MultiQC custom content (a table row per "
            "model and test set; MultiQC merges the files of several runs).",
        ),
    ] = None,
    quiet: Quiet = False,
    debug: Debug = False,
) -> None:
    """Every metric of the model's task on labelled data: JSON out, tables on stderr.

    A language model is evaluated on sequences alone: perplexity and next-residue accuracy.
    """
    _setup_logging(quiet, debug)
    from .io.outputs import check_output_path
    from .ops.evaluate import evaluate as run_evaluate
    from .ops.evaluate import metric_tables, write_json
    from .plots import DPI, evaluation_plots, plot_dir
    from .variants.intervals import genome_options

    fasta, table = (None, sequences) if sequence_column and labels is None else (sequences, labels)
    regions = genome_options(
        genome, window=window, on_edge=on_edge and on_edge.value, chroms=chroms
    )
    inputs = {
        "MODEL": model,
        "SEQUENCES": sequences,
        "LABELS": labels,
        "--position-mask": position_mask,
        **(regions.named() if regions is not None else {}),
    }
    check_output_path(output, inputs)
    if multiqc is not None:
        check_output_path(multiqc, inputs)
    if plots is not None:
        plot_dir(plots)
    ev = run_evaluate(
        model,
        fasta,
        table,
        id_column=id_column,
        sequence_column=sequence_column,
        batch_size=batch_size,
        device=device,
        threads=threads,
        on_invalid=on_invalid.value,
        ignore_unmatched=ignore_unmatched,
        position_mask=position_mask,
        targets=target or None,
        genome=regions,
    )
    # the files first: a reader of stderr that goes away (| head) cannot cost them
    write_json(ev, output)
    if multiqc is not None:
        from .ops.evaluate import write_multiqc

        write_multiqc(ev, multiqc)
    if not quiet:
        # a log file or pipe gets the tables at their natural width, not cut to 80 columns
        from .progress import console

        tables = (
            _stderr()
            if _stderr().is_terminal
            else console(stderr=True, highlight=False, width=10_000)
        )
        for t in metric_tables(ev):
            tables.print(t)
    if plots is not None:
        fmt = (plot_format or FigureFormat.png).value
        for figure in evaluation_plots(ev, plots, fmt, dpi or DPI, title):
            log.info("wrote %s", figure)


@app.command(cls=PanelledCommand)
def explain(
    model: ModelArg,
    sequences: Annotated[
        str,
        typer.Argument(
            metavar="SEQUENCES",
            help="FASTA/FASTQ to explain (plain or .gz; '-' for stdin), or for a numeric series "
            "model its series table.",
        ),
    ] = "-",
    output: Annotated[
        str,
        typer.Option(
            "-o",
            "--output",
            metavar="FILE",
            rich_help_panel="Output",
            help="Attributions TSV, one row per position ('.csv' for CSV, '-' stdout).",
        ),
    ] = "-",
    method: Annotated[
        Method,
        typer.Option(
            metavar=_choices(Method),
            rich_help_panel="Method",
            help="saliency (|gradient|), grad-input (gradient x input), ism (in-silico "
            "mutagenesis: every substitution predicted; adds one column per letter), "
            "integrated-gradients or deeplift-shap (against references, see --reference; add "
            "one column per letter: the hypothetical contributions).",
        ),
    ] = Method.grad_input,
    target: Annotated[
        str | None,
        typer.Option(
            metavar="CLASS",
            rich_help_panel="Method",
            help="Class (or target column) to explain. Default: the positive class (binary), the "
            "predicted class (multiclass), the most probable label, the first target.",
        ),
    ] = None,
    plot: Annotated[
        str | None,
        typer.Option(
            "--plot",
            metavar="DIR",
            rich_help_panel="Output",
            help="Folder for one sequence logo per sequence (a numeric series: its "
            "channels over time, coloured by attribution; needs bioseqnn[plots]).",
        ),
    ] = None,
    plot_format: FigFormat = None,
    dpi: FigDpi = None,
    max_plots: Annotated[
        int,
        typer.Option(
            metavar="N",
            rich_help_panel="Output",
            min=1,
            help="Draw logos of at most this many sequences (the first ones).",
        ),
    ] = 20,
    id_column: SeriesId = None,
    batch_size: Annotated[
        int,
        typer.Option(
            metavar="N",
            rich_help_panel="Run",
            min=1,
            help="Sequences (or ISM mutants) per forward pass.",
        ),
    ] = 256,
    reference: ReferenceOpt = None,
    shuffles: ShufflesOpt = 10,
    steps: StepsOpt = 50,
    seed: SeedOpt = 0,
    device: Device = None,
    threads: Threads = 0,
    on_invalid: InvalidOpt = OnInvalid.error,
    quiet: Quiet = False,
    debug: Debug = False,
) -> None:
    """Per-position attribution scores: which residues drive the prediction."""
    _setup_logging(quiet, debug)
    from .io.outputs import check_output_path
    from .ops.explain import explain as run_explain
    from .ops.explain import explanation_plots, write_attributions
    from .plots import plot_dir

    check_output_path(output, {"MODEL": model, "SEQUENCES": sequences})
    if plot is not None:
        plot_dir(plot)
    result = run_explain(
        model,
        sequences,
        method=method.value,
        target=target,
        batch_size=batch_size,
        device=device,
        threads=threads,
        on_invalid=on_invalid.value,
        id_column=id_column,
        options=_attribution_options(reference, shuffles, steps, seed),
    )
    write_attributions(result, output)
    if plot is not None:
        paths = explanation_plots(
            result, plot, max_plots, (plot_format or FigureFormat.png).value, dpi, model
        )
        log.info("wrote %d %s to %s", len(paths), "plot(s)" if result.channels else "logo(s)", plot)


class PathMethod(str, Enum):
    deeplift_shap = "deeplift-shap"
    integrated_gradients = "integrated-gradients"


@app.command(cls=PanelledCommand)
def motifs(
    model: Annotated[
        str,
        typer.Argument(
            metavar="MODEL", help="Model file (DNA or RNA) written by 'bioseqnn train'."
        ),
    ],
    sequences: Annotated[
        str,
        typer.Argument(
            metavar="SEQUENCES",
            help="FASTA/FASTQ whose attributions are summarised (plain or .gz; '-' stdin).",
        ),
    ],
    output: Annotated[
        str,
        typer.Option(
            "-o",
            "--output",
            metavar="DIR",
            rich_help_panel="Output",
            help="Report folder: motifs.meme, logos/, report.md (and matches.tsv with --database).",
        ),
    ],
    database: Annotated[
        str | None,
        typer.Option(
            "--database",
            metavar="FILE",
            rich_help_panel="Inputs",
            help="MEME motif file to name the motifs by (Tomtom: best matches, p- and q-values).",
        ),
    ] = None,
    method: Annotated[
        PathMethod | None,
        typer.Option(
            metavar=_choices(PathMethod),
            rich_help_panel="Method",
            help="Attribution method (default: deeplift-shap).",
        ),
    ] = None,
    target: ClassOpt = None,
    window: Annotated[
        int,
        typer.Option(metavar="N", rich_help_panel="Clustering", min=3, help="Seqlet core width."),
    ] = 15,
    flank: Annotated[
        int,
        typer.Option(
            metavar="N",
            rich_help_panel="Clustering",
            min=0,
            help="Positions added on each side of a seqlet.",
        ),
    ] = 5,
    max_seqlets: Annotated[
        int,
        typer.Option(
            metavar="N", rich_help_panel="Clustering", min=10, help="Seqlets per sign at most."
        ),
    ] = 2000,
    min_seqlets: Annotated[
        int,
        typer.Option(
            metavar="N",
            rich_help_panel="Clustering",
            min=1,
            help="Seqlets a sign (positive or negative) needs to be clustered.",
        ),
    ] = 30,
    min_cluster: Annotated[
        int,
        typer.Option(
            metavar="N",
            rich_help_panel="Clustering",
            min=1,
            help="Seqlets a motif needs to be reported.",
        ),
    ] = 20,
    leiden_runs: Annotated[
        int,
        typer.Option(
            metavar="N",
            rich_help_panel="Clustering",
            min=1,
            help="Clusterings tried (more: steadier, slower).",
        ),
    ] = 10,
    plots: Annotated[
        bool, typer.Option(rich_help_panel="Output", help="Draw the logos (needs matplotlib).")
    ] = True,
    plot_format: FigFormat = None,
    dpi: FigDpi = None,
    reference: ReferenceOpt = None,
    shuffles: ShufflesOpt = 10,
    steps: StepsOpt = 50,
    seed: SeedOpt = 0,
    batch_size: Annotated[
        int, typer.Option(metavar="N", rich_help_panel="Run", min=1, help="Sequences per pass.")
    ] = 256,
    device: Device = None,
    threads: Threads = 0,
    on_invalid: InvalidOpt = OnInvalid.error,
    quiet: Quiet = False,
    debug: Debug = False,
) -> None:
    """Discover motifs: attributions summarised by TF-MoDISco, named from a motif database."""
    _setup_logging(quiet, debug)
    from .modelfile import read_manifest

    read_manifest(model)  # what is no model file is refused before torch and modisco load
    from .interpret.motifs import (
        ModiscoOptions,
        discover_motifs,
        report_folder,
        write_motif_report,
    )

    report_folder(output, create=False)
    fmt = (plot_format or FigureFormat.png).value
    if plots:
        from .plots import DPI, check_figure_options, require_matplotlib

        require_matplotlib()
        check_figure_options(fmt, DPI if dpi is None else dpi)
    report = discover_motifs(
        model,
        sequences,
        method=method.value if method else None,
        target=target,
        database=database,
        options=_attribution_options(reference, shuffles, steps, seed),
        modisco=ModiscoOptions(
            window=window,
            flank=flank,
            max_seqlets=max_seqlets,
            min_seqlets=min_seqlets,
            min_cluster=min_cluster,
            leiden_runs=leiden_runs,
        ),
        batch_size=batch_size,
        device=device,
        threads=threads,
        on_invalid=on_invalid.value,
    )
    written = write_motif_report(report, output, plots=plots, fmt=fmt, dpi=dpi)
    for m in report.motifs:
        best = (
            f"; best match {m.matches[0].target} (q = {m.matches[0].q_value:.2g})"
            if m.matches
            else ""
        )
        log.info(
            "%s: %s, %d seqlets, %s%s", m.name, m.sign, m.seqlets, m.consensus(report.letters), best
        )
    log.info("wrote %d file(s) to %s", len(written), output)


@app.command(cls=PanelledCommand)
def insert(
    model: ModelArg,
    motif: Annotated[
        str,
        typer.Option(
            "--motif",
            metavar="RESIDUES",
            rich_help_panel="Inputs",
            help="Residues written into the backgrounds (the model's alphabet; "
            "ambiguity codes allowed).",
        ),
    ],
    background: Annotated[
        str,
        typer.Option(
            "--background",
            metavar="FILE",
            rich_help_panel="Inputs",
            help="FASTA/FASTQ of background sequences ('-' stdin).",
        ),
    ],
    output: Annotated[
        str,
        typer.Option(
            "-o",
            "--output",
            metavar="FILE",
            rich_help_panel="Output",
            help="TSV of the mean change per insertion start ('.csv' for CSV, '-' stdout).",
        ),
    ] = "-",
    target: Annotated[
        str | None,
        typer.Option(
            metavar="CLASS",
            rich_help_panel="Method",
            help="Class (or target column) whose prediction is followed; default as for explain.",
        ),
    ] = None,
    step: Annotated[
        int,
        typer.Option(
            metavar="STEP",
            rich_help_panel="Method",
            min=1,
            help="Try every STEP-th start position.",
        ),
    ] = 1,
    plot: Annotated[
        str | None,
        typer.Option(
            "--plot",
            metavar="FILE",
            rich_help_panel="Output",
            help="Figure of the mean change along the sequence (.png, .pdf or .svg by its name).",
        ),
    ] = None,
    dpi: FigDpi = None,
    batch_size: Annotated[
        int,
        typer.Option(metavar="N", rich_help_panel="Run", min=1, help="Variants per forward pass."),
    ] = 256,
    device: Device = None,
    threads: Threads = 0,
    on_invalid: InvalidOpt = OnInvalid.error,
    quiet: Quiet = False,
    debug: Debug = False,
) -> None:
    """Insert a motif at each position of background sequences: the mean prediction change."""
    _setup_logging(quiet, debug)
    from .interpret.insilico import insert_motif, write_insertion
    from .io.outputs import check_output_path, same_path

    check_output_path(output, {"MODEL": model, "--background": background})
    if plot is not None:
        from .plots import DPI, check_figure_options, figure_format, require_matplotlib

        require_matplotlib()
        check_figure_options(figure_format(plot), DPI if dpi is None else dpi)
        check_output_path(plot, {"MODEL": model, "--background": background})
        if same_path(plot, output):
            raise typer.BadParameter("--plot and -o name one file", param_hint="--plot")
    result = insert_motif(
        model,
        motif,
        background,
        target=target,
        step=step,
        batch_size=batch_size,
        device=device,
        threads=threads,
        on_invalid=on_invalid.value,
    )
    write_insertion(result, output)
    if plot is not None:
        from .plots import DPI, data_name, insertion_plot

        insertion_plot(
            result.positions,
            result.mean,
            result.std,
            plot,
            f"{result.motif} inserted into {result.backgrounds} backgrounds of "
            f"{data_name(background)} \u2014 {data_name(model)} ({result.target})",
            dpi=DPI if dpi is None else dpi,
        )
    log.info(
        "%s toward %s: mean change %+.4g over %d background(s) and %d position(s) "
        "(backgrounds' mean prediction %.4g)",
        result.motif,
        result.target,
        result.effect,
        result.backgrounds,
        len(result.positions),
        result.baseline,
    )


def _region(text: str | None) -> tuple[int, int] | None:
    from .errors import UsageError

    if text is None:
        return None
    start, sep, end = text.partition(":")
    if not sep or not start.strip().isdigit() or not end.strip().isdigit():
        raise UsageError(f"--region {text!r}: give START:END (1-based, inclusive)")
    return int(start), int(end)


@app.command("ism-map", cls=PanelledCommand)
def ism_map(
    model: ModelArg,
    sequences: Annotated[
        str, typer.Argument(metavar="SEQUENCES", help="FASTA/FASTQ ('-' for stdin).")
    ] = "-",
    plot: Annotated[
        str,
        typer.Option(
            "--plot",
            metavar="DIR",
            rich_help_panel="Output",
            help="Folder for one positions x letters heatmap per sequence.",
        ),
    ] = "ism-maps",
    plot_format: FigFormat = None,
    dpi: FigDpi = None,
    output: Annotated[
        str | None,
        typer.Option(
            "-o",
            "--output",
            metavar="FILE",
            rich_help_panel="Output",
            help="Also write the changes as a TSV (one row per position, one column per letter).",
        ),
    ] = None,
    region: Annotated[
        str | None,
        typer.Option(
            "--region",
            metavar="START:END",
            rich_help_panel="Method",
            help="START:END (1-based, inclusive): mutate this window only, with "
            "the whole sequence as context (long sequences).",
        ),
    ] = None,
    target: ClassOpt = None,
    max_plots: Annotated[
        int,
        typer.Option(
            metavar="N",
            rich_help_panel="Output",
            min=1,
            help="Heatmaps of at most this many sequences (the first ones).",
        ),
    ] = 20,
    batch_size: Annotated[
        int,
        typer.Option(metavar="N", rich_help_panel="Run", min=1, help="Mutants per forward pass."),
    ] = 256,
    device: Device = None,
    threads: Threads = 0,
    on_invalid: InvalidOpt = OnInvalid.error,
    quiet: Quiet = False,
    debug: Debug = False,
) -> None:
    """Mutation map: every substitution's effect drawn as a positions x letters heatmap."""
    _setup_logging(quiet, debug)
    from .interpret.insilico import mutation_map, mutation_map_plots, write_mutation_maps
    from .io.outputs import check_output_path
    from .plots import plot_dir

    window = _region(region)
    if output is not None:
        check_output_path(output, {"MODEL": model, "SEQUENCES": sequences})
    plot_dir(plot)
    letters, maps = mutation_map(
        model,
        sequences,
        target=target,
        region=window,
        batch_size=batch_size,
        device=device,
        threads=threads,
        on_invalid=on_invalid.value,
    )
    if output is not None:
        write_mutation_maps(letters, maps, output)
    paths = mutation_map_plots(
        letters, maps, plot, max_plots, (plot_format or FigureFormat.png).value, dpi, model
    )
    log.info("wrote %d mutation map(s) to %s", len(paths), plot)


@app.command(cls=PanelledCommand)
def export(
    model: ModelArg,
    output: Annotated[
        str,
        typer.Option(
            "-o",
            "--output",
            metavar="FILE",
            rich_help_panel="Output",
            help="NAME.onnx (ONNX) or NAME.pt (TorchScript); NAME.onnx.json or "
            "NAME.pt.json beside it describes inputs, outputs and the encoding table.",
        ),
    ],
    check: Annotated[
        str | None,
        typer.Option(
            "--check",
            metavar="FILE",
            rich_help_panel="Parity check",
            help="FASTA/FASTQ of sequences for the parity check, or a series table "
            "for a numeric series model (default: random sequences of the model's alphabet, or "
            "random series, at several lengths).",
        ),
    ] = None,
    tolerance: Annotated[
        float,
        typer.Option(
            metavar="NUMBER",
            rich_help_panel="Parity check",
            parser=finite,
            help="Largest accepted |export - PyTorch| difference of any output.",
        ),
    ] = 1e-4,
    id_column: SeriesId = None,
    quiet: Quiet = False,
    debug: Debug = False,
) -> None:
    """Export a model to ONNX or TorchScript, checked against PyTorch before it is written."""
    _setup_logging(quiet, debug)
    from .ops.export import export as run_export

    result = run_export(model, output, check=check, tolerance=tolerance, id_column=id_column)
    log.info(
        "wrote %s and %s; parity on %d sequence(s) of %d-%d positions (%s): max abs diff %.2g",
        result.output,
        result.sidecar,
        result.sequences,
        *result.lengths,
        result.check_source,
        result.max_abs_diff,
    )


@app.command(cls=PanelledCommand)
def generate(
    model: Annotated[
        str,
        typer.Argument(
            metavar="MODEL",
            help="Language model file (bioseqnn train SEQS --task language-model).",
        ),
    ],
    num: Annotated[
        int,
        typer.Option(
            "-n",
            "--num",
            metavar="N",
            rich_help_panel="Sampling",
            min=0,
            help="Sequences to sample.",
        ),
    ] = 10,
    output: Annotated[
        str,
        typer.Option(
            "-o",
            "--output",
            metavar="FILE",
            rich_help_panel="Output",
            help="FASTA to write ('.gz' compresses; '-' stdout).",
        ),
    ] = "-",
    prefix: Annotated[
        str,
        typer.Option(
            metavar="RESIDUES",
            rich_help_panel="Sampling",
            help="Every sample starts with these residues (included in the output).",
        ),
    ] = "",
    temperature: Annotated[
        float,
        typer.Option(
            metavar="NUMBER",
            rich_help_panel="Sampling",
            parser=finite,
            help="Below 1: more typical samples; above 1: more diverse.",
        ),
    ] = 1.0,
    top_k: Annotated[
        int,
        typer.Option(
            metavar="K",
            rich_help_panel="Sampling",
            min=0,
            help="Draw each residue from the k most likely only (0 = all).",
        ),
    ] = 0,
    top_p: Annotated[
        float,
        typer.Option(
            metavar="P",
            rich_help_panel="Sampling",
            parser=finite,
            help="Draw from the most likely residues that reach this probability (1 = all).",
        ),
    ] = 1.0,
    min_length: Annotated[
        int,
        typer.Option(
            metavar="LENGTH",
            rich_help_panel="Sampling",
            min=1,
            help="No end before this many residues.",
        ),
    ] = 1,
    max_length: Annotated[
        int,
        typer.Option(
            metavar="LENGTH",
            rich_help_panel="Sampling",
            min=0,
            help="Stop a sample at this length even without an end (0 = the longest "
            "training sequence).",
        ),
    ] = 0,
    seed: Annotated[
        int,
        typer.Option(
            metavar="N",
            rich_help_panel="Run",
            help="Sample i depends on the seed and i alone (not on -n or --batch-size).",
        ),
    ] = 0,
    id_prefix: Annotated[
        str,
        typer.Option(
            metavar="PREFIX",
            rich_help_panel="Output",
            help="Records are named PREFIX1, PREFIX2, ...",
        ),
    ] = "sample_",
    batch_size: Annotated[
        int,
        typer.Option(metavar="N", rich_help_panel="Run", min=1, help="Samples drawn together."),
    ] = 64,
    device: Device = None,
    threads: Threads = 0,
    quiet: Quiet = False,
    debug: Debug = False,
) -> None:
    """Sample new sequences from a language model, as FASTA."""
    _setup_logging(quiet, debug)
    from .ops.generate import generate as run_generate
    from .variants.lm import Sampling

    sampling = Sampling(
        temperature=temperature,
        top_k=top_k,
        top_p=top_p,
        min_length=min_length,
        max_length=max_length,
    )
    run_generate(
        model,
        output,
        num,
        sampling=sampling,
        prefix=prefix,
        seed=seed,
        id_prefix=id_prefix,
        batch_size=batch_size,
        device=device,
        threads=threads,
    )


@app.command("version", cls=PanelledCommand)
def version_command(
    verbose: Annotated[
        bool,
        typer.Option(
            "--verbose",
            "-v",
            rich_help_panel="Output",
            help="Also name Python, torch (CPU or CUDA build), the CPU "
            "kernels and the optional libraries, one 'name: value' line each.",
        ),
    ] = False,
) -> None:
    """Print the version: one line, or with --verbose what this install runs on."""
    print(f"bioseqnn {__version__}")
    if verbose:
        for line in version_details()[1:]:
            print(line)


@app.command("plot-history", cls=PanelledCommand)
def plot_history(
    log_file: Annotated[
        str,
        typer.Argument(
            metavar="LOG_FILE",
            help="Per-epoch log written by 'bioseqnn train': NAME.log.tsv beside the model, or "
            "the --log file (TSV or JSON lines); '-' reads stdin.",
        ),
    ],
    output: Annotated[
        str,
        typer.Option(
            "-o",
            "--output",
            metavar="FILE",
            rich_help_panel="Output",
            help="Figure to write: .png, .pdf or .svg, by the name's suffix.",
        ),
    ] = "learning_curves.png",
    metric: Annotated[
        str | None,
        typer.Option(
            metavar="METRIC",
            rich_help_panel="Output",
            help="Validation metric of the second panel (default: accuracy or r2).",
        ),
    ] = None,
    title: Annotated[
        str | None,
        typer.Option(
            metavar="TEXT",
            rich_help_panel="Output",
            help="Title (default: the log's name, without folder and suffixes).",
        ),
    ] = None,
    plot_format: FigFormat = None,
    dpi: FigDpi = None,
    quiet: Quiet = False,
    debug: Debug = False,
) -> None:
    """Learning curves (loss and a validation metric per epoch) from a training log.

    The format follows the output's suffix; --format pdf with the default output writes
    learning_curves.pdf.
    """
    _setup_logging(quiet, debug)
    from .io.outputs import check_not_an_input
    from .plots import (
        DPI,
        data_name,
        figure_format,
        learning_curves,
        read_history,
        require_matplotlib,
    )

    require_matplotlib()
    if output == "-":
        raise typer.BadParameter("a figure needs a file name", param_hint="--output")
    if plot_format is not None and output == "learning_curves.png":
        output = f"learning_curves.{plot_format.value}"
    fmt = figure_format(output)  # a .jpg or .gz name fails (exit 2) before the log is read
    if plot_format is not None and os.path.splitext(output)[1] and fmt != plot_format.value:
        raise typer.BadParameter(
            f"{output} names a {fmt} figure, not {plot_format.value}", param_hint="--format"
        )
    check_not_an_input(output, {"LOG_FILE": log_file})
    history = read_history(log_file)
    name = data_name(log_file).removesuffix(".log")
    figure = learning_curves(
        history,
        output,
        title or name,
        metric,
        dpi=dpi or DPI,
        fmt=plot_format.value if plot_format else None,
    )
    log.info("wrote %s", figure)


@app.command("config", cls=PanelledCommand)
def config_command(
    model: Annotated[
        str | None,
        typer.Option(
            "--from",
            metavar="MODEL",
            rich_help_panel="Inputs",
            help="Print the resolved config stored in this model file instead.",
        ),
    ] = None,
    output: Annotated[
        str,
        typer.Option(
            "-o",
            "--output",
            metavar="FILE",
            rich_help_panel="Output",
            help="Write the config here ('-' = stdout).",
        ),
    ] = "-",
    quiet: Quiet = False,
    debug: Debug = False,
) -> None:
    """Print the full default config as commented YAML, a start for 'train --config'."""
    _setup_logging(quiet, debug)
    from .config import write_config

    if model is None:
        write_config(output)
        return
    from .modelfile import model_config

    cfg, header = model_config(model)
    write_config(output, cfg, header, source=model)


def _info_table(rows: list[tuple[str, str]]) -> Table:
    from rich.table import Table
    from rich.text import Text

    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold")
    table.add_column()
    for key, value in rows:
        table.add_row(key, Text(value))  # Text: brackets in a value are no markup
    return table


SHOWN = 300
"""Characters of one manifest value that the table of 'info' shows (--json shows all)."""
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff]")
"""Control characters (a terminal obeys them: escape codes clear the screen or set the
window title), and the invisible and direction-changing ones that disguise text."""


def shown(text: str, limit: int = SHOWN) -> str:
    """A value from a model file as a table may show it: unsafe characters escaped
    (ESC as \\x1b), and cut to ``limit`` characters, saying how many more there are."""
    text = _UNSAFE.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)
    if len(text) > limit:
        text = f"{text[:limit]}... ({len(text) - limit:,} more characters; --json shows all)"
    return text


def _info_rows(m: dict[str, Any]) -> list[tuple[str, str]]:
    """What 'info' shows: (field, text) pairs."""
    from .modelfile import MAX_MEMBERS
    from .modelspec import describe

    task, model, data, metrics = m["task"], m["model"], m.get("data", {}), m.get("metrics", {})
    per_position = bool(m.get("per_position", False))
    causal = task.get("kind") == "language-model"
    arch = describe(model, per_position, causal)
    member_archs = [describe(c, per_position, causal) for c in m.get("member_models", [])]
    if member_archs:  # an ensemble of different networks: each, with its member count
        arch = "; ".join(f"{member_archs.count(a)} x {a}" for a in dict.fromkeys(member_archs))
    training = ", ".join(f"{k.replace('_', '-')} {v}" for k, v in m.get("training", {}).items())
    rows = [
        (
            "format",
            f"{m['format']} v{m['format_version']} (bioseqnn {m.get('bioseqnn_version')},"
            f" torch {m.get('torch_version', '?')})",
        ),
        _input_row(m),
        *(
            [
                (
                    "structure",
                    f"{m['structure'].get('kind')}: folded with "
                    f"{m['structure'].get('tool')} {m['structure'].get('version')}, "
                    f"channels {', '.join(m['structure'].get('channels', []))}",
                )
            ]
            if "structure" in m
            else []
        ),
        ("task", task["kind"]),
        ("targets", ", ".join(task["targets"])),
    ]
    if task.get("classes"):
        rows.append(("classes", ", ".join(task["classes"])))
    rows += [
        ("architecture", arch),
        ("training", training),
        ("parameters", f"{m.get('parameters', 0):,}"),
        ("seed", str(m.get("seed"))),
        (
            "trained on",
            f"{', '.join(data.get('sources', []))}: {data.get('train_records')} "
            + (
                f"records in {metrics['cv'].get('folds')} cross-validation folds"
                if isinstance(metrics.get("cv"), dict)
                else f"training + {data.get('val_records')} validation records"
            ),
        ),
        ("lengths", ", ".join(f"{k} {v}" for k, v in data.get("lengths", {}).items())),
        *(
            [("genome", _genome_row(data["genome"]))]
            if isinstance(data.get("genome"), dict)
            else []
        ),
        ("data sha256", str(data.get("fingerprint_sha256", ""))),
        *([("fine-tuned from", _parent_row(m["init_from"]))] if m.get("init_from") else []),
        ("created", f"{m.get('created', '')} on {m.get('device', '?')}"),
    ]
    best = metrics.get("best", {})
    shown = ", ".join(
        f"{k} {v:.4g}" for k, v in best.items() if k.startswith("val_") and isinstance(v, float)
    )
    members = metrics.get("members")
    cv = metrics.get("cv")
    if isinstance(members, list) and m.get("ensemble"):
        seeds = [x.get("seed") for x in members if isinstance(x, dict)]
        what = (
            "one per cross-validation fold"
            if isinstance(cv, dict)
            else "seeds " + ", ".join(map(str, seeds))
        )
        rows.append(
            (
                "ensemble",
                f"{m['ensemble']} members, {what}"
                + (f": {shown}" if shown and not isinstance(cv, dict) else ""),
            )
        )
        if isinstance(cv, dict):
            mean, sd = cv.get("mean", {}), cv.get("sd", {})
            rows.append(
                (
                    "cross-validation",
                    f"out-of-fold, pooled: {shown}; mean ± sd of the "
                    "folds: "
                    + ", ".join(
                        f"{k} {mean[k]:.4g} ± {sd.get(k, float('nan')):.2g}"
                        for k in mean
                        if isinstance(mean[k], float)
                    ),
                )
            )
        for i, member in enumerate(x for x in members[:MAX_MEMBERS] if isinstance(x, dict)):
            network = f" ({member_archs[i]})" if i < len(member_archs) else ""
            rows.append(
                (
                    f"member {i + 1}",
                    f"best epoch {member.get('best_epoch')} of {member.get('epochs_run')}{network}",
                )
            )
    elif best:
        rows.append(
            ("best epoch", f"{metrics.get('best_epoch')} of {metrics.get('epochs_run')}: {shown}")
        )
    return rows


def _given_model_settings(config: str | None, cfg: Any, flags: dict[str, Any]) -> dict[str, Any]:
    """The network settings given on the command line or in the config file (whatever
    their value), as this run resolved them."""
    from .yamlio import read_yaml

    named = {k for k, v in flags.items() if v is not None}
    if config:  # read and validated by load_config already
        named |= set((read_yaml(config, "config") or {}).get("model") or {})
    return {
        f.name: getattr(cfg.model, f.name) for f in dataclasses.fields(cfg.model) if f.name in named
    }  # in the settings' order, as messages name them


def _parent_row(parent: dict[str, Any]) -> str:
    """The model file a fine-tuned model started from (train --init-from)."""
    member = f", member {parent['member']}" if "member" in parent else ""
    frozen = "backbone frozen" if parent.get("frozen") else "all weights trained"
    return f"{parent.get('path')}{member} (sha256 {parent.get('fingerprint_sha256')}), {frozen}"


def _genome_row(g: dict[str, Any]) -> str:
    """Where a model's intervals came from (train --genome)."""
    window = f"windows of {g['window']} bases" if g.get("window") else "the intervals' lengths"
    parts = [
        f"intervals on {g.get('reference')}, {window} (edges: {g.get('on_edge')})",
        f"training chromosomes {', '.join(g.get('train_chroms') or []) or '-'}",
        "validation chromosomes "
        + (", ".join(g.get("validation_chroms") or []) or "mixed (a random split)"),
    ]
    if g.get("excluded_chroms"):
        parts.append(f"left out {', '.join(g['excluded_chroms'])}")
    return "; ".join(parts)


def _input_row(m: dict[str, Any]) -> tuple[str, str]:
    """What the model reads: an alphabet, or a numeric series' channels and their
    normalisation."""
    if "input" not in m:
        return ("alphabet", f"{m['alphabet']} ({m.get('encoding', {}).get('channels', '')})")
    spec = m["input"]
    shown = 16
    channels = ", ".join(
        f"{name} (mean {mean:.4g}, std {std:.4g})"
        for name, mean, std in zip(
            spec["channels"][:shown], spec["mean"], spec["std"], strict=False
        )
    )
    more = len(spec["channels"]) - shown
    if more > 0:
        channels += f", ... ({more} more; --json lists them all)"
    return (
        "input",
        f"numeric series, id column {spec.get('id_column', 'id')!r}, "
        f"{len(spec['channels'])} channel(s): {channels}",
    )


def _error(message: str) -> None:
    print(f"bioseqnn: error: {_shown(message)}", file=sys.stderr)


_WITHOUT_TORCH = ("config", "version", "info")
"""Commands that never import torch (nor does help, or --version)."""
_TORCH_WHEN_NEEDED = ("predict",)
"""Commands that decide for themselves whether they need torch (a small prediction is
made without it: engine/light.py); they call :func:`_prepare_torch` when they do."""
_torch_prepared = False


def _prepare_torch() -> None:
    """The process-wide settings torch work gets before torch loads (runtime.tune), and
    the memory ceiling (runtime.cap_memory, which leaves out a GPU machine); once."""
    global _torch_prepared
    if _torch_prepared:
        return
    os.environ.setdefault("GOMP_SPINCOUNT", OPENMP_SPIN)
    from . import runtime

    runtime.tune()
    runtime.cap_memory()  # memory that runs out is an error, not the OOM killer
    _torch_prepared = True


def _runs_torch(args: list[str]) -> bool:
    """Whether these arguments run a command that does torch work (which then gets the
    process-wide settings of runtime.tune first)."""
    if not args or any(
        a in ("--help", "-h", "--version", "--show-completion", "--install-completion")
        for a in args
    ):
        return False
    command = _named_command(args)
    if command == "tune" and "--show-space" in args:
        return False
    return command is not None and command not in _WITHOUT_TORCH + _TORCH_WHEN_NEEDED


def optional_values(args: list[str]) -> list[str]:
    """``--mlflow`` takes a value or none (the local store): given alone, or followed by
    something that is no URI (an option, a file), it becomes ``--mlflow=local``. A folder
    as the store is given as ``--mlflow=FOLDER``."""
    from .tracking import LOCAL

    out = list(args)
    for i, arg in enumerate(out):
        if arg == "--":
            break
        if arg == "--mlflow" and (
            i + 1 == len(out) or "://" not in out[i + 1] and out[i + 1] != LOCAL
        ):
            out[i] = f"--mlflow={LOCAL}"
    return out


OPENMP_SPIN = "1000"
"""GOMP_SPINCOUNT that main() sets before torch loads (an explicit setting in the
environment wins). OpenMP's threads spin this many times at a barrier before they
sleep; with the default (300,000) a thread spun on a core that another process needed,
and a CNN step beside one busy process ran at 0.36-0.74x its one-thread speed with two
threads, against 0.68-0.99x with 1,000; quiet, it may cost a little at 200 nt (CNN
1.51-1.52x of one thread against 1.71x; docs/performance.md).
A library user sets it in the environment before importing torch (see runtime.tune)."""

MLFLOW_HTTP = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "20",
}
"""MLflow's HTTP settings that main() sets for --mlflow (the environment's own win).
With MLflow's defaults (7 retries with a backoff factor of 2, 120 s a request), a
tracking URI whose server refused connections (a wrong port) held train for 249 s
before its error, and a server that stopped answering mid-run would have stalled an
epoch for minutes, and its run's closing for as long again (docs/guide/training.md).
A library user sets them in the environment."""

_COMPLETE_VAR = "_BIOSEQNN_COMPLETE"
"""Set by the completion script that 'bioseqnn --install-completion' installs."""


def main(argv: list[str] | None = None) -> int:
    """Run the CLI in-process and return the exit code (errors never escape as tracebacks).
    A command that fails takes away the output folders it made that are still empty."""
    from .io.outputs import forget_made_folders, guard_closed_stdout, remove_made_folders

    forget_made_folders()
    guard_closed_stdout()
    code = _main(argv)
    if code != 0:
        remove_made_folders()
    return code


def _main(argv: list[str] | None) -> int:
    args = optional_values(list(sys.argv[1:] if argv is None else argv))
    debug = "--debug" in args
    _repeated[:] = repeated_options(args)
    previous_term = signal.getsignal(signal.SIGTERM)
    if threading_main():
        signal.signal(signal.SIGTERM, _raise_terminated)
    global _torch_prepared
    if any(a.startswith("--mlflow") for a in args):
        for name, value in MLFLOW_HTTP.items():
            os.environ.setdefault(name, value)
    try:
        if _runs_torch(args):
            _prepare_torch()  # before torch (and its OpenMP) loads
        _invoke(args)
        return 0
    except (
        BioseqnnError,
        typer.Exit,
        SystemExit,
        typer.TyperException,
        KeyboardInterrupt,
        typer.Abort,
        _Terminated,
        BrokenPipeError,
    ) as exc:
        return _exit_code(exc, debug)
    except Exception as exc:
        if debug:
            raise
        from . import machine

        note = machine.ceiling_note()
        machine.release_memory()  # room for the imports this message needs
        try:
            from .engine.predict import out_of_memory

            oom = out_of_memory(exc)
        except Exception:  # torch itself could not be imported under the ceiling
            oom = (
                isinstance(exc, MemoryError)
                or (isinstance(exc, OSError) and exc.errno == errno.ENOMEM)
                or (isinstance(exc, ImportError) and "failed to map segment" in str(exc))
            )
        if oom:  # where no command said what took the memory
            sizes = [o for o in ("--window", "--batch-size") if _given(args, o)]
            _error(
                f"out of memory{note}; lower the sizes the command asks for "
                f"({', '.join(sizes or ['--batch-size'])}, the model's settings) or split "
                "large inputs"
            )
            return 1
        _error(f"unexpected {type(exc).__name__}: {exc} (run with --debug for the traceback)")
        return 1
    finally:
        if threading_main():
            signal.signal(signal.SIGTERM, previous_term)
        from . import machine

        machine.release_memory()
        _torch_prepared = False


def _given(args: list[str], option: str) -> bool:
    """Whether ``option`` is on the command line (``--window 5`` or ``--window=5``)."""
    return any(a == option or a.startswith(option + "=") for a in args)


def _invoke(args: list[str]) -> None:
    # make_context/invoke rather than command.main(): click's main() turns a broken
    # pipe into sys.exit(1) before this funnel could see it.
    if os.environ.get(_COMPLETE_VAR):  # the shell asks for completions (see docs/install.md)
        _click_group()._main_shell_completion({}, "bioseqnn", _COMPLETE_VAR)
    command = _listing_group() if args in LISTING_ARGS else _click_group(_named_command(args))
    with command.make_context("bioseqnn", args) as ctx:
        command.invoke(ctx)


def _exit_code(exc: BaseException, debug: bool) -> int:
    """The exit code of an expected way to end, with its one line on stderr."""
    if isinstance(exc, BioseqnnError):
        if debug:
            traceback.print_exc(file=sys.stderr)
        # the library names settings by their keys, the command line by their flags
        _error(exc.named(_setting_flag) if isinstance(exc, SettingError) else str(exc))
        return exc.exit_code
    if isinstance(exc, typer.Exit):
        return exc.exit_code
    if isinstance(exc, SystemExit):  # shell completion's answers end with sys.exit
        return exc.code if isinstance(exc.code, int) else 0 if exc.code is None else 1
    if isinstance(exc, typer.TyperException):  # usage errors from option parsing
        failed_in = getattr(exc, "ctx", None)
        if type(exc).__name__ == "NoArgsIsHelpError":
            exc.show()  # type: ignore[attr-defined]  # the help text itself
        else:  # one line, like every other error
            hint = f" (see '{failed_in.command_path} --help')" if failed_in is not None else ""
            _error(f"{exc.format_message()}{hint}")
        return int(getattr(exc, "exit_code", 2))
    if isinstance(exc, (KeyboardInterrupt, typer.Abort)):
        _error("interrupted")
        return 130
    if isinstance(exc, _Terminated):
        _error("terminated")
        return 143
    # BrokenPipeError: the reader went away (e.g. '| head'): stop quietly, no traceback
    from .io.outputs import silence_stdout

    silence_stdout()
    return 0


class _Terminated(BaseException):
    pass


def _raise_terminated(signum: int, frame: Any) -> None:
    raise _Terminated()


def threading_main() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def run() -> None:  # pragma: no cover - console script entry point
    code = main()
    # The command is done and its outputs are in place. Leave what it allocated (torch's
    # modules above all) out of the collection that interpreter shutdown runs: it scans
    # every object once more and took 0.4 s of a 1.8 s prediction.
    gc.freeze()
    sys.exit(code)
