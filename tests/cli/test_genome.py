"""Genome intervals (--genome): the reference read through pysam, BED and tables, windows,
strands, edges, ids, labels from tables or columns, and chromosome hold-out."""

from __future__ import annotations

import csv
import gzip
import json
import os
import sys
from pathlib import Path

import numpy as np
import pyfaidx
import pysam
import pytest

import bioseqnn
from bioseqnn.errors import DataError, UsageError
from bioseqnn.io.genome import Genome, reverse_complement
from bioseqnn.variants.intervals import GenomeOptions, IntervalRecords

TINY = {"chr1": "ACGTACGTAAGGCCTTACGTNNACGTACGTAC", "chr2": "TTTTGGGGCCCCAAAA", "chrM": "ACGTAC"}
SMALL_CNN = [
    "--arch",
    "cnn",
    "--channels",
    "8",
    "--kernel-sizes",
    "5",
    "--dilations",
    "1",
    "--pool-sizes",
    "1",
    "--epochs",
    "2",
    "--threads",
    "1",
    "--quiet",
]


def write_fasta(path: Path, seqs: dict[str, str], width: int = 10) -> Path:
    with open(path, "w") as fh:
        for name, seq in seqs.items():
            fh.write(f">{name} test\n")
            fh.writelines(seq[i : i + width] + "\n" for i in range(0, len(seq), width))
    return path


def sliced(seq: str, start: int, end: int) -> str:
    """What the genome holds at [start, end), N outside the sequence."""
    return "".join(seq[i] if 0 <= i < len(seq) else "N" for i in range(start, end))


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    return write_fasta(tmp_path / "tiny.fa", TINY)


# --------------------------------------------------------------------------- the reference


@pytest.mark.parametrize("packed", ["plain", "bgzip"])
def test_index_is_built_on_first_use_and_windows_are_padded_with_n(tiny: Path, packed: str) -> None:
    path = tiny
    if packed == "bgzip":
        path = tiny.with_suffix(".fa.gz")
        pysam.tabix_compress(str(tiny), str(path))
    genome = Genome(path)
    assert Path(f"{path}.fai").exists()
    assert Path(f"{path}.gzi").exists() == (packed == "bgzip")
    assert genome.lengths == {k: len(v) for k, v in TINY.items()}
    assert genome.fetch("chr1", 3, 9) == TINY["chr1"][3:9].encode()
    assert genome.fetch("chr2", -3, 2) == b"NNNTT"
    assert genome.fetch("chr2", 14, 19) == b"AANNN"
    assert genome.fetch("chrM", 8, 11) == b"NNN"  # wholly past the end


