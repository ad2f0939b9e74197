"""bioseqnn info and bioseqnn ensemble: what a model file holds, and joining several."""

from __future__ import annotations

import json
import re
import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer

from .app import app, setup_logging
from .options import Debug, Quiet
from .settings import PanelledCommand

if TYPE_CHECKING:
    from rich.table import Table


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
    setup_logging(quiet, debug)
    from ..modelfile import read_manifest  # the header alone: no torch, no weights read

    manifest, _ = read_manifest(model)
    if as_json:
        print(json.dumps(manifest, indent=2, sort_keys=False))
        return
    rows = [(key, shown(value)) for key, value in info_rows(manifest)]
    if sys.stdout.isatty():
        from ..progress import console

        console(highlight=False).print(info_table(rows))
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
    setup_logging(quiet, debug)
    from ..ops.ensemble import combine

    combine(models, output)


def info_table(rows: list[tuple[str, str]]) -> Table:
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


def info_rows(m: dict[str, Any]) -> list[tuple[str, str]]:
    """What 'info' shows: (field, text) pairs."""
    from ..modelfile import MAX_MEMBERS
    from ..modelspec import describe

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
