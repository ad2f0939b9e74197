"""The console script ``bioseqnn`` and ``python -m bioseqnn``: the command line, loaded
behind a guard for its own start-up.

Loading the command line (typer, click, the commands' modules) takes a tenth of a
second or more, before its error funnel (cli.funnel.main) is in place; a Ctrl-C typed
right after Enter landed there and printed a Python traceback. This module imports
nothing but ``sys``, so the interrupt is answered as it is later: one line, exit 130.
"""

from __future__ import annotations

import sys


def run() -> None:  # pragma: no cover - console script entry point (tests run it)
    try:
        from .cli.funnel import run as command_line

        command_line()  # its funnel answers an interrupt from here on, but for a moment
    except KeyboardInterrupt:
        print("bioseqnn: error: interrupted", file=sys.stderr)
        sys.exit(130)
