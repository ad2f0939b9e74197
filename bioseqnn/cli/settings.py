"""Options made from the settings' dataclasses (config.py), and --help's groups."""

from __future__ import annotations

import copy
import dataclasses
import functools
import inspect
import re
import typing
from collections.abc import Callable
from typing import Annotated, Any

import typer
import typer.core

from .options import finite


@functools.cache
def _defaults() -> dict[str, Any]:
    """The settings a run takes when neither an option nor a config file sets them."""
    from ..config import RunConfig

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
    from ..config import ARCHITECTURES, AUTO, DEFAULT_ARCH, DEFAULT_CAUSAL_ARCH, setting_range

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


def setting_flag(key: str) -> str:
    """The flag that names a setting in a message: its option's first (--threads, not -j;
    --bidirectional of --bidirectional/--unidirectional)."""
    from ..config import ModelConfig, TrainConfig

    for cls in (ModelConfig, TrainConfig):
        for field in dataclasses.fields(cls):
            if field.name == key:
                return _flags(field)[0].split("/")[0]
    return _flag(key)


@functools.cache
def _setting_names() -> frozenset[str]:
    from ..config import ModelConfig, TrainConfig

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
    from ..config import ModelConfig, TrainConfig, parse_int_list

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
