"""The Typer app, its logging and progress on stderr, and the click groups it runs."""

from __future__ import annotations

import copy
import functools
import logging
import sys
from enum import Enum
from typing import TYPE_CHECKING, Annotated, Any

import typer

from .._version import __version__

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress


log = logging.getLogger("bioseqnn")


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
def stderr_console() -> Console:
    """The console of progress bars and tables on stderr (rich loads when one is shown:
    about 40 ms that a command without them need not wait for)."""
    from ..progress import console

    return console(stderr=True, highlight=False, soft_wrap=True)


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


def setup_logging(quiet: bool, debug: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Formatter())
    log.handlers[:] = [handler]
    log.propagate = False
    log.setLevel(logging.DEBUG if debug else logging.ERROR if quiet else logging.INFO)
    for message in repeated_warnings:  # found in the command line by main(), said once it parsed
        log.warning("%s", message)
    repeated_warnings.clear()


repeated_warnings: list[str] = []
"""Warnings about options given more than once, for the running command."""


@functools.cache
def click_group(only: str | None = None) -> Any:
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
def listing_group() -> Any:
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


def named_command(args: list[str]) -> str | None:
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
    commands = getattr(click_group(named_command(args)), "commands", {})
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
                console=stderr_console(),
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
        from ..progress import epoch_line

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

    from .. import kernels

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


def print_error(message: str) -> None:
    print(f"bioseqnn: error: {_shown(message)}", file=sys.stderr)
