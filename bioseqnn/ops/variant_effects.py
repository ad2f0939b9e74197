"""Variant effects: a VCF/BCF scored by a model, allele by allele, in input order.

For each record and each alternate allele, a window of W bases is cut from the reference
genome around the variant and predicted twice, as the reference and with the allele in
it. The rule (README, "Genome intervals and variant effects"): with ``p`` the 0-based
start of REF (VCF POS - 1) and ``h = W // 2``,

- the reference window is the genome's ``[p - h, p - h + W)``: REF's first base sits at
  0-based offset ``h``;
- the alternate window is the same ``h`` bases before ``p``, then ALT, then the genome
  from the end of REF (``p + len(REF)``) on, cut to W bases: a deletion pulls bases in
  from the right, an insertion pushes them out (an ALT longer than ``W - h`` is cut).

Both windows have W bases, so any model scores them (variable-length models too), and
an SNV changes one base. Windows past a chromosome end are padded with N (or refused).
Records stream through in chunks: windows of many variants are batched together, memory
stays flat, and rows come out in input order. Symbolic alleles (``<DEL>``, ``*``,
breakends) are skipped and counted; a REF that differs from the genome stops the run,
or is skipped or scored with a warning (``on_mismatch``).

Per allele, the output holds the reference and alternate predictions (probabilities, or
regression values in their units, the strand mean under ``rc_average``, exactly as
``predict`` reports them) and their difference: for classes the difference of the
log-odds, log(p / (1 - p)), computed from the model's logits so that it stays finite
for probabilities near 0 and 1; for regression alt - ref.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from .._version import __version__
from ..arguments import checked
from ..bundle import Bundle, load_bundle
from ..data.reading import SequenceEncoder, chunked
from ..data.sets import SequenceSet
from ..engine.inputs import check_first_chunk
from ..engine.predict import BatchLimit, infer, resolve_device
from ..errors import DataError, UsageError, shorten
from ..io.fasta import Record
from ..io.files import STDIO, display_name
from ..io.genome import Genome, quiet_htslib
from ..io.outputs import check_output_path, write_table
from ..io.vcf import VcfReader, write_vcf
from ..models.base import check_lengths, combine_members
from ..models.inputs import featurizer
from ..runtime import configure_threads, keeps_threads
from ..strands import complement_table, reverse_complement_set
from ..structure import with_structure
from ..tasks import TaskSpec
from ..variants.intervals import GenomeOptions, model_window

log = logging.getLogger("bioseqnn")


ON_MISMATCH = ("error", "skip", "warn")


NUCLEOTIDES = re.compile(r"[ACGTURYKMSWBDHVN]+", re.IGNORECASE)


VCF_SUFFIXES = (".vcf", ".vcf.gz")


COLUMNS = ["chrom", "pos", "id", "ref", "alt"]


@dataclass
class VariantStats:
    records: int = 0
    """VCF records read."""
    alleles: int = 0
    """Alternate alleles scored (one output row each)."""
    symbolic: int = 0
    """Alternate alleles skipped: symbolic (<DEL>, *, breakends)."""
    no_alt: int = 0
    """Records without an alternate allele ('.')."""
    mismatched: int = 0
    """Records whose REF differs from the genome (skipped or scored, by on_mismatch)."""
    padded: int = 0
    """Records whose windows run off a chromosome end (padded with N)."""
    seconds: float = 0.0
    examples: dict[str, str] = field(default_factory=dict)
    """The first record of each kind of skip, for the warnings."""


@dataclass
class _Entry:
    """One VCF record on its way through: its alleles and how many windows it awaits."""

    chrom: str
    pos: int
    id: str
    ref: str
    alts: list[str]
    scored: list[bool]
    windows: int = 0
    record: Any = None
    """The pysam record (for VCF output), else None."""


@keeps_threads
@checked
def score_variants(
    model: str | os.PathLike[str],
    vcf: str | os.PathLike[str],
    genome: GenomeOptions,
    output: str | os.PathLike[str] = STDIO,
    *,
    fmt: str | None = None,
    on_mismatch: str = "error",
    rc_average: bool | None = None,
    batch_size: int = 256,
    device: str | None = None,
    threads: int = 0,
) -> VariantStats:
    """Score every alternate allele of ``vcf`` with the model file and write one row per
    allele (TSV/CSV), or the VCF with the scores as INFO fields (``fmt='vcf'``, or an
    output named .vcf / .vcf.gz, bgzip-compressed)."""
    started = time.perf_counter()
    if on_mismatch not in ON_MISMATCH:
        raise UsageError(f"--on-mismatch must be one of {', '.join(ON_MISMATCH)}")
    if batch_size < 1:
        raise UsageError("batch-size must be at least 1")
    if genome.holdout_chroms or genome.exclude_chroms or genome.chroms:
        raise UsageError(
            "--holdout-chroms, --exclude-chroms and --chroms do not apply to "
            "variants (split the VCF by chromosome instead)"
        )
    kind = output_kind(output, fmt)
    check_output_path(output, {"MODEL": model, "VCF": vcf, **genome.named()})
    configure_threads(threads)
    dev = resolve_device(device)
    bundle = load_bundle(model, dev)
    _check_model(bundle)
    width = variant_window(genome, bundle.manifest)
    reference = genome.open()
    if rc_average is None:
        rc_average = bool((bundle.manifest.get("training") or {}).get("rc_average", False))
    complement = complement_table(bundle.alphabet, "--rc-average") if rc_average else None
    if complement is not None and bundle.structure is not None:
        raise UsageError(
            "--rc-average: a model that reads RNA structure cannot average "
            "strands (the reverse complement folds otherwise)"
        )
    names = output_names(bundle.task)
    source = display_name(vcf)
    log.info(
        "variants: windows of %d bases around each variant (%s)%s",
        width,
        "--window" if genome.window else "the model's",
        ", mean of both strands" if rc_average else "",
    )
    stats = VariantStats()
    with quiet_htslib(), VcfReader(vcf) as reader:
        header = ""
        if kind == "vcf":
            header = vcf_header(
                reader,
                bundle.task,
                names,
                reference,
                {
                    "model": display_name(model),
                    "genome": reference.name,
                    "window": width,
                    "rc_average": "yes" if rc_average else "no",
                },
            )
        pending: deque[_Entry] = deque()
        windows = _windows(
            reader,
            reference,
            width,
            genome.on_edge,
            on_mismatch,
            stats,
            pending,
            keep_records=kind == "vcf",
        )
        scores = _window_scores(bundle, windows, source, batch_size, dev, complement)
        entries = _finished(scores, pending)
        if kind == "vcf":
            write_vcf(output, header, _vcf_lines(entries, names, bundle.task))
        else:
            write_table(output, table_header(names), _table_rows(entries))
    stats.seconds = time.perf_counter() - started
    _report(stats, source, reference, on_mismatch)
    return stats


def output_kind(output: str | os.PathLike[str], fmt: str | None) -> str:
    """'vcf' or 'tsv' (a .csv name: CSV), from ``fmt`` or else from the output's name."""
    name = str(output).lower()
    if name.endswith((".bcf", ".vcf.bgz", ".bcf.gz")):
        raise UsageError(
            f"{output}: BCF is not written; name the output .vcf or .vcf.gz "
            "(bgzip-compressed; bcftools view -Ob converts it)"
        )
    named_vcf = name.endswith(VCF_SUFFIXES)
    if fmt is None:
        return "vcf" if named_vcf else "tsv"
    if fmt not in ("tsv", "vcf"):
        raise UsageError("--format must be tsv or vcf")
    if fmt == "tsv" and named_vcf:
        raise UsageError(f"--format tsv: the output {output} is named as a VCF")
    if fmt == "vcf" and str(output) != STDIO and not named_vcf:
        raise UsageError(f"--format vcf: name the output .vcf or .vcf.gz (not {output})")
    return fmt