def test_windows_read_through_the_block_cache_equal_the_sequence(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    seqs = {
        f"c{i}": "".join(rng.choice(list("ACGT"), int(n)))
        for i, n in enumerate(rng.integers(5000, 30000, 4))
    }
    genome = Genome(write_fasta(tmp_path / "g.fa", seqs, width=61))
    windows = [
        (str(rng.choice(list(seqs))), int(rng.integers(-50, 30000)), int(w))
        for w in rng.integers(1, 3000, 400)
    ]
    windows[100:200] = sorted(windows[100:200])  # runs in order grow the read-ahead
    for chrom, start, width in windows:
        assert genome.fetch(chrom, start, start + width).decode() == sliced(
            seqs[chrom], start, start + width
        )


def test_plain_gzip_genome_is_refused_with_how_to_bgzip(
    tiny: Path, cli, planted_model: Path
) -> None:
    packed = tiny.with_suffix(".fa.gz")
    packed.write_bytes(gzip.compress(tiny.read_bytes()))
    bed = tiny.parent / "x.bed"
    bed.write_text("chr1\t0\t5\n")
    r = cli("predict", planted_model, bed, "--genome", packed)
    assert r.code == 1 and r.out == ""
    assert r.err == (
        f"bioseqnn: error: {packed}: gzip-compressed, but not with bgzip, so it "
        f"cannot be read at random: recompress it (zcat {packed} | bgzip > "
        "genome.fa.gz; bgzip comes with htslib and samtools) or decompress it\n"
    )


def test_a_stale_index_is_rebuilt(tiny: Path) -> None:
    Genome(tiny).close()
    write_fasta(tiny, {"chr1": "GGGGCCCC", "other": "AAAA"})
    os.utime(tiny, (os.path.getmtime(tiny) + 10,) * 2)
    genome = Genome(tiny)
    assert genome.lengths == {"chr1": 8, "other": 4}
    assert genome.fetch("chr1", 0, 8) == b"GGGGCCCC"


def test_an_index_of_another_file_is_named_not_read(tiny: Path) -> None:
    """A .fai newer than the FASTA but not of it (another version, an edit): its offsets
    would cut every window from the wrong bytes (a DNA genome read as protein, say)."""
    Genome(tiny).close()
    fai = Path(f"{tiny}.fai")
    good = fai.read_text()
    wrong = [
        good.split("\t")[0] + "\t999\t6\t60\t61\n",  # longer than the file
        "".join(line.split("\t")[0] + "\t4\t2\t10\t11\n" for line in good.splitlines()),
    ]
    for text in wrong:
        fai.write_text(text)
        with pytest.raises(DataError) as info:
            Genome(tiny)
        assert str(info.value) == (
            f"{fai}: this index does not describe {tiny} (made for another version of "
            "it?): delete it, and it is built again"
        )
    fai.unlink()  # built again
    assert Genome(tiny).fetch("chr1", 0, 4) == TINY["chr1"][:4].encode()
    assert fai.read_text() == good


def test_no_index_in_a_folder_that_cannot_be_written(
    tiny: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if mode == os.W_OK else real(p, mode))
    with pytest.raises(
        DataError,
        match=r"no index \(.*tiny.fa.fai\) and its folder .* is not "
        r"writable to build one: build it where the FASTA can "
        r"be written \(samtools faidx",
    ):
        Genome(tiny)


def test_fasta_that_cannot_be_indexed_names_the_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.fa"
    bad.write_text(">a\nACGTACGT\nACG\nACGTACGT\n>b\nAC\n")
    with pytest.raises(
        DataError,
        match=r"bad.fa: cannot build its index: line 3: record 'a' "
        r"has sequence lines of different lengths",
    ):
        Genome(bad)


def test_a_genome_with_a_byte_order_mark_says_how_to_remove_it(tmp_path: Path) -> None:
    """Other inputs take a UTF-8 byte-order mark; a genome is indexed and read in place
    (samtools faidx), which does not: the error says so and how to remove it."""
    bom = tmp_path / "bom.fa"
    bom.write_bytes(b"\xef\xbb\xbf>a\nACGTACGT\n")
    with pytest.raises(
        DataError,
        match=r"bom.fa: cannot build its index: it starts with a UTF-8 "
        r"byte-order mark.*remove it, e.g. sed",
    ):
        Genome(bom)


@pytest.mark.parametrize(
    ("name", "hint"),
    [
        ("1", "the genome calls it 'chr1'"),
        ("MT", "the genome calls it 'chrM'"),
        ("chr3", "closest names there: .*'chr1'"),
    ],
)
def test_missing_chromosome_names_the_closest_and_the_chr_style(
    tiny: Path, name: str, hint: str
) -> None:
    with pytest.raises(
        DataError, match=f"x.bed: line 1: chromosome '{name}' is not in .*tiny.fa.*{hint}"
    ):
        Genome(tiny).length(name, "x.bed: line 1")


# --------------------------------------------------------------------------- intervals


def records(
    tmp_path: Path,
    genome: Path,
    text: str,
    window: int | None = None,
    suffix: str = ".bed",
    on_edge: str = "pad",
) -> list[tuple[str, str]]:
    path = tmp_path / f"intervals{suffix}"
    path.write_text(text)
    got = IntervalRecords(GenomeOptions(str(genome), on_edge=on_edge), path, window)
    return [(r.id, r.seq.decode()) for r in got]


def test_bed_ids_strands_and_own_lengths(tmp_path: Path, tiny: Path) -> None:
    got = records(
        tmp_path,
        tiny,
        "track name=x\nbrowser position chr1\n# a comment\n\n"
        "chr1\t2\t8\n"  # BED3: chrom:start-end
        "chr1\t2\t8\tpeak_a\t0\t-\n"  # name, minus strand
        "chr2\t4\t10\t.\t5\t+\n"  # '.' name: id with the strand
        "chr2 0 3\n",
    )  # spaces instead of TABs
    seq = TINY["chr1"][2:8]
    assert got == [
        ("chr1:2-8", seq),
        ("peak_a", reverse_complement(seq.encode()).decode()),
        ("chr2:4-10(+)", TINY["chr2"][4:10]),
        ("chr2:0-3", "TTT"),
    ]
    assert reverse_complement(b"ACGTRYKMNacgt") == b"acgtNKMRYACGT"


@pytest.mark.parametrize(
    ("start", "end", "window"),
    [(10, 20, 4), (10, 21, 4), (10, 20, 5), (10, 11, 6), (10, 10, 7), (3, 30, 40)],
)
def test_window_is_centred_by_the_documented_rule(
    tmp_path: Path, tiny: Path, start: int, end: int, window: int
) -> None:
    got = records(tmp_path, tiny, f"chr1\t{start}\t{end}\n", window=window)
    lo = start + (end - start - window) // 2  # start + floor((end - start - W) / 2)
    assert got == [(f"chr1:{start}-{end}", sliced(TINY["chr1"], lo, lo + window))]
    assert len(got[0][1]) == window


def test_intervals_off_the_end_are_padded_or_refused(tmp_path: Path, tiny: Path) -> None:
    # [12, 16) in 8 bases: [10, 18) of a chromosome of 16
    assert records(tmp_path, tiny, "chr2\t12\t16\tx\n", window=8) == [("x", "CCAAAANN")]
    with pytest.raises(
        DataError,
        match=r"intervals.bed: line 1: interval 'x': window "
        r"chr2:10-18 runs off chr2 \(length 16\); --on-edge "
        r"pad fills the missing bases with N",
    ):
        records(tmp_path, tiny, "chr2\t12\t16\tx\n", window=8, on_edge="error")
    # an interval that starts past the end would be all N: another assembly's coordinates
    for text, window in (("chr2\t16\t20\ty\n", None), ("chr2\t40\t41\ty\n", 8)):
        with pytest.raises(DataError) as info:
            records(tmp_path, tiny, text, window=window)
        start, end = text.split("\t")[1:3]
        assert str(info.value) == (
            f"{tmp_path / 'intervals.bed'}: line 1: interval 'y' (chr2:{start}-{end}) "
            "starts past the end "
            f"of chr2 (length 16) in {tiny}: are the intervals from another assembly?"
        )
    # a point at the very end is still a window's centre
    assert records(tmp_path, tiny, "chr2\t16\t16\tz\n", window=4) == [("z", "AANN")]
    # an interval that ends past the end too, whatever its window (no 10^20 bases of N)
    for end, window in (("17", None), ("99999999999999999999", None), ("100000", 8)):
        with pytest.raises(DataError) as info:
            records(tmp_path, tiny, f"chr2\t0\t{end}\tw\n", window=window)
        assert str(info.value) == (
            f"{tmp_path / 'intervals.bed'}: line 1: interval 'w' (chr2:0-{end}) ends past the "
            f"end of chr2 (length 16) in {tiny}: are the intervals from another assembly?"
        )


def test_windows_and_whole_intervals_are_at_most_a_mebibase(tmp_path: Path) -> None:
    """A window, or an interval read whole, of more than 2^20 bases is refused (as other
    sizes are), before it is read: one line of a BED file cannot take gigabytes."""
    big = tmp_path / "big.fa"
    big.write_text(">c\n" + "ACGT" * 300_000 + "\n")  # 1.2 Mb
    with pytest.raises(UsageError, match="--window must be at most 1,048,576 bases"):
        GenomeOptions(str(big), window=(1 << 20) + 1)
    assert len(records(tmp_path, big, "c\t0\t1048576\ta\n")[0][1]) == 1 << 20
    with pytest.raises(DataError) as info:
        records(tmp_path, big, "c\t0\t1048577\tb\n")
    assert str(info.value) == (
        f"{tmp_path / 'intervals.bed'}: line 1: interval 'b' is 1,048,577 bases long, more "
        "than the 1,048,576 read whole; give --window to centre a window on it"
    )
    assert records(tmp_path, big, "c\t0\t1048577\tb\n", window=10) == [("b", "TACGTACGTA")]


def test_header_names_columns_and_tables_read_the_same(tmp_path: Path, tiny: Path) -> None:
    bed = records(
        tmp_path,
        tiny,
        "#chrom\tstart\tend\tname\tscore\tstrand\tsignal\nchr1\t0\t4\ta\t0\t-\t1.5\n",
    )
    table = records(
        tmp_path,
        tiny,
        "Chromosome,Start,End,id,strand,signal\nchr1,0,4,a,-,1.5\nchr2,1,3,,+,2\n",
        suffix=".csv",
    )
    assert bed == table[:1] == [("a", "ACGT")]  # ACGT is its own reverse complement
    assert table[1] == ("chr2:1-3(+)", "TT")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("chr1\tx\t5\n", r"line 1: start 'x' is not a whole number"),
        ("chr1\t5\t3\n", r"line 1: end 3 is before start 5"),
        ("chr1\t1\t3\tn\t0\tup\n", r"line 1: strand 'up' is not '\+', '-' or '\.'"),
        ("# only\nchr1\t3\n", r"line 2: 2 field\(s\); an interval needs chrom, start and end"),
        ("chr1\t4\t4\n", r"line 1: interval 'chr1:4-4' is empty .*give --window"),
        ("chr1\t0\t4\n1\t0\t4\n", r"line 2: chromosome '1' is not in .*the genome calls it 'chr1'"),
        ("chr1\t-1\t4\n", r"line 1: start -1 is negative"),
        ("chr1\t+1\t4\n", r"line 1: start '\+1' is not a whole number .*digits only"),
        ("chr1\t1\t1_000\n", r"line 1: end '1_000' is not a whole number"),
        ("chr1\t1\t\u0664\n", r"line 1: end '\u0664' is not a whole number"),
        ("\n# nothing\n", r"no intervals"),
    ],
)
def test_bad_intervals_name_file_and_line(
    tmp_path: Path, tiny: Path, text: str, message: str
) -> None:
    with pytest.raises(DataError, match=r"intervals.bed: " + message):
        records(tmp_path, tiny, text)


