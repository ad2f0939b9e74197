"""Per-position attributions: gradient saliency, gradient x input, in-silico mutagenesis.

Every method explains one scalar per sequence, the *target score*:

- binary: the log-odds of the target class (default: the second, "positive" class);
- multiclass: the log-probability of the target class (default: the predicted class);
- multilabel: the logit of the target label (default: the most probable label);
- regression: the predicted value of the target column in its original units
  (default: the first target).

A positive attribution means the residue pushes the target score up.

A numeric series model is explained by the gradient methods alone (there are no
residues to substitute): ``saliency`` and ``grad-input`` read the gradient at each
channel's normalised value (its z-score, so gradient x input compares a step with the
channel's mean), and each position's attributions per channel are kept beside the
position's score.

- ``saliency``: the largest absolute gradient over the one-hot channels at each position
  (Simonyan et al. 2014); unsigned.
- ``grad-input``: gradient x input summed over channels, i.e. the gradient at the residue
  actually present (fractionally for ambiguity codes); signed.
- ``ism``: every single substitution is predicted. ``delta[p, letter]`` is the target
  score of the mutant minus that of the sequence; the position's score is minus the mean
  delta over the substitutions (how much mutating the residue costs). Mutants of many
  sequences are packed into the same batches, so the work takes as few forward passes as
  the batch size allows, all on the model's device.
- ``integrated-gradients`` and ``deeplift-shap``: attributions against references
  (dinucleotide shuffles, a uniform or background reference), computed with Captum; see
  :mod:`bioseqnn.interpret.attribution`. Each position's score is the contribution of the
  residue present; the per-letter columns hold the hypothetical contributions (what each
  letter would contribute there), the input of motif discovery.
"""

from __future__ import annotations

import csv
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ..alphabets import Alphabet
from ..arguments import checked
from ..bundle import Bundle, given_model
from ..data.batches import batch_indices, collate
from ..data.reading import read_inputs
from ..data.sets import SequenceSet
from ..engine.predict import infer, resolve_device
from ..errors import UsageError
from ..io.files import display_name
from ..io.outputs import atomic_output, check_output_path, table_delimiter
from ..models.base import Predictor, check_lengths
from ..models.inputs import featurizer
from ..progress import WorkLog
from ..runtime import configure_threads, keeps_threads
from ..structure import StructureInput, with_structure
from ..tasks import TaskSpec, target_score
from ..variants.series import series_options
from .evaluate import check_alphabet_fits

if TYPE_CHECKING:
    from ..interpret.attribution import AttributionOptions, PathAttributions

log = logging.getLogger("bioseqnn")

METHODS = ("saliency", "grad-input", "ism", "integrated-gradients", "deeplift-shap")
PATH_METHODS = ("integrated-gradients", "deeplift-shap")
MUTANT_BYTES = 64 * 1024 * 1024
"""Upper bound on the mutant codes held at once (one byte per residue)."""


@dataclass
class Attribution:
    """One sequence's attributions."""

    id: str
    residues: str
    target: str
    prediction: float
    """Probability of the target class or label, or the predicted value (regression)."""
    scores: np.ndarray
    """(L,) one score per position."""
    deltas: np.ndarray | None = None
    """(L, C) ISM only: target-score change for each substitution (0 for the residue itself)."""
    channels: np.ndarray | None = None
    """(L, C) numeric series only: the position's attribution per channel (``scores`` is
    their sum for grad-input, their largest absolute value for saliency)."""
    values: np.ndarray | None = None
    """(L, C) numeric series only: the raw values (NaN where missing), for plots."""
    hypothetical: np.ndarray | None = None
    """(L, C) integrated-gradients and deeplift-shap only: hypothetical contributions."""
    delta: float | None = None
    """integrated-gradients and deeplift-shap only: sum of the attributions minus the
    difference of the target score between the sequence and its references."""


@dataclass
class Explanation:
    method: str
    letters: str
    task: TaskSpec
    records: list[Attribution]
    channels: list[str] | None = None
    """A numeric series model's channel names (None for sequences)."""


