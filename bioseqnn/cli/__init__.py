"""Command-line interface: options in, core calls, errors to exit codes; nothing else.

One module per command (or pair of commands), the options they share (``options``),
the options made from the settings (``settings``), the Typer app (``app``) and the
one error funnel with the entry points (``funnel``). The commands are registered on
the app as their modules are imported, in the order ``bioseqnn --help`` lists them.
"""

# Importing a command's module registers its commands, in --help's order.
# isort: off
from . import train, predict, info, tune, evaluate, explain, insilico, tools  # noqa: F401
# isort: on

from .app import (
    CHEAP_ABSENT_VALUES,
    LISTING_ARGS,
    RichReporter,
    app,
    click_group,
    listing_group,
    repeated_options,
    version_details,
)
from .funnel import main, run
from .info import SHOWN, info_rows, info_table, shown
from .process import OPENMP_SPIN
from .settings import PanelledCommand, with_settings
from .tune import parse_duration

__all__ = [
    "CHEAP_ABSENT_VALUES",
    "LISTING_ARGS",
    "OPENMP_SPIN",
    "PanelledCommand",
    "RichReporter",
    "SHOWN",
    "app",
    "click_group",
    "info_rows",
    "info_table",
    "listing_group",
    "main",
    "parse_duration",
    "repeated_options",
    "run",
    "shown",
    "version_details",
    "with_settings",
]
