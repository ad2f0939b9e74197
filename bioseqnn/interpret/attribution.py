"""Integrated gradients and DeepLIFT-SHAP through Captum, with hypothetical contributions.

Both methods compare a sequence with *references* and explain the difference of the
target score (see :mod:`bioseqnn.explain`) between them:

- ``integrated-gradients`` (Sundararajan et al. 2017): the gradient averaged along the
  straight path from the reference to the sequence (Captum's ``IntegratedGradients``,
  Gauss-Legendre, ``steps`` points). The attributions sum to ``f(x) - f(ref)`` up to the
  quadrature error, which shrinks with ``steps``.
- ``deeplift-shap`` (Lundberg and Lee 2017): DeepLIFT's multipliers averaged over several
  references (Captum's ``DeepLift``, one reference per row), on every architecture. The
  attributions sum to ``f(x) - mean f(ref)`` exactly, to float rounding.

References (``--reference``):

- ``shuffle``: dinucleotide-preserving shuffles of each sequence (DNA and RNA; the default
  of ``deeplift-shap``), ``shuffles`` of them, seeded;
- ``uniform``: every letter at 1 / letters at every position (the default of
  ``integrated-gradients``, and of ``deeplift-shap`` for protein);
- ``background``: the letter frequencies of the sequences explained, at every position;
- ``zero``: all channels 0.

Padded positions of a batch get the reference 0 like their input, and are cut off: a
sequence's attributions cover its own positions only, whatever it is batched with.

Hypothetical contributions (what TF-MoDISco reads): with the multipliers ``m`` (the path
gradient, or DeepLIFT's multipliers) and reference ``r``, the contribution the letter
``c`` would make at position ``i`` is ``m[i, c] - sum_c' m[i, c'] r[i, c']``, averaged over
the references; the actual contributions are the hypothetical ones times the one-hot
input, and a position's score is their sum.

DeepLIFT needs a rule for each nonlinear step, and Captum's reach ``nn.Module``
activations only: :mod:`bioseqnn.interpret.deeplift` gives the rescale rule to the
activations bioseqnn's networks call as functions, the Shapley rule to the products of
LSTM/GRU gates and of attention, an exact rule to max-pooling, and runs recurrent layers
and the transformer step by step with plain operations while it attributes.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, replace

import numpy as np
import torch
from torch import nn

from ..alphabets import Alphabet
from ..data.batches import batch_indices, collate
from ..data.sets import SequenceSet
from ..errors import UsageError
from ..models.base import Predictor, stepwise_operations
from ..tasks import TaskSpec, target_score
from .deeplift import DeepLiftMode, frozen
from .shuffle import dinucleotide_shuffle

METHODS = ("integrated-gradients", "deeplift-shap")
REFERENCES = ("shuffle", "uniform", "background", "zero")


MAX_STEPS = 1000
"""The most points on integrated gradients' path: their Gauss-Legendre weights cost time
and memory as the cube and the square of their number (0.15 s for 1,000 on a 2-core AMD
EPYC; minutes and about 2 GB for 10,000, 16 GB before failing for 10^9)."""
MAX_SHUFFLES = 1000
"""The most shuffled references per sequence (each is a forward and backward pass)."""


@dataclass
class AttributionOptions:
    """Settings of the reference-based methods."""

    reference: str | None = None
    """One of REFERENCES; None: the method's default (see the module docstring)."""
    shuffles: int = 10
    """References per sequence with ``reference='shuffle'``."""
    steps: int = 50
    """Integrated gradients: points on the path."""
    seed: int = 0
    """Seed of the shuffles (sequence ``i`` uses ``seed + i``: batching changes nothing)."""
    max_positions: int | None = None
    """Positions (rows x length) of one forward and backward pass: bounds the memory.
    None: 2^13 on the CPU (small passes stay in cache: measured 2-3x faster than 2^20
    on a 64-channel cnn), 2^15 for deeplift-shap on recurrent networks (they run step
    by step, at a cost per step: measured 2.5x faster than 2^13 on a GRU; a
    transformer is fastest at 2^13), 2^18 on a GPU."""


@dataclass
class PathAttributions:
    """Per sequence, its own positions only."""

    hypothetical: list[np.ndarray]
    """(L, C) hypothetical contributions."""
    contributions: list[np.ndarray]
    """(L, C) actual contributions (hypothetical x one-hot)."""
    delta: np.ndarray
    """(N,) sum of the contributions minus (f(x) - mean f(reference)): the completeness
    error."""
    reference: str


def default_reference(method: str, alphabet: Alphabet) -> str:
    if method == "deeplift-shap" and alphabet.is_nucleotide:
        return "shuffle"
    return "uniform"


def architectures(model: Predictor) -> list[str]:
    configs = getattr(model, "configs", None) or [model.config]
    return [str(c.arch) for c in configs]


