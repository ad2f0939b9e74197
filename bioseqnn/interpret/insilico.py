"""In-silico experiments: motif insertion (marginalisation) and mutation maps.

- :func:`insert_motif`: a motif is written over each background sequence at every start
  position in turn; the prediction of each variant minus the background's own, averaged
  over the backgrounds, is the motif's effect at that position (the marginalisation of
  Koo et al. 2021, as in tangermeme). Positions run over the shortest background, so
  every mean holds every background.
- :func:`mutation_map`: every single substitution in a window of each sequence (all of it
  by default), predicted with the whole sequence as context: the positions x letters map
  of ``explain --method ism``, for long sequences a window at a time.

Both pack the variants of many sequences into length-bucketed batches (at most
``MUTANT_BYTES`` residues held at once), on the model's device.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import DataError, UsageError
from ..progress import WorkLog
from ..runtime import keeps_threads

log = logging.getLogger("bioseqnn")

MUTANT_BYTES = 64 * 1024 * 1024
"""Upper bound on the variant codes held at once (one byte per residue)."""


@dataclass
class Insertion:
    motif: str
    target: str
    backgrounds: int
    baseline: float
    """Mean prediction of the backgrounds (probability of the target class, or value)."""
    positions: np.ndarray
    """(P,) 1-based insertion starts."""
    mean: np.ndarray
    """(P,) mean change of the prediction over the backgrounds."""
    std: np.ndarray
    """(P,) its standard deviation over the backgrounds."""

    @property
    def effect(self) -> float:
        """The change averaged over every position and background."""
        return float(self.mean.mean()) if len(self.mean) else 0.0


def _predictions(
    bundle: object,
    onehot: torch.nn.Module,
    codes: np.ndarray,
    width: int,
    targets: np.ndarray,
    batch_size: int,
    device: torch.device,
    progress: Callable[[int], None] | None = None,
) -> np.ndarray:
    """Predictions (target class probability, label probability or value) of (M, width)
    variant codes, M rows of ``targets`` (``progress``: see engine.predict.infer)."""
    from ..data.sets import SequenceSet
    from ..engine.predict import infer
    from ..ops.explain import _prediction

    n = len(codes)
    offsets = np.arange(n + 1, dtype=np.int64) * width
    data = SequenceSet([""] * n, codes.reshape(-1), offsets)
    logits = infer(bundle.model, onehot, data, batch_size, device, progress=progress)  # type: ignore[attr-defined]
    return _prediction(bundle.task, logits, targets)  # type: ignore[attr-defined]


def _encode_motif(motif: str, alphabet: object) -> np.ndarray:
    from ..encoding import Encoder

    if not motif:
        raise UsageError("--motif is empty")
    try:
        codes, _, _ = Encoder(alphabet).encode([motif.encode()])  # type: ignore[arg-type]
    except DataError as exc:
        raise UsageError(f"--motif {motif!r}: {exc}") from None
    if len(codes) != len(motif) or (codes == 0).any() or (codes == 255).any():
        letters = alphabet.letters  # type: ignore[attr-defined]
        raise UsageError(
            f"--motif {motif!r} has letters outside the model's alphabet "
            f"({letters} and its ambiguity codes)"
        )
    return codes.astype(np.uint8)


def _sequence_model(
    model: str | os.PathLike[str], device: str | None, threads: int, command: str, doing: str
) -> tuple[Any, torch.device]:
    """The model file loaded for an in-silico experiment (a sequence model with one
    output per sequence; ``doing`` says why others are refused), and its device."""
    from ..bundle import load_bundle
    from ..engine.predict import resolve_device
    from ..runtime import configure_threads

    configure_threads(threads)
    dev = resolve_device(device)
    bundle = load_bundle(model, dev)
    if bundle.series is not None or bundle.structure is not None:
        raise UsageError(
            f"{command} {doing}: it needs a sequence model that reads no structure channels"
        )
    if getattr(bundle.model, "per_position", False):
        raise UsageError(f"{command} needs a model with one output per sequence")
    return bundle, dev


def _chunks(n_rows: int, width: int) -> Iterator[slice]:
    step = max(1, MUTANT_BYTES // max(width, 1))
    for start in range(0, n_rows, step):
        yield slice(start, min(n_rows, start + step))


@keeps_threads
def insert_motif(
    model: str | os.PathLike[str],
    motif: str,
    background: str | os.PathLike[str],
    *,
    target: str | None = None,
    step: int = 1,
    batch_size: int = 256,
    device: str | None = None,
    threads: int = 0,
    on_invalid: str = "error",
) -> Insertion:
    """The mean prediction change when ``motif`` replaces the residues at each start
    position (every ``step``) of the background sequences."""
    from ..data.reading import read_inputs
    from ..engine.predict import infer
    from ..io.files import display_name
    from ..models.inputs import featurizer
    from ..ops.evaluate import check_alphabet_fits
    from ..ops.explain import _default_targets, _prediction, resolve_target, target_names

    if step < 1:
        raise UsageError("--step must be at least 1")
    bundle, dev = _sequence_model(
        model, device, threads, "insert", "writes residues into sequences"
    )
    fixed = resolve_target(bundle.task, target)
    motif_codes = _encode_motif(motif, bundle.alphabet)
    source = display_name(background)
    data, _, _ = read_inputs(background, bundle.input, on_invalid)
    check_alphabet_fits(data, bundle.alphabet, source)
    if len(data) == 0:
        raise DataError(f"{source}: no background sequences")
    shortest = int(data.lengths.min())
    w = len(motif_codes)
    if shortest < w:
        raise DataError(
            f"{source}: the shortest background has {shortest} residues, fewer than the motif's {w}"
        )
    onehot = featurizer(bundle.features).to(dev)
    logits = infer(bundle.model, onehot, data, batch_size, dev)
    targets = _default_targets(bundle.task, logits, fixed)
    if fixed is None and len(set(targets.tolist())) > 1:
        # one target for every variant: the backgrounds' most frequent default
        targets = np.full(len(data), int(np.bincount(targets).argmax()), dtype=np.int64)
    base = _prediction(bundle.task, logits, targets).astype(np.float64)
    starts = np.arange(0, shortest - w + 1, step)
    changes = np.zeros((len(data), len(starts)))
    work = WorkLog(
        "insert",
        len(starts) * int(data.lengths.sum()),
        "positions",
        "--step N tries every N-th start only",
        size=f"{len(starts) * len(data):,} variant(s) of {len(data)} background(s)",
    )
    for i in range(len(data)):
        codes = data.codes[data.offsets[i] : data.offsets[i + 1]]
        preds = []
        # the variants a block of starts at a time: all of a long background's at once
        # would be (starts x length) bytes (3.6 GB for 60,000 residues)
        for part in _chunks(len(starts), len(codes)):
            block = starts[part]
            variants = np.repeat(codes[None, :], len(block), axis=0)
            for k, s in enumerate(block):
                variants[k, s : s + w] = motif_codes
            preds.append(
                _predictions(
                    bundle,
                    onehot,
                    variants,
                    len(codes),
                    np.full(len(block), targets[i]),
                    batch_size,
                    dev,
                    work.advance,
                )
            )
        changes[i] = np.concatenate(preds) - base[i]
    name = target_names(bundle.task)[int(targets[0])]
    return Insertion(
        motif,
        name,
        len(data),
        float(base.mean()),
        starts + 1,
        changes.mean(axis=0),
        changes.std(axis=0),
    )


def write_insertion(result: Insertion, output: str | os.PathLike[str]) -> None:
    """One row per insertion start: position, mean change, standard deviation."""
    from ..io.outputs import atomic_output, check_output_path, table_delimiter

    check_output_path(output)
    sep = table_delimiter(output)
    with atomic_output(output) as fh:
        fh.write(sep.join(["position", "mean_change", "sd_change", "backgrounds"]) + "\n")
        for p, m, s in zip(result.positions, result.mean, result.std, strict=True):
            fh.write(
                sep.join([str(int(p)), f"{m:.6g}", f"{s:.6g}", str(result.backgrounds)]) + "\n"
            )


# --------------------------------------------------------------------------- mutation maps


@dataclass
class MutationMap:
    id: str
    residues: str
    """The window's residues."""
    start: int
    """1-based position of the window's first residue."""
    deltas: np.ndarray
    """(W, letters) change of the target score per substitution (0 for the residue)."""
    target: str


