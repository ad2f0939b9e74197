"""The tune table of the docs: ``bioseqnn tune --time 20m`` on each shared dataset, its
test figure beside the default's and the published one.

    python scripts/tune_table.py ../shared/data --workdir runs/tune     # every row, in turn
    # the rows split over two processes, then the table of both:
    python scripts/tune_table.py DATA --rows ncrna_families,gb1_fitness --out a.json
    python scripts/tune_table.py DATA --rows ecoli_promoters,secondary_structure --out b.json
    python scripts/tune_table.py --table a.json b.json

Every row is the row of scripts/reproduce.py (the same splits and seed); where that row
trains one model, this one runs a search of ``--time`` (20 minutes by default) on the
row's training part instead. Trials are scored on the row's validation part (its own
validation split, or train's split of the training part); the test part is read once,
to score the best trial's model. The cross-validated peptide rows run their first fold
only (a search per fold would take five times the budget): the default's figure beside
it is that fold's, from the default column of docs/accuracy-data/compare_final.json.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

from compare_defaults import HEADLINE as COMPARED
from reproduce import PUBLISHED, ROWS, Context, check_dataset, machine, run_row

from bioseqnn.cli import parse_duration
from bioseqnn.config import RunConfig, dump_yaml
from bioseqnn.io.outputs import atomic_output

log = logging.getLogger("bioseqnn")
DEFAULTS = Path(__file__).resolve().parent.parent / "docs" / "accuracy-data" / "compare_final.json"

# The figure of each row: the headline of docs/accuracy.md, the first fold's for the
# cross-validated rows.
HEADLINE: dict[str, tuple[str, ...]] = {
    row: ("fold 1 accuracy",) if metrics == ("5-fold CV accuracy",) else metrics
    for row, metrics in COMPARED.items()
}


def searcher(budget: float, threads: int, seed: int, searches: list[dict[str, Any]]) -> Any:
    """reproduce's ``Context.fit``: a search in place of one training run."""
    from bioseqnn.modelfile import read_manifest
    from bioseqnn.search.study import tune

    def fit(
        train: tuple[Path, Path],
        model: Path,
        cfg: RunConfig,
        *,
        val: Any = None,
        targets: list[str] | None = None,
        task: str | None = None,
        mask: Path | None = None,
    ) -> dict[str, Any]:
        base = RunConfig()
        base.training.threads = threads
        base.training.device = "cpu"
        started = time.perf_counter()
        tune(
            train[0],
            train[1],
            model,
            timeout=budget,
            seed=seed,
            config=base,
            targets=targets,
            task=task,
            val_fasta=val[0] if val else None,
            val_labels=val[1] if val else None,
            position_mask=mask,
        )
        manifest = read_manifest(model)[0]
        searches.append(
            {
                "model": model.name,
                "wall_seconds": round(time.perf_counter() - started, 1),
                **manifest["tune"],
            }
        )
        return manifest

    return fit


def run(args: argparse.Namespace) -> dict[str, Any]:
    rows = [r for r in args.rows.split(",") if r]
    for row in rows:
        check_dataset(args.data, row)
    out: Path = args.out
    results: dict[str, Any] = json.loads(out.read_text()) if out.exists() else {}
    budget = parse_duration(args.time)
    configs = args.workdir / "configs"
    configs.mkdir(parents=True, exist_ok=True)
    for row in ROWS:  # run_row reads the row's config: the defaults (as train with no options)
        (configs / f"{row}.yaml").write_text(dump_yaml(RunConfig()), encoding="utf-8")
    for row in rows:
        work = args.workdir / row
        work.mkdir(parents=True, exist_ok=True)
        searches: list[dict[str, Any]] = []
        ctx = Context(
            args.data,
            work,
            configs,
            None,
            args.limit,
            fit=searcher(budget, args.threads, args.seed, searches),
            first_fold=True,
        )
        outcome = run_row(row, ctx)
        outcome.update(searches=searches, budget=args.time, threads=args.threads, machine=machine())
        log.info("tune %s: %s", row, json.dumps(outcome["results"]))
        results[row] = outcome
        with atomic_output(out) as fh:
            fh.write(json.dumps(results, indent=2) + "\n")
    return results


def _default(defaults: dict[str, Any], row: str, metric: str) -> float | None:
    entry = defaults.get("default", {}).get(row)
    if entry is None:
        return None
    if metric == "fold 1 accuracy":
        return entry.get("folds", {}).get("accuracy", [None])[0]
    value = entry["results"].get(metric)
    return None if value is None else float(value)


def table(results: dict[str, Any]) -> str:
    defaults = json.loads(DEFAULTS.read_text()) if DEFAULTS.exists() else {}
    lines = [
        "| dataset | metric (test) | default | tune | trials (complete/pruned/failed) "
        "| best trial | published |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in ROWS:
        entry = results.get(row)
        for i, metric in enumerate(HEADLINE[row]):
            tuned = entry["results"].get(metric) if entry else None
            default = _default(defaults, row, metric)
            search = entry["searches"][i] if entry and i < len(entry["searches"]) else None
            counts = (
                f"{search['trials']} ({search['complete']}/{search['pruned']}/{search['failed']})"
                if search
                else ""
            )
            best = (
                ""
                if search is None
                else (
                    f"{search['best_trial']}: "
                    + (search["best_settings"]["model"].get("arch") or "train's defaults")
                )
            )
            published = "; ".join(
                f"{p.value:.3f} ({p.source})"
                for p in PUBLISHED[row]
                if p.value is not None
                and (p.metric == metric or (metric == "fold 1 accuracy" and "CV" in p.metric))
            )
            lines.append(
                f"| {row} | {metric.removeprefix('test ')} | "
                f"{'' if default is None else f'{default:.3f}'} | "
                f"{'' if tuned is None else f'{tuned:.3f}'} | {counts} | {best} | "
                f"{published or 'n/a'} |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from bioseqnn import runtime

    runtime.tune()  # as the command line does, before any torch work
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("data", type=Path, nargs="?", help="the shared datasets (../shared/data)")
    p.add_argument("--rows", default=",".join(ROWS))
    p.add_argument("--time", default="20m", help="each search's budget (default 20m)")
    p.add_argument("--threads", type=int, default=1, help="torch threads of each trial")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--workdir",
        type=Path,
        default=Path("tune-runs"),
        help="splits, studies and every trial's model",
    )
    p.add_argument(
        "--out",
        type=Path,
        default=Path("tune_table.json"),
        help="results JSON, merged with the rows already there",
    )
    p.add_argument("--limit", type=int, default=None, help="cap training records (a check)")
    p.add_argument(
        "--table",
        type=Path,
        nargs="+",
        default=None,
        metavar="JSON",
        help="print the table of these results files and exit",
    )
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="tune-table: %(message)s", stream=sys.stderr)
    if args.table:
        merged: dict[str, Any] = {}
        for path in args.table:
            merged.update(json.loads(path.read_text()))
        print(table(merged))
        return 0
    if args.data is None:
        p.error("give the datasets folder (or --table JSON...)")
    print(table(run(args)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
