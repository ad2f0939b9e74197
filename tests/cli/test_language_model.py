"""Language models: causality, targets, learning a known process, scoring, sampling, CLI."""

from __future__ import annotations

import gzip
import hashlib
import json
import math
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import EXAMPLES, run_bioseqnn

from bioseqnn.alphabets import DNA
from bioseqnn.api import train
from bioseqnn.bundle import load_bundle
from bioseqnn.config import RunConfig
from bioseqnn.data.batches import batch_targets
from bioseqnn.data.sets import SequenceSet
from bioseqnn.encoding import Encoder
from bioseqnn.errors import UsageError
from bioseqnn.models.base import ModelConfig, SequenceModel
from bioseqnn.models.decoding import StepDecoder
from bioseqnn.variants.lm import (
    DRAW_BLOCK,
    Sampling,
    _filter,
    lm_task,
    position_targets,
    sample,
    sequence_scores,
)

CAUSAL = [
    {"arch": "rnn", "hidden_size": 16, "layers": 2},
    {"arch": "lstm", "hidden_size": 16, "layers": 2},
    {"arch": "gru", "hidden_size": 16, "layers": 2},
    {"arch": "transformer", "d_model": 16, "heads": 2, "ff_size": 32, "layers": 2},
]


def _onehot(codes: torch.Tensor, k: int = 4) -> torch.Tensor:
    return torch.eye(k)[codes]


@pytest.mark.parametrize("settings", CAUSAL, ids=[s["arch"] for s in CAUSAL])
def test_outputs_read_only_earlier_residues(settings: dict[str, object]) -> None:
    torch.manual_seed(0)
    model = SequenceModel(ModelConfig(**settings), 4, 5, causal=True).eval()
    codes = torch.randint(0, 4, (3, 12))
    x = _onehot(codes)
    lengths = torch.tensor([12, 9, 5])
    with torch.no_grad():
        out = model(x, lengths)
        assert out.shape == (3, 13, 5)  # every residue, then the end
        changed = x.clone()
        changed[:, 6] = _onehot((codes[:, 6] + 1) % 4)
        out2 = model(changed, lengths)
        # output i predicts residue i + 1 (1-based) from residues 1..i: those before 6 (0-based)
        assert torch.equal(out[:, :7], out2[:, :7])
        assert (out[0, 7:] - out2[0, 7:]).abs().max() > 1e-4  # later outputs do read it
        # padding never changes a sequence's outputs
        alone = model(x[2:3, :5], torch.tensor([5]))
        torch.testing.assert_close(alone[0], out[2, :6], atol=1e-6, rtol=0)
        # one step at a time (what generate runs) gives the whole-sequence outputs
        steps = StepDecoder(model)
        stepped = [steps(torch.zeros(3, 4))] + [steps(x[:, t]) for t in range(12)]
        torch.testing.assert_close(torch.stack(stepped, 1)[0], out[0], atol=1e-5, rtol=0)


@pytest.mark.parametrize(
    "settings", [{"arch": "lstm", "bidirectional": True}, {"arch": "cnn"}, {"arch": "cnn-lstm"}]
)
def test_architectures_that_read_ahead_are_refused(settings: dict[str, object]) -> None:
    with pytest.raises(UsageError, match="language model reads left to right"):
        SequenceModel(ModelConfig(**settings), 4, 5, causal=True)


def test_targets_are_the_next_residues_then_the_end() -> None:
    codes, offsets, _ = Encoder(DNA).encode([b"ACGNT", b"tt"])
    data = SequenceSet(["a", "b"], codes, offsets)
    # classes A C G T end = 0 1 2 3 4; N (ambiguous) is not scored
    data.positions = position_targets(data, DNA)
    assert data.positions.tolist() == [0, 1, 2, -1, 3, 3, 3]
    y = batch_targets(lm_task(DNA), data, np.array([0, 1]))
    assert y.tolist() == [[0, 1, 2, -1, 3, 4], [3, 3, 4, -1, -1, -1]]
    assert batch_targets(lm_task(DNA), data, np.array([1])).tolist() == [[3, 3, 4]]


