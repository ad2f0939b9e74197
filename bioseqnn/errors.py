"""One exception hierarchy. Only the CLI turns these into messages and exit codes."""

from __future__ import annotations

import string
from collections.abc import Callable
from typing import Any


class BioseqnnError(Exception):
    """Base class of every error bioseqnn reports to a user.

    The message is one line that says what went wrong, where (file, record, line,
    position) and, where it helps, what to do about it.
    """

    exit_code = 1


class UsageError(BioseqnnError):
    """The command was called wrongly: bad option values, incompatible options."""

    exit_code = 2


class SettingError(UsageError):
    """A setting's value is out of its range, not one of its choices, or does not go with
    another setting's value.

    The message names each setting by its key, the field of the config dataclasses
    (``hidden_size must be at least 1``). ``keys`` lists those settings, and
    :meth:`named` words the message with other names for them: the command line says
    ``--hidden-size must be at least 1``.

    ``template`` writes each setting as ``{key}``; ``values`` fill its other fields
    (``SettingError("{heads} must be at least 1, not {value}", value=0)``).
    """

    def __init__(self, template: str, **values: Any) -> None:
        self.template = template
        self.values = values
        fields = (name for _, name, _, _ in string.Formatter().parse(template) if name)
        self.keys = tuple(dict.fromkeys(name for name in fields if name not in values))
        super().__init__(self.named(lambda key: key))

    def named(self, name: Callable[[str], str]) -> str:
        """The message with each setting called ``name(key)``."""
        return self.template.format(**{key: name(key) for key in self.keys}, **self.values)


class DataError(BioseqnnError):
    """An input file is malformed or does not fit the task."""

    exit_code = 1


class ModelFileError(BioseqnnError):
    """A model file is missing, damaged, from an unknown version or unsafe."""

    exit_code = 1


class TrainingError(BioseqnnError):
    """Training could not continue (e.g. the loss became NaN)."""

    exit_code = 1


def shorten(text: str, limit: int = 40) -> str:
    """Return ``text`` cut to ``limit`` characters for an error message."""
    text = text.replace("\n", "\\n").replace("\r", "\\r")
    return text if len(text) <= limit else text[: limit - 3] + "..."


def shown(value: Any, limit: int = 80) -> str:
    """A value as an error message shows it: its repr (control characters escaped),
    cut to ``limit`` characters."""
    return shorten(repr(value), limit)


def printable(text: str, limit: int = 80) -> str:
    """``text`` as a message shows it without quotes: each character that is not
    printable (a control character, ESC, NUL) escaped as Python writes it (``\\x1b``),
    cut to ``limit`` characters."""
    return shorten(
        "".join(c if c.isprintable() else repr(c)[1:-1] for c in text[: limit + 1]), limit
    )
