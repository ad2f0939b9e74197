"""Language models: next-residue prediction on unlabelled sequences; scoring and sampling.

A language model is a per-position model that reads left to right (``SequenceModel``
with ``causal=True``): its output at position i is the distribution of residue i given
residues 1..i-1, over the alphabet's letters and ``end``, which closes a sequence. It
trains on a FASTA alone (``bioseqnn train seqs.fasta --task language-model``): the
targets are the sequence itself, and then its end.

- Ambiguity codes (N, R, X, ...) are read as fractional one-hot input like everywhere
  else, but are not scored: a model is not asked to predict an N.
- ``predict`` gives each sequence's log-likelihood (natural log, summed over its scored
  residues and its end) and perplexity (exp of minus the mean): low is typical of the
  training sequences, high is unusual.
- ``generate`` samples new sequences residue by residue. Sample i draws its random
  numbers from (seed, i) alone, so it is the same whatever the batch size or how many
  samples are drawn. Recurrent models carry their state from step to step, a
  transformer its layers' keys and values (each step attends to the positions before).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import torch

from ..alphabets import Alphabet
from ..bundle import IN_MEMORY, Bundle
from ..config import TrainConfig
from ..data.batches import batch_targets
from ..data.reading import read_encoded, read_inputs
from ..data.sets import SequenceSet
from ..encoding import Encoder
from ..engine.inputs import PredictStats, encoded_chunks
from ..engine.predict import OOM_ERRORS, BatchLimit, batches_in_memory
from ..errors import ModelFileError, UsageError
from ..io.fasta import Record
from ..io.files import display_name
from ..io.sniff import read_sequences
from ..models.decoding import StepDecoder
from ..models.inputs import OneHot
from ..tasks import TaskSpec
from .base import Loaded, TrainInputs
from .series import SeriesSpec

log = logging.getLogger("bioseqnn")

MAX_SAMPLE_LENGTH = (1 << 31) - 1
"""The longest --max-length: a C int, the most positions a sequence can have anywhere
the native kernels read one (kernels.INT_MAX)."""

DRAW_BLOCK = 4096
"""Positions whose random numbers (and picks) a sample draws at a time: memory grows
with what is generated, not with --max-length."""


KIND = "language-model"


END = "end"
"""The class that closes a sequence."""


def lm_task(alphabet: Alphabet) -> TaskSpec:
    """The task of a language model of ``alphabet``: its letters, then ``end``."""
    return TaskSpec(KIND, ["next"], classes=[*alphabet.letters, END])


def code_classes(alphabet: Alphabet) -> np.ndarray:
    """Code -> class index of the one letter it stands for; -1 for padding and for
    ambiguity codes (not scored)."""
    table = np.full(len(alphabet.symbols) + 1, -1, dtype=np.int8)
    for code, sym in enumerate(alphabet.symbol_list, start=1):
        stands_for = alphabet.symbols[sym]
        if len(stands_for) == 1:
            table[code] = alphabet.letters.index(stands_for)
    return table


def position_targets(data: SequenceSet, alphabet: Alphabet) -> np.ndarray:
    """Each residue's class as ``data.positions`` (flat int8, -1 at ambiguity codes); the
    end after each record is added per batch (data.position_batch)."""
    return code_classes(alphabet)[data.codes]


# --------------------------------------------------------------------------- scoring


def score_columns() -> list[str]:
    return ["id", "length", "log_likelihood", "perplexity"]


def sequence_scores(logits: torch.Tensor, y: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Per record: the summed log-probability of its scored targets (natural log) and
    how many there are; ``logits`` (N, >= width, K), ``y`` (N, width), -1 not scored."""
    width = y.shape[1]
    logp = torch.log_softmax(logits[:, :width].double(), dim=-1)
    scored = y >= 0
    picked = logp.gather(2, y.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    total = torch.where(scored, picked, torch.zeros((), dtype=picked.dtype)).sum(dim=1)
    return total.numpy(), scored.sum(dim=1).numpy()


def score_rows(
    bundle: Bundle,
    records: Iterable[Record],
    source: str,
    batch_size: int,
    device: torch.device,
    on_invalid: str,
    stats: PredictStats,
    max_tokens: int | None = None,
) -> Iterator[list[str]]:
    """One row per record, in input order: id, length, log-likelihood, perplexity.

    Streams like every prediction: one chunk of records in memory at a time.
    """
    alphabet = bundle.alphabet
    onehot = OneHot(alphabet).to(device)
    limit = BatchLimit(batch_size)
    was_training = bundle.model.training
    bundle.model.eval()
    for _, data in encoded_chunks(bundle, records, source, batch_size, on_invalid, stats):
        # each batch's outputs become two numbers per record at once: memory follows the
        # batch (length-sorted), not the chunk's count times its longest record
        total = np.zeros(len(data))
        count = np.zeros(len(data), dtype=np.int64)
        data.positions = position_targets(data, alphabet)
        with torch.inference_mode():
            for index, logits in batches_in_memory(
                bundle.model, onehot, data, batch_size, device, limit, OOM_ERRORS, max_tokens
            ):
                y = batch_targets(bundle.task, data, index)
                total[index], count[index] = sequence_scores(logits, y)
        for rid, length, ll, n in zip(data.ids, data.lengths, total, count, strict=True):
            ppl = float(np.exp(-ll / n)) if n else float("nan")
            yield [rid, str(int(length)), f"{ll:.6g}", f"{ppl:.6g}"]
    bundle.model.train(was_training)


# --------------------------------------------------------------------------- sampling


@dataclass
class Sampling:
    """How ``generate`` draws each residue."""

    temperature: float = 1.0
    """Logits are divided by it: < 1 sharper (more typical), > 1 flatter (more diverse)."""
    top_k: int = 0
    """Draw from the k most likely symbols only (0 = all)."""
    top_p: float = 1.0
    """Draw from the smallest set of symbols whose probability reaches p (1 = all)."""
    min_length: int = 1
    """No end before this many residues (the prefix included)."""
    max_length: int = 0
    """Stop a sample here even without an end (0: the longest training sequence)."""

    def check(self) -> None:
        if not (self.temperature > 0 and np.isfinite(self.temperature)):
            raise UsageError("--temperature must be a positive number")
        if self.top_k < 0:
            raise UsageError("--top-k must be >= 0 (0 = every symbol)")
        if not 0 < self.top_p <= 1:
            raise UsageError("--top-p must be in (0, 1]")
        if self.min_length < 1:
            raise UsageError("--min-length must be at least 1 (a sequence has a residue)")
        if not 0 <= self.max_length <= MAX_SAMPLE_LENGTH:
            raise UsageError(
                f"--max-length must be from 0 to {MAX_SAMPLE_LENGTH} "
                "(0: the longest training sequence)"
            )


def _filter(logits: torch.Tensor, s: Sampling) -> torch.Tensor:
    """Probabilities to draw from: temperature, then top-k, then top-p."""
    logits = logits.double() / s.temperature
    if 0 < s.top_k < logits.shape[1]:
        kth = logits.topk(s.top_k, dim=1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    prob = torch.softmax(logits, dim=1)
    if s.top_p < 1:
        ordered, order = prob.sort(dim=1, descending=True)
        before = ordered.cumsum(dim=1) - ordered  # mass of the more likely symbols
        beyond = before >= s.top_p  # in sorted order; back to the symbols' order:
        drop = torch.zeros_like(beyond).scatter(1, order, beyond)
        prob = prob.masked_fill(drop, 0.0)
        prob = prob / prob.sum(dim=1, keepdim=True)
    return prob


def default_max_length(bundle: Bundle) -> int:
    """The longest training sequence (the model has seen where sequences end), within
    what the model accepts; one longer than a sample can be is a damaged model file."""
    longest = (bundle.manifest.get("data") or {}).get("lengths", {}).get("max")
    limit = bundle.model.max_length
    value = int(longest) if longest else 1000
    value = min(value, limit) if limit is not None else value
    if value > MAX_SAMPLE_LENGTH:
        raise ModelFileError(
            f"{bundle.path or IN_MEMORY}: its longest training sequence (data.lengths.max "
            f"{longest}) is more than {MAX_SAMPLE_LENGTH} residues; give --max-length"
        )
    return value


def encode_prefix(prefix: str, alphabet: Alphabet) -> tuple[str, np.ndarray]:
    """The prefix as the samples will start (uppercase; a nucleotide prefix in the model's
    letters, T or U) and its one-hot rows; an invalid symbol is an error."""
    text = prefix.strip().upper()
    if alphabet.name == "protein" and text.endswith("*"):
        raise UsageError("--prefix ends with a stop ('*'): nothing can follow it")
    enc = Encoder(alphabet)
    codes, _, bad = enc.encode([text.encode()])
    if bad:
        raise UsageError(
            f"--prefix: {bad[0].char!r} at position {bad[0].position} is not a "
            f"{alphabet.name} symbol"
        )
    if alphabet.is_nucleotide:  # T in an RNA model reads as U, and U in a DNA model as T
        other = "T" if alphabet.letters[3] == "U" else "U"
        text = text.replace(other, alphabet.letters[3])
    table = alphabet.onehot_table()
    return text, table[codes.astype(np.int64)]


def sample(
    bundle: Bundle,
    n: int,
    *,
    sampling: Sampling | None = None,
    prefix: str = "",
    seed: int = 0,
    batch_size: int = 64,
    device: torch.device | str = "cpu",
) -> Iterator[str]:
    """``n`` sampled sequences (the prefix included), in order, drawn a batch at a time
    as they are consumed. The settings are checked here, before any is drawn."""
    if bundle.task.kind != KIND:
        raise UsageError(
            f"generate needs a language model (trained with --task {KIND}); "
            f"this model's task is {bundle.task.kind}"
        )
    s = sampling or Sampling()
    s.check()
    if n < 0:
        raise UsageError("--num must be >= 0")
    if not 0 <= seed < 2**63:
        raise UsageError("--seed must be from 0 to 2^63 - 1")
    if batch_size < 1:
        raise UsageError("--batch-size must be at least 1")
    device = torch.device(device)
    alphabet = bundle.alphabet
    text, rows = encode_prefix(prefix, alphabet)
    max_length = s.max_length or default_max_length(bundle)
    limit = bundle.model.max_length
    if limit is not None and max_length > limit:
        raise UsageError(f"--max-length {max_length} is more than this model's max-length {limit}")
    if len(text) > max_length:
        raise UsageError(
            f"the --prefix has {len(text)} residues, more than --max-length {max_length}"
        )
    if s.min_length > max_length:
        which = "" if s.max_length else "the default "
        why = "" if s.max_length else " (the longest training sequence); raise --max-length"
        raise UsageError(
            f"--min-length {s.min_length} is more than {which}--max-length {max_length}{why}"
        )
    return _draw(
        bundle, n, s, text, torch.from_numpy(rows).to(device), max_length, seed, batch_size, device
    )


@torch.inference_mode()
def _draw(
    bundle: Bundle,
    n: int,
    s: Sampling,
    text: str,
    prefix_rows: torch.Tensor,
    max_length: int,
    seed: int,
    batch_size: int,
    device: torch.device,
) -> Iterator[str]:
    letters = bundle.alphabet.letters
    end = len(letters)
    bundle.model.eval()
    eye = torch.eye(len(letters), dtype=torch.float32, device=device)
    truncated = 0
    steps_most = max_length - len(text)
    for first in range(0, n, batch_size):
        b = min(batch_size, n - first)
        # each sample's uniform draws come from (seed, its number) alone, draw j for
        # position j (the prefix's go unused), DRAW_BLOCK at a time from one generator
        rngs = [np.random.default_rng([seed, first + i]) for i in range(b)]
        for _ in range(len(text) // DRAW_BLOCK):
            for rng in rngs:
                rng.random(DRAW_BLOCK)
        steps = StepDecoder(bundle.model)
        logits = steps(torch.zeros((b, len(letters)), device=device))
        for row in prefix_rows:
            logits = steps(row.expand(b, -1))
        # the symbols picked: one (b,) a step, kept as bytes DRAW_BLOCK steps a block
        picks: list[torch.Tensor] = []
        kept: list[torch.Tensor] = [torch.empty((b, 0), dtype=torch.uint8)]
        length = torch.full((b,), -1, dtype=torch.long)  # -1: not ended yet
        for t in range(steps_most):
            position = len(text) + t
            j = position % DRAW_BLOCK
            if j == 0 or t == 0:  # the block of draws that holds this position's
                draws = torch.from_numpy(np.stack([rng.random(DRAW_BLOCK) for rng in rngs]))
            if position < s.min_length:
                logits = logits.clone()
                logits[:, end] = float("-inf")
            prob = _filter(logits.float().cpu(), s)
            cdf = prob.cumsum(dim=1)
            u = draws[:, j : j + 1] * cdf[:, -1:]
            # the first symbol whose cumulative probability exceeds u: never one of none
            pick = torch.searchsorted(cdf, u, right=True).squeeze(1).clamp(max=end)
            picks.append(pick)
            if len(picks) == DRAW_BLOCK:
                kept.append(torch.stack(picks, dim=1).to(torch.uint8))
                picks = []
            ended = (pick == end) & (length < 0)
            length[ended] = t
            if bool((length >= 0).all()):
                break
            logits = steps(eye[pick.clamp(max=end - 1).to(device)])
        if picks:
            kept.append(torch.stack(picks, dim=1).to(torch.uint8))
        chosen = torch.cat(kept, dim=1)
        for i in range(b):
            k = int(length[i])
            if k < 0:
                truncated += 1
                k = steps_most
            yield text + "".join(letters[c] for c in chosen[i, :k].tolist())
    if truncated:
        log.info(
            "%d of %d sample(s) reached --max-length %d without an end", truncated, n, max_length
        )


def load_lm(
    fasta: str | os.PathLike[str], src: TrainInputs, primary: str | os.PathLike[str]
) -> Loaded:
    data, lm_alpha, _ = read_inputs(fasta, src.alphabet, src.on_invalid)
    if isinstance(lm_alpha, SeriesSpec):
        raise UsageError(
            f"--task {KIND} learns from sequences; {display_name(fasta)} is a numeric series table"
        )
    data.positions = position_targets(data, lm_alpha)
    val: SequenceSet | None = None
    if src.val_fasta is not None:
        val, _, _ = read_encoded(
            read_sequences(src.val_fasta), display_name(src.val_fasta), lm_alpha, src.on_invalid
        )
        val.positions = position_targets(val, lm_alpha)
    return Loaded(lm_task(lm_alpha), lm_alpha, data, val, primary)


def check_lm_inputs(
    fasta: str | os.PathLike[str] | None,
    labels: str | os.PathLike[str] | None,
    sequence_column: str | None,
    position_mask: str | os.PathLike[str] | None,
    val_labels: str | os.PathLike[str] | None,
    tc: TrainConfig,
) -> None:
    """A language model learns from a FASTA alone."""
    given = [
        name
        for name, value in (
            ("a labels table", labels),
            ("--sequence-column", sequence_column),
            ("--position-mask", position_mask),
            ("--val-labels", val_labels),
        )
        if value is not None
    ]
    if given:
        raise UsageError(f"--task {KIND} learns from the sequences alone; drop {', '.join(given)}")
    if fasta is None:
        raise UsageError(f"--task {KIND} needs a FASTA of sequences")
    for flag, on in (
        ("--rc-augment", tc.rc_augment),
        ("--rc-average", tc.rc_average),
        ("--class-weight", tc.class_weight.strip() not in ("", "none", "auto")),
    ):
        if on:
            raise UsageError(f"{flag} is not available for --task {KIND}")
