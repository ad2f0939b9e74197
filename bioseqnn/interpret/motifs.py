"""Motif discovery: attributions summarised into motifs by TF-MoDISco, named by Tomtom.

``bioseqnn motifs MODEL SEQS -o report/`` computes hypothetical contributions of every
sequence (DeepLIFT-SHAP where the architecture allows it, otherwise integrated
gradients; see :mod:`bioseqnn.interpret.attribution`), runs TF-MoDISco (modisco-lite) on
them, and writes:

- ``motifs.meme``: every motif's letter probabilities (MEME format, ``nsites`` = its
  seqlets), trimmed to the positions that carry at least ``trim`` of its largest
  contribution;
- ``logos/NAME.png`` (information content) and ``logos/NAME.contrib.png`` (mean
  contribution: letters above the axis raise the target score, below lower it);
- ``report.md``: one row per motif: its sign (``positive`` motifs raise the target score,
  ``negative`` ones lower it), seqlets, consensus, and with ``--database`` its best
  matches;
- ``matches.tsv`` with ``--database``: each motif's best matches, Tomtom p-values
  (memelite) and q-values (Benjamini-Hochberg over each motif's comparisons with the
  whole database).

TF-MoDISco's tracks have four letters: the command explains DNA and RNA models.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import re
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError, UsageError, shorten
from ..runtime import keeps_threads
from .attribution import AttributionOptions

log = logging.getLogger("bioseqnn")

MIN_DATABASE = 25
"""Tomtom's p-values use the database's columns as background: fewer motifs than this
make them depend strongly on which motifs are there (a warning says so)."""


@dataclass
class ModiscoOptions:
    """TF-MoDISco settings (modisco-lite's names in brackets); the defaults suit a few
    hundred to a few thousand sequences."""

    window: int = 15
    """Width of the core window of a seqlet (sliding_window_size)."""
    flank: int = 5
    """Positions added on each side of a seqlet (flank_size)."""
    max_seqlets: int = 2000
    """Seqlets per sign at most (max_seqlets_per_metacluster)."""
    min_seqlets: int = 30
    """Seqlets a sign needs before it is clustered (min_metacluster_size)."""
    min_cluster: int = 20
    """Seqlets a motif needs to be reported (final_min_cluster_size)."""
    leiden_runs: int = 10
    """Leiden clusterings tried (n_leiden_runs; modisco-lite's default 50 is slower)."""
    trim: float = 0.3
    """A motif is trimmed to the span of positions holding at least this share of its
    largest per-position contribution."""


@dataclass
class Match:
    target: str
    p_value: float
    q_value: float
    strand: str
    offset: int


@dataclass
class Motif:
    name: str
    sign: str
    """``positive`` (raises the target score) or ``negative`` (lowers it)."""
    seqlets: int
    ppm: np.ndarray
    """(W, 4) letter probabilities."""
    contribution: np.ndarray
    """(W, 4) mean contribution of each letter at each position."""
    matches: list[Match] = field(default_factory=list)

    def consensus(self, letters: str) -> str:
        return "".join(letters[int(i)] for i in self.ppm.argmax(axis=1))


@dataclass
class MotifReport:
    motifs: list[Motif]
    letters: str
    method: str
    target: str
    sequences: int
    database: str | None = None


def require_interpret() -> None:
    """Fail early, with the install command, when the interpret extra is missing."""
    missing = []
    for module in ("captum", "modiscolite", "memelite"):
        try:
            __import__(module)
        except ImportError:
            missing.append(module)
    if missing:
        raise UsageError(
            f"this needs {', '.join(missing)}, not installed: pip install 'bioseqnn[interpret]'"
        )


def _trim(contribution: np.ndarray, share: float) -> slice:
    per_pos = np.abs(contribution).sum(axis=1)
    if per_pos.max() <= 0:
        return slice(0, len(per_pos))
    keep = np.nonzero(per_pos >= share * per_pos.max())[0]
    return slice(int(keep[0]), int(keep[-1]) + 1)


def _modisco(run: Any, *args: Any, **kwargs: Any) -> Any:
    """TF-MoDISco, whose failures become one line (its Leiden clustering raises a bare
    BaseException on NaN similarities: tfmodisco-lite issue 12)."""
    try:
        return run(*args, **kwargs)
    except (KeyboardInterrupt, SystemExit, GeneratorExit):
        raise
    except BaseException as exc:  # noqa: BLE001 - leidenalg raises BaseException itself
        raise DataError(
            f"TF-MoDISco could not cluster the seqlets ({exc}); try the other --method "
            "or another --window"
        ) from None


def run_modisco(
    one_hot: np.ndarray, hypothetical: np.ndarray, opts: ModiscoOptions | None = None
) -> list[Motif]:
    """TF-MoDISco over (N, L, 4) one-hot sequences and hypothetical contributions;
    the motifs, positive ones first, each by seqlet count."""
    from modiscolite.tfmodisco import TFMoDISco

    opts = opts or ModiscoOptions()
    if one_hot.shape[1] < opts.window + 2 * opts.flank:
        raise UsageError(
            f"sequences of {one_hot.shape[1]} positions are shorter than a "
            f"seqlet (--window {opts.window} + 2 x --flank {opts.flank})"
        )
    with contextlib.redirect_stdout(sys.stderr), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pos, neg = _modisco(
            TFMoDISco,
            one_hot.astype(np.float32),
            hypothetical.astype(np.float32),
            sliding_window_size=opts.window,
            flank_size=opts.flank,
            max_seqlets_per_metacluster=opts.max_seqlets,
            min_metacluster_size=opts.min_seqlets,
            final_min_cluster_size=opts.min_cluster,
            n_leiden_runs=opts.leiden_runs,
            trim_to_window_size=opts.window + 2 * opts.flank,
            initial_flank_to_add=opts.flank,
            verbose=False,
        )
    motifs = []
    for sign, patterns in (("positive", pos), ("negative", neg)):
        for k, pattern in enumerate(patterns or []):
            contribution = np.asarray(pattern.contrib_scores, dtype=np.float64)
            cut = _trim(contribution, opts.trim)
            ppm = np.asarray(pattern.sequence, dtype=np.float64)[cut]
            ppm = ppm / np.clip(ppm.sum(axis=1, keepdims=True), 1e-12, None)
            motifs.append(
                Motif(f"{sign[:3]}_{k + 1}", sign, len(pattern.seqlets), ppm, contribution[cut])
            )
    return motifs


# --------------------------------------------------------------------------- databases


def read_database(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """A MEME motif file (plain or compressed, a pipe too): name -> (W, 4) letter
    probabilities. The file is checked as it is read (:func:`_meme_text`), then parsed by
    memelite."""
    import tempfile

    from memelite.io import read_meme

    text = _meme_text(path)
    with tempfile.TemporaryDirectory(prefix="bioseqnn-meme-") as folder:
        copy = os.path.join(folder, "database.meme")
        with open(copy, "w", encoding="utf-8") as fh:
            fh.write(text)
        try:
            raw = read_meme(copy)
        except (ValueError, IndexError, AttributeError) as exc:
            raise DataError(f"{path}: not a MEME motif file ({exc})") from None
    if not raw:
        raise DataError(f"{path}: no MOTIF with a letter-probability matrix")
    out = {}
    for name, pwm in raw.items():
        if pwm.shape[0] != 4:
            raise DataError(
                f"{path}: motif {name!r} has {pwm.shape[0]} letters; the database "
                "must hold DNA or RNA motifs"
            )
        out[name] = np.asarray(pwm, dtype=np.float64).T
    return out


MAX_DATABASE = 1 << 28
"""Characters of a motif database read at most (JASPAR's whole non-redundant collection
is about 1 MB)."""
MAX_MOTIF_WIDTH = 1000
"""Positions of a motif at most."""
_WIDTH = re.compile(r"\bw=\s*(\d+)")
_ALENGTH = re.compile(r"\balength=\s*(\d+)")


def _meme_text(path: str | os.PathLike[str]) -> str:
    """The text of a MEME file, read in bounded lines and refused from its first line
    when it is something else: a file of one huge line or /dev/zero is never read whole,
    and its matrices are checked (:class:`_MatrixCheck`) before memelite reads them."""
    from ..io.files import open_text

    if not os.path.exists(path):
        raise UsageError(f"{path}: no such motif database")
    if os.path.isdir(path):
        raise UsageError(f"{path}: is a directory, not a motif database")
    what = "a MEME motif file"
    parts: list[str] = []
    size = 0
    started = False
    check = _MatrixCheck(path)
    with open_text(path) as lines:
        for line in lines.bounded(1 << 16, what):
            if not started and line.strip():
                if not line.startswith("MEME version"):
                    raise DataError(
                        f"{path}: line {lines.line}: not a MEME motif file (it starts with "
                        f"{shorten(line.strip())!r}; a MEME file starts with 'MEME version')"
                    )
                started = True
            check.line(line, lines.line)
            size += len(line)
            if size > MAX_DATABASE:
                raise DataError(f"{path}: larger than {MAX_DATABASE >> 20} MB; is this {what}?")
            parts.append(line)
    if not started:
        raise DataError(f"{path}: empty; not a MEME motif file")
    check.end()
    return "".join(parts)


class _MatrixCheck:
    """The motifs of a MEME file, line by line: names that differ (memelite keeps one
    motif of a name), a width memelite may size an array by, and every matrix whole, its
    rows probabilities (:func:`_check_row`)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = path
        self.rows = self.columns = 0  # rows of a matrix still to come, numbers in each
        self.names: dict[str, int] = {}  # motif name -> the line it is on
        self.motif, self.at = "", 0  # the motif being read, the line of its matrix

    def line(self, line: str, number: int) -> None:
        path = self.path
        if line.startswith("MOTIF"):
            self.end()
            self.motif = " ".join(line.split()[1:])
            if self.motif in self.names:
                raise DataError(
                    f"{path}: line {number}: a second motif named {shorten(self.motif)!r} "
                    f"(the first is on line {self.names[self.motif]}); motif names must differ"
                )
            self.names[self.motif] = number
        elif self.rows and line.strip():  # a row of the matrix above: alength numbers
            _check_row(line, self.columns, f"{path}: line {number}")
            self.rows -= 1
        elif line.startswith("letter"):
            self.at = number
            width = _WIDTH.search(line)
            if width and int(width.group(1)) > MAX_MOTIF_WIDTH:
                raise DataError(
                    f"{path}: line {number}: a motif of {int(width.group(1)):,} "
                    f"positions (w=); motifs of at most {MAX_MOTIF_WIDTH:,} are read"
                )
            alength = _ALENGTH.search(line)
            if width and alength:
                self.rows, self.columns = int(width.group(1)), int(alength.group(1))

    def end(self) -> None:
        """The matrix being read ends here (a new motif, or the file's end)."""
        if self.rows:
            raise _short_matrix(self.path, self.motif, self.at, self.rows)


def _short_matrix(path: str | os.PathLike[str], motif: str, line: int, missing: int) -> DataError:
    return DataError(
        f"{path}: line {line}: motif {shorten(motif)!r}: its matrix ends {missing} row(s) "
        "short of its w="
    )


ROW_SUM = (0.9, 1.1)
"""The range a letter-probability row must sum to (rounding to a few decimals leaves
sums of 0.99-1.01; counts, or a damaged row, are far outside)."""


def _check_row(line: str, columns: int, where: str) -> None:
    """One row of a letter-probability matrix: ``columns`` probabilities, finite, none
    negative, summing to about one. A NaN in one row made every match's p-value 1, for
    every motif of the database; a negative value moved them without a word."""
    fields = line.split()
    try:
        values = [float(f) for f in fields]
    except ValueError:
        raise DataError(
            f"{where}: {shorten(line.strip())!r} is not a row of {columns} probabilities "
            "(the matrix has fewer rows than its w= says?)"
        ) from None
    if len(fields) != columns:
        raise DataError(
            f"{where}: {len(fields)} value(s) in a row of a matrix with alength= {columns}"
        )
    if not all(math.isfinite(v) and v >= 0 for v in values):
        raise DataError(
            f"{where}: {shorten(line.strip())!r}: a letter probability must be a finite "
            "number of at least 0"
        )
    if not ROW_SUM[0] <= sum(values) <= ROW_SUM[1]:
        raise DataError(
            f"{where}: {shorten(line.strip())!r} sums to {sum(values):.4g}; the letter "
            "probabilities of a row sum to 1 (is this a count matrix?)"
        )


def benjamini_hochberg(p: np.ndarray) -> np.ndarray:
    """q-values of one family of p-values."""
    p = np.asarray(p, dtype=np.float64)
    n = len(p)
    if n == 0:
        return p
    order = np.argsort(p)
    ranked = p[order] * n / np.arange(1, n + 1)
    q = np.minimum.accumulate(ranked[::-1])[::-1]
    out = np.empty(n)
    out[order] = np.minimum(q, 1.0)
    return out


def compare(motifs: list[Motif], database: dict[str, np.ndarray], best: int = 3) -> None:
    """Tomtom (memelite) of every motif against the database: ``best`` matches each."""
    from memelite import tomtom

    if not motifs:
        return
    names = list(database)
    if len(names) < MIN_DATABASE:
        log.warning(
            "the motif database holds %d motifs: Tomtom's p-values depend strongly "
            "on which motifs are there below %d",
            len(names),
            MIN_DATABASE,
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        p, _, offsets, _, strands = tomtom(
            [m.ppm.T for m in motifs], [database[n].T for n in names], n_jobs=1
        )
    for i, motif in enumerate(motifs):
        q = benjamini_hochberg(p[i])
        for j in np.argsort(p[i], kind="stable")[:best]:
            motif.matches.append(
                Match(
                    names[j],
                    float(p[i, j]),
                    float(q[j]),
                    "-" if strands[i, j] else "+",
                    int(offsets[i, j]),
                )
            )


# --------------------------------------------------------------------------- the command


@keeps_threads
def discover_motifs(
    model: str | os.PathLike[str],
    sequences: str | os.PathLike[str],
    *,
    method: str | None = None,
    target: str | None = None,
    database: str | os.PathLike[str] | None = None,
    options: AttributionOptions | None = None,
    modisco: ModiscoOptions | None = None,
    batch_size: int = 256,
    device: str | None = None,
    threads: int = 0,
    on_invalid: str = "error",
) -> MotifReport:
    """Attributions of ``sequences`` under ``model``, TF-MoDISco's motifs, and with
    ``database`` (a MEME file) their best Tomtom matches.

    ``method``: ``deeplift-shap`` (the default) or ``integrated-gradients``.
    """
    require_interpret()
    from ..bundle import load_bundle
    from ..data.reading import read_inputs
    from ..engine.predict import resolve_device
    from ..io.files import display_name
    from ..ops.evaluate import check_alphabet_fits
    from ..ops.explain import explain_bundle, resolve_target
    from ..runtime import configure_threads

    configure_threads(threads)
    dev = resolve_device(device)
    bundle = load_bundle(model, dev)
    if bundle.series is not None or bundle.alphabet.size != 4:
        raise UsageError(
            "motifs runs TF-MoDISco, whose tracks have four letters: it explains DNA and RNA models"
        )
    if getattr(bundle.model, "per_position", False):
        raise UsageError("motifs needs a model with one output per sequence")
    if method is None:
        method = "deeplift-shap"
    if method not in ("deeplift-shap", "integrated-gradients"):
        raise UsageError("--method must be deeplift-shap or integrated-gradients")
    resolve_target(bundle.task, target)
    db = read_database(database) if database is not None else None
    data, _, _ = read_inputs(sequences, bundle.input, on_invalid)
    check_alphabet_fits(data, bundle.alphabet, display_name(sequences))
    if len(data) == 0:
        raise DataError(f"{display_name(sequences)}: no sequences")
    expl = explain_bundle(bundle, data, method, target, batch_size, dev, options)
    width = int(data.lengths.max())
    table = bundle.alphabet.onehot_table()
    # Past a sequence's end (the batch's padding): every letter at 1/4 and no
    # contribution. A seqlet near the end reaches into it once modisco-lite adds its
    # flanks; an all-zero one-hot there made its letter frequencies 0/0, and the NaN
    # similarities stopped its clustering (measured on the bundled ncRNA set).
    one_hot = np.full((len(data), width, 4), 0.25, dtype=np.float32)
    hyp = np.zeros_like(one_hot)
    for i, rec in enumerate(expl.records):
        n = len(rec.scores)
        one_hot[i, :n] = table[data.codes[data.offsets[i] : data.offsets[i + 1]]]
        assert rec.hypothetical is not None
        hyp[i, :n] = rec.hypothetical
    log.info("attributions (%s) of %d sequence(s); running TF-MoDISco", method, len(data))
    motifs = run_modisco(one_hot, hyp, modisco)
    log.info("TF-MoDISco found %d motif(s)", len(motifs))
    if db is not None:
        compare(motifs, db)
    targets = {r.target for r in expl.records}
    return MotifReport(
        motifs,
        bundle.alphabet.letters,
        method,
        ", ".join(sorted(targets)),
        len(data),
        None if database is None else str(database),
    )


def write_meme(motifs: list[Motif], letters: str, path: str | os.PathLike[str]) -> None:
    """MEME (version 4) letter-probability matrices."""
    from ..io.outputs import atomic_output

    with atomic_output(path) as fh:
        fh.write(
            f"MEME version 4\n\nALPHABET= {letters}\n\nstrands: + -\n\n"
            f"Background letter frequencies\n"
            + " ".join(f"{c} {1 / len(letters):.3f}" for c in letters)
            + "\n\n"
        )
        for m in motifs:
            fh.write(f"MOTIF {m.name} {m.consensus(letters)}\n")
            fh.write(
                f"letter-probability matrix: alength= {len(letters)} w= {len(m.ppm)} "
                f"nsites= {m.seqlets} E= 0\n"
            )
            for row in m.ppm:
                fh.write(" ".join(f"{v:.6f}" for v in row) + "\n")
            fh.write("\n")


def report_folder(folder: str | os.PathLike[str], create: bool = True) -> Path:
    """The report's folder, created (with ``create``); a usage error where it cannot be:
    a file of that name, a parent that is no folder or cannot be written. Checked
    without ``create`` before the long work starts, so a failed run leaves no folder."""
    from ..io.outputs import make_folder

    out = Path(folder)
    if out.exists() and not out.is_dir():
        raise UsageError(f"{out}: the motif report goes into a folder, and this is a file")
    if not create:
        parent = next((p for p in out.absolute().parents if p.exists()), Path("/"))
        if not parent.is_dir() or not os.access(out if out.exists() else parent, os.W_OK):
            raise UsageError(f"{out}: cannot create the report folder: {parent} is not writable")
        return out
    try:
        make_folder(out)
    except OSError as exc:
        raise UsageError(f"{out}: cannot create the report folder: {exc.strerror}") from None
    return out


def write_motif_report(
    report: MotifReport,
    folder: str | os.PathLike[str],
    plots: bool = True,
    fmt: str = "png",
    dpi: int | None = None,
) -> list[Path]:
    """motifs.meme, logos (``fmt``: png, pdf or svg, at ``dpi``), report.md (and
    matches.tsv) in ``folder``; the files written."""
    from ..io.outputs import atomic_output

    out = report_folder(folder)
    written = [out / "motifs.meme"]
    write_meme(report.motifs, report.letters, written[0])
    logos: dict[str, tuple[str, str]] = {}
    if plots and report.motifs:
        from ..plots import DPI, check_figure_options, matrix_logo_plot, plot_dir

        dpi = DPI if dpi is None else dpi
        check_figure_options(fmt, dpi)
        logo_dir = plot_dir(out / "logos")
        for m in report.motifs:
            info = matrix_logo_plot(
                m.ppm,
                report.letters,
                logo_dir / f"{m.name}.{fmt}",
                f"{m.name} ({m.sign}, {m.seqlets} seqlets)",
                dpi=dpi,
            )
            contrib = matrix_logo_plot(
                m.contribution,
                report.letters,
                logo_dir / f"{m.name}.contrib.{fmt}",
                f"{m.name}: mean contribution",
                ylabel="contribution",
                information=False,
                dpi=dpi,
            )
            written += [info, contrib]
            logos[m.name] = (f"logos/{info.name}", f"logos/{contrib.name}")
    if report.database is not None:
        written.append(out / "matches.tsv")
        with atomic_output(written[-1]) as fh:
            fh.write("motif\tsign\tseqlets\trank\tmatch\tp_value\tq_value\tstrand\toffset\n")
            for m in report.motifs:
                for rank, hit in enumerate(m.matches, start=1):
                    fh.write(
                        f"{m.name}\t{m.sign}\t{m.seqlets}\t{rank}\t{hit.target}\t"
                        f"{hit.p_value:.3g}\t{hit.q_value:.3g}\t{hit.strand}\t"
                        f"{hit.offset}\n"
                    )
    written.append(out / "report.md")
    with atomic_output(written[-1]) as fh:
        fh.write(_markdown(report, logos))
    return written


def _markdown(report: MotifReport, logos: dict[str, tuple[str, str]]) -> str:
    lines = [
        "# Motifs",
        "",
        f"TF-MoDISco over {report.method} attributions of {report.sequences} sequence(s), "
        f"explaining {report.target}. Positive motifs raise the target score, negative "
        "ones lower it.",
        "",
    ]
    if not report.motifs:
        lines.append("No motif had enough seqlets.")
        return "\n".join(lines) + "\n"
    head = "| motif | sign | seqlets | consensus |"
    rule = "|---|---|---:|---|"
    if report.database is not None:
        head += " best match | p-value | q-value |"
        rule += "---|---:|---:|"
    if logos:
        head += " logo | contribution |"
        rule += "---|---|"
    lines += [head, rule]
    for m in report.motifs:
        row = f"| {m.name} | {m.sign} | {m.seqlets} | {m.consensus(report.letters)} |"
        if report.database is not None:
            hit = m.matches[0] if m.matches else None
            row += (
                f" {hit.target} | {hit.p_value:.2g} | {hit.q_value:.2g} |"
                if hit
                else " - | - | - |"
            )
        if m.name in logos:
            info, contrib = logos[m.name]
            row += f" ![{m.name}]({info}) | ![{m.name} contribution]({contrib}) |"
        lines.append(row)
    if report.database is not None:
        lines += [
            "",
            f"Matches against `{report.database}` (Tomtom, memelite); every "
            "motif's three best in matches.tsv.",
        ]
    return "\n".join(lines) + "\n"