def test_sampling_filters() -> None:
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    torch.testing.assert_close(
        _filter(logits, Sampling()).float(), torch.tensor([[0.5, 0.3, 0.15, 0.05]])
    )
    top2 = _filter(logits, Sampling(top_k=2))
    torch.testing.assert_close(top2.float(), torch.tensor([[0.625, 0.375, 0.0, 0.0]]))
    # top-p 0.8: the smallest set reaching 0.8 is {0.5, 0.3}
    torch.testing.assert_close(
        _filter(logits, Sampling(top_p=0.8)).float(), torch.tensor([[0.625, 0.375, 0.0, 0.0]])
    )
    cold = _filter(logits, Sampling(temperature=0.5)).float()  # p^2, renormalised
    p2 = torch.tensor([[0.25, 0.09, 0.0225, 0.0025]])
    torch.testing.assert_close(cold, p2 / p2.sum())


# ----------------------------------------------------------------- a process with known odds

TRANSITIONS = np.array(
    [  # rows: previous base A C G T; columns: next base
        [0.05, 0.85, 0.05, 0.05],
        [0.05, 0.05, 0.85, 0.05],
        [0.05, 0.05, 0.05, 0.85],
        [0.70, 0.10, 0.10, 0.10],
    ]
)
STOP = 0.05  # after each residue the sequence ends with this probability