def _check_model(bundle: Bundle) -> None:
    if bundle.series is not None:
        raise UsageError("variants: this model reads numeric series, not DNA")
    if bundle.task.kind in ("per-position", "language-model"):
        raise UsageError(
            f"variants scores models with one output per sequence; this is a "
            f"{bundle.task.kind} model"
        )
    if not bundle.alphabet.is_nucleotide:
        raise UsageError(f"variants: the model reads {bundle.alphabet.name}, not DNA")


def variant_window(genome: GenomeOptions, manifest: dict[str, Any]) -> int:
    """The window width: --window, else the model's training window, else the one length
    of all its training sequences."""
    if genome.window == 0:
        raise UsageError("variants score windows of one width: --window must be at least 1")
    if genome.window:
        return genome.window
    window = model_window(manifest)
    if window:
        return window
    lengths = (manifest.get("data") or {}).get("lengths") or {}
    if lengths.get("min") and lengths.get("min") == lengths.get("max"):
        return int(lengths["min"])
    raise UsageError(
        "--window: the model was not trained on sequences of one length (e.g. "
        "train --genome --window 1000); give the width to score variants in"
    )


def output_names(task: TaskSpec) -> list[str]:
    """One name per output: the classes, or the labels / targets."""
    return list(task.classes) if task.kind in ("binary", "multiclass") else list(task.targets)


