"""Compare default recipes on the shared datasets, and write the accuracy table of the docs.

    # choices: validation figures only (the test parts are never read)
    python scripts/compare_defaults.py ../shared/data --recipes old-default,cnn-gru
    # the docs table: test figures of the old default, the default, --cv 5 and --structure
    python scripts/compare_defaults.py ../shared/data --final --workdir runs/

A recipe is a YAML config (scripts/recipes/<name>.yaml, or a path) applied unchanged to
every row of the accuracy table (scripts/reproduce.py: the same splits, the same seed);
``default`` is bioseqnn's own defaults (``bioseqnn train`` with no options), ``cv5`` those
with ``--cv 5`` and ``structure`` those with ``--structure mfe`` (RNA rows only).
Per-position rows read a recipe with every convolution pool size set to 1.

Validation figures are the best epoch's, chosen by the recipe's monitor on the row's
validation part; ``--final`` scores each row's test part once, with the model of the
validation run when ``--workdir`` still holds it (the same recipe, the same seed: the
same model), and puts the figures of the committed best-known configs
(example_data/reproduce/results.json) and the published figures beside them.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from reproduce import (
    PACKAGE_CONFIGS,
    PUBLISHED,
    ROWS,
    Context,
    check_dataset,
    run_row,
)

from bioseqnn.config import RunConfig, dump_yaml, load_config
from bioseqnn.io.outputs import atomic_output

log = logging.getLogger("bioseqnn")
RECIPES = Path(__file__).resolve().parent / "recipes"
FINAL = ("old-default", "default", "cv5", "structure")
RNA_ROWS = ("ncrna_families",)

# The figure each row is compared on (its headline metric), validation or test.
HEADLINE: dict[str, tuple[str, ...]] = {
    "ncrna_families": ("test accuracy",),
    "ecoli_promoters": ("test Pearson r (log2 expression)",),
    "hemolytic_peptides": ("5-fold CV accuracy",),
    "anticancer_peptides": ("5-fold CV accuracy",),
    "gb1_fitness": ("Spearman, three_vs_rest", "Spearman, low_vs_high"),
    "secondary_structure": ("Q3 on resolved test residues",),
}


def recipe_config(name: str) -> RunConfig:
    """The settings of a recipe name (see the module's docstring) or YAML path."""
    if name in ("default", "cv5", "structure"):
        cfg = RunConfig()
        if name == "cv5":
            cfg.training.cv = 5
        elif name == "structure":
            cfg.training.structure = "mfe"
        return cfg
    path = Path(name)
    return load_config(path if path.suffix in (".yaml", ".yml") else RECIPES / f"{name}.yaml")


def write_configs(name: str, folder: Path) -> None:
    """The recipe as every row's config (per-position rows without length pooling)."""
    folder.mkdir(parents=True, exist_ok=True)
    for row in ROWS:
        cfg = recipe_config(name)
        if row == "secondary_structure":
            cfg.model.pool_sizes = [1] * len(cfg.model.pool_sizes)
        (folder / f"{row}.yaml").write_text(dump_yaml(cfg), encoding="utf-8")


def applies(name: str, row: str) -> bool:
    return name != "structure" or row in RNA_ROWS


def main(argv: list[str] | None = None) -> int:
    from bioseqnn import runtime

    runtime.tune()  # as the command line does, before any torch work
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("data", type=Path, help="the shared datasets (../shared/data)")
    p.add_argument(
        "--recipes",
        default="",
        help="comma list of recipe names or YAML paths "
        "(with --final: which of its columns to run, all by default)",
    )
    p.add_argument(
        "--final",
        action="store_true",
        help=f"score the test parts of {', '.join(FINAL)} (the docs table)",
    )
    p.add_argument("--rows", default=",".join(ROWS))
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        help="results JSON, merged with the runs already there (default: "
        "compare_validation.json, or compare_final.json with --final)",
    )
    p.add_argument(
        "--workdir",
        type=Path,
        default=None,
        help="keep splits, models and logs here (and reuse them with --final)",
    )
    p.add_argument("--epochs", type=int, default=None, help="cap epochs (a pipeline check)")
    p.add_argument("--limit", type=int, default=None, help="cap training records")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="compare: %(message)s", stream=sys.stderr)
    names = [r for r in args.recipes.split(",") if r]
    if args.final:  # all four columns, or those of --recipes (runs done in parts)
        unknown = sorted(set(names) - set(FINAL))
        if unknown:
            p.error(f"--final scores {', '.join(FINAL)}, not {', '.join(unknown)}")
        names = names or list(FINAL)
    if not names:
        p.error("give --recipes or --final")
    rows = [r for r in args.rows.split(",") if r]
    for row in rows:
        check_dataset(args.data, row)
    out = args.out or Path("compare_final.json" if args.final else "compare_validation.json")
    results: dict[str, Any] = json.loads(out.read_text()) if out.exists() else {}
    with tempfile.TemporaryDirectory(prefix="bioseqnn-compare-") as tmp:
        for name in names:
            label = Path(name).stem
            configs = Path(tmp) / "configs" / label
            write_configs(name, configs)
            for row in (r for r in rows if applies(name, r)):
                work = (args.workdir or Path(tmp)) / label / row
                work.mkdir(parents=True, exist_ok=True)
                ctx = Context(
                    args.data,
                    work,
                    configs,
                    args.epochs,
                    args.limit,
                    validation_only=not args.final,
                    reuse=args.final,
                )
                started = time.perf_counter()
                outcome = run_row(row, ctx)
                log.info(
                    "%s %s: %s (%.0f s)",
                    label,
                    row,
                    json.dumps(outcome["results"]),
                    time.perf_counter() - started,
                )
                results.setdefault(label, {})[row] = outcome
                with atomic_output(out) as fh:
                    fh.write(json.dumps(results, indent=2) + "\n")
    print(final_table(results) if args.final else validation_table(results))
    return 0


def _cell(results: dict[str, Any], name: str, row: str, metric: str) -> str:
    entry = results.get(name, {}).get(row)
    value = entry["results"].get(metric) if entry else None
    if value is None:
        return ""
    sd = entry["results"].get(f"{metric} sd")
    return f"{value:.3f}" + (f" ± {sd:.3f}" if sd is not None else "")


def validation_table(results: dict[str, Any]) -> str:
    names = list(results)
    lines = [
        "| row | metric (validation) | " + " | ".join(names) + " |",
        "|---|---|" + "---|" * len(names),
    ]
    for row in ROWS:
        for metric in HEADLINE[row]:
            cells = [_cell(results, name, row, metric) for name in names]
            if any(cells):
                lines.append(
                    f"| {row} | {metric.removeprefix('test ')} | " + " | ".join(cells) + " |"
                )
    return "\n".join(lines)


def final_table(results: dict[str, Any]) -> str:
    known_path = PACKAGE_CONFIGS / "results.json"
    known = json.loads(known_path.read_text())["rows"] if known_path.exists() else {}
    lines = [
        "| dataset | metric (test) | old default | default | --cv 5 | --structure | "
        "best known config | published |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in ROWS:
        for metric in HEADLINE[row]:
            cells = [_cell(results, name, row, metric) for name in FINAL]
            best = known.get(row, {}).get("results", {}).get(metric)
            published = "; ".join(
                f"{p.value:.3f} ({p.source})"
                for p in PUBLISHED[row]
                if p.metric == metric and p.value is not None
            )
            lines.append(
                f"| {row} | {metric.removeprefix('test ')} | "
                + " | ".join(c or "n/a" for c in cells)
                + f" | {'' if best is None else f'{best:.3f}'} | "
                f"{published or 'n/a'} |"
            )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