def check_supported(
    model: Predictor,
    method: str,
    alphabet: Alphabet | None,
    reference: str | None = None,
    structure: bool = False,
) -> None:
    """Raise UsageError where ``method`` cannot explain this model (one line each)."""
    if method not in METHODS:
        return
    if alphabet is None:
        raise UsageError(
            f"--method {method} explains sequence models; a numeric series model "
            "is explained by saliency or grad-input"
        )
    if structure:
        raise UsageError(
            f"--method {method} explains residues; a model that reads RNA "
            "structure is explained by saliency, grad-input or ism"
        )
    if reference is not None and reference not in REFERENCES:
        raise UsageError(f"--reference must be one of: {', '.join(REFERENCES)}")
    if reference == "shuffle" and not alphabet.is_nucleotide:
        raise UsageError(
            "--reference shuffle is a dinucleotide shuffle, for DNA and RNA; use "
            "uniform or background for protein"
        )


class _Scorer(nn.Module):
    """The model's target score per row: what the attributions explain."""

    def __init__(self, model: Predictor, task: TaskSpec) -> None:
        super().__init__()
        self.model = model
        self.task = task

    def forward(
        self, x: torch.Tensor, lengths: torch.Tensor, targets: torch.Tensor
    ) -> torch.Tensor:
        return target_score(self.task, self.model(x, lengths), targets)


# --------------------------------------------------------------------------- references


def _references(
    codes: np.ndarray,
    length: int,
    index: int,
    kind: str,
    opts: AttributionOptions,
    table: np.ndarray,
    background: np.ndarray,
) -> np.ndarray:
    """(n, length, C) one-hot references of one sequence."""
    channels = table.shape[1]
    if kind == "shuffle":
        rng = np.random.default_rng([opts.seed, index])
        shuffled = np.stack([dinucleotide_shuffle(codes, rng) for _ in range(opts.shuffles)])
        return table[shuffled]
    if kind == "uniform":
        return np.full((1, length, channels), 1.0 / channels, dtype=np.float32)
    if kind == "background":
        return np.broadcast_to(background.astype(np.float32), (1, length, channels)).copy()
    return np.zeros((1, length, channels), dtype=np.float32)


def background_frequencies(data: SequenceSet, table: np.ndarray) -> np.ndarray:
    """Letter frequencies over every sequence (ambiguity codes counted fractionally)."""
    counts = np.bincount(data.codes, minlength=table.shape[0])[: table.shape[0]]
    freq = counts @ table
    total = freq.sum()
    return freq / total if total > 0 else np.full(table.shape[1], 1.0 / table.shape[1])


# --------------------------------------------------------------------------- attribution