# --------------------------------------------------------------------------- commands


def test_predict_intervals_equals_predict_on_the_windows_cut_by_hand(
    tmp_path: Path, cli, planted: dict[str, Path], planted_model: Path
) -> None:
    r = cli("predict", planted_model, "--genome", planted["planted.fa"], planted["peaks.bed"])
    assert r.code == 0, r.err
    rows = list(csv.reader(r.out.splitlines(), delimiter="\t"))
    bed = [line.split("\t") for line in planted["peaks.bed"].read_text().splitlines()[1:]]
    assert rows[0] == ["id", "predicted", "prob_0", "prob_1"]
    assert [row[0] for row in rows[1:]] == [b[3] for b in bed]  # input order, names as ids
    # the same windows cut with another library (pyfaidx), written as FASTA
    fa = pyfaidx.Fasta(str(planted["planted.fa"]), rebuild=False)
    with open(tmp_path / "windows.fa", "w") as fh:
        for chrom, start, end, name, _, strand, _ in bed:
            lo = int(start) + (int(end) - int(start) - 200) // 2
            seq = fa[chrom][lo : lo + 200]
            fh.write(f">{name}\n{(-seq if strand == '-' else seq).seq}\n")
    by_hand = cli("predict", planted_model, tmp_path / "windows.fa")
    assert by_hand.out == r.out
    # the Python API takes the reference's path as genome= (the options' defaults)
    in_python = bioseqnn.predict(
        planted_model, planted["peaks.bed"], tmp_path / "api.tsv", genome=planted["planted.fa"]
    )
    assert (tmp_path / "api.tsv").read_text() == r.out
    assert len(in_python) == len(rows) - 1
    with pytest.raises(bioseqnn.UsageError, match="genome: expected a reference FASTA's path"):
        bioseqnn.predict(planted_model, planted["peaks.bed"], genome=3)
    probs = np.array([float(row[3]) for row in rows[1:]])
    bound = np.array([int(b[6]) for b in bed])
    assert ((probs > 0.5) == bound).mean() > 0.9


