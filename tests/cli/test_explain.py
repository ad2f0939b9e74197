"""`bioseqnn explain`: attributions land on a planted motif; ISM agrees with predict; formats."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest

from bioseqnn.bundle import load_bundle
from bioseqnn.data.sets import SequenceSet
from bioseqnn.encoding import Encoder
from bioseqnn.ops.explain import explain, explain_bundle

MOTIF = "GATTACA"
LENGTH = 32


def _planted(path: Path, n: int = 600, seed: int = 7) -> tuple[Path, Path]:
    """Random DNA; every other sequence carries MOTIF at a random place, the rest never do."""
    rng = np.random.default_rng(seed)
    fasta, labels = path / "motif.fasta", path / "motif.csv"
    with open(fasta, "w") as fa, open(labels, "w") as lab:
        lab.write("id,label\n")
        for i in range(n):
            positive = i % 2 == 1
            while True:
                seq = list(rng.choice(list("ACGT"), LENGTH))
                if positive:
                    start = int(rng.integers(0, LENGTH - len(MOTIF) + 1))
                    seq[start : start + len(MOTIF)] = MOTIF
                text = "".join(seq)
                if positive or MOTIF not in text:
                    break
            fa.write(f">s{i}\n{text}\n")
            lab.write(f"s{i},{'motif' if positive else 'background'}\n")
    return fasta, labels


@pytest.fixture(scope="module")
def motif_data(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """A bidirectional GRU trained on the planted data (val accuracy ~0.98)."""
    from bioseqnn.cli import main

    root = tmp_path_factory.mktemp("motif")
    fasta, labels = _planted(root)
    model = root / "motif.bsnn"
    assert (
        main(
            [
                "train",
                str(fasta),
                str(labels),
                "-o",
                str(model),
                "--arch",
                "gru",
                "--hidden-size",
                "16",
                "--bidirectional",
                "--epochs",
                "10",
                "--lr",
                "0.01",
                "--batch-size",
                "32",
                "--patience",
                "0",
                "--dropout",
                "0",
                "--schedule",
                "none",
                "--device",
                "cpu",
                "--quiet",
            ]
        )
        == 0
    )
    positives = root / "positives.fasta"
    records = fasta.read_text().split(">")[1:]
    positives.write_text("".join(">" + r for r in records if MOTIF in r))
    return model, positives, root


@pytest.mark.parametrize(
    ("method", "min_mass"), [("saliency", 0.6), ("grad-input", 0.6), ("ism", 0.8)]
)
def test_attribution_mass_concentrates_on_the_planted_motif(
    motif_data, method: str, min_mass: float
) -> None:
    model, positives, _ = motif_data
    result = explain(model, positives, method=method, target="motif", device="cpu")
    masses, top_in_motif = [], 0
    for rec in result.records:
        start = rec.residues.index(MOTIF)
        on_motif = np.zeros(LENGTH, dtype=bool)
        on_motif[start : start + len(MOTIF)] = True
        magnitude = np.abs(rec.scores)
        masses.append(magnitude[on_motif].sum() / magnitude.sum())
        top_in_motif += bool(on_motif[np.argmax(rec.scores)])
    share = len(MOTIF) / LENGTH  # 0.22: the mass a position-blind method would give
    assert len(masses) == 300
    assert np.mean(masses) > min_mass > 2.5 * share
    assert top_in_motif / len(masses) >= 0.9


def test_ism_deltas_equal_the_predicted_change_of_each_mutant(cli, motif_data) -> None:
    model, positives, root = motif_data
    first = positives.read_text().split(">")[1]
    rid, seq = first.split()[0], first.split()[1]
    one = root / "one.fasta"
    one.write_text(f">{rid}\n{seq}\n")
    out = root / "ism.tsv"
    assert (
        cli("explain", model, one, "--method", "ism", "--target", "motif", "-o", out, "-q").code
        == 0
    )
    with open(out, newline="") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    assert list(rows[0]) == ["id", "target", "position", "residue", "score", "A", "C", "G", "T"]
    assert [r["residue"] for r in rows] == list(seq)
    assert [int(r["position"]) for r in rows] == list(range(1, len(seq) + 1))

    # Predict a few mutants with `bioseqnn predict` and compare the log-odds change.
    picks = [(p, b) for p in (0, seq.index(MOTIF) + 2, len(seq) - 1) for b in "ACGT" if b != seq[p]]
    mutants = root / "mutants.fasta"
    mutants.write_text(
        f">ref\n{seq}\n" + "".join(f">m{p}_{b}\n{seq[:p]}{b}{seq[p + 1 :]}\n" for p, b in picks)
    )
    pred = root / "pred.tsv"
    assert cli("predict", model, mutants, "-o", pred).code == 0
    with open(pred, newline="") as fh:
        probs = {r["id"]: float(r["prob_motif"]) for r in csv.DictReader(fh, delimiter="\t")}

    def log_odds(p: float) -> float:
        return math.log(p / (1 - p))

    for p, b in picks:
        expected = log_odds(probs[f"m{p}_{b}"]) - log_odds(probs["ref"])
        assert float(rows[p][b]) == pytest.approx(expected, abs=2e-3)
    for r in rows:
        assert r[r["residue"]] == "0"  # the residue itself is no substitution (not "-0")
        subs = [float(r[b]) for b in "ACGT" if b != r["residue"]]
        assert float(r["score"]) == pytest.approx(-np.mean(subs), abs=1e-5)


def test_ism_packs_mutants_into_as_few_forward_passes_as_the_batch_allows(motif_data) -> None:
    model, positives, _ = motif_data
    bundle = load_bundle(model)
    seqs = [line for line in positives.read_text().split() if not line.startswith(">")][:5]
    seqs[1] = seqs[1][:20]  # mixed lengths pack together too
    codes, offsets, _ = Encoder(bundle.alphabet).encode([s.encode() for s in seqs])
    data = SequenceSet([f"r{i}" for i in range(5)], codes, offsets)
    calls = []
    hook = bundle.model.register_forward_hook(lambda m, i, o: calls.append(len(o)))
    try:
        result = explain_bundle(bundle, data, "ism", "motif", batch_size=64)
    finally:
        hook.remove()
    mutants = 3 * sum(len(s) for s in seqs)  # 3 substitutions per DNA position
    assert sum(calls) == 5 + mutants
    assert len(calls) == 1 + math.ceil(mutants / 64)  # one pass for the references
    assert [r.deltas.shape for r in result.records] == [(len(s), 4) for s in seqs]


def test_gradients_do_not_depend_on_batch_companions_or_padding(motif_data) -> None:
    model, positives, _ = motif_data
    bundle = load_bundle(model)
    seqs = [line for line in positives.read_text().split() if not line.startswith(">")][:6]
    seqs = [seqs[0][:12], *seqs[1:]]
    codes, offsets, _ = Encoder(bundle.alphabet).encode([s.encode() for s in seqs])
    data = SequenceSet([f"r{i}" for i in range(len(seqs))], codes, offsets)
    together = explain_bundle(bundle, data, "grad-input", "motif", batch_size=8)
    alone = explain_bundle(bundle, data.subset(np.array([0])), "grad-input", "motif")
    np.testing.assert_allclose(together.records[0].scores, alone.records[0].scores, atol=1e-6)
    assert len(together.records[0].scores) == 12


def test_target_of_the_other_class_flips_the_gradient_sign(motif_data) -> None:
    model, positives, root = motif_data
    few = root / "few.fasta"
    few.write_text("".join(positives.read_text().splitlines(keepends=True)[:40]))
    toward = explain(model, few, method="grad-input", target="motif", device="cpu")
    away = explain(model, few, method="grad-input", target="background", device="cpu")
    assert len(toward.records) == 20
    for a, b in zip(toward.records, away.records, strict=True):
        np.testing.assert_allclose(a.scores, -b.scores, atol=1e-6)
        assert a.prediction == pytest.approx(1 - b.prediction, abs=1e-6)
        assert (a.target, b.target) == ("motif", "background")


def test_long_format_over_all_records_and_bad_options(
    cli, hemolytic_model, examples, tmp_path
) -> None:
    out = tmp_path / "attr.tsv"
    subset = tmp_path / "some.fasta"
    subset.write_text(
        "".join((examples / "hemolytic.fasta").read_text().splitlines(keepends=True)[:400])
    )
    result = cli("explain", hemolytic_model, subset, "-o", out, "--method", "saliency", "--quiet")
    assert result.code == 0, result.err
    with open(out, newline="") as fh:
        rows = list(csv.reader(fh, delimiter="\t"))
    assert rows[0] == ["id", "target", "position", "residue", "score"]
    lengths = [len(line) for line in subset.read_text().split() if not line.startswith(">")]
    assert len(lengths) == 200
    assert len(rows) - 1 == sum(lengths)
    assert rows[1][:4] == ["peptide_pm_1", "1", "1", "G"]
    assert all(float(r[4]) >= 0 for r in rows[1:])  # saliency is unsigned

    result = cli("explain", hemolytic_model, subset, "--target", "x")
    assert result.code == 2 and "choose one of: 0, 1" in result.err and result.out == ""
    result = cli("explain", hemolytic_model, subset, "--method", "magic")
    assert result.code == 2
    for option in ("--steps", "--shuffles"):  # their cost grows without bound: capped
        result = cli("explain", hemolytic_model, subset, option, "1001", "-o", out)
        assert result.code == 2 and "less than or equal to 1000" in result.err
    for seed, message in [("-1", "greater than or equal to 0"), ("1" + "0" * 20, "less than")]:
        result = cli("explain", hemolytic_model, subset, "--seed", seed, "-o", out)
        assert result.code == 2 and message in result.err, result.err  # as train's --seed


def test_attribution_sizes_are_bounded_in_python_too(hemolytic_model, examples) -> None:
    import bioseqnn
    from bioseqnn.interpret.attribution import AttributionOptions

    for opts, message in [
        (AttributionOptions(steps=10**9), "--steps must be at most 1,000"),
        (AttributionOptions(shuffles=10**9), "--shuffles must be at most 1,000"),
    ]:
        with pytest.raises(bioseqnn.UsageError, match=message):
            bioseqnn.explain(
                hemolytic_model, ["KLLKLLKK"], method="integrated-gradients", options=opts
            )


@pytest.mark.slow
def test_explain_reads_stdin(motif_data) -> None:
    from conftest import run_bioseqnn

    model, positives, _ = motif_data
    head = "".join(positives.read_text().splitlines(keepends=True)[:4])
    proc = run_bioseqnn("explain", model, "-", stdin=head.encode())
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.decode().splitlines()
    assert lines[0].split("\t") == ["id", "target", "position", "residue", "score"]
    assert len(lines) == 1 + 2 * LENGTH


def test_ism_of_long_sequences_is_split_into_bounded_blocks(motif_data, monkeypatch) -> None:
    import importlib

    # the module, where MUTANT_BYTES is read
    ex = importlib.import_module("bioseqnn.ops.explain")

    model, positives, _ = motif_data
    bundle = load_bundle(model)
    seqs = [line for line in positives.read_text().split() if not line.startswith(">")][:3]
    codes, offsets, _ = Encoder(bundle.alphabet).encode([s.encode() for s in seqs])
    data = SequenceSet(["a", "b", "c"], codes, offsets)
    whole = explain_bundle(bundle, data, "ism", "motif", batch_size=32)
    monkeypatch.setattr(ex, "MUTANT_BYTES", 10 * LENGTH)  # ten mutants at a time
    calls = []
    hook = bundle.model.register_forward_hook(lambda m, i, o: calls.append(len(o)))
    try:
        split = explain_bundle(bundle, data, "ism", "motif", batch_size=32)
    finally:
        hook.remove()
    assert max(calls) <= 10 and sum(calls) == 3 + 3 * 3 * LENGTH
    for a, b in zip(whole.records, split.records, strict=True):
        np.testing.assert_allclose(a.deltas, b.deltas, atol=1e-5)


def test_ism_says_how_much_it_will_predict_before_it_starts(cli, motif_data) -> None:
    """Every substitution is a whole sequence to predict: the work grows with the length
    squared, so both ISM commands name it first (and, for a long job, the time left)."""
    model, _, root = motif_data
    two = root / "two.fasta"
    two.write_text(">a\nACGTNACGTA\n>b\nACGTA\n")
    # a: 9 letters x 3 others + the N x 4 = 31, of 10 positions each; b: 5 x 3 of 5
    r = cli("explain", model, two, "--method", "ism", "-o", root / "two.tsv")
    assert r.code == 0, r.err
    assert "bioseqnn: ism: 46 substitution(s) of 2 sequence(s), 385 positions to predict" in (
        r.err.splitlines()
    )
    # --region 2:4 mutates C, G, T of each: 9 of 10 positions, 9 of 5
    r = cli("ism-map", model, two, "--region", "2:4", "--plot", root / "maps", "-o", root / "m.tsv")
    assert r.code == 0, r.err
    assert "bioseqnn: ism-map: 18 substitution(s) of 2 sequence(s), 135 positions to predict" in (
        r.err.splitlines()
    )


def test_a_region_past_any_record_fails_before_any_work(cli, motif_data) -> None:
    model, _, root = motif_data
    two = root / "short-last.fasta"
    two.write_text(">long\n" + "ACGT" * 10 + "\n>short\nACGTA\n")
    r = cli("ism-map", model, two, "--region", "8:12", "--plot", root / "none")
    assert r.code == 1
    assert r.err.splitlines() == [
        f"bioseqnn: error: {two}: record 'short' has 5 residues; --region starts at 8"
    ]
    assert not (root / "none").exists()


def test_motif_insertion_builds_its_variants_a_block_at_a_time(motif_data, monkeypatch) -> None:
    """insert wrote every start's variant of a background at once: starts x length bytes
    (3.6 GB for one background of 60,000 residues). Now no array of variants exceeds
    MUTANT_BYTES, every variant is predicted once, and the changes are the same."""
    import importlib

    from bioseqnn.interpret.insilico import insert_motif

    insilico = importlib.import_module("bioseqnn.interpret.insilico")
    model, positives, _ = motif_data
    whole = insert_motif(model, "ACGTAC", positives, device="cpu", batch_size=64)

    class Numpy:  # the module's numpy, with each variant array's size noted
        def __init__(self) -> None:
            self.repeated: list[int] = []

        def __getattr__(self, name: str):
            return getattr(np, name)

        def repeat(self, *args, **kwargs):
            out = np.repeat(*args, **kwargs)
            self.repeated.append(out.nbytes)
            return out

    spy = Numpy()
    monkeypatch.setattr(insilico, "MUTANT_BYTES", 5 * LENGTH)  # five variants at a time
    monkeypatch.setattr(insilico, "np", spy)
    split = insert_motif(model, "ACGTAC", positives, device="cpu", batch_size=64)
    starts = LENGTH - 6 + 1
    assert max(spy.repeated) == 5 * LENGTH  # never more than a block (27 x 32 before)
    assert sum(spy.repeated) == split.backgrounds * starts * LENGTH  # every variant once
    np.testing.assert_allclose(split.mean, whole.mean, atol=1e-6)
    np.testing.assert_allclose(split.std, whole.std, atol=1e-6)


def test_a_record_longer_than_a_transformer_takes_is_named(cli, tmp_path: Path) -> None:
    """explain said 'a sequence of 1200 positions is longer than ...' without the file or
    the record; it now checks lengths as predict does, before any work."""
    rng = np.random.default_rng(3)
    seqs = {f"s{i}": "".join(rng.choice(list("ACGT"), 30)) for i in range(24)}
    (tmp_path / "t.fa").write_text("".join(f">{k}\n{v}\n" for k, v in seqs.items()))
    (tmp_path / "t.csv").write_text("id,y\n" + "".join(f"s{i},{i % 2}\n" for i in range(24)))
    model = tmp_path / "tf.bsnn"
    r = cli(
        "train", tmp_path / "t.fa", tmp_path / "t.csv", "-o", model, "--arch", "transformer",
        "--d-model", "8", "--heads", "2", "--ff-size", "16", "--max-length", "40",
        "--epochs", "1", "--threads", "1", "--quiet",
    )  # fmt: skip
    assert r.code == 0, r.err
    (tmp_path / "long.fa").write_text(">short\nACGTACGT\n>long\n" + "ACGT" * 12 + "\n")
    r = cli("explain", model, tmp_path / "long.fa", "-o", tmp_path / "a.tsv")
    assert r.code == 1
    assert r.err.splitlines() == [
        f"bioseqnn: error: {tmp_path / 'long.fa'}: record 'long' has 48 positions, more than "
        "this transformer model's max-length 40 (1 record(s) too long); split or trim the "
        "sequences, or retrain with a larger --max-length"
    ]
    assert not (tmp_path / "a.tsv").exists()


def test_scores_are_written_without_negative_zeros() -> None:
    """ISM's score is minus the mean of the substitutions' effects: where none has any,
    it was written '-0'."""
    from bioseqnn.ops.explain import _number

    assert [_number(v) for v in (-0.0, 0.0, -1e-7, 1.234567891, -np.float32(0))] == [
        "0",
        "0",
        "-1e-07",
        "1.23457",
        "0",
    ]