def table_header(names: list[str]) -> list[str]:
    return [
        *COLUMNS,
        *(f"ref_{n}" for n in names),
        *(f"alt_{n}" for n in names),
        *(f"diff_{n}" for n in names),
    ]


def _symbolic(alt: str) -> bool:
    return alt.startswith(("<", ".")) or alt.endswith(".") or alt == "*" or "[" in alt or "]" in alt


def _windows(
    reader: VcfReader,
    genome: Genome,
    width: int,
    on_edge: str,
    on_mismatch: str,
    stats: VariantStats,
    pending: deque[_Entry],
    keep_records: bool,
) -> Iterator[Record]:
    """The reference and alternate windows of every record, in order; each record's
    entry goes to ``pending`` before its windows (records with none pass through)."""
    half = width // 2
    for rec in reader:
        stats.records += 1
        where = reader.where()
        chrom, pos = rec.chrom, rec.pos
        ref = rec.ref or ""
        alts = list(rec.alts or ())
        entry = _Entry(
            chrom,
            pos,
            rec.id or ".",
            ref,
            alts,
            [False] * len(alts),
            record=rec if keep_records else None,
        )
        pending.append(entry)
        if not alts:
            stats.no_alt += 1
            stats.examples.setdefault("no_alt", f"{chrom}:{pos}")
            continue
        length = genome.length(chrom, f"{where}: variant {chrom}:{pos}")
        if pos < 1 or not NUCLEOTIDES.fullmatch(ref):
            raise DataError(
                f"{where}: variant {chrom}:{pos}: "
                + (
                    f"position {pos} is not 1-based"
                    if pos < 1
                    else f"REF {shorten(ref)!r} is not a sequence of bases"
                )
            )
        scored = []
        for i, alt in enumerate(alts):
            if _symbolic(alt):
                stats.symbolic += 1
                stats.examples.setdefault("symbolic", f"{chrom}:{pos} {shorten(alt, 20)}")
            elif not NUCLEOTIDES.fullmatch(alt):
                raise DataError(
                    f"{where}: variant {chrom}:{pos}: ALT {shorten(alt)!r} is "
                    "neither bases nor a symbolic allele"
                )
            else:
                scored.append(i)
        if not scored:
            continue
        start = pos - 1
        if start + len(ref) > length:  # as an interval there: another assembly, either way
            raise DataError(
                f"{where}: variant {chrom}:{pos}: REF {shorten(ref)!r} ends past the end of "
                f"{chrom} in {genome.name} (length {length}); is the VCF for another assembly?"
            )
        found = genome.fetch(chrom, start, start + len(ref))
        if found.upper() != ref.upper().encode():
            stats.mismatched += 1
            stats.examples.setdefault(
                "mismatch",
                f"{chrom}:{pos} REF {shorten(ref, 20)}, genome {shorten(found.decode(), 20)}",
            )
            if on_mismatch == "error":
                raise DataError(
                    f"{where}: variant {chrom}:{pos}: REF {shorten(ref)!r} does not match "
                    f"{genome.name} ({shorten(found.decode())!r}); is the VCF for "
                    "another assembly? (--on-mismatch skip or warn)"
                )
            if on_mismatch == "skip":
                continue
        lo = start - half
        reach = max([lo + width] + [start + len(ref) + width - half - len(alts[i]) for i in scored])
        if lo < 0 or reach > length:
            if on_edge == "error":
                raise DataError(
                    f"{where}: variant {chrom}:{pos}: its {width}-base window "
                    f"runs off {chrom} (length {length}); --on-edge pad fills "
                    "the missing bases with N"
                )
            stats.padded += 1
        reference = genome.fetch(chrom, lo, lo + width)
        label = f"{chrom}:{pos}:{shorten(ref, 12)}>"
        entry.windows = 1 + len(scored)
        yield Record(label + "(reference window)", reference)
        for i in scored:
            alt = alts[i].encode()
            right = width - half - len(alt)
            tail = (
                genome.fetch(chrom, start + len(ref), start + len(ref) + right)
                if right > 0
                else b""
            )
            entry.scored[i] = True
            stats.alleles += 1
            yield Record(label + shorten(alts[i], 12), (reference[:half] + alt + tail)[:width])


