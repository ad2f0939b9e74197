"""Settings files in YAML: read safely and within bounds, written so that they read back.

Kept apart from :mod:`bioseqnn.config` so that commands which never read or write YAML
(``--help``, ``--version``, ``info``) do not import PyYAML.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from .errors import UsageError, printable, shown

MAX_CONFIG = 1 << 20
"""Bytes of a YAML settings file (a config, a search space) read at most (the full
default config is about 5 kB)."""
MAX_DEPTH = 20
"""Lists and mappings nested in one another at most in a YAML settings file (a config
and a search space nest 3 deep). PyYAML composes a document recursively: a few kB of
``[[[[...`` ran it out of stack (an 'unexpected RecursionError')."""


class _SettingsLoader(yaml.SafeLoader):
    """Safe YAML without aliases. A settings file writes its values out; an alias
    (``*name``) lets a few hundred bytes stand for billions of values."""

    _nesting = 0
    """Lists and mappings open around the node being composed."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            raise yaml.composer.ComposerError(
                None, None, "aliases (*name) are not accepted", self.peek_event().start_mark
            )
        if not self.check_event(yaml.SequenceStartEvent, yaml.MappingStartEvent):
            return super().compose_node(parent, index)
        if self._nesting >= MAX_DEPTH:
            raise yaml.composer.ComposerError(
                None,
                None,
                f"nested too deeply (more than {MAX_DEPTH} levels of lists and mappings)",
                self.peek_event().start_mark,
            )
        self._nesting += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self._nesting -= 1

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        """A mapping whose keys are each given once: YAML requires it, and PyYAML would
        keep the last of two values without a word (``epochs: 5`` below ``epochs: 50``)."""
        if isinstance(node, yaml.MappingNode):
            first: dict[Any, Any] = {}
            for key_node, _ in node.value:
                if not isinstance(key_node, yaml.ScalarNode):
                    continue
                key = self.construct_object(key_node)
                if key in first:
                    raise yaml.constructor.ConstructorError(
                        None,
                        None,
                        f"{shown(key)} is given twice (first on line "
                        f"{first[key].line + 1}); keep one",
                        key_node.start_mark,
                    )
                first[key] = key_node.start_mark
        return super().construct_mapping(node, deep=deep)


# YAML 1.1 (PyYAML) reads 1e-3 as a string, since its floats need a point; YAML 1.2 and
# most people read it as a number, and a learning rate is usually written that way.
_SettingsLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


class SettingsDumper(yaml.SafeDumper):
    """Safe YAML that writes a value shared by two keys out twice, never as an alias, so
    that what bioseqnn writes, :func:`read_yaml` reads back."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def read_yaml(path: str | Path, what: str) -> Any:
    """The data of a YAML settings file (``what``: config, search space): at most
    :data:`MAX_CONFIG` bytes of UTF-8 text, without aliases, nested at most
    :data:`MAX_DEPTH` deep. Anything else is a one-line :class:`UsageError` that names
    the file (and the line and column of a YAML error)."""
    try:
        with open(path, "rb") as fh:
            raw = fh.read(MAX_CONFIG + 1)
        if len(raw) > MAX_CONFIG:
            raise UsageError(f"{path}: not a YAML {what} (longer than {MAX_CONFIG >> 20} MB)")
        text = raw.decode("utf-8")
    except OSError as exc:
        raise UsageError(f"{path}: cannot read {what}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise UsageError(f"{path}: not a YAML {what} (not UTF-8 text)") from None
    try:
        return yaml.load(text, Loader=_SettingsLoader)  # a SafeLoader: no Python objects
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        what_is_wrong = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise UsageError(
            f"{path}: {where}not valid YAML: {printable(what_is_wrong, 130)}"
        ) from None


def dump(value: Any, **options: Any) -> str:
    """``value`` as YAML by :class:`SettingsDumper` (``options``: yaml.dump's)."""
    return yaml.dump(value, Dumper=SettingsDumper, **options)  # type: ignore[no-any-return]