def test_train_with_labels_from_bed_columns(tmp_path: Path, cli, tiny: Path) -> None:
    rng = np.random.default_rng(0)
    lines = ["#chrom\tstart\tend\tname\tscore\tstrand\tis_a\tis_b"]
    for i in range(40):
        s = int(rng.integers(0, 20))
        lines.append(f"chr1\t{s}\t{s + 8}\tr{i}\t{rng.random():.3f}\t+\t{i % 2}\t{(i // 2) % 2}")
    bed = tmp_path / "x.bed"
    bed.write_text("\n".join(lines) + "\n")
    r = cli(
        "train", "--genome", tiny, bed, "--target", "score", "-o", tmp_path / "reg.bsnn", *SMALL_CNN
    )
    assert r.code == 0, r.err
    m = json.loads(cli("info", tmp_path / "reg.bsnn", "--json").out)
    assert m["task"]["kind"] == "regression" and m["task"]["targets"] == ["score"]
    assert m["data"]["genome"] == {
        "reference": str(tiny),
        "window": None,
        "on_edge": "pad",
        "train_chroms": ["chr1"],
        "validation_chroms": [],
        "excluded_chroms": [],
    }
    r = cli(
        "train",
        "--genome",
        tiny,
        bed,
        "-t",
        "is_a",
        "-t",
        "col8",
        "-o",
        tmp_path / "ml.bsnn",
        *SMALL_CNN,
    )
    assert r.code == 0, r.err
    m = json.loads(cli("info", tmp_path / "ml.bsnn", "--json").out)
    assert m["task"]["kind"] == "multilabel" and m["task"]["targets"] == ["is_a", "col8"]
    r = cli("train", "--genome", tiny, bed, "-o", tmp_path / "none.bsnn", *SMALL_CNN)
    assert r.code == 2 and "give a labels table (joined by interval id) or name columns" in r.err
    r = cli("train", "--genome", tiny, bed, "-t", "signal", "-o", tmp_path / "no.bsnn", *SMALL_CNN)
    assert r.code == 1 and "x.bed: no column 'signal'; its columns are 'chrom'" in r.err
    lines[6] = lines[6].replace("\t+\t1\t", "\t+\t.\t")  # r5 (line 7) has no is_a
    lines[9] = lines[9].rsplit("\t", 2)[0] + "\t\t0"  # r8 (line 10) neither
    bed.write_text("\n".join(lines) + "\n")
    r = cli("train", "--genome", tiny, bed, "-t", "is_a", "-o", tmp_path / "e.bsnn", *SMALL_CNN)
    assert r.code == 1
    assert (
        f"2 interval(s) with an empty label ('.' or nothing) in column(s) is_a: {bed}: line 7 "
        f"(id 'r5'); {bed}: line 10 (id 'r8')"
    ) in r.err