def _multipliers(
    method: str,
    scorer: _Scorer,
    x: torch.Tensor,
    refs: torch.Tensor,
    lengths: torch.Tensor,
    targets: torch.Tensor,
    opts: AttributionOptions,
) -> torch.Tensor:
    from captum.attr import DeepLift, IntegratedGradients

    args = (lengths, targets)
    with warnings.catch_warnings(), torch.backends.cudnn.flags(enabled=False):
        # Captum warns that it sets hooks, and about eval-mode models; both are intended
        warnings.simplefilter("ignore")
        if method == "integrated-gradients":
            rows = max(len(x), (opts.max_positions or 1) // max(x.shape[1], 1))
            ig = IntegratedGradients(scorer, multiply_by_inputs=False)
            return ig.attribute(
                x,
                baselines=refs,
                additional_forward_args=args,
                n_steps=opts.steps,
                internal_batch_size=rows,
            )
        with frozen(scorer), stepwise_operations(), DeepLiftMode():
            dl = DeepLift(scorer, multiply_by_inputs=False)
            return dl.attribute(x, baselines=refs, additional_forward_args=args)


def path_attributions(
    model: Predictor,
    onehot: nn.Module,
    alphabet: Alphabet,
    task: TaskSpec,
    data: SequenceSet,
    targets: np.ndarray,
    method: str,
    batch_size: int,
    device: torch.device,
    opts: AttributionOptions | None = None,
) -> PathAttributions:
    """Hypothetical and actual contributions of every sequence under ``method``.

    Sequences are batched by length (``batch_size`` at most), and a batch is cut further
    so that one pass holds at most ``opts.max_positions`` positions (sequences x
    references x length; integrated gradients also splits its path points), which
    bounds the memory of long sequences.
    """
    opts = opts or AttributionOptions()
    try:
        import captum  # noqa: F401
    except ImportError:
        raise UsageError(
            f"--method {method} needs captum, which is not installed: pip "
            "install 'bioseqnn[interpret]'"
        ) from None
    if method not in METHODS:
        raise UsageError(f"--method must be one of: {', '.join(METHODS)}")
    if opts.steps < 1 or opts.shuffles < 1:
        raise UsageError("--steps and --shuffles must be at least 1")
    if opts.steps > MAX_STEPS:
        raise UsageError(f"--steps must be at most {MAX_STEPS:,}")
    if opts.shuffles > MAX_SHUFFLES:
        raise UsageError(f"--shuffles must be at most {MAX_SHUFFLES:,}")
    kind = opts.reference or default_reference(method, alphabet)
    check_supported(model, method, alphabet, kind)
    table = alphabet.onehot_table()
    background = background_frequencies(data, table)
    n_refs = opts.shuffles if kind == "shuffle" else 1
    scorer = _Scorer(model, task).to(device)
    was_training = model.training
    model.eval()
    hyp_out: list[np.ndarray] = [np.zeros((0, alphabet.size))] * len(data)
    con_out: list[np.ndarray] = [np.zeros((0, alphabet.size))] * len(data)
    delta = np.zeros(len(data))
    passes = 2 if method == "deeplift-shap" else 1
    if opts.max_positions is None:
        opts = replace(opts, max_positions=1 << _default_bound(model, method, device))
    assert opts.max_positions is not None
    try:
        for bucket in batch_indices(data.lengths, batch_size):
            longest = int(data.lengths[bucket].max()) if len(bucket) else 1
            # sequences x references x length per pass; a long record's references are
            # split into groups in _attribute_batch
            per = max(1, opts.max_positions // max(1, longest * n_refs * passes))
            for start in range(0, len(bucket), per):
                index = bucket[start : start + per]
                hyp, con, dlt = _attribute_batch(
                    scorer,
                    onehot,
                    data,
                    index,
                    targets,
                    method,
                    kind,
                    opts,
                    table,
                    background,
                    n_refs,
                    device,
                )
                for row, i in enumerate(index):
                    n = int(data.lengths[i])
                    hyp_out[int(i)] = hyp[row, :n].astype(np.float64)
                    con_out[int(i)] = con[row, :n].astype(np.float64)
                    delta[int(i)] = dlt[row]
    finally:
        model.train(was_training)
    return PathAttributions(hyp_out, con_out, delta, kind)


def _default_bound(model: Predictor, method: str, device: torch.device) -> int:
    """log2 of the default positions per pass (see AttributionOptions.max_positions)."""
    if device.type != "cpu":
        return 18
    if method == "deeplift-shap" and any(
        a not in ("cnn", "transformer") for a in architectures(model)
    ):
        return 15  # recurrences run step by step, at a cost per step: larger passes pay
    return 13


def _attribute_batch(
    scorer: _Scorer,
    onehot: nn.Module,
    data: SequenceSet,
    index: np.ndarray,
    targets: np.ndarray,
    method: str,
    kind: str,
    opts: AttributionOptions,
    table: np.ndarray,
    background: np.ndarray,
    n_refs: int,
    device: torch.device,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(B, L, C) hypothetical and actual contributions of one batch, exactly 0 at padded
    positions, and each sequence's completeness error.

    The references go through the network in groups small enough for
    ``opts.max_positions`` (one at a time for a long record)."""
    codes, lengths = collate(data, index)
    b, width = codes.shape
    channels = table.shape[1]
    refs = np.zeros((b, n_refs, width, channels), dtype=np.float32)
    for row, i in enumerate(index):
        n = int(lengths[row])
        own = data.codes[data.offsets[i] : data.offsets[i + 1]]
        refs[row, :, :n] = _references(own, n, int(i), kind, opts, table, background)
    x = onehot(codes.to(device)).float()
    lengths_d = lengths.to(device)
    tgt = torch.from_numpy(targets[index]).to(device)
    passes = 2 if method == "deeplift-shap" else 1
    group = max(1, (opts.max_positions or 1) // max(1, b * width * passes))
    hyp = torch.zeros((b, width, channels), dtype=torch.float32, device=device)
    f_r = torch.zeros(b, dtype=torch.float64, device=device)
    for first in range(0, n_refs, group):
        k = min(group, n_refs - first)
        ref_t = torch.from_numpy(
            np.ascontiguousarray(refs[:, first : first + k]).reshape(b * k, width, channels)
        ).to(device)
        len_rep = lengths_d.repeat_interleave(k)
        tgt_rep = tgt.repeat_interleave(k)
        mult = _multipliers(
            method, scorer, x.repeat_interleave(k, dim=0), ref_t, len_rep, tgt_rep, opts
        ).detach()
        # hypothetical: m[i, c] - sum_c' m[i, c'] r[i, c'], summed here, averaged below
        hyp += (
            (mult - (mult * ref_t).sum(dim=-1, keepdim=True)).view(b, k, width, channels).sum(dim=1)
        )
        with torch.no_grad(), torch.backends.cudnn.flags(enabled=False):
            f_r += scorer(ref_t, len_rep, tgt_rep).double().view(b, k).sum(dim=1)
        del mult, ref_t
    hyp /= n_refs
    real = torch.arange(width, device=device)[None, :] < lengths_d[:, None]
    hyp = hyp * real[:, :, None].to(hyp.dtype)
    con = hyp * x
    with torch.no_grad(), torch.backends.cudnn.flags(enabled=False):
        f_x = scorer(x, lengths_d, tgt).double()
    dlt = con.double().sum(dim=(1, 2)) - (f_x - f_r / n_refs)
    return hyp.cpu().numpy(), con.cpu().numpy(), dlt.cpu().numpy()