# --------------------------------------------------------------------------- targets


def target_names(task: TaskSpec) -> list[str]:
    return list(task.classes) if task.kind in ("binary", "multiclass") else list(task.targets)


def resolve_target(task: TaskSpec, target: str | None) -> int | None:
    """Index of the named target, or None for the per-sequence default."""
    names = target_names(task)
    if target is None:
        if task.kind == "binary":
            return 1
        if task.kind == "regression":
            if len(names) > 1:
                log.info("explaining target %r (choose another with --target)", names[0])
            return 0
        return None
    if target not in names:
        what = "class" if task.kind in ("binary", "multiclass") else "target"
        raise UsageError(
            f"--target {target!r} is not a {what} of this model; choose one of: {', '.join(names)}"
        )
    return names.index(target)


def _default_targets(task: TaskSpec, logits: torch.Tensor, fixed: int | None) -> np.ndarray:
    if fixed is not None:
        return np.full(len(logits), fixed, dtype=np.int64)
    return task.outputs(logits).argmax(dim=1).numpy().astype(np.int64)


def _prediction(task: TaskSpec, logits: torch.Tensor, target: np.ndarray) -> np.ndarray:
    out = task.outputs(logits)
    return out[torch.arange(len(out)), torch.from_numpy(target)].numpy()


# --------------------------------------------------------------------------- methods


def gradient_attributions(
    model: Predictor,
    onehot: torch.nn.Module,
    task: TaskSpec,
    data: SequenceSet,
    targets: np.ndarray,
    method: str,
    batch_size: int,
    device: torch.device,
    per_channel: bool = False,
) -> list[np.ndarray]:
    """Saliency or gradient x input for every sequence, one (L,) array each; with
    ``per_channel`` one (L, C) array each (|gradient| or gradient x input per channel)."""
    out: list[np.ndarray] = [np.zeros(0)] * len(data)
    model.eval()
    for index in batch_indices(data.lengths, batch_size):
        codes, lengths = collate(data, index)
        x = onehot(codes.to(device)).detach().requires_grad_(True)
        tgt = torch.from_numpy(targets[index]).to(device)
        # cuDNN's recurrent kernels only run backward in training mode; the native
        # kernels give the same gradients in eval mode (dropout off).
        with torch.enable_grad(), torch.backends.cudnn.flags(enabled=False):
            logits = model(x, lengths.to(device))
            (grad,) = torch.autograd.grad(target_score(task, logits, tgt).sum(), x)
        if per_channel:
            per_pos = grad.abs() if method == "saliency" else grad * x.detach()
        elif method == "saliency":
            per_pos = grad.abs().amax(dim=-1)
        else:
            per_pos = (grad * x.detach()).sum(dim=-1)
        per_pos = per_pos.float().cpu().numpy()
        for row, i in enumerate(index):
            out[int(i)] = per_pos[row, : int(lengths[row])].astype(np.float64)
    return out