@keeps_threads
def mutation_map(
    model: str | os.PathLike[str],
    sequences: str | os.PathLike[str],
    *,
    target: str | None = None,
    region: tuple[int, int] | None = None,
    batch_size: int = 256,
    device: str | None = None,
    threads: int = 0,
    on_invalid: str = "error",
) -> tuple[str, list[MutationMap]]:
    """Every substitution in ``region`` (1-based, inclusive; default the whole sequence)
    of each sequence; the model's letters and one map per sequence."""
    from ..data.reading import read_inputs
    from ..engine.predict import infer
    from ..io.files import display_name
    from ..models.inputs import featurizer
    from ..ops.evaluate import check_alphabet_fits
    from ..ops.explain import _default_targets, resolve_target, target_names
    from ..tasks import target_score

    bundle, dev = _sequence_model(model, device, threads, "ism-map", "substitutes residues")
    if region is not None and (region[0] < 1 or region[1] < region[0]):
        raise UsageError("--region START:END needs 1 <= START <= END")
    fixed = resolve_target(bundle.task, target)
    source = display_name(sequences)
    data, _, _ = read_inputs(sequences, bundle.input, on_invalid)
    check_alphabet_fits(data, bundle.alphabet, source)
    alphabet = bundle.alphabet
    onehot = featurizer(bundle.features).to(dev)
    logits = infer(bundle.model, onehot, data, batch_size, dev)
    targets = _default_targets(bundle.task, logits, fixed)
    reference = target_score(bundle.task, logits, torch.from_numpy(targets)).numpy()
    table = alphabet.onehot_table()
    letter_codes = np.array(
        [alphabet.symbol_list.index(c) + 1 for c in alphabet.letters], dtype=np.uint8
    )
    symbols = np.array(["?", *alphabet.symbol_list])
    names = target_names(bundle.task)
    maps = []
    from ..data.sets import SequenceSet
    from ..ops.explain import ism_work

    for i, rid in enumerate(data.ids):  # every record's window, before any work
        if region is not None and region[0] > int(data.lengths[i]):
            raise DataError(
                f"{source}: record {rid!r} has {int(data.lengths[i])} residues; "
                f"--region starts at {region[0]}"
            )
    work = ism_work("ism-map", data, table, region, "--region START:END")
    for i, rid in enumerate(data.ids):
        codes = data.codes[data.offsets[i] : data.offsets[i + 1]]
        lo, hi = (1, len(codes)) if region is None else region
        hi = min(hi, len(codes))
        window = codes[lo - 1 : hi]
        is_self = table[window] == 1.0
        pos, letter = np.nonzero(~is_self)
        deltas = np.zeros((len(window), alphabet.size))
        for part in _chunks(len(pos), len(codes)):
            p, c = pos[part], letter[part]
            variants = np.repeat(codes[None, :], len(p), axis=0)
            variants[np.arange(len(p)), p + lo - 1] = letter_codes[c]
            offsets = np.arange(len(p) + 1, dtype=np.int64) * len(codes)
            out = infer(
                bundle.model,
                onehot,
                SequenceSet([""] * len(p), variants.reshape(-1), offsets),
                batch_size,
                dev,
                progress=work.advance,
            )
            score = target_score(bundle.task, out, torch.full((len(p),), int(targets[i]))).numpy()
            deltas[p, c] = score - reference[i]
        maps.append(MutationMap(rid, "".join(symbols[window]), lo, deltas, names[int(targets[i])]))
    return alphabet.letters, maps