# --------------------------------------------------------------------------- scoring


def _window_scores(
    bundle: Bundle,
    windows: Iterable[Record],
    source: str,
    batch_size: int,
    device: torch.device,
    complement: np.ndarray | None,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(outputs, log-odds or values) of every window, a chunk at a time, through the
    prediction path (encoder, alphabet check, length check, batches, model)."""
    task = bundle.task
    onehot = featurizer(bundle.features).to(device)
    encoder = SequenceEncoder(source, bundle.alphabet, "error", hint=False)
    limit = BatchLimit(batch_size)
    for i, chunk in enumerate(chunked(windows, max(batch_size * 16, 1024))):
        if i == 0:
            check_first_chunk(chunk, bundle.alphabet, source, "error")
        kept, codes, offsets = encoder.encode_chunk(chunk)
        data = SequenceSet([r.id for r in kept], codes, offsets)
        check_lengths(bundle.model, data.ids, data.lengths, source)
        data = with_structure(data, bundle.features)
        logits = infer(bundle.model, onehot, data, batch_size, device, limit)
        out = task.outputs(logits)
        if complement is not None:  # as predict.both_strands, and the logit of that mean
            rc = infer(
                bundle.model,
                onehot,
                reverse_complement_set(data, complement),
                batch_size,
                device,
                limit,
            )
            out = (out + task.outputs(rc)) / 2
            if task.kind != "regression":
                logits = combine_members(task.kind, torch.stack([logits, rc]))
        values = out.numpy()
        effect = (
            values.astype(np.float64)
            if task.kind == "regression"
            else log_odds(task.kind, logits.double()).numpy()
        )
        yield values, effect


def log_odds(kind: str, logits: torch.Tensor) -> torch.Tensor:
    """log(p / (1 - p)) of every class (binary: both) from a model's logits, in the
    log domain (finite where p rounds to 0 or 1)."""
    if kind == "binary":
        z = logits.reshape(-1, 1)
        return torch.cat([-z, z], dim=1)
    if kind == "multilabel":
        return logits
    logp = torch.log_softmax(logits, dim=-1)
    k = logp.shape[-1]
    others = (
        logp[:, None, :]
        .expand(-1, k, -1)
        .masked_fill(torch.eye(k, dtype=torch.bool), float("-inf"))
    )
    return logp - torch.logsumexp(others, dim=-1)  # log p - log(1 - p)


def _finished(
    scores: Iterator[tuple[np.ndarray, np.ndarray]], pending: deque[_Entry]
) -> Iterator[tuple[_Entry, np.ndarray, np.ndarray]]:
    """Each record, in order, with the outputs and effects of its windows (reference
    first), once all of them are predicted."""
    values = effects = np.zeros((0, 0))
    at = 0
    for out, effect in scores:
        values = np.concatenate([values[at:], out]) if at < len(values) else out
        effects = np.concatenate([effects[at:], effect]) if at < len(effects) else effect
        at = 0
        while pending and pending[0].windows <= len(values) - at:
            entry = pending.popleft()
            yield entry, values[at : at + entry.windows], effects[at : at + entry.windows]
            at += entry.windows
    while pending:
        entry = pending.popleft()
        assert entry.windows == 0
        yield entry, values[:0], effects[:0]


# --------------------------------------------------------------------------- writing


def _fmt(x: float) -> str:
    return f"{x:.6g}"


def _table_rows(entries: Iterable[tuple[_Entry, np.ndarray, np.ndarray]]) -> Iterator[list[str]]:
    for entry, values, effects in entries:
        k = 0
        for alt, scored in zip(entry.alts, entry.scored, strict=True):
            if not scored:
                continue
            k += 1
            yield [
                entry.chrom,
                str(entry.pos),
                entry.id,
                entry.ref,
                alt,
                *map(_fmt, values[0]),
                *map(_fmt, values[k]),
                *map(_fmt, effects[k] - effects[0]),
            ]


def info_keys(names: list[str]) -> list[str]:
    """A valid, distinct VCF INFO key part for every output name."""
    keys: list[str] = []
    for name in names:
        key = re.sub(r"[^0-9A-Za-z_.]", "_", name) or "_"
        base, n = key, 2
        while key in keys:
            key, n = f"{base}_{n}", n + 1
        keys.append(key)
    return keys


def vcf_header(
    reader: VcfReader, task: TaskSpec, names: list[str], genome: Genome, settings: dict[str, Any]
) -> str:
    """The input's header with the score fields declared (and the genome's contigs when
    the input declares none), as text. Added to the reader's own header before the first
    record is read, so that its records carry the fields."""
    header = reader.file.header
    what = (
        "class"
        if task.kind in ("binary", "multiclass")
        else ("label" if task.kind == "multilabel" else "target")
    )
    quantity = "probability" if task.is_classification else "predicted value"
    difference = (
        "alt - ref difference of the log-odds log(p/(1-p))"
        if task.is_classification
        else "alt - ref difference of the predicted value"
    )
    for name, key in zip(names, info_keys(names), strict=True):
        shown = name.replace('"', "'").replace("\\", "/")
        for field_id, number, text in (
            (f"BSNN_REF_{key}", "1", f"{quantity} of {what} '{shown}' for the reference window"),
            (
                f"BSNN_ALT_{key}",
                "A",
                f"{quantity} of {what} '{shown}' for each alternate allele's window",
            ),
            (
                f"BSNN_DIFF_{key}",
                "A",
                f"{difference} of {what} '{shown}' for each alternate allele",
            ),
        ):
            header.add_line(
                f'##INFO=<ID={field_id},Number={number},Type=Float,Description="bioseqnn: {text}">'
            )
    if not list(header.contigs):
        for chrom, length in genome.lengths.items():
            header.contigs.add(chrom, length=length)
    header.add_line(
        f"##bioseqnn_variants=version {__version__}; "
        + "; ".join(f"{k} {v}" for k, v in settings.items())
    )
    return str(header)


def _vcf_lines(
    entries: Iterable[tuple[_Entry, np.ndarray, np.ndarray]], names: list[str], task: TaskSpec
) -> Iterator[str]:
    keys = info_keys(names)
    for entry, values, effects in entries:
        rec = entry.record
        if entry.windows:
            rows = iter(range(1, entry.windows))
            where = [next(rows) if s else None for s in entry.scored]
            for j, key in enumerate(keys):
                rec.info[f"BSNN_REF_{key}"] = float(values[0, j])
                rec.info[f"BSNN_ALT_{key}"] = tuple(
                    None if k is None else float(values[k, j]) for k in where
                )
                rec.info[f"BSNN_DIFF_{key}"] = tuple(
                    None if k is None else float(effects[k, j] - effects[0, j]) for k in where
                )
        yield str(rec)


def _report(stats: VariantStats, source: str, genome: Genome, on_mismatch: str) -> None:
    rate = stats.records / stats.seconds if stats.seconds else 0.0
    log.info(
        "%s: scored %d alternate allele(s) of %d record(s) in %.1f s (%.0f records/s)",
        source,
        stats.alleles,
        stats.records,
        stats.seconds,
        rate,
    )
    ex = stats.examples
    if stats.symbolic:
        log.warning(
            "%s: skipped %d symbolic allele(s) (<DEL>, *, breakends; e.g. %s)",
            source,
            stats.symbolic,
            ex["symbolic"],
        )
    if stats.no_alt:
        log.warning(
            "%s: %d record(s) without an alternate allele (e.g. %s)",
            source,
            stats.no_alt,
            ex["no_alt"],
        )
    if stats.mismatched:
        log.warning(
            "%s: %d record(s) with a REF that differs from %s (e.g. %s): %s",
            source,
            stats.mismatched,
            genome.name,
            ex["mismatch"],
            "scored anyway (--on-mismatch warn)"
            if on_mismatch == "warn"
            else "skipped (--on-mismatch skip)",
        )
    if stats.padded:
        log.info(
            "%s: %d record(s) with windows padded with N past a chromosome end",
            source,
            stats.padded,
        )