def _markov_fasta(path: Path, n: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    seqs = []
    for _ in range(n):
        s = [int(rng.integers(4))]
        while rng.random() > STOP:
            s.append(int(rng.choice(4, p=TRANSITIONS[s[-1]])))
        seqs.append("".join("ACGT"[i] for i in s))
    path.write_text("".join(f">s{i}\n{s}\n" for i, s in enumerate(seqs)))
    return seqs


def _true_loss(seqs: list[str]) -> float:
    """Mean negative log-probability per scored position under the generating process."""
    total, count = 0.0, 0
    for s in seqs:
        idx = ["ACGT".index(c) for c in s]
        total -= math.log(0.25)
        for a, b in zip(idx, idx[1:], strict=False):
            total -= math.log((1 - STOP) * TRANSITIONS[a, b])
        total -= math.log(STOP)
        count += len(s) + 1
    return total / count


@pytest.fixture(scope="module")
def markov(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, list[str]]:
    folder = tmp_path_factory.mktemp("markov")
    train_fa, test_fa = folder / "train.fa", folder / "test.fa"
    _markov_fasta(train_fa, 1500, seed=1)
    test_seqs = _markov_fasta(test_fa, 300, seed=2)
    cfg = RunConfig()
    cfg.model.arch, cfg.model.hidden_size = "gru", 32
    cfg.training.epochs, cfg.training.lr, cfg.training.patience = 8, 0.01, 0
    out = train(train_fa, None, folder / "lm.bsnn", cfg, task="language-model")
    assert out.manifest["task"]["classes"] == ["A", "C", "G", "T", "end"]
    return out.output, test_fa, test_seqs


def test_learns_the_odds_of_a_known_process(markov: tuple[Path, Path, list[str]]) -> None:
    from bioseqnn.ops.evaluate import evaluate

    model, test_fa, test_seqs = markov
    ev = evaluate(model, test_fa, None)
    best = _true_loss(test_seqs)  # no model can do better on average
    uniform = math.log(5)
    assert ev.metrics["positions"] == sum(len(s) + 1 for s in test_seqs)
    assert best - 0.01 < ev.metrics["loss"] < best + 0.05, (ev.metrics["loss"], best, uniform)
    assert ev.metrics["perplexity"] == pytest.approx(math.exp(ev.metrics["loss"]), rel=1e-4)


def test_samples_follow_the_process(markov: tuple[Path, Path, list[str]]) -> None:
    model = load_bundle(markov[0])
    seqs = list(sample(model, 400, sampling=Sampling(max_length=400), seed=7))
    counts = np.zeros((4, 4))
    for s in seqs:
        idx = ["ACGT".index(c) for c in s]
        for a, b in zip(idx, idx[1:], strict=False):
            counts[a, b] += 1
    freq = counts / counts.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(freq, TRANSITIONS, atol=0.04)
    # lengths are geometric with mean 1 / STOP = 20
    assert 16 < np.mean([len(s) for s in seqs]) < 24
    # sample i depends on the seed and i alone: not on how many or how they are batched
    again = list(sample(model, 5, sampling=Sampling(max_length=400), seed=7, batch_size=2))
    assert again == seqs[:5]
    assert list(sample(model, 5, sampling=Sampling(max_length=400), seed=8)) != seqs[:5]
    # greedy (top-k 1): the most likely path whatever the seed: A -> C -> G -> T -> A ...
    greedy = list(sample(model, 3, sampling=Sampling(top_k=1, max_length=12), prefix="A", seed=3))
    assert greedy == ["ACGTACGTACGT"] * 3
    # min/max length and prefix
    bounded = list(
        sample(model, 50, sampling=Sampling(min_length=10, max_length=15), prefix="tt", seed=1)
    )
    assert all(s.startswith("TT") and 10 <= len(s) <= 15 for s in bounded)


def test_scores_are_the_log_probabilities_of_each_step(
    markov: tuple[Path, Path, list[str]],
) -> None:
    bundle = load_bundle(markov[0])
    seqs = [b"ACGTAC", b"TTTTTTTTTA", b"G"]
    codes, offsets, _ = Encoder(DNA).encode(seqs)
    data = SequenceSet(["a", "b", "c"], codes, offsets)
    width = 11
    x = torch.zeros(3, width - 1, 4)
    for i, s in enumerate(seqs):
        x[i, : len(s)] = _onehot(torch.tensor(["ACGT".index(c) for c in s.decode()]))
    with torch.no_grad():
        data.positions = position_targets(data, DNA)
        y = batch_targets(bundle.task, data, np.arange(len(data)))
        total, count = sequence_scores(bundle.model(x, torch.tensor([6, 10, 1])), y)
        for i, s in enumerate(seqs):
            steps = StepDecoder(bundle.model)
            logits = steps(torch.zeros(1, 4))
            want = 0.0
            for c in s.decode():
                k = "ACGT".index(c)
                want += float(torch.log_softmax(logits.double(), -1)[0, k])
                logits = steps(_onehot(torch.tensor([k])))
            want += float(torch.log_softmax(logits.double(), -1)[0, 4])  # then the end
            assert total[i] == pytest.approx(want, abs=1e-4)
            assert count[i] == len(s) + 1
    # the chain's favourite path scores far higher than its least likely one
    assert total[0] / count[0] > total[1] / count[1] + 1.0


# ----------------------------------------------------------------- the command line, real data


@pytest.fixture(scope="module")
def peptide_lm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An LSTM language model of the hemolytic peptides, trained by the real command."""
    out = tmp_path_factory.mktemp("peptide_lm") / "peptides.bsnn"
    run = run_bioseqnn(
        "train",
        EXAMPLES / "hemolytic.fasta",
        "--task",
        "language-model",
        "--arch",
        "lstm",
        "--hidden-size",
        "64",
        "--epochs",
        "15",
        "--lr",
        "0.005",
        "--schedule",
        "cosine",
        "-o",
        out,
    )
    assert run.returncode == 0, run.stderr.decode()
    assert run.stdout == b""
    assert b"val_perplexity" in run.stderr
    return out


def _fasta_records(path: Path) -> list[tuple[str, str]]:
    records, rid = [], None
    for line in path.read_text().splitlines():
        if line.startswith(">"):
            rid = line[1:].split()[0]
            records.append((rid, ""))
        elif line.strip():
            records[-1] = (records[-1][0], records[-1][1] + line.strip())
    return records


@pytest.mark.slow
def test_real_peptides_beat_their_residue_composition(peptide_lm: Path, cli) -> None:
    """On held-out peptides the model must do better than knowing only how often each
    residue occurs and how long peptides are (the best order-0 model of these data)."""
    records = _fasta_records(EXAMPLES / "hemolytic.fasta")
    manifest = json.loads(cli("info", peptide_lm, "--json").out)
    assert manifest["task"]["kind"] == "language-model"
    assert manifest["per_position"] is True
    shown = run_bioseqnn("info", peptide_lm).stdout.decode()
    assert "lstm, hidden-size 64, layers 1, bidirectional False, language" in shown
    assert "A, C, D, E, F, G, H, I, K, L, M, N, P, Q, R, S, T, V, W, Y, end" in shown
    counts = {c: 0 for c in "ACDEFGHIKLMNPQRSTVWY"}
    for _, seq in records:
        for c in seq.upper():
            if c in counts:
                counts[c] += 1
    residues = sum(counts.values())
    positions = residues + len(records)
    # order 0: each residue with its frequency (times the chance of going on), ends at
    # the mean rate: its cross-entropy per position, over every record
    go_on = residues / positions
    order0 = (
        -(
            sum(n * math.log(go_on * n / residues) for n in counts.values() if n)
            + len(records) * math.log(1 - go_on)
        )
        / positions
    )
    validation = manifest["metrics"]["best"]["val_loss"]
    assert validation < order0 - 0.06, (validation, order0)  # measured: 2.803 vs 2.889


@pytest.mark.slow
def test_predict_scores_every_record_in_order(peptide_lm: Path, tmp_path: Path) -> None:
    fasta = EXAMPLES / "hemolytic.fasta"
    records = _fasta_records(fasta)
    run = run_bioseqnn("predict", peptide_lm, fasta)
    assert run.returncode == 0, run.stderr.decode()
    lines = run.stdout.decode().splitlines()
    assert lines[0].split("\t") == ["id", "length", "log_likelihood", "perplexity"]
    rows = [line.split("\t") for line in lines[1:]]
    assert [r[0] for r in rows] == [rid for rid, _ in records]
    for (_, seq), (_, length, ll, ppl) in zip(records, rows, strict=True):
        assert int(length) == len(seq)
        scored = len(seq) + 1 - sum(c.upper() in "XBZJ" for c in seq)
        assert float(ppl) == pytest.approx(math.exp(-float(ll) / scored), rel=2e-5)
    # streamed from stdin, gzip-compressed: the same bytes
    piped = run_bioseqnn("predict", peptide_lm, "-", stdin=gzip.compress(fasta.read_bytes()))
    assert piped.returncode == 0 and piped.stdout == run.stdout
    # evaluate's perplexity is that of every position together
    ev = run_bioseqnn("evaluate", peptide_lm, fasta)
    assert ev.returncode == 0, ev.stderr.decode()
    summary = json.loads(ev.stdout)
    total = sum(float(r[2]) for r in rows)
    positions = sum(len(s) + 1 - sum(c.upper() in "XBZJ" for c in s) for _, s in records)
    assert summary["metrics"]["positions"] == positions
    assert summary["metrics"]["perplexity"] == pytest.approx(math.exp(-total / positions), rel=1e-4)


@pytest.mark.slow
def test_generate_writes_reproducible_fasta(peptide_lm: Path, tmp_path: Path) -> None:
    run = run_bioseqnn("generate", peptide_lm, "-n", "20", "--seed", "5")
    assert run.returncode == 0, run.stderr.decode()
    lines = run.stdout.decode().splitlines()
    assert lines[0::2] == [f">sample_{i}" for i in range(1, 21)]
    longest = max(len(s) for _, s in _fasta_records(EXAMPLES / "hemolytic.fasta"))
    assert all(
        line and set(line) <= set("ACDEFGHIKLMNPQRSTVWY") and len(line) <= longest
        for line in lines[1::2]
    )
    assert len(set(lines[1::2])) > 15  # samples, not one sequence over and over
    again = run_bioseqnn(
        "generate",
        peptide_lm,
        "-n",
        "5",
        "--seed",
        "5",
        "--batch-size",
        "2",
        "-o",
        tmp_path / "s.fa.gz",
        "--id-prefix",
        "pep",
    )
    assert again.returncode == 0 and again.stdout == b""
    text = gzip.decompress((tmp_path / "s.fa.gz").read_bytes()).decode().splitlines()
    assert text[1::2] == lines[1:10:2] and text[0] == ">pep1"
    # every sample starts with the prefix; top-k 1 makes them all the most likely one
    greedy = run_bioseqnn(
        "generate", peptide_lm, "-n", "3", "--prefix", "GLf", "--top-k", "1", "--seed", "1"
    )
    seqs = greedy.stdout.decode().splitlines()[1::2]
    assert len(set(seqs)) == 1 and seqs[0].startswith("GLF")
    assert run_bioseqnn("generate", peptide_lm, "-n", "0").stdout == b""


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["generate", "{lm}", "--temperature", "0"], "--temperature must be a positive number"),
        (["generate", "{lm}", "--top-p", "1.5"], "--top-p must be in (0, 1]"),
        (["generate", "{lm}", "--seed", "-1"], "--seed must be from 0 to 2^63 - 1"),
        (
            ["generate", "{lm}", "--min-length", "50", "--max-length", "20"],
            "--min-length 50 is more than --max-length 20",
        ),
        (
            ["generate", "{lm}", "--min-length", "200"],
            "--min-length 200 is more than the default "
            "--max-length 98 (the longest training sequence); raise --max-length",
        ),
        (["generate", "{lm}", "--min-length", "0"], "Invalid value for '--min-length'"),
        (["generate", "{lm}", "--prefix", "MKL*"], "--prefix ends with a stop ('*')"),
        (["generate", "{lm}", "--prefix", "AC1"], "--prefix: '1' at position 3 is not a protein"),
        (["generate", "{lm}", "--id-prefix", "my sample"], "record names need text without spaces"),
        (["generate", "{classifier}"], "generate needs a language model"),
        (["predict", "{lm}", "{fasta}", "--format", "fasta"], "does not apply"),
        (["evaluate", "{lm}", "{fasta}", "{labels}"], "evaluated on sequences alone"),
        (["evaluate", "{classifier}", "{fasta}"], "a labels table is required"),
        (
            ["train", "{fasta}", "{labels}", "--task", "language-model"],
            "learns from the sequences alone; drop a labels table",
        ),
        (
            ["train", "{fasta}", "--task", "language-model", "--bidirectional"],
            "a language model reads left to right: use --unidirectional",
        ),
        (
            ["train", "{fasta}", "--task", "language-model", "--arch", "cnn"],
            "a language model reads left to right, and cnn reads around each position",
        ),
        (
            ["train", "{fasta}", "--task", "language-model", "--class-weight", "balanced"],
            "--class-weight is not available for --task language-model",
        ),
        (
            ["train", "{fasta}", "--task", "language-model", "--monitor", "val_auroc"],
            "cannot monitor 'val_auroc'",
        ),
    ],
)
def test_usage_errors(
    cli, peptide_lm: Path, hemolytic_model: Path, tmp_path: Path, args: list[str], message: str
) -> None:
    names = {
        "lm": peptide_lm,
        "classifier": hemolytic_model,
        "fasta": EXAMPLES / "hemolytic.fasta",
        "labels": EXAMPLES / "hemolytic.csv",
    }
    result = cli(*[a.format(**names) for a in args], "-o", tmp_path / "out")
    assert result.code == 2, result.err
    assert message in result.err
    assert result.err.count("error:") == 1 and "Traceback" not in result.err
    assert result.err.splitlines()[-1].startswith("bioseqnn: error: ")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_ensemble_of_language_models(cli, peptide_lm: Path, tmp_path: Path) -> None:
    other = tmp_path / "gru.bsnn"
    fasta = EXAMPLES / "hemolytic.fasta"
    trained = cli(
        "train",
        fasta,
        "--task",
        "language-model",
        "--arch",
        "transformer",
        "--d-model",
        "32",
        "--heads",
        "2",
        "--ff-size",
        "64",
        "--epochs",
        "2",
        "-o",
        other,
        "--quiet",
    )
    assert trained.code == 0, trained.err
    both = tmp_path / "both.bsnn"
    assert cli("ensemble", peptide_lm, other, "-o", both).code == 0
    scores = {}
    for name, path in (("a", peptide_lm), ("b", other), ("ab", both)):
        result = cli("predict", path, fasta)
        assert result.code == 0, result.err
        scores[name] = np.array(
            [float(line.split("\t")[2]) for line in result.out.splitlines()[1:]]
        )
    # the ensemble's probabilities are the members' mean, and the log of a mean is at
    # least the mean of the logs at every step (strictly where the members disagree)
    assert np.all(scores["ab"] >= (scores["a"] + scores["b"]) / 2 - 1e-4)
    assert np.mean(scores["ab"] > (scores["a"] + scores["b"]) / 2 + 1e-3) > 0.9
    sampled = cli("generate", both, "-n", "4", "--seed", "2")
    assert sampled.code == 0, sampled.err
    assert len(sampled.out.splitlines()) == 8


@pytest.mark.parametrize("suffix", [".onnx", ".pt"])
@pytest.mark.parametrize("arch", ["gru", "transformer"])
def test_export_gives_the_next_residue_probabilities(
    cli, tmp_path: Path, arch: str, suffix: str
) -> None:
    pytest.importorskip("onnxruntime")
    fasta = EXAMPLES / "hemolytic.fasta"
    model = tmp_path / "lm.bsnn"
    extra = (
        ["--d-model", "16", "--heads", "2", "--ff-size", "32"]
        if arch == "transformer"
        else ["--hidden-size", "16"]
    )
    assert (
        cli(
            "train",
            fasta,
            "--task",
            "language-model",
            "--arch",
            arch,
            *extra,
            "--epochs",
            "1",
            "-o",
            model,
            "--quiet",
        ).code
        == 0
    )
    out = tmp_path / f"lm{suffix}"
    result = cli("export", model, "-o", out)
    assert result.code == 0, result.err
    sidecar = json.loads(out.with_name(out.name + ".json").read_text())
    assert sidecar["outputs"][0]["shape"][1] == "length + 1"
    records = _fasta_records(fasta)[:8]
    seqs = [s for _, s in records]
    table = sidecar["encoding"]
    x = np.zeros((len(seqs), max(map(len, seqs)), 20), dtype=np.float32)
    for i, s in enumerate(seqs):
        for j, c in enumerate(s.upper()):
            x[i, j] = table[c]
    lengths = np.array([len(s) for s in seqs], dtype=np.int64)
    if suffix == ".onnx":
        import onnxruntime

        session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
        probs = session.run(["outputs"], {"onehot": x, "lengths": lengths})[0]
        # the output's position axis is named apart from the input's: it is one longer
        assert session.get_outputs()[0].shape[1] == "length_plus_1"
        assert session.get_inputs()[0].shape[1] == "length"
    else:
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            loaded = torch.jit.load(str(out))
        probs = loaded(torch.from_numpy(x), torch.from_numpy(lengths)).detach().numpy()
    assert probs.shape == (8, lengths.max() + 1, 21)
    # predict's log-likelihood, from the exported probabilities alone
    predicted = cli("predict", model, fasta)
    want = [float(line.split("\t")[2]) for line in predicted.out.splitlines()[1:9]]
    classes = sidecar["task"]["classes"]
    for i, s in enumerate(seqs):
        steps = [classes.index(c) for c in s.upper()] + [classes.index("end")]
        got = sum(math.log(probs[i, t, k]) for t, k in enumerate(steps))
        assert got == pytest.approx(want[i], rel=1e-5, abs=2e-4)  # predict: 6 digits
        assert np.all(probs[i, len(s) + 1 :] == 0)  # zero past the end


def test_unidirectional_per_position_model_exports_to_onnx(
    cli, examples: Path, tmp_path: Path
) -> None:
    """A left-to-right RNN never reads the lengths; the ONNX graph still takes them."""
    pytest.importorskip("onnxruntime")
    model = tmp_path / "ss.bsnn"
    assert (
        cli(
            "train",
            examples / "ss_train.fasta",
            examples / "ss_train_ss3.fasta",
            "--arch",
            "gru",
            "--hidden-size",
            "8",
            "--epochs",
            "1",
            "-o",
            model,
            "--quiet",
        ).code
        == 0
    )
    result = cli("export", model, "-o", tmp_path / "ss.onnx")
    assert result.code == 0, result.err
    assert "max abs diff" in result.err


def test_dna_model_writes_a_prefix_in_its_own_letters(markov: tuple[Path, Path, list[str]]) -> None:
    model = load_bundle(markov[0])
    got = list(sample(model, 2, sampling=Sampling(max_length=8), prefix="acgu", seed=1))
    assert all(s.startswith("ACGT") and set(s) <= set("ACGT") for s in got)
    assert got == list(sample(model, 2, sampling=Sampling(max_length=8), prefix="ACGT", seed=1))


def test_transformer_max_length_counts_residues(cli, tmp_path: Path) -> None:
    fasta = tmp_path / "fixed.fa"
    fasta.write_text("".join(f">s{i}\n{'ACGT'[i % 4] * 20}\n" for i in range(40)))
    model = tmp_path / "t.bsnn"
    trained = cli(
        "train",
        fasta,
        "--task",
        "language-model",
        "--arch",
        "transformer",
        "--d-model",
        "16",
        "--heads",
        "2",
        "--ff-size",
        "16",
        "--max-length",
        "20",
        "--epochs",
        "1",
        "-o",
        model,
        "--quiet",
    )
    assert trained.code == 0, trained.err  # 20 residues fit --max-length 20
    assert (
        json.loads(cli("info", model, "--json").out)["max_length_policy"]
        == "error: sequences longer than 20 are rejected"
    )
    too_long = cli("generate", model, "--max-length", "21")
    assert (
        too_long.code == 2
        and "--max-length 21 is more than this model's max-length 20" in too_long.err
    )
    assert cli("generate", model, "-n", "2", "--max-length", "20").code == 0


@pytest.mark.parametrize("arch", ["gru"])
@pytest.mark.slow
def test_evaluate_draws_its_plots(cli, tmp_path: Path, arch: str) -> None:
    pytest.importorskip("matplotlib")
    model = tmp_path / "lm.bsnn"
    assert (
        cli(
            "train",
            EXAMPLES / "promoters.fasta",
            "--task",
            "language-model",
            "--arch",
            arch,
            "--hidden-size",
            "8",
            "--epochs",
            "1",
            "-o",
            model,
            "--quiet",
        ).code
        == 0
    )
    result = cli(
        "evaluate",
        model,
        EXAMPLES / "promoters.fasta",
        "--plots",
        tmp_path / "plots",
        "-o",
        tmp_path / "ev.json",
    )
    assert result.code == 0, result.err
    assert sorted(p.name for p in (tmp_path / "plots").iterdir()) == [
        "confusion.png",
        "pr.png",
        "roc.png",
    ]
    assert json.loads((tmp_path / "ev.json").read_text())["classes"] == ["A", "C", "G", "T", "end"]


@pytest.fixture(scope="module")
def constant_lm(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """Write a DNA language model whose every step gives the same odds (A, C, G, T equal,
    the end ``p_end``), its weights zero but the output bias: its samples depend on the
    random numbers alone, the same on every machine. ``longest`` overwrites the
    manifest's data.lengths.max (the default --max-length)."""
    from bioseqnn.bundle import save_bundle

    folder = tmp_path_factory.mktemp("constant_lm")
    fasta = folder / "short.fa"
    fasta.write_text("".join(f">s{i}\n{'ACGT' * (1 + i % 5)}\n" for i in range(300)))
    cfg = RunConfig()
    cfg.model.arch, cfg.model.hidden_size = "gru", 4
    cfg.training.epochs = 1
    trained = train(fasta, None, folder / "trained.bsnn", cfg, task="language-model").output

    def write(name: str, p_end: float, longest: int | None = None) -> Path:
        if (folder / name).exists():
            return folder / name
        bundle = load_bundle(trained)
        with torch.no_grad():
            for weight in bundle.model.parameters():
                weight.zero_()
            bundle.model.head.bias[-1] = math.log(4 * p_end / (1 - p_end))
        if longest is not None:
            bundle.manifest["data"]["lengths"]["max"] = longest
        save_bundle(folder / name, bundle.model, bundle.manifest)
        return folder / name

    return write


# What generate wrote for these options (with the model of constant_lm("p10.bsnn", 0.1))
# before it drew its random numbers in blocks, one np.random.default_rng([seed, i])
# .random(max_length) a sample: the prefix, then each sample's residues after it. The
# blocks continue the same stream, so the samples must not change, whatever the block.
SAMPLES_BEFORE_BLOCKS = [
    (
        ["-n", "6", "--seed", "11", "--max-length", "40", "--batch-size", "4"],
        "",
        "AGGAA A TCGC TTAGACCATAAGTGGAAACTACCTGATT ACGGAAGT AACAGGG",
    ),
    (  # the third sample reaches --max-length
        ["-n", "3", "--seed", "2", "--max-length", "12", "--min-length", "5"],
        "AC",
        "TAGTAACGGA ATAGATAA CGGGCGGC",
    ),
    (
        ["-n", "4", "--seed", "5", "--max-length", "90", "--batch-size", "3"],
        "ACGT" * 9 + "A",
        "CATCTCCTGGCA CGGATACG GGTCTGCC AGATAGGACGGCCTCA",
    ),
]


@pytest.mark.parametrize("block", [DRAW_BLOCK, 16, 1])
def test_generate_gives_the_samples_it_gave_before_drawing_in_blocks(
    cli, constant_lm, monkeypatch: pytest.MonkeyPatch, block: int
) -> None:
    """With blocks of 16 or 1 draws, the samples and the prefix span several."""
    monkeypatch.setattr("bioseqnn.variants.lm.DRAW_BLOCK", block)
    model = constant_lm("p10.bsnn", 0.1)
    for args, prefix, expected in SAMPLES_BEFORE_BLOCKS:
        result = cli("generate", model, *args, *(["--prefix", prefix] if prefix else []))
        assert result.code == 0, result.err
        lines = result.out.splitlines()
        assert lines[0::2] == [f">sample_{i}" for i in range(1, len(lines) // 2 + 1)]
        assert all(line.startswith(prefix) for line in lines[1::2])
        assert " ".join(line[len(prefix) :] for line in lines[1::2]) == expected


@pytest.mark.slow
def test_a_long_sample_spans_blocks_of_draws_unchanged(constant_lm) -> None:
    """Samples as drawn before the blocks, one of them longer than a block of draws
    (their lengths and the sha256 of their text)."""
    model = load_bundle(constant_lm("p3000.bsnn", 1 / 3000))
    got = list(sample(model, 3, sampling=Sampling(max_length=6000), seed=1))
    assert [len(s) for s in got] == [1101, 1566, 5998] and DRAW_BLOCK < 5998
    assert (
        hashlib.sha256("\n".join(got).encode()).hexdigest()
        == "577931366286118a73b0cde988a1098a47ff4602e06596fc28b0bdd6c5c65ce7"
    )


_PEAK_MEMORY = """\
import json, resource, subprocess, sys
run = subprocess.run(sys.argv[1:], capture_output=True, text=True)
peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(json.dumps({"code": run.returncode, "out": run.stdout, "err": run.stderr, "peak": peak}))
"""


def _generate_peak(*args: str | Path) -> dict:
    """Run ``bioseqnn generate ARGS`` from a fresh interpreter that has no other child:
    its exit code, output and peak resident memory (ru_maxrss, in that platform's units)."""
    command = [sys.executable, "-m", "bioseqnn", "generate", *map(str, args)]
    probe = subprocess.run(
        [sys.executable, "-c", _PEAK_MEMORY, *command],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    return json.loads(probe.stdout)


@pytest.mark.slow
@pytest.mark.skipif(sys.platform == "win32", reason="needs the resource module")
def test_generate_memory_follows_the_samples_not_max_length(constant_lm) -> None:
    """Samples that end at once take the memory of a short --max-length, however long
    --max-length is (random numbers for all of it once took 16 bytes a position a sample:
    3.4 GB here)."""
    model = constant_lm("p90.bsnn", 0.9)
    short = _generate_peak(model, "-n", "2", "--max-length", "100")
    long = _generate_peak(model, "-n", "2", "--max-length", "100000000")
    assert short["code"] == 0 and long["code"] == 0, long["err"]
    assert long["out"] == short["out"] and long["out"].count(">") == 2
    assert long["peak"] < 1.5 * short["peak"], (short["peak"], long["peak"])


@pytest.mark.parametrize("value", ["99999999999999999999999", "2147483648"])
def test_generate_refuses_a_max_length_past_the_bound(cli, constant_lm, value: str) -> None:
    result = cli("generate", constant_lm("p90.bsnn", 0.9), "-n", "2", "--max-length", value)
    assert result.code == 2, result.err
    assert result.err.strip().splitlines() == [
        "bioseqnn: error: --max-length must be from 0 to 2147483647 "
        "(0: the longest training sequence)"
    ]
    with pytest.raises(UsageError, match="--max-length must be from 0 to 2147483647"):
        Sampling(max_length=int(value)).check()
    Sampling(max_length=2147483647).check()  # the bound itself is taken


def test_a_model_file_that_claims_too_long_a_training_sequence(cli, constant_lm) -> None:
    """The default --max-length is the manifest's longest training sequence: one longer
    than any sample can be is a one-line error, and --max-length goes around it."""
    model = constant_lm("lying.bsnn", 0.9, longest=2**63)
    result = cli("generate", model, "-n", "2")
    assert result.code == 1, result.err
    assert "unexpected" not in result.err and "Traceback" not in result.err
    assert result.err.strip().splitlines() == [
        f"bioseqnn: error: {model}: its longest training sequence (data.lengths.max "
        f"{2**63}) is more than 2147483647 residues; give --max-length"
    ]
    given = cli("generate", model, "-n", "2", "--max-length", "30")
    assert given.code == 0 and given.out.count(">") == 2, given.err
