"""Known answers: a model trained on two planted motifs (one activating, one repressing)
gives both back through `motifs` (each the best database hit among decoys), and `insert`
shows the activator's effect positive and the repressor's negative; `ism-map` agrees with
`explain --method ism`; insertion effects equal predicted differences (DNA, RNA, protein).
"""

from __future__ import annotations

import csv
import gzip
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("captum")
pytest.importorskip("modiscolite")
pytest.importorskip("memelite")

from conftest import fresh_python, run_bioseqnn  # noqa: E402

ACTIVATOR, REPRESSOR = "CACGTGAC", "TTAGGGTA"
LENGTH = 120


def _planted(root: Path, n: int = 800, seed: int = 3) -> tuple[Path, Path]:
    """Random DNA; each motif planted in half the records, independently; the activity is
    +1 for the activator, -1 for the repressor, plus noise."""
    rng = np.random.default_rng(seed)
    fasta, labels = root / "planted.fasta", root / "planted.csv"
    with open(fasta, "w") as fa, open(labels, "w") as lab:
        lab.write("id,activity\n")
        for i in range(n):
            seq = list(rng.choice(list("ACGT"), LENGTH))
            act, rep = rng.random() < 0.5, rng.random() < 0.5
            slots = rng.permutation(LENGTH // 20)[:2] * 20 + rng.integers(0, 12, 2)
            if act:
                seq[slots[0] : slots[0] + 8] = ACTIVATOR
            if rep:
                seq[slots[1] : slots[1] + 8] = REPRESSOR
            activity = float(act) - float(rep) + rng.normal(0, 0.1)
            fa.write(f">s{i}\n{''.join(seq)}\n")
            lab.write(f"s{i},{activity:.4f}\n")
    return fasta, labels


def _pwm(seq: str, p: float = 0.85) -> np.ndarray:
    m = np.full((len(seq), 4), (1 - p) / 3)
    for i, c in enumerate(seq):
        m[i, "ACGT".index(c)] = p
    return m


def _database(path: Path, decoys: int = 28) -> Path:
    """The two planted motifs among random decoys, in MEME format."""
    rng = np.random.default_rng(11)
    motifs = {"ACTIVATOR": _pwm(ACTIVATOR), "REPRESSOR": _pwm(REPRESSOR)}
    for k in range(decoys):
        motifs[f"DECOY{k}"] = _pwm("".join(rng.choice(list("ACGT"), int(rng.integers(6, 11)))))
    with open(path, "w") as fh:
        fh.write("MEME version 4\n\nALPHABET= ACGT\n\nstrands: + -\n\n")
        for name, m in motifs.items():
            fh.write(
                f"MOTIF {name}\nletter-probability matrix: alength= 4 w= {len(m)} nsites= 20 E= 0\n"
            )
            fh.writelines(" ".join(f"{v:.4f}" for v in row) + "\n" for row in m)
            fh.write("\n")
    return path


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """A small CNN regressor trained on the planted data (validation r2 ~0.75)."""
    from bioseqnn.cli import main

    root = tmp_path_factory.mktemp("planted")
    fasta, labels = _planted(root)
    model = root / "cnn.bsnn"
    assert (
        main(
            [
                "train",
                str(fasta),
                str(labels),
                "-o",
                str(model),
                "--arch",
                "cnn",
                "--channels",
                "16",
                "--kernel-sizes",
                "9",
                "--dilations",
                "1",
                "--pool-sizes",
                "1",
                "--pooling",
                "max",
                "--epochs",
                "8",
                "--lr",
                "0.01",
                "--batch-size",
                "32",
                "--patience",
                "0",
                "--schedule",
                "none",
                "--device",
                "cpu",
                "--seed",
                "1",
                "--quiet",
            ]
        )
        == 0
    )
    return model, fasta, root


@pytest.mark.slow
def test_motifs_recovers_both_planted_motifs_as_best_database_hits(cli, planted) -> None:
    from memelite.io import read_meme

    model, fasta, root = planted
    db = _database(root / "db.meme")
    report = root / "report"
    result = cli(
        "motifs",
        model,
        fasta,
        "-o",
        report,
        "--database",
        db,
        "--shuffles",
        "5",
        "--max-seqlets",
        "300",
        "--leiden-runs",
        "2",
        "-q",
    )
    assert result.code == 0, result.err
    with open(report / "matches.tsv", newline="") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    best = [r for r in rows if r["rank"] == "1"]
    hits = {(r["sign"], r["match"]) for r in best}
    assert ("positive", "ACTIVATOR") in hits
    assert ("negative", "REPRESSOR") in hits
    for r in best:
        if r["match"] in ("ACTIVATOR", "REPRESSOR"):
            assert float(r["q_value"]) < 0.01
            assert int(r["seqlets"]) >= 20
    meme = read_meme(str(report / "motifs.meme"))
    assert len(meme) == len(best)
    # TF-MoDISco may report a motif on either strand
    consensus = {name.split()[1] for name in meme}
    consensus |= {c[::-1].translate(str.maketrans("ACGT", "TGCA")) for c in consensus}
    assert any(ACTIVATOR[1:7] in c for c in consensus)
    assert any(REPRESSOR[1:7] in c for c in consensus)
    text = (report / "report.md").read_text()
    assert "| motif | sign | seqlets |" in text and "ACTIVATOR" in text
    for png in (report / "logos").glob("*.png"):
        assert png.read_bytes()[:4] == b"\x89PNG"
    assert len(list((report / "logos").glob("*.png"))) == 2 * len(best)


@pytest.mark.slow
def test_insert_shows_the_activator_up_and_the_repressor_down(cli, planted) -> None:
    model, fasta, root = planted
    backgrounds = root / "bg.fasta"
    backgrounds.write_text("".join(">" + r for r in fasta.read_text().split(">")[1:41]))
    up = root / "up.tsv"
    proc = run_bioseqnn(
        "insert", model, "--motif", ACTIVATOR, "--background", backgrounds, "-o", up, "--step", "4"
    )
    assert proc.returncode == 0, proc.stderr.decode()
    with open(up, newline="") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    assert [int(r["position"]) for r in rows] == list(range(1, LENGTH - 8 + 2, 4))
    means = np.array([float(r["mean_change"]) for r in rows])
    assert means.mean() > 0.2 and (means > 0).all()
    result = cli("insert", model, "--motif", REPRESSOR, "--background", backgrounds, "-q")
    assert result.code == 0
    down = np.array([float(line.split("\t")[1]) for line in result.out.splitlines()[1:]])
    assert down.mean() < -0.2 and (down < 0).all()
    # a plot path that cannot be written is refused before any insertion is computed
    same, folder = root / "same.png", root / "folder.png"
    folder.mkdir(exist_ok=True)
    for plot, out, message in [
        (folder, up, "it is a directory"),
        (same, same, "--plot and -o name one file"),
    ]:
        result = cli(
            *("insert", model, "--motif", REPRESSOR, "--background", backgrounds),
            *("--plot", plot, "-o", out),
        )
        assert result.code == 2 and message in result.err, result.err


def test_ism_map_equals_explain_ism_in_its_window(cli, planted, tmp_path: Path) -> None:
    model, fasta, _ = planted
    one = tmp_path / "one.fasta"
    one.write_text(">" + fasta.read_text().split(">")[1])
    full, window = tmp_path / "full.tsv", tmp_path / "window.tsv"
    assert cli("explain", model, one, "--method", "ism", "-o", full, "-q").code == 0
    assert (
        cli(
            "ism-map",
            model,
            one,
            "--region",
            "31:70",
            "-o",
            window,
            "--plot",
            tmp_path / "maps",
            "-q",
        ).code
        == 0
    )
    with open(full, newline="") as a, open(window, newline="") as b:
        every = {r["position"]: r for r in csv.DictReader(a, delimiter="\t")}
        part = list(csv.DictReader(b, delimiter="\t"))
    assert [int(r["position"]) for r in part] == list(range(31, 71))
    for r in part:
        for letter in "ACGT":
            assert float(r[letter]) == pytest.approx(float(every[r["position"]][letter]), abs=1e-5)
    assert (tmp_path / "maps" / "s0.png").read_bytes()[:4] == b"\x89PNG"
    bad = cli("ism-map", model, one, "--region", "70:31")
    assert bad.code == 2 and "START <= END" in bad.err


def _insert_matches_predict(
    cli, model: Path, seqs: list[str], motif: str, tmp: Path, column: str
) -> None:
    """insert's mean change at each start equals the mean of predict's differences."""
    bg = tmp / "bg.fasta"
    bg.write_text("".join(f">b{i}\n{s}\n" for i, s in enumerate(seqs)))
    result = cli("insert", model, "--motif", motif, "--background", bg, "-q")
    assert result.code == 0, result.err
    rows = [line.split("\t") for line in result.out.splitlines()[1:]]
    shortest = min(map(len, seqs))
    assert len(rows) == shortest - len(motif) + 1
    variants = tmp / "variants.fasta"
    with open(variants, "w") as fh:
        for i, s in enumerate(seqs):
            fh.write(f">b{i}\n{s}\n")
            for p in range(shortest - len(motif) + 1):
                fh.write(f">b{i}_{p}\n{s[:p]}{motif}{s[p + len(motif) :]}\n")
    pred = tmp / "pred.tsv"
    assert cli("predict", model, variants, "-o", pred, "-q").code == 0
    with open(pred, newline="") as fh:
        value = {r["id"]: float(r[column]) for r in csv.DictReader(fh, delimiter="\t")}
    for p, row in enumerate(rows):
        expected = np.mean([value[f"b{i}_{p}"] - value[f"b{i}"] for i in range(len(seqs))])
        assert float(row[1]) == pytest.approx(expected, abs=1e-5)


def test_insert_on_protein_equals_predicted_differences(
    cli, hemolytic_model: Path, tmp_path: Path
) -> None:
    seqs = ["GLFDIVKKVVGALGSL", "FLPLIGRVLSGILKKW", "ALWKTMLKKLGTMALHAGKAALGAAADTISQ"]
    _insert_matches_predict(
        cli, hemolytic_model, seqs, "KKLLK", tmp_path, _prob_column(cli, hemolytic_model, tmp_path)
    )


def _prob_column(cli, model: Path, tmp: Path) -> str:
    probe = tmp / "probe.fasta"
    probe.write_text(">p\nGLFDIVKK\n")
    out = tmp / "probe_pred.tsv"
    assert cli("predict", model, probe, "-o", out, "-q").code == 0
    header = out.read_text().splitlines()[0].split("\t")
    return [c for c in header if c.startswith("prob_")][-1]


def test_insert_on_rna_equals_predicted_differences(cli, tmp_path: Path) -> None:
    from bioseqnn.cli import main

    rng = np.random.default_rng(4)
    fasta, labels = tmp_path / "rna.fasta", tmp_path / "rna.csv"
    seqs = ["".join(rng.choice(list("ACGU"), 30)) for _ in range(60)]
    fasta.write_text("".join(f">r{i}\n{s}\n" for i, s in enumerate(seqs)))
    labels.write_text(
        "id,y\n" + "".join(f"r{i},{s.count('G') / 30:.3f}\n" for i, s in enumerate(seqs))
    )
    model = tmp_path / "rna.bsnn"
    assert (
        main(
            [
                "train",
                str(fasta),
                str(labels),
                "-o",
                str(model),
                "--arch",
                "cnn",
                "--channels",
                "4",
                "--kernel-sizes",
                "3",
                "--dilations",
                "1",
                "--pool-sizes",
                "1",
                "--epochs",
                "1",
                "--device",
                "cpu",
                "--quiet",
            ]
        )
        == 0
    )
    _insert_matches_predict(cli, model, seqs[:3], "GGAUC", tmp_path, "y")
    bad = cli("insert", model, "--motif", "GGQC", "--background", fasta)
    assert bad.code == 2 and "outside the model's alphabet" in bad.err


def test_motifs_refuses_protein_and_bad_databases_in_one_line(
    cli, planted, hemolytic_model, examples: Path, tmp_path: Path
) -> None:
    model, fasta, _ = planted
    protein = cli("motifs", hemolytic_model, examples / "hemolytic.fasta", "-o", tmp_path / "r")
    assert protein.code == 2 and "four letters" in protein.err
    missing = cli(
        "motifs", model, fasta, "-o", tmp_path / "r", "--database", tmp_path / "none.meme"
    )
    assert missing.code == 2 and "no such motif database" in missing.err
    empty = tmp_path / "empty.meme"
    empty.write_text("MEME version 4\n\nALPHABET= ACGT\n")
    bad = cli("motifs", model, fasta, "-o", tmp_path / "r", "--database", empty)
    assert bad.code == 1 and "no MOTIF" in bad.err
    for result in (protein, missing, bad):
        assert len(result.err.strip().splitlines()) == 1


def test_motif_databases_are_checked_as_they_are_read(tmp_path: Path) -> None:
    """Something else than MEME is refused from its first line, a matrix too wide for
    memelite to size an array by before anything is allocated; a compressed file is
    read like a plain one."""
    from bioseqnn.errors import DataError
    from bioseqnn.interpret.motifs import read_database

    db = _database(tmp_path / "db.meme")
    packed = tmp_path / "db.meme.gz"
    packed.write_bytes(gzip.compress(db.read_bytes()))
    plain = read_database(db)
    assert len(plain) > 25 and all(m.shape[1] == 4 for m in plain.values())
    assert {k: v.tolist() for k, v in read_database(packed).items()} == {
        k: v.tolist() for k, v in plain.items()
    }
    other = tmp_path / "other.txt"
    other.write_text("\n>chr1\nACGT\n")
    with pytest.raises(DataError, match=r"other.txt: line 2: not a MEME motif file \(it starts"):
        read_database(other)
    wide = tmp_path / "wide.meme"
    wide.write_text(
        "MEME version 4\n\nMOTIF x\nletter-probability matrix: alength= 4 w= 999999999\n"
    )
    with pytest.raises(DataError, match=r"wide.meme: line 4: a motif of 999,999,999 positions"):
        read_database(wide)
    # a row of the wrong length, or too few rows: the line, not numpy's broadcast error
    head = "MEME version 4\n\nMOTIF x\nletter-probability matrix: alength= 4 w= 2\n"
    short = tmp_path / "short.meme"
    short.write_text(head + "0.25 0.25 0.25 0.25\n0.5 0.5\n")
    with pytest.raises(DataError) as info:
        read_database(short)
    assert str(info.value) == f"{short}: line 6: 2 value(s) in a row of a matrix with alength= 4"
    few = tmp_path / "few.meme"
    few.write_text(head + "0.25 0.25 0.25 0.25\n\nMOTIF y\n")
    with pytest.raises(DataError) as info:
        read_database(few)
    assert str(info.value) == f"{few}: line 4: motif 'x': its matrix ends 1 row(s) short of its w="
    few.write_text(head + "0.25 0.25 0.25 0.25\n")  # at the file's end too
    with pytest.raises(DataError, match=r"line 4: motif 'x': its matrix ends 1 row"):
        read_database(few)


@pytest.mark.parametrize(
    "row, message",
    [
        ("nan 0 0 0", "'nan 0 0 0': a letter probability must be a finite number of at least 0"),
        ("inf 0 0 0", "'inf 0 0 0': a letter probability must be a finite number of at least 0"),
        ("-5 7 0 0", "'-5 7 0 0': a letter probability must be a finite number of at least 0"),
        (
            "3 5 1 1",
            "'3 5 1 1' sums to 10; the letter probabilities of a row sum to 1 (is this a count "
            "matrix?)",
        ),
    ],
)
def test_a_motif_row_that_is_no_probabilities_is_refused(tmp_path: Path, row, message) -> None:
    """One NaN in one row made every match's p-value 1, for every motif of the database;
    negative values moved them, without a word. Rounded rows (0.999) are fine."""
    from bioseqnn.errors import DataError
    from bioseqnn.interpret.motifs import read_database

    head = "MEME version 4\n\nMOTIF x\nletter-probability matrix: alength= 4 w= 2\n"
    db = tmp_path / "db.meme"
    db.write_text(head + "0.333 0.333 0.333 0.0\n" + row + "\n")
    with pytest.raises(DataError) as info:
        read_database(db)
    assert str(info.value) == f"{db}: line 6: {message}"
    db.write_text(head + "0.333 0.333 0.333 0.0\n0.25 0.25 0.25 0.25\n")
    assert read_database(db)["x"].shape == (2, 4)


def test_two_motifs_of_one_name_are_refused(tmp_path: Path) -> None:
    """memelite keeps one motif of a name: the other would vanish from the comparison."""
    from bioseqnn.errors import DataError
    from bioseqnn.interpret.motifs import read_database

    motif = "MOTIF x one\nletter-probability matrix: alength= 4 w= 1\n0.25 0.25 0.25 0.25\n\n"
    db = tmp_path / "db.meme"
    db.write_text("MEME version 4\n\n" + motif + motif)
    with pytest.raises(DataError) as info:
        read_database(db)
    assert str(info.value) == (
        f"{db}: line 7: a second motif named 'x one' (the first is on line 3); motif names "
        "must differ"
    )


def test_a_modisco_failure_is_one_line_not_a_traceback() -> None:
    """A failure inside modisco-lite (here a NaN contribution stops its histogram step;
    on real data its Leiden step raises a bare BaseException on NaN similarities) is one
    DataError naming the way out, not a traceback."""
    from bioseqnn.errors import DataError
    from bioseqnn.interpret.motifs import ModiscoOptions, run_modisco

    rng = np.random.default_rng(0)
    one_hot = np.eye(4, dtype=np.float32)[rng.integers(0, 4, size=(60, 80))]
    hyp = rng.normal(size=one_hot.shape).astype(np.float32)
    hyp[:, 30:40] += 3 * one_hot[:, 30:40]  # seqlets to find
    hyp[:, 35, :] = np.nan
    with pytest.raises(DataError, match="TF-MoDISco could not cluster.*the other --method"):
        run_modisco(one_hot, hyp, ModiscoOptions(max_seqlets=200, leiden_runs=1, min_seqlets=5))


@pytest.mark.slow
def test_motifs_on_sequences_of_many_lengths(cli, examples: Path, tmp_path: Path) -> None:
    """The README's ncRNA model (a cnn-gru) and its test split, 50-626 nt: seqlets near
    a short sequence's end reach into the batch's padding. With an all-zero one-hot
    there, modisco-lite's letter frequencies were 0/0 and its clustering stopped on NaN
    similarities; the padding now holds uniform letters and no contribution."""
    model = tmp_path / "ncrna.bsnn"
    assert (
        cli(
            "train",
            examples / "ncrna_train.fasta",
            examples / "ncrna_train.csv",
            "--epochs",
            "15",
            "-o",
            model,
            "-q",
        ).code
        == 0
    )
    report = tmp_path / "report"
    result = cli(
        "motifs",
        model,
        examples / "ncrna_test.fasta",
        "-o",
        report,
        "--target",
        "5S_rRNA",
        "--max-seqlets",
        "500",
        "-q",
    )
    assert result.code == 0, result.err
    text = (report / "report.md").read_text()
    assert "deeplift-shap" in text and "| pos_1 | positive |" in text


def test_a_file_that_is_no_model_is_refused_before_modisco_loads(tmp_path: Path) -> None:
    """A file of zeros given as the model was refused only after the interpretation
    libraries loaded (8-22 s, 490 MB); the model file's header is read first."""
    zeros = tmp_path / "zeros.bsnn"
    zeros.write_bytes(b"\0" * 4096)
    fasta = tmp_path / "s.fa"
    fasta.write_text(">a\nACGTACGTAC\n")
    probe = (
        "import sys\n"
        "from bioseqnn.cli import main\n"
        "code = main(sys.argv[1:])\n"
        "print('PROBE', code, 'modiscolite' in sys.modules, 'captum' in sys.modules, "
        "file=sys.stderr)\n"
    )
    done = fresh_python(probe, "motifs", zeros, fasta, "-o", tmp_path / "out", "--no-plots")
    assert done.stderr.splitlines() == [
        f"bioseqnn: error: {zeros}: not a bioseqnn model file (no safetensors header)",
        "PROBE 1 False False",
    ]
    assert not (tmp_path / "out").exists()


def test_a_report_folder_that_is_a_file_is_refused_before_the_work(
    cli, planted, tmp_path: Path
) -> None:
    """-o naming a file (the sequences, say) was refused only after the attributions and
    TF-MoDISco had run, with exit 1; now at once, exit 2, the file untouched."""
    model, fasta, _ = planted
    taken = tmp_path / "taken.fa"
    taken.write_bytes(Path(fasta).read_bytes())
    r = cli("motifs", model, fasta, "-o", taken, "--no-plots")
    assert r.code == 2
    assert r.err.strip() == (
        f"bioseqnn: error: {taken}: the motif report goes into a folder, and this is a file"
    )
    assert taken.read_bytes() == Path(fasta).read_bytes()