def _mutants(
    codes: np.ndarray, table: np.ndarray, letter_codes: np.ndarray, max_bytes: int
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Every single substitution of one sequence, in blocks of at most ``max_bytes`` codes.

    Yields (M, L) mutant codes, their positions and letter indices.
    """
    is_self = table[codes] == 1.0  # (L, C): the letter already present
    pos, letter = np.nonzero(~is_self)
    step = max(1, max_bytes // max(len(codes), 1))
    for start in range(0, len(pos), step):
        p, c = pos[start : start + step], letter[start : start + step]
        mutants = np.repeat(codes[None, :], len(p), axis=0)
        mutants[np.arange(len(p)), p] = letter_codes[c]
        yield mutants, p, c


def ism_attributions(
    model: Predictor,
    onehot: torch.nn.Module,
    alphabet: Alphabet,
    task: TaskSpec,
    data: SequenceSet,
    targets: np.ndarray,
    reference: np.ndarray,
    batch_size: int,
    device: torch.device,
    structure: StructureInput | None = None,
) -> list[np.ndarray]:
    """In-silico mutagenesis: (L, C) target-score changes for every sequence.

    Mutants of consecutive sequences are packed into one set and predicted with
    :func:`bioseqnn.engine.predict.infer` (length-bucketed batches on ``device``). A model that
    reads RNA structure (``structure``) gets every mutant folded anew.
    """
    table = alphabet.onehot_table()
    letter_codes = np.array(
        [alphabet.symbol_list.index(c) + 1 for c in alphabet.letters], dtype=np.uint8
    )
    deltas = [np.zeros((int(n), alphabet.size)) for n in data.lengths]
    pending: list[tuple[int, np.ndarray, np.ndarray, np.ndarray]] = []
    held = 0
    work = ism_work("ism", data, table, None, "'bioseqnn ism-map --region START:END'")

    def flush() -> None:
        nonlocal held
        if not pending:
            return
        blocks = [m for _, m, _, _ in pending]
        lengths = np.concatenate([np.full(len(m), m.shape[1], np.int64) for m in blocks])
        offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        flat = np.concatenate([m.reshape(-1) for m in blocks])
        mutant_set = with_structure(SequenceSet([""] * len(lengths), flat, offsets), structure)
        owner = np.concatenate([np.full(len(m), i, np.int64) for i, m, _, _ in pending])
        logits = infer(model, onehot, mutant_set, batch_size, device, progress=work.advance)
        scores = target_score(task, logits, torch.from_numpy(targets[owner])).numpy()
        start = 0
        for i, m, pos, letter in pending:
            stop = start + len(m)
            deltas[i][pos, letter] = scores[start:stop] - reference[i]
            start = stop
        pending.clear()
        held = 0

    for i in range(len(data)):
        codes = data.codes[data.offsets[i] : data.offsets[i + 1]]
        for mutants, pos, letter in _mutants(codes, table, letter_codes, MUTANT_BYTES):
            if held and held + mutants.size > MUTANT_BYTES:
                flush()
            pending.append((i, mutants, pos, letter))
            held += mutants.size
    flush()
    return deltas


def ism_work(
    what: str,
    data: SequenceSet,
    table: np.ndarray,
    region: tuple[int, int] | None,
    window_hint: str,
) -> WorkLog:
    """The positions that in-silico mutagenesis of ``data`` predicts (each substitution
    in ``region``, 1-based and inclusive, or the whole sequence, is a whole sequence),
    logged when it starts; the returned log reports the time left as the work goes
    (hours for a sequence of 100,000 residues on a CPU). ``table``: the alphabet's
    one-hot table (a residue is substituted by each letter it is not)."""
    substitutions = total = 0
    for i in range(len(data)):
        codes = data.codes[data.offsets[i] : data.offsets[i + 1]]
        lo, hi = (1, len(codes)) if region is None else region
        n = int((table[codes[lo - 1 : hi]] != 1.0).sum())
        substitutions += n
        total += n * len(codes)
    hint = f"{window_hint} mutates a window only; --method grad-input takes one pass"
    size = f"{substitutions:,} substitution(s) of {len(data)} sequence(s)"
    return WorkLog(what, total, "positions", hint, size=size)


def ism_scores(deltas: np.ndarray, residue_onehot: np.ndarray) -> np.ndarray:
    """Per-position score: minus the mean change over the true substitutions."""
    is_sub = residue_onehot != 1.0
    count = is_sub.sum(axis=1)
    total = np.where(is_sub, deltas, 0.0).sum(axis=1)
    return -np.divide(total, count, out=np.zeros(len(deltas)), where=count > 0)


# --------------------------------------------------------------------------- the command


def explain_bundle(
    bundle: Bundle,
    data: SequenceSet,
    method: str = "grad-input",
    target: str | None = None,
    batch_size: int = 256,
    device: torch.device | str = "cpu",
    options: AttributionOptions | None = None,
) -> Explanation:
    """Attributions for encoded sequences under a loaded model (``options``: the
    settings of integrated-gradients and deeplift-shap)."""
    if method not in METHODS:
        raise UsageError(f"--method must be one of: {', '.join(METHODS)}")
    if batch_size < 1:
        raise UsageError("batch-size must be at least 1")
    task = bundle.task
    if getattr(bundle.model, "per_position", False):
        raise UsageError("explain needs a model with one output per sequence")
    dev = torch.device(device)
    spec = bundle.series
    _check_method(bundle, method, options)
    onehot = featurizer(bundle.features).to(dev)
    fixed = resolve_target(task, target)
    # a structure model reads each sequence's folding too; ``data`` keeps the residues
    folded = data
    if bundle.structure is not None:
        folded = with_structure(SequenceSet(data.ids, data.codes, data.offsets), bundle.structure)
    logits = infer(bundle.model, onehot, folded, batch_size, dev)
    targets = _default_targets(task, logits, fixed)
    predictions = _prediction(task, logits, targets)
    names = target_names(task)
    if spec is not None:
        records = _series_records(
            bundle, onehot, data, names, targets, predictions, method, batch_size, dev
        )
        return Explanation(method, "", task, records, channels=list(spec.channels))
    alphabet = bundle.alphabet
    scores, all_deltas, path = _residue_scores(
        bundle, onehot, data, folded, logits, targets, method, batch_size, dev, options
    )
    symbols = np.array(["?", *alphabet.symbol_list])
    records = []
    for i, rid in enumerate(data.ids):
        codes = data.codes[data.offsets[i] : data.offsets[i + 1]]
        records.append(
            Attribution(
                rid,
                "".join(symbols[codes]),
                names[int(targets[i])],
                float(predictions[i]),
                scores[i],
                None if all_deltas is None else all_deltas[i],
                hypothetical=None if path is None else path.hypothetical[i],
                delta=None if path is None else float(path.delta[i]),
            )
        )
    return Explanation(method, alphabet.letters, task, records)


def _series_records(
    bundle: Bundle,
    onehot: torch.nn.Module,
    data: SequenceSet,
    names: list[str],
    targets: np.ndarray,
    predictions: np.ndarray,
    method: str,
    batch_size: int,
    device: torch.device,
) -> list[Attribution]:
    """A numeric series model's records: each time step's attribution per channel, and its
    score (their largest absolute value for saliency, their sum for grad-input)."""
    model, task = bundle.model, bundle.task
    per_channel = gradient_attributions(
        model, onehot, task, data, targets, method, batch_size, device, per_channel=True
    )
    records = []
    for i, rid in enumerate(data.ids):
        channels = per_channel[i]
        score = np.abs(channels).max(axis=1) if method == "saliency" else channels.sum(1)
        records.append(
            Attribution(
                rid,
                "",
                names[int(targets[i])],
                float(predictions[i]),
                score,
                channels=channels,
                values=data.codes[data.offsets[i] : data.offsets[i + 1]],
            )
        )
    return records


def _residue_scores(
    bundle: Bundle,
    onehot: torch.nn.Module,
    data: SequenceSet,
    folded: SequenceSet,
    logits: torch.Tensor,
    targets: np.ndarray,
    method: str,
    batch_size: int,
    device: torch.device,
    options: AttributionOptions | None,
) -> tuple[list[np.ndarray], list[np.ndarray] | None, PathAttributions | None]:
    """Each sequence's per-position scores under ``method``, with the substitution deltas
    (ism) or the path attributions (integrated-gradients, deeplift-shap) behind them."""
    task, alphabet = bundle.task, bundle.alphabet
    reference = target_score(task, logits, torch.from_numpy(targets)).numpy().astype(np.float64)
    table = alphabet.onehot_table()
    all_deltas: list[np.ndarray] | None = None
    path = None
    if method in PATH_METHODS:
        from ..interpret.attribution import path_attributions

        path = path_attributions(
            bundle.model, onehot, alphabet, task, data, targets, method, batch_size, device, options
        )
        scores = [c.sum(axis=1) for c in path.contributions]
    elif method == "ism":
        all_deltas = ism_attributions(
            bundle.model,
            onehot,
            alphabet,
            task,
            data,
            targets,
            reference,
            batch_size,
            device,
            bundle.structure,
        )
        scores = [
            ism_scores(d, table[data.codes[data.offsets[i] : data.offsets[i + 1]]])
            for i, d in enumerate(all_deltas)
        ]
    else:
        scores = gradient_attributions(
            bundle.model, onehot, task, folded, targets, method, batch_size, device
        )
    return scores, all_deltas, path


@keeps_threads
@checked
def explain(
    model: str | os.PathLike[str] | Bundle | Any,
    sequences: str | os.PathLike[str],
    *,
    method: str = "grad-input",
    target: str | None = None,
    batch_size: int = 256,
    device: str | None = None,
    threads: int = 0,
    on_invalid: str = "error",
    id_column: str | None = None,
    options: AttributionOptions | None = None,
) -> Explanation:
    """Load the model file and the sequences and compute per-position attributions
    (``id_column``: a numeric series table's, default the model's; ``options``: the
    settings of integrated-gradients and deeplift-shap)."""
    if method not in METHODS:
        raise UsageError(f"--method must be one of: {', '.join(METHODS)}")
    configure_threads(threads)
    dev = resolve_device(device)
    bundle, _, _ = given_model(model, dev)
    resolve_target(bundle.task, target)  # a bad --target fails before reading the data
    _check_method(bundle, method, options)  # before the data is read
    source = display_name(sequences)
    data, _, _ = read_inputs(
        sequences, bundle.input, on_invalid, series=series_options(bundle, id_column)
    )
    if bundle.series is None:
        check_alphabet_fits(data, bundle.alphabet, source)
    check_lengths(bundle.model, data.ids, data.lengths, source)
    result = explain_bundle(bundle, data, method, target, batch_size, dev, options)
    log.info("explained %d sequence(s) with %s", len(result.records), method)
    return result


def _check_method(bundle: Bundle, method: str, options: AttributionOptions | None = None) -> None:
    if bundle.series is not None and method == "ism":
        raise UsageError(
            "--method ism substitutes residues; a numeric series model is "
            "explained by saliency or grad-input"
        )
    if method in PATH_METHODS:
        from ..interpret.attribution import check_supported

        check_supported(
            bundle.model,
            method,
            None if bundle.series is not None else bundle.alphabet,
            options.reference if options else None,
            structure=bundle.structure is not None,
        )


def header(expl: Explanation) -> list[str]:
    if expl.channels is not None:
        return ["id", "target", "position", "score", *(f"attr_{c}" for c in expl.channels)]
    cols = ["id", "target", "position", "residue", "score"]
    return cols + list(expl.letters) if expl.method in ("ism", *PATH_METHODS) else cols


def _number(value: float) -> str:
    """A score as written: 6 significant digits, and 0 for a zero that came out as -0."""
    return f"{float(value) + 0.0:.6g}"


def write_attributions(expl: Explanation, output: str | os.PathLike[str]) -> None:
    """Long format: one row per position of every sequence, in input order."""
    check_output_path(output)
    with atomic_output(output) as fh:
        writer = csv.writer(fh, delimiter=table_delimiter(output), lineterminator="\n")
        writer.writerow(header(expl))
        for rec in expl.records:
            if rec.channels is not None:  # a numeric series: per-channel attributions
                for p, (score, row) in enumerate(zip(rec.scores, rec.channels, strict=True)):
                    writer.writerow(
                        [rec.id, rec.target, str(p + 1), _number(score), *map(_number, row)]
                    )
                continue
            for p, residue in enumerate(rec.residues):
                row = [rec.id, rec.target, str(p + 1), residue, _number(rec.scores[p])]
                if rec.deltas is not None:
                    row.extend(map(_number, rec.deltas[p]))
                elif rec.hypothetical is not None:
                    row.extend(map(_number, rec.hypothetical[p]))
                writer.writerow(row)


def explanation_plots(
    expl: Explanation,
    folder: str | os.PathLike[str],
    max_plots: int = 20,
    fmt: str = "png",
    dpi: int | None = None,
    model: str | os.PathLike[str] | None = None,
) -> list[Path]:
    """One logo per sequence (the first ``max_plots``), named after the record id; for a
    numeric series, its channels over time shaded by their attributions.

    Figures are written as ``fmt`` (png, pdf or svg) at ``dpi`` (default
    :data:`bioseqnn.plots.DPI`); ``model`` (its file) names the model in the titles.
    """
    from ..plots import (
        DPI,
        LOGO_MAX_POSITIONS,
        check_figure_options,
        data_name,
        plot_dir,
        safe_filename,
    )

    dpi = DPI if dpi is None else dpi
    check_figure_options(fmt, dpi)
    out = plot_dir(folder)
    taken: set[str] = set()
    paths = []
    what = {
        "saliency": "saliency",
        "grad-input": "gradient x input",
        "ism": "in-silico mutagenesis",
        "integrated-gradients": "integrated gradients",
        "deeplift-shap": "DeepLIFT-SHAP",
    }[expl.method]
    by = f" \u2014 {data_name(model)}" if model is not None else ""
    long_ones = 0
    for rec in expl.records[:max_plots]:
        name = out / safe_filename(rec.id, taken, fmt)
        title = _figure_title(expl, rec, what, by)
        path, long_logo = _record_figure(expl, rec, name, title, dpi)
        paths.append(path)
        long_ones += long_logo
    if long_ones:
        log.info(
            "%d sequence(s) longer than %d positions: their logos span many rows "
            "(--method ism draws them as mutation maps; 'bioseqnn ism-map --region' "
            "maps a window)",
            long_ones,
            LOGO_MAX_POSITIONS,
        )
    if len(expl.records) > max_plots:
        what = (
            "plots of the first %d of %d series"
            if expl.channels is not None
            else "logos of the first %d of %d sequences"
        )
        log.info("drew " + what + " (--max-plots)", max_plots, len(expl.records))
    return paths


def _figure_title(expl: Explanation, rec: Attribution, what: str, by: str) -> str:
    """A record's figure title: its id and ``by`` (the model), then ``what`` (the method)
    toward the target with its prediction, and the record's length."""
    if expl.task.kind == "regression":
        pred = f"predicted {rec.prediction:.3g}"
    else:
        pred = f"p = {rec.prediction:.3f}"
    kind = {"binary": "class ", "multiclass": "class ", "multilabel": "label "}.get(
        expl.task.kind, ""
    )
    steps = "time steps" if rec.channels is not None else "positions"
    return f"{rec.id}{by}\n{what} toward {kind}{rec.target} ({pred}, {len(rec.scores)} {steps})"


def _record_figure(
    expl: Explanation, rec: Attribution, name: Path, title: str, dpi: int
) -> tuple[Path, bool]:
    """Draw one record's figure as ``name``: a series' channels, a mutation map or a logo;
    and say whether it is a logo longer than a page holds."""
    from ..plots import LOGO_MAX_POSITIONS, logo_plot, mutation_map_plot, series_attribution_plot

    if rec.channels is not None and rec.values is not None and expl.channels is not None:
        path = series_attribution_plot(
            rec.values,
            rec.channels,
            expl.channels,
            name,
            title,
            label=f"{expl.method} score",
            dpi=dpi,
        )
        return path, False
    # The one place where a sequence's figure is chosen. Beyond LOGO_MAX_POSITIONS a
    # logo needs more rows than a page holds: with ISM deltas the sequence is drawn as
    # a mutation map (positions x residues) instead; other methods keep their logos.
    if len(rec.residues) > LOGO_MAX_POSITIONS and rec.deltas is not None:
        path = mutation_map_plot(
            rec.residues, rec.deltas, expl.letters, name, title.replace("\n", ": "), dpi=dpi
        )
        return path, False
    path = logo_plot(rec.residues, rec.scores, name, title, ylabel=f"{expl.method} score", dpi=dpi)
    return path, len(rec.residues) > LOGO_MAX_POSITIONS
