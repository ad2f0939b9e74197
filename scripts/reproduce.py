"""Reproduce the accuracy table of docs/reproduce.md on the published datasets.

    python scripts/reproduce.py ../shared/data                 # every row
    python scripts/reproduce.py ../shared/data --rows ncrna_families,ecoli_promoters
    python scripts/reproduce.py DATA --rows ncrna_families --epochs 1   # a pipeline check

Each row trains with a committed YAML config (example_data/reproduce/<row>.yaml: beside the
package in a source checkout, else under the current directory, or --configs DIR), chooses
its weights on validation data only (a split of the training data, or the dataset's own
validation split) and scores the test part once. The figures go to a JSON results file
(merged with the rows already there) and a Markdown table on stdout.

Errors are one line on stderr ("reproduce: error: ..."): exit 2 for bad usage (unknown row,
missing data or configs folder, unreadable config), 1 for bad data or a failed run, 130
when interrupted; --debug adds the traceback.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import platform
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import numpy as np
import torch

from bioseqnn.config import RunConfig, load_config
from bioseqnn.errors import BioseqnnError, DataError, UsageError
from bioseqnn.io.outputs import atomic_output, check_output_path, silence_stdout
from bioseqnn.io.sniff import read_sequences
from bioseqnn.models.base import describe

log = logging.getLogger("bioseqnn")

PACKAGE_CONFIGS = Path(__file__).resolve().parent.parent / "example_data" / "reproduce"
"""The committed configs of the checkout this script is in (absent when the script was
copied elsewhere)."""

CWD_CONFIGS = Path("example_data") / "reproduce"
"""Where the configs are looked for next: under the current directory (the checkout's root)."""


@dataclass(frozen=True)
class Published:
    metric: str
    value: float | None
    source: str


# The published figures (shared/data/README.md) next to which each row is reported.
PUBLISHED: dict[str, list[Published]] = {
    "ncrna_families": [
        Published("test accuracy", 0.859, "one-hot CNN, ncRNA-deep (Noviello et al. 2020)"),
        Published("test accuracy", 0.82, "nRC (Fiannaca et al. 2017)"),
    ],
    "ecoli_promoters": [
        Published("test Pearson r (log2 expression)", 0.25, "Wang et al. 2020"),
    ],
    "gb1_fitness": [
        Published("Spearman, three_vs_rest", 0.83, "FLIP CNN baseline (Dallago et al. 2021)"),
        Published("Spearman, low_vs_high", 0.51, "FLIP CNN baseline (Dallago et al. 2021)"),
    ],
    "secondary_structure": [
        Published("Q3 on resolved test residues", 0.69, "TAPE one-hot"),
        Published("Q3 on resolved test residues", 0.73, "TAPE best one-hot baseline"),
    ],
    "hemolytic_peptides": [
        Published("5-fold CV accuracy", None, "HemoPI (Chaudhary et al. 2016): not verified here"),
    ],
    "anticancer_peptides": [
        Published("5-fold CV accuracy", None, "AntiCP (Tyagi et al. 2013): not verified here"),
    ],
}

ROWS = (
    "ncrna_families",
    "ecoli_promoters",
    "hemolytic_peptides",
    "anticancer_peptides",
    "gb1_fitness",
    "secondary_structure",
)

# The files each row reads from DATA/<row>/ (the layout of ../shared/data).
DATASET_FILES: dict[str, tuple[str, ...]] = {
    "ncrna_families": ("train.fasta", "train.csv", "test.fasta", "test.csv"),
    "ecoli_promoters": ("promoters.fasta", "expression.csv"),
    "hemolytic_peptides": ("peptides.fasta", "labels.csv"),
    "anticancer_peptides": ("peptides.fasta", "labels.csv"),
    "gb1_fitness": ("variants.fasta", "fitness.csv"),
    "secondary_structure": ("sequences.fasta", "ss3.fasta", "resolved_mask.fasta", "splits.csv"),
}

LAYOUT_HINT = "DATA must hold the datasets as laid out in ../shared/data (see its README)"


# --------------------------------------------------------------------------- file helpers


def read_fasta(path: Path) -> dict[str, bytes]:
    return {r.id: r.seq for r in read_sequences(path)}


def write_fasta(path: Path, records: Iterable[tuple[str, bytes]]) -> Path:
    with open(path, "wb") as fh:
        for rid, seq in records:
            fh.write(b">" + rid.encode() + b"\n" + seq + b"\n")
    return path


def read_csv(
    path: Path, required: Iterable[str] = ("id",)
) -> tuple[list[str], list[dict[str, str]]]:
    """The header and rows of a CSV table that has the ``required`` columns."""
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            header, rows = list(reader.fieldnames or []), list(reader)
    except OSError as exc:
        raise DataError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise DataError(f"{path}: not a CSV table (not UTF-8 text)") from None
    except csv.Error as exc:
        raise DataError(f"{path}: not a CSV table: {exc}") from None
    missing = [c for c in required if c not in header]
    if missing:
        raise DataError(
            f"{path}: no column {', '.join(map(repr, missing))} "
            f"(columns: {', '.join(header) or 'none'}); {LAYOUT_HINT}"
        )
    return header, rows


def write_csv(path: Path, header: list[str], rows: Iterable[dict[str, str]]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, header, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return path


def write_part(
    work: Path, name: str, seqs: dict[str, bytes], header: list[str], rows: list[dict[str, str]]
) -> tuple[Path, Path]:
    """The FASTA and table of the records ``rows`` (a part of a dataset)."""
    fasta = write_fasta(work / f"{name}.fasta", ((r["id"], seqs[r["id"]]) for r in rows))
    return fasta, write_csv(work / f"{name}.csv", header, rows)


def stratified_folds(labels: list[str], k: int, seed: int) -> np.ndarray:
    """Fold number of every record: each class dealt round-robin over k folds, seeded."""
    rng = np.random.default_rng([seed, 7])
    folds = np.empty(len(labels), dtype=np.int64)
    values = np.asarray(labels)
    for cls in sorted(set(labels)):
        members = rng.permutation(np.flatnonzero(values == cls))
        folds[members] = np.arange(len(members)) % k
    return folds


# --------------------------------------------------------------------------- one run


@dataclass
class Context:
    data: Path
    work: Path
    configs: Path
    epochs: int | None
    limit: int | None
    """Use at most this many training records (a pipeline check, not a figure)."""
    validation_only: bool = False
    """Report the validation figures of the best epoch and never read the test part (the
    figures that choices are made on)."""
    reuse: bool = False
    """Score a model already in the work folder (from a validation-only run of the same
    config) instead of training it again."""
    fit: Callable[..., dict[str, Any]] | None = None
    """Make the model another way (scripts/tune_table.py: a search): called as
    ``fit(train, model, cfg, val=..., targets=..., task=..., mask=...)``, it writes the
    model file and returns its manifest."""
    first_fold: bool = False
    """Cross-validated rows: run the first of the five folds only."""

    def config(self, row: str) -> tuple[RunConfig, Path]:
        path = self.configs / f"{row}.yaml"
        cfg = load_config(path)
        if self.epochs is not None:
            cfg.training.epochs = self.epochs
        return cfg, path

    def cap(self, rows: list[Any]) -> list[Any]:
        """A seeded random subset of ``limit`` records, in their order."""
        if self.limit is None or self.limit >= len(rows):
            return rows
        keep = np.sort(np.random.default_rng(5).permutation(len(rows))[: self.limit])
        return [rows[i] for i in keep]


def train_eval(
    cfg: RunConfig,
    name: str,
    ctx: Context,
    train: tuple[Path, Path],
    test: tuple[Path, Path],
    val: tuple[Path, Path] | None = None,
    targets: list[str] | None = None,
    task: str | None = None,
    mask: Path | None = None,
) -> tuple[dict[str, float], dict[str, Any]]:
    """Train on ``train`` (validation: ``val`` or the config's split), score ``test``."""
    from bioseqnn.api import train as run_train
    from bioseqnn.modelfile import read_manifest
    from bioseqnn.ops.evaluate import evaluate

    model = ctx.work / f"{name}.bsnn"
    kwargs: dict[str, Any] = {}
    if mask is not None:
        kwargs["position_mask"] = mask
    if cfg.training.cv and val is not None:
        # cross-validation holds out its own folds: the validation part joins the training
        train, val = _joined(train, val, ctx.work / f"{name}_train_and_val"), None
    if ctx.reuse and model.exists():
        log.info("%s: scoring the model trained before (%s)", name, model)
        manifest = read_manifest(model)[0]
    elif ctx.fit is not None:
        manifest = ctx.fit(train, model, cfg, val=val, targets=targets, task=task, mask=mask)
    else:
        manifest = run_train(
            train[0],
            train[1],
            model,
            cfg,
            targets=targets,
            task=task,
            val_fasta=val[0] if val else None,
            val_labels=val[1] if val else None,
            log_path=ctx.work / f"{name}.log.tsv",
            **kwargs,
        ).manifest
    metrics = manifest["metrics"]
    info = {
        "seconds": metrics.get("seconds", 0.0),
        "best_epoch": metrics.get("best_epoch"),
        "epochs_run": metrics.get("epochs_run"),
        "stopped_early": metrics.get("stopped_early"),
        "train_records": manifest["data"]["train_records"],
        "val_records": manifest["data"]["val_records"],
    }
    if ctx.validation_only:
        best = metrics["best"]
        return {k.removeprefix("val_"): v for k, v in best.items() if k.startswith("val_")}, info
    # the device training chose: 'auto' (the configs' default) falls back to the CPU
    # quietly, as train does, rather than warning once per model
    device = None if cfg.training.device == "auto" else cfg.training.device
    ev = evaluate(model, test[0], test[1], device=device, **kwargs)
    info["test_records"] = ev.records
    members = metrics.get("members")
    if members:  # an ensemble: each member's seed, epochs and validation figures
        info["members"] = [
            {k: m[k] for k in ("seed", "best_epoch", "epochs_run", "seconds")} | {"best": m["best"]}
            for m in members
        ]
        info["validation"] = metrics["best"]
    return dict(ev.metrics), info


def _joined(first: tuple[Path, Path], second: tuple[Path, Path], stem: Path) -> tuple[Path, Path]:
    """One FASTA and one labels file (a CSV table, or a FASTA of per-residue labels) holding
    the records of both parts."""
    fasta = stem.with_suffix(".fasta")
    fasta.write_bytes(first[0].read_bytes() + second[0].read_bytes())
    labels = stem.with_name(stem.name + "_labels" + first[1].suffix)
    if first[1].suffix == ".csv":
        body = second[1].read_text(encoding="utf-8").split("\n", 1)[1]
        labels.write_text(first[1].read_text(encoding="utf-8") + body, encoding="utf-8")
    else:
        labels.write_bytes(first[1].read_bytes() + second[1].read_bytes())
    return fasta, labels


# --------------------------------------------------------------------------- the rows


def row_ncrna(ctx: Context) -> dict[str, Any]:
    cfg, _ = ctx.config("ncrna_families")
    src = ctx.data / "ncrna_families"
    header, rows = read_csv(src / "train.csv")
    seqs = read_fasta(src / "train.fasta")
    train = write_part(ctx.work, "ncrna_train", seqs, header, ctx.cap(rows))
    scores, info = train_eval(cfg, "ncrna", ctx, train, (src / "test.fasta", src / "test.csv"))
    return {
        "results": {
            "test accuracy": scores["accuracy"],
            "test mcc": scores["mcc"],
            "test balanced accuracy": scores["balanced_accuracy"],
        },
        **info,
    }


def row_promoters(ctx: Context) -> dict[str, Any]:
    cfg, _ = ctx.config("ecoli_promoters")
    src = ctx.data / "ecoli_promoters"
    header, rows = read_csv(src / "expression.csv", ("id", "log2_expression"))
    seqs = read_fasta(src / "promoters.fasta")
    # The seeded 80/10/10 split (the seed of the config).
    perm = np.random.default_rng([cfg.training.seed, 11]).permutation(len(rows))
    n_test = n_val = len(rows) // 10
    test_rows = [rows[i] for i in sorted(perm[:n_test])]
    val_rows = [rows[i] for i in sorted(perm[n_test : n_test + n_val])]
    train_rows = ctx.cap([rows[i] for i in sorted(perm[n_test + n_val :])])
    parts = {
        n: write_part(ctx.work, f"promoters_{n}", seqs, header, r)
        for n, r in (("train", train_rows), ("val", val_rows), ("test", test_rows))
    }
    scores, info = train_eval(
        cfg,
        "promoters",
        ctx,
        parts["train"],
        parts["test"],
        val=parts["val"],
        targets=["log2_expression"],
    )
    return {
        "results": {
            "test Pearson r (log2 expression)": scores["pearson"],
            "test Spearman": scores["spearman"],
        },
        **info,
    }


def row_gb1(ctx: Context) -> dict[str, Any]:
    cfg, _ = ctx.config("gb1_fitness")
    src = ctx.data / "gb1_fitness"
    header, rows = read_csv(
        src / "fitness.csv", ("id", "fitness", "split_three_vs_rest", "split_low_vs_high")
    )
    seqs = read_fasta(src / "variants.fasta")
    results: dict[str, float] = {}
    info: dict[str, Any] = {"seconds": 0.0, "parts": {}}
    for split in ("three_vs_rest", "low_vs_high"):
        column = f"split_{split}"
        train_rows = ctx.cap([r for r in rows if r[column] == "train"])
        test_rows = [r for r in rows if r[column] == "test"]
        train = write_part(ctx.work, f"gb1_{split}_train", seqs, ["id", "fitness"], train_rows)
        test = write_part(ctx.work, f"gb1_{split}_test", seqs, ["id", "fitness"], test_rows)
        scores, part = train_eval(cfg, f"gb1_{split}", ctx, train, test, targets=["fitness"])
        results[f"Spearman, {split}"] = scores["spearman"]
        info["seconds"] += part.pop("seconds")
        info["parts"][split] = part
    del header
    return {"results": results, **info}


def _cv_row(ctx: Context, row: str, label: str) -> dict[str, Any]:
    cfg, _ = ctx.config(row)
    src = ctx.data / row
    header, rows = read_csv(src / "labels.csv", ("id", label))
    seqs = read_fasta(src / "peptides.fasta")
    folds = stratified_folds([r[label] for r in rows], 5, cfg.training.seed)
    acc, mcc, seconds = [], [], 0.0
    for k in range(1 if ctx.first_fold else 5):
        train_rows = ctx.cap([r for r, f in zip(rows, folds, strict=True) if f != k])
        test_rows = [r for r, f in zip(rows, folds, strict=True) if f == k]
        train = write_part(ctx.work, f"{row}_fold{k}_train", seqs, header, train_rows)
        test = write_part(ctx.work, f"{row}_fold{k}_test", seqs, header, test_rows)
        scores, info = train_eval(cfg, f"{row}_fold{k}", ctx, train, test, targets=[label])
        acc.append(scores["accuracy"])
        mcc.append(scores["mcc"])
        seconds += info["seconds"]
        log.info("%s fold %d: accuracy %.4f, mcc %.4f", row, k + 1, acc[-1], mcc[-1])
    if ctx.first_fold:
        return {
            "results": {"fold 1 accuracy": acc[0], "fold 1 MCC": mcc[0]},
            "folds": {"accuracy": acc, "mcc": mcc},
            "seconds": seconds,
        }
    return {
        "results": {
            "5-fold CV accuracy": float(np.mean(acc)),
            "5-fold CV accuracy sd": float(np.std(acc)),
            "5-fold CV MCC": float(np.mean(mcc)),
            "5-fold CV MCC sd": float(np.std(mcc)),
        },
        "folds": {"accuracy": acc, "mcc": mcc},
        "seconds": seconds,
    }


def row_hemolytic(ctx: Context) -> dict[str, Any]:
    return _cv_row(ctx, "hemolytic_peptides", "hemolytic")


def row_anticancer(ctx: Context) -> dict[str, Any]:
    src = ctx.data / "anticancer_peptides" / "labels.csv"
    header, _ = read_csv(src)
    labels = [h for h in header if h != "id"]
    if not labels:
        raise DataError(f"{src}: no label column beside 'id'; {LAYOUT_HINT}")
    return _cv_row(ctx, "anticancer_peptides", labels[0])


def row_secondary(ctx: Context) -> dict[str, Any]:
    cfg, _ = ctx.config("secondary_structure")
    src = ctx.data / "secondary_structure"
    _, rows = read_csv(src / "splits.csv", ("id", "split"))
    seqs = read_fasta(src / "sequences.fasta")
    labels = read_fasta(src / "ss3.fasta")
    masks = read_fasta(src / "resolved_mask.fasta")
    parts: dict[str, tuple[Path, Path]] = {}
    for split in ("train", "valid", "test"):
        ids = [r["id"] for r in rows if r["split"] == split]
        if split == "train":
            ids = ctx.cap(ids)
        parts[split] = (
            write_fasta(ctx.work / f"ss_{split}.fasta", ((i, seqs[i]) for i in ids)),
            write_fasta(ctx.work / f"ss_{split}_labels.fasta", ((i, labels[i]) for i in ids)),
        )
    mask = write_fasta(ctx.work / "ss_mask.fasta", masks.items())
    scores, info = train_eval(
        cfg,
        "secondary_structure",
        ctx,
        parts["train"],
        parts["test"],
        val=parts["valid"],
        task="per-position",
        mask=mask,
    )
    return {
        "results": {
            "Q3 on resolved test residues": scores["accuracy"],
            "test MCC (per residue)": scores["mcc"],
        },
        "scored_positions": scores.get("positions"),
        **info,
    }


RUNNERS: dict[str, Callable[[Context], dict[str, Any]]] = {
    "ncrna_families": row_ncrna,
    "ecoli_promoters": row_promoters,
    "hemolytic_peptides": row_hemolytic,
    "anticancer_peptides": row_anticancer,
    "gb1_fitness": row_gb1,
    "secondary_structure": row_secondary,
}


# --------------------------------------------------------------------------- the table


def run_row(row: str, ctx: Context) -> dict[str, Any]:
    cfg, path = ctx.config(row)
    started = time.perf_counter()
    outcome = RUNNERS[row](ctx)
    outcome["wall_seconds"] = round(time.perf_counter() - started, 1)
    outcome["seconds"] = round(float(outcome["seconds"]), 1)
    outcome.update(
        {
            "config": str(path.relative_to(PACKAGE_CONFIGS.parent.parent))
            if path.is_relative_to(PACKAGE_CONFIGS.parent.parent)
            else str(path),
            "architecture": _architecture(row, cfg, ctx.work),
            "seed": cfg.training.seed,
            **(
                {"seeds": list(range(cfg.training.seed, cfg.training.seed + cfg.training.ensemble))}
                if cfg.training.ensemble > 1
                else {}
            ),
            "epochs_cap": cfg.training.epochs,
            "reduced": " ".join(
                ([f"--epochs {ctx.epochs}"] if ctx.epochs is not None else [])
                + ([f"--limit {ctx.limit}"] if ctx.limit is not None else [])
            ),
            "published": [vars(p) for p in PUBLISHED[row]],
            "machine": machine(),
        }
    )
    return outcome


def _architecture(row: str, cfg: RunConfig, work: Path) -> str:
    """The network as trained: the settings a model file of the row records (automatic
    pool sizes made concrete), else the config's."""
    from bioseqnn.modelfile import read_manifest

    model: dict[str, Any] = cfg.to_dict()["model"]
    trained = sorted(work.glob("*.bsnn"))
    if trained:
        model = read_manifest(trained[0])[0]["model"]
    members = cfg.training.cv or cfg.training.ensemble
    what = "cross-validated ensemble" if cfg.training.cv else "ensemble"
    return describe(model, per_position=row == "secondary_structure") + (
        f", {what} of {members}" if members > 1 else ""
    )


def machine() -> str:
    from bioseqnn.models import native

    threads = torch.get_num_threads()
    kernels = native.instruction_set() if native.available() else "off"
    return (
        f"{platform.machine()} CPU, {threads} torch thread(s), torch {torch.__version__}, "
        f"CPU kernels {kernels}"
    )


def fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def markdown(results: dict[str, Any]) -> str:
    """The table of docs/reproduce.md: a line per measured figure, the published one beside."""
    lines = [
        "| dataset | metric | bioseqnn | published | architecture (config) | "
        "training time | seed |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in ROWS:
        entry = results.get(row)
        published = PUBLISHED[row]
        if entry is None:
            cmd = f"python scripts/reproduce.py DATA --rows {row}"
            for p in published[:1]:
                lines.append(
                    f"| {row} | {p.metric} | not yet measured (`{cmd}`) | "
                    f"{fmt(p.value)} ({p.source}) | example_data/reproduce/{row}.yaml "
                    f"| | |"
                )
            continue
        first = True
        for metric, value in entry["results"].items():
            if metric.endswith(" sd"):
                continue
            shown = fmt(value)
            sd = entry["results"].get(f"{metric} sd")
            if sd is not None:
                shown += f" ± {sd:.3f}"
            beside = (
                "; ".join(f"{fmt(p.value)} ({p.source})" for p in published if p.metric == metric)
                or ""
            )
            reduced = f" (reduced run: {entry['reduced']})" if entry.get("reduced") else ""
            how = f"{entry['architecture']} (`{entry['config']}`)" if first else "″"
            seeds = entry.get("seeds")
            seed = f"{seeds[0]}-{seeds[-1]}" if seeds else entry["seed"]
            time_seed = f"{entry['seconds']:.0f} s | {seed}" if first else " | "
            lines.append(
                f"| {row} | {metric} | {shown}{reduced} | {beside} | {how} | {time_seed} |"
            )
            first = False
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- the command


class _Parser(argparse.ArgumentParser):
    """argparse whose usage errors reach main()'s one-line report (not usage + message)."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see '{self.prog} --help')")


def parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="python scripts/reproduce.py",
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("data", type=Path, help="folder holding the datasets (../shared/data)")
    p.add_argument(
        "--rows",
        default=",".join(ROWS),
        help=f"comma list of rows to run (default: all: {', '.join(ROWS)})",
    )
    p.add_argument(
        "--out",
        type=Path,
        default=Path("reproduce_results.json"),
        help="results JSON; rows already there are kept unless rerun",
    )
    p.add_argument(
        "--configs",
        type=Path,
        default=None,
        help="folder of the <row>.yaml configs (default: example_data/reproduce "
        "of the checkout this script is in, else under the current directory)",
    )
    p.add_argument(
        "--workdir",
        type=Path,
        default=None,
        help="keep the splits, models and epoch logs here (default: a temporary folder)",
    )
    p.add_argument(
        "--epochs",
        type=int,
        default=None,
        help="cap the epochs (a pipeline check; the figures are then not comparable)",
    )
    p.add_argument(
        "--limit",
        type=int,
        default=None,
        help="use at most this many training records (a pipeline check)",
    )
    p.add_argument("--quiet", action="store_true", help="nothing on stderr but errors")
    p.add_argument("--debug", action="store_true", help="show the traceback of an error")
    return p


def default_configs() -> Path:
    """The configs folder when --configs is not given.

    The checkout this script is in has it; a copy of the script elsewhere has not, so the
    checkout the command is run from (``example_data/reproduce`` under the current
    directory) is next.
    """
    for candidate in (PACKAGE_CONFIGS, CWD_CONFIGS):
        if candidate.is_dir():
            return candidate
    raise UsageError(
        f"no configs folder found (tried {PACKAGE_CONFIGS} and {Path.cwd() / CWD_CONFIGS}); "
        "run from the bioseqnn checkout or name the folder of the <row>.yaml configs with "
        "--configs DIR"
    )


def check_dataset(data: Path, row: str) -> None:
    """Fail before any training when DATA lacks a file that ``row`` reads."""
    folder = data / row
    if not folder.is_dir():
        raise DataError(f"{folder}: no such dataset folder; {LAYOUT_HINT}")
    missing = [name for name in DATASET_FILES[row] if not (folder / name).is_file()]
    if missing:
        raise DataError(f"{folder}: missing {', '.join(missing)}; {LAYOUT_HINT}")


def read_results(path: Path) -> dict[str, Any]:
    """The rows of an existing results file (none when there is no file yet)."""
    if not path.exists():
        return {}
    problem = "not a results file of this command"
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise DataError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise DataError(
            f"{path}: {problem} (not JSON); choose another --out or remove it"
        ) from None
    rows = doc.get("rows", {}) if isinstance(doc, dict) else None
    if not isinstance(rows, dict):
        raise DataError(f"{path}: {problem} (no 'rows' object); choose another --out or remove it")
    return rows


def _in_row(row: str, exc: BioseqnnError) -> BioseqnnError:
    """``exc`` with the row it happened in, keeping its exit code."""
    failed = BioseqnnError(f"row {row}: {exc}")
    failed.exit_code = exc.exit_code
    return failed


def run(argv: list[str]) -> int:
    """The command itself; every error is raised (main() reports it)."""
    args = parser().parse_args(argv)
    rows = [r.strip() for r in args.rows.split(",") if r.strip()]
    unknown = [r for r in rows if r not in RUNNERS]
    if unknown:
        raise UsageError(f"unknown row(s) {', '.join(unknown)}; choose from {', '.join(ROWS)}")
    for option, value in (("--epochs", args.epochs), ("--limit", args.limit)):
        if value is not None and value < 1:
            raise UsageError(f"{option} must be at least 1, not {value}")
    if str(args.out) == "-":
        raise UsageError("--out -: the results need a file (the table goes to stdout)")
    check_output_path(args.out)
    if not args.data.is_dir():
        problem = "not a folder" if args.data.exists() else "no such data folder"
        raise UsageError(f"{args.data}: {problem}; {LAYOUT_HINT}")
    if args.configs is None:
        args.configs = default_configs()
    elif not args.configs.is_dir():
        problem = "not a folder" if args.configs.exists() else "no such folder"
        raise UsageError(
            f"{args.configs}: {problem} (--configs: the folder of the <row>.yaml configs)"
        )
    if args.workdir is not None and args.workdir.exists() and not args.workdir.is_dir():
        raise UsageError(f"{args.workdir}: not a folder (--workdir)")
    for row in rows:  # every problem that needs no training shows before any row trains
        load_config(args.configs / f"{row}.yaml")
    for row in rows:
        check_dataset(args.data, row)
    results = read_results(args.out)

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("reproduce: %(message)s"))
    log.handlers[:] = [handler]
    log.propagate = False
    log.setLevel(logging.ERROR if args.quiet else logging.INFO)

    with tempfile.TemporaryDirectory(prefix="bioseqnn-reproduce-") as tmp:
        for row in rows:
            work = (args.workdir or Path(tmp)) / row
            try:
                work.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise UsageError(
                    f"{work}: cannot create the work folder: {exc.strerror or exc}"
                ) from None
            ctx = Context(args.data, work, args.configs, args.epochs, args.limit)
            log.info("row %s: training with %s", row, args.configs / f"{row}.yaml")
            try:
                results[row] = run_row(row, ctx)
            except BioseqnnError as exc:
                raise _in_row(row, exc) from exc
            log.info(
                "row %s: %s (%.0f s)",
                row,
                json.dumps(results[row]["results"]),
                results[row]["wall_seconds"],
            )
            doc = {"command": "python scripts/reproduce.py " + " ".join(argv), "rows": results}
            with atomic_output(args.out) as fh:
                fh.write(json.dumps(doc, indent=2) + "\n")
    sys.stdout.write(markdown(results))
    sys.stdout.flush()
    return 0


def _error(message: str) -> None:
    print(f"reproduce: error: {message}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    """Run the command and return its exit code; an error is one line on stderr (exit 2:
    bad usage, 1: bad data or a failed run, 130: interrupted), its traceback only with
    --debug."""
    from bioseqnn import runtime

    runtime.tune()  # as the command line does, before any torch work
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    try:
        return run(args)
    except BioseqnnError as exc:
        if debug:
            traceback.print_exc(file=sys.stderr)
        _error(str(exc))
        return exc.exit_code
    except KeyboardInterrupt:
        if debug:
            traceback.print_exc(file=sys.stderr)
        _error("interrupted")
        return 130
    except BrokenPipeError:  # the reader of the table went away (e.g. '| head')
        silence_stdout()
        return 0
    except OSError as exc:
        if debug:
            traceback.print_exc(file=sys.stderr)
        where = f"{exc.filename}: " if exc.filename else ""
        _error(f"{where}{exc.strerror or exc}")
        return 1
    except Exception as exc:
        if debug:
            traceback.print_exc(file=sys.stderr)
        _error(f"unexpected {type(exc).__name__}: {exc} (run with --debug for the traceback)")
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
