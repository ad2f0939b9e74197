"""One exception hierarchy. Only the CLI turns these into messages and exit codes."""

from __future__ import annotations


class BioseqnnError(Exception):
    """Base class of every error bioseqnn reports to a user.

    The message is one line that says what went wrong, where (file, record, line,
    position) and, where it helps, what to do about it.
    """

    exit_code = 1


class UsageError(BioseqnnError):
    """The command was called wrongly: bad option values, incompatible options."""

    exit_code = 2


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
