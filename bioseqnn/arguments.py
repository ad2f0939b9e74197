"""Arguments of the Python API checked against their annotations: a value of the wrong
type is a :class:`~bioseqnn.errors.UsageError` naming the argument, as the guide
promises, rather than a TypeError from deep inside (``batch_size="x"``)."""

from __future__ import annotations

import functools
import inspect
import numbers
import os
from collections.abc import Callable
from typing import Any, TypeVar

from .errors import UsageError

_F = TypeVar("_F", bound=Callable[..., Any])

_KINDS: dict[str, tuple[str, Callable[[Any], bool]]] = {
    "int": ("an integer", lambda v: isinstance(v, numbers.Integral) and not isinstance(v, bool)),
    "float": ("a number", lambda v: isinstance(v, numbers.Real) and not isinstance(v, bool)),
    "bool": ("True or False", lambda v: isinstance(v, bool)),
    "str": ("a string", lambda v: isinstance(v, str)),
    "str | os.PathLike[str]": ("a path", lambda v: isinstance(v, (str, os.PathLike))),
}
"""Annotations checked (as written in the source), with what they ask for; ``| None``
after one of them allows None too. Others are left to the function."""


def _checks(fn: Callable[..., Any]) -> dict[str, tuple[str, Callable[[Any], bool], bool]]:
    found = {}
    for name, param in inspect.signature(fn).parameters.items():
        note = param.annotation if isinstance(param.annotation, str) else ""
        optional = note.endswith(" | None")
        kind = _KINDS.get(note.removesuffix(" | None"))
        if kind is not None:
            found[name] = (*kind, optional)
    return found


def checked(fn: _F) -> _F:
    """``fn`` with its simply typed arguments (int, float, bool, str, a path; or None
    where the annotation allows it) checked before it runs."""
    signature = inspect.signature(fn)
    checks = _checks(fn)

    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            bound = signature.bind(*args, **kwargs)
        except TypeError:
            return fn(*args, **kwargs)  # a missing or unknown argument: Python's own error
        for name, value in bound.arguments.items():
            check = checks.get(name)
            if check is None or (value is None and check[2]):
                continue
            if not check[1](value):
                raise UsageError(
                    f"{fn.__name__}: {name} must be {check[0]}"
                    f"{' or None' if check[2] else ''}, not {value!r:.60}"
                )
        return fn(*args, **kwargs)

    return run  # type: ignore[return-value]