def mutation_map_plots(
    letters: str,
    maps: list[MutationMap],
    folder: str | os.PathLike[str],
    max_plots: int = 20,
    fmt: str = "png",
    dpi: int | None = None,
    model: str | os.PathLike[str] | None = None,
) -> list[Path]:
    """One heatmap per sequence (the first ``max_plots``) as ``fmt`` (png, pdf, svg) at
    ``dpi``, named after the record; titles name the ``model`` file."""
    from ..plots import (
        DPI,
        check_figure_options,
        data_name,
        mutation_map_plot,
        plot_dir,
        safe_filename,
    )

    dpi = DPI if dpi is None else dpi
    check_figure_options(fmt, dpi)
    out = plot_dir(folder)
    by = f" \u2014 {data_name(model)}" if model is not None else ""
    taken: set[str] = set()
    paths = []
    for m in maps[:max_plots]:
        end = m.start + len(m.residues) - 1
        title = f"{m.id}{by}: in-silico mutagenesis toward {m.target}, positions {m.start}-{end}"
        paths.append(
            mutation_map_plot(
                m.residues,
                m.deltas,
                letters,
                out / safe_filename(m.id, taken, fmt),
                title,
                first=m.start,
                dpi=dpi,
            )
        )
    return paths


def write_mutation_maps(
    letters: str, maps: list[MutationMap], output: str | os.PathLike[str]
) -> None:
    """Long format: id, target, position, residue, then one column per letter."""
    from ..io.outputs import atomic_output, check_output_path, table_delimiter

    check_output_path(output)
    sep = table_delimiter(output)
    with atomic_output(output) as fh:
        fh.write(sep.join(["id", "target", "position", "residue", *letters]) + "\n")
        for m in maps:
            for k, (res, row) in enumerate(zip(m.residues, m.deltas, strict=True)):
                fh.write(
                    sep.join([m.id, m.target, str(m.start + k), res, *(f"{v:.6g}" for v in row)])
                    + "\n"
                )
