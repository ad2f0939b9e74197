"""The entry points and the one error funnel: errors to one line and an exit code."""

from __future__ import annotations

import errno
import gc
import os
import signal
import sys
import traceback
from typing import Any

import typer

from ..errors import BioseqnnError, SettingError
from . import process
from .app import (
    LISTING_ARGS,
    click_group,
    listing_group,
    named_command,
    print_error,
    repeated_options,
    repeated_warnings,
)
from .settings import setting_flag

_WITHOUT_TORCH = ("config", "version", "info")
"""Commands that never import torch (nor does help, or --version)."""
_TORCH_WHEN_NEEDED = ("predict",)
"""Commands that decide for themselves whether they need torch (a small prediction is
made without it: engine/light.py); they call :func:`process.prepare_torch` when they do."""


def _runs_torch(args: list[str]) -> bool:
    """Whether these arguments run a command that does torch work (which then gets the
    process-wide settings of runtime.tune first)."""
    if not args or any(
        a in ("--help", "-h", "--version", "--show-completion", "--install-completion")
        for a in args
    ):
        return False
    command = named_command(args)
    if command == "tune" and "--show-space" in args:
        return False
    return command is not None and command not in _WITHOUT_TORCH + _TORCH_WHEN_NEEDED


def optional_values(args: list[str]) -> list[str]:
    """``--mlflow`` takes a value or none (the local store): given alone, or followed by
    something that is no URI (an option, a file), it becomes ``--mlflow=local``. A folder
    as the store is given as ``--mlflow=FOLDER``."""
    from ..tracking import LOCAL

    out = list(args)
    for i, arg in enumerate(out):
        if arg == "--":
            break
        if arg == "--mlflow" and (
            i + 1 == len(out) or "://" not in out[i + 1] and out[i + 1] != LOCAL
        ):
            out[i] = f"--mlflow={LOCAL}"
    return out


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
    from ..io.outputs import forget_made_folders, guard_closed_stdout, remove_made_folders

    forget_made_folders()
    guard_closed_stdout()
    code = _main(argv)
    if code != 0:
        remove_made_folders()
    return code


def _main(argv: list[str] | None) -> int:
    args = optional_values(list(sys.argv[1:] if argv is None else argv))
    debug = "--debug" in args
    repeated_warnings[:] = repeated_options(args)
    previous_term = signal.getsignal(signal.SIGTERM)
    if threading_main():
        signal.signal(signal.SIGTERM, _raise_terminated)
    if any(a.startswith("--mlflow") for a in args):
        for name, value in MLFLOW_HTTP.items():
            os.environ.setdefault(name, value)
    try:
        if _runs_torch(args):
            process.prepare_torch()  # before torch (and its OpenMP) loads
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
        from .. import machine

        note = machine.ceiling_note()
        machine.release_memory()  # room for the imports this message needs
        try:
            from ..engine.predict import out_of_memory

            oom = out_of_memory(exc)
        except Exception:  # torch itself could not be imported under the ceiling
            oom = (
                isinstance(exc, MemoryError)
                or (isinstance(exc, OSError) and exc.errno == errno.ENOMEM)
                or (isinstance(exc, ImportError) and "failed to map segment" in str(exc))
            )
        if oom:  # where no command said what took the memory
            sizes = [o for o in ("--window", "--batch-size") if _given(args, o)]
            print_error(
                f"out of memory{note}; lower the sizes the command asks for "
                f"({', '.join(sizes or ['--batch-size'])}, the model's settings) or split "
                "large inputs"
            )
            return 1
        print_error(f"unexpected {type(exc).__name__}: {exc} (run with --debug for the traceback)")
        return 1
    finally:
        if threading_main():
            signal.signal(signal.SIGTERM, previous_term)
        from .. import machine

        machine.release_memory()
        process.forget()


def _given(args: list[str], option: str) -> bool:
    """Whether ``option`` is on the command line (``--window 5`` or ``--window=5``)."""
    return any(a == option or a.startswith(option + "=") for a in args)


def _invoke(args: list[str]) -> None:
    # make_context/invoke rather than command.main(): click's main() turns a broken
    # pipe into sys.exit(1) before this funnel could see it.
    if os.environ.get(_COMPLETE_VAR):  # the shell asks for completions (see docs/install.md)
        click_group()._main_shell_completion({}, "bioseqnn", _COMPLETE_VAR)
    command = listing_group() if args in LISTING_ARGS else click_group(named_command(args))
    with command.make_context("bioseqnn", args) as ctx:
        command.invoke(ctx)


def _exit_code(exc: BaseException, debug: bool) -> int:
    """The exit code of an expected way to end, with its one line on stderr."""
    if isinstance(exc, BioseqnnError):
        if debug:
            traceback.print_exc(file=sys.stderr)
        # the library names settings by their keys, the command line by their flags
        print_error(exc.named(setting_flag) if isinstance(exc, SettingError) else str(exc))
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
            print_error(f"{exc.format_message()}{hint}")
        return int(getattr(exc, "exit_code", 2))
    if isinstance(exc, (KeyboardInterrupt, typer.Abort)):
        print_error("interrupted")
        return 130
    if isinstance(exc, _Terminated):
        print_error("terminated")
        return 143
    # BrokenPipeError: the reader went away (e.g. '| head'): stop quietly, no traceback
    from ..io.outputs import silence_stdout

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