def test_holdout_chromosomes_are_the_validation_set(
    cli, planted: dict[str, Path], planted_model: Path
) -> None:
    m = json.loads(cli("info", planted_model, "--json").out)
    genome = m["data"]["genome"]
    assert genome["train_chroms"] == ["NC_000932.1"]
    assert genome["validation_chroms"] == ["NC_005816.1"] and genome["window"] == 200
    peaks = planted["peaks.bed"].read_text().splitlines()[1:]
    plasmid = sum(line.startswith("NC_005816.1") for line in peaks)
    assert m["data"]["val_records"] == plasmid
    assert m["data"]["train_records"] == len(peaks) - plasmid


@pytest.mark.slow
def test_chromosome_holdout_refusals(tmp_path: Path, cli, planted: dict[str, Path]) -> None:
    fa, bed, labels = planted["planted.fa"], planted["peaks.bed"], planted["labels.csv"]
    out = tmp_path / "m.bsnn"

    def train(*args: str | Path):
        return cli("train", "--genome", fa, bed, labels, "-o", out, *args, *SMALL_CNN)

    r = train("--holdout-chroms", "chr8")
    assert r.code == 2 and "--holdout-chroms: chromosome 'chr8' is not in" in r.err
    r = train("--holdout-chroms", "NC_005816.1", "--cv", "3")
    assert r.code == 2 and "drop --cv" in r.err
    r = train("--holdout-chroms", "NC_000932.1,NC_005816.1")
    assert r.code == 1 and "every interval is on a hold-out chromosome" in r.err
    only_chloroplast = tmp_path / "c.bed"
    only_chloroplast.write_text(
        "".join(x + "\n" for x in bed.read_text().splitlines() if not x.startswith("NC_005816.1"))
    )
    r = cli(
        "train",
        "--genome",
        fa,
        only_chloroplast,
        labels,
        "--holdout-chroms",
        "NC_005816.1",
        "--ignore-unmatched",
        "-o",
        out,
        *SMALL_CNN,
    )
    assert r.code == 1 and "no interval on the hold-out chromosome(s) NC_005816.1" in r.err
    # explicit validation intervals may not share a chromosome with the training ones
    r = train("--val-fasta", bed)
    assert (
        r.code == 1
        and (
            "validation interval(s) on NC_000932.1, NC_005816.1, which also hold training intervals"
        )
        in r.err
    )
    assert not out.exists()


def test_exclude_chromosomes_then_evaluate_on_them(
    tmp_path: Path, cli, planted: dict[str, Path]
) -> None:
    fa, bed, labels = planted["planted.fa"], planted["peaks.bed"], planted["labels.csv"]
    model = tmp_path / "m.bsnn"
    r = cli(
        "train",
        "--genome",
        fa,
        bed,
        labels,
        "--window",
        "200",
        "--exclude-chroms",
        "NC_005816.1",
        "-o",
        model,
        *SMALL_CNN,
    )
    assert r.code == 0, r.err
    assert json.loads(cli("info", model, "--json").out)["data"]["genome"]["excluded_chroms"] == [
        "NC_005816.1"
    ]
    r = cli("evaluate", model, "--genome", fa, bed, labels, "--chroms", "NC_005816.1")
    assert r.code == 0, r.err
    report = json.loads(r.out)
    plasmid = sum(x.startswith("NC_005816.1") for x in bed.read_text().splitlines())
    assert report["records"] == plasmid and report["seen_in_training"]["records"] == 0
    assert "chromosomes the model was trained" not in r.err
    r = cli("evaluate", model, "--genome", fa, bed, "--target", "bound", "--chroms", "NC_000932.1")
    assert r.code == 0
    assert "lie on chromosomes the model was trained or validated on (NC_000932.1)" in r.err


def test_genome_options_need_genome_and_the_extra(
    tmp_path: Path, cli, tiny: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    r = cli("predict", "m.bsnn", "x.bed", "--window", "100")
    assert r.code == 2 and "--window applies to genome intervals: give --genome" in r.err
    monkeypatch.setitem(sys.modules, "pysam", None)  # as if bioseqnn[genome] were missing
    for args in (
        ["predict", "m.bsnn", "x.bed", "--genome", tiny],
        ["train", "--genome", tiny, "x.bed", "-t", "score"],
        ["variants", "m.bsnn", "x.vcf", "--genome", tiny],
    ):
        r = cli(*args)
        assert r.code == 2
        assert r.err == (
            "bioseqnn: error: --genome and 'bioseqnn variants' need pysam: pip "
            "install 'bioseqnn[genome]' (or pip install pysam)\n"
        )


def test_join_errors_name_the_interval_lines(tmp_path: Path, cli, tiny: Path) -> None:
    bed = tmp_path / "x.bed"
    bed.write_text("chr1\t0\t8\ta\nchr1\t4\t12\tb\nchr2\t0\t8\tc\n")
    labels = tmp_path / "y.csv"
    labels.write_text("id,y\na,1\nb,0\n")
    r = cli("train", "--genome", tiny, bed, labels, "-o", tmp_path / "m.bsnn", *SMALL_CNN)
    assert r.code == 1
    assert "1 id(s) in " + str(bed) + " missing from " in r.err and "('c'), line 3" in r.err


def test_explicit_validation_intervals_on_other_chromosomes(
    tmp_path: Path, cli, planted: dict[str, Path]
) -> None:
    lines = planted["peaks.bed"].read_text().splitlines(keepends=True)
    train, val = tmp_path / "train.bed", tmp_path / "val.bed"
    train.write_text("".join(x for x in lines if not x.startswith("NC_005816.1")))
    val.write_text("".join(x for x in lines if x.startswith(("#", "NC_005816.1"))))
    model = tmp_path / "m.bsnn"
    r = cli(
        "train",
        "--genome",
        planted["planted.fa"],
        train,
        "--target",
        "bound",
        "--val-fasta",
        val,
        "-o",
        model,
        *SMALL_CNN,
    )
    assert r.code == 0, r.err
    m = json.loads(cli("info", model, "--json").out)
    assert m["data"]["val_records"] == 29 and m["data"]["train_records"] == 511
    assert m["data"]["genome"]["validation_chroms"] == ["NC_005816.1"]


@pytest.mark.slow
def test_predict_reads_intervals_from_stdin_in_a_pipeline(
    planted: dict[str, Path], planted_model: Path
) -> None:
    from conftest import run_bioseqnn

    bed = planted["peaks.bed"].read_bytes()
    piped = run_bioseqnn(
        "predict", planted_model, "--genome", planted["planted.fa"], "-", stdin=gzip.compress(bed)
    )
    direct = run_bioseqnn(
        "predict", planted_model, "--genome", planted["planted.fa"], planted["peaks.bed"]
    )
    assert piped.returncode == 0 and piped.stdout == direct.stdout
    assert len(piped.stdout.splitlines()) == 1 + 540


def test_the_genome_its_index_and_the_vcf_are_inputs_no_output_may_replace(
    tmp_path: Path, cli, planted: dict[str, Path], planted_model: Path
) -> None:
    """-o naming the reference FASTA, its .fai (there or yet to be built), the VCF or the
    model of `variants` is refused before any work, and the files stay as they were."""
    import shutil

    ref = tmp_path / "ref.fa"
    shutil.copy(planted["planted.fa"], ref)
    vcf, model = tmp_path / "v.vcf", tmp_path / "m.bsnn"
    shutil.copy(planted["variants.vcf"], vcf)
    shutil.copy(planted_model, model)
    bed, labels = planted["peaks.bed"], planted["labels.csv"]
    before = {p: p.read_bytes() for p in (ref, vcf, model)}
    train = ["train", "--genome", ref, bed, labels, "--window", "200", *SMALL_CNN]
    runs = [
        (["predict", model, "--genome", ref, bed], [ref]),
        (train, [ref]),
        (["evaluate", model, "--genome", ref, bed, labels], [ref]),
        (["variants", model, vcf, "--genome", ref], [ref, vcf, model]),
    ]
    for command, outputs in runs:
        for out in [*outputs, Path(f"{ref}.fai")]:
            r = cli(*command, "-o", out)
            assert r.code == 2, (command[0], out, r.err)
            assert r.err.startswith(f"bioseqnn: error: {out}: cannot write: it is ")
            assert "input (" in r.err and len(r.err.splitlines()) == 1
    assert {p: p.read_bytes() for p in before} == before
    # the index that reading built (or not: the .fai case was refused by its name)
    fai = Path(f"{ref}.fai")
    if fai.exists():
        assert fai.read_text().split("\t")[0] in ref.read_text()
