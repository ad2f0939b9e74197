"""bioseqnn variants: windows around each variant, scores in input order, TSV or annotated
VCF (read back with pysam and cyvcf2), the known answer on a real genome piece, and the
Snakemake scatter/gather by chromosome."""

from __future__ import annotations

import bz2
import csv
import gzip
import lzma
import math
import os
import shlex
import shutil
import statistics
import subprocess
import sys
from collections import deque
from pathlib import Path

import numpy as np
import pyfaidx
import pysam
import pytest
import torch
from conftest import EXAMPLES, run_bioseqnn
from pysam import bcftools

from bioseqnn.errors import DataError
from bioseqnn.io.genome import Genome
from bioseqnn.io.vcf import VcfReader
from bioseqnn.ops.variant_effects import VariantStats, _windows, info_keys, log_odds

HEADER = [
    "chrom",
    "pos",
    "id",
    "ref",
    "alt",
    "ref_0",
    "ref_1",
    "alt_0",
    "alt_1",
    "diff_0",
    "diff_1",
]
CHR1 = "AAAACCCCGGGGTTTTACGTACGTAAAACCCC"


def vcf_text(rows: list[str], contigs: dict[str, int] | None = None) -> str:
    head = "##fileformat=VCFv4.2\n" + "".join(
        f"##contig=<ID={c},length={n}>\n" for c, n in (contigs or {}).items()
    )
    return (
        head + "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n" + "".join(r + "\n" for r in rows)
    )


def table(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(text.splitlines(), delimiter="\t"))


def kinds(planted: dict[str, Path]) -> dict[str, str]:
    """Variant id -> motif / flank / background (the INFO field KIND)."""
    return {r.id: r.info["KIND"] for r in pysam.VariantFile(str(planted["variants.vcf"]))}


def by_rule(seq: str, pos: int, ref: str, alt: str, width: int) -> tuple[str, str]:
    """The window rule of docs/guide/genome.md, written out again: the reference window
    puts REF's first base at offset W // 2; the alternate one keeps the bases before, then
    ALT, then the genome after REF, cut to W."""

    def at(i: int) -> str:
        return seq[i] if 0 <= i < len(seq) else "N"

    p, h = pos - 1, width // 2
    reference = "".join(at(i) for i in range(p - h, p - h + width))
    after = "".join(at(i) for i in range(p + len(ref), p + len(ref) + width))
    return reference, (reference[:h] + alt + after)[:width]


# --------------------------------------------------------------------------- windows


@pytest.mark.parametrize(
    ("pos", "ref", "alt"),
    [
        (10, "G", "T"),  # SNV
        (10, "GGG", "G"),  # deletion: bases pulled in from the right
        (10, "G", "GAC"),  # insertion: bases pushed out
        (10, "G", "GACGTAC"),  # an insertion longer than the right half is cut
        (2, "A", "C"),  # near the start: N before it
        (31, "CC", "C"),  # near the end: N after it
    ],
)
@pytest.mark.parametrize("width", [8, 9])
def test_windows_follow_the_documented_rule(
    tmp_path: Path, pos: int, ref: str, alt: str, width: int
) -> None:
    fa = tmp_path / "g.fa"
    fa.write_text(f">chr1\n{CHR1}\n")
    vcf = tmp_path / "v.vcf"
    vcf.write_text(vcf_text([f"chr1\t{pos}\t.\t{ref}\t{alt}\t.\t.\t."]))
    pending: deque = deque()
    with VcfReader(vcf) as reader:
        got = [
            r.seq.decode()
            for r in _windows(
                reader, Genome(fa), width, "pad", "error", VariantStats(), pending, False
            )
        ]
    assert got == list(by_rule(CHR1, pos, ref, alt, width))
    assert all(len(w) == width for w in got) and pending[0].windows == 2


# --------------------------------------------------------------------------- TSV


def test_tsv_one_row_per_allele_in_input_order(
    tmp_path: Path, cli, planted: dict[str, Path], planted_model: Path
) -> None:
    r = cli("variants", planted_model, planted["variants.vcf"], "--genome", planted["planted.fa"])
    assert r.code == 0, r.err
    rows = table(r.out)
    assert list(rows[0]) == HEADER
    records = list(pysam.VariantFile(str(planted["variants.vcf"])))
    expected = [
        (v.chrom, str(v.pos), v.id, v.ref, a)
        for v in records
        for a in v.alts
        if not a.startswith("<")
    ]
    assert [(x["chrom"], x["pos"], x["id"], x["ref"], x["alt"]) for x in rows] == expected
    assert records[0].alts == ("G", "<DEL>") and [x["id"] for x in rows[:2]] == ["v0", "v1"]
    assert "skipped 1 symbolic allele(s) (<DEL>, *, breakends; e.g. NC_000932.1:674 <DEL>)" in r.err
    for x in rows:  # binary: the classes' log-odds are opposite; probabilities add to 1
        assert float(x["diff_0"]) == pytest.approx(-float(x["diff_1"]), abs=2e-5)
        assert float(x["ref_0"]) + float(x["ref_1"]) == pytest.approx(1, abs=1e-5)


def test_known_answer_motif_destroying_variants_and_the_rest(
    cli, planted: dict[str, Path], planted_model: Path
) -> None:
    r = cli("variants", planted_model, planted["variants.vcf"], "--genome", planted["planted.fa"])
    kind = kinds(planted)
    effects: dict[str, list[float]] = {"motif": [], "flank": [], "background": []}
    for x in table(r.out):
        effects[kind[x["id"]]].append(float(x["diff_1"]))
    motif = np.array(effects["motif"])
    flank = np.abs(effects["flank"])
    background = np.abs(effects["background"])
    assert len(motif) == 102 and len(flank) == 68 and len(background) == 269
    # every motif-destroying variant lowers the bound class's log-odds, by 3.5 in the median
    assert motif.max() < -1.0 and np.median(motif) < -3.0
    # beside the motif and far from it, effects are near zero
    assert np.median(flank) < 0.05 and flank.max() < 1.0
    assert np.median(background) < 0.15 and np.percentile(background, 90) < 0.75
    assert np.mean(np.abs(motif)) > 10 * np.mean(background)


def test_variants_equal_predict_on_the_windows_cut_by_hand(
    tmp_path: Path, cli, planted: dict[str, Path], planted_model: Path
) -> None:
    r = cli("variants", planted_model, planted["variants.vcf"], "--genome", planted["planted.fa"])
    fa = pyfaidx.Fasta(str(planted["planted.fa"]), rebuild=False)
    with open(tmp_path / "windows.fa", "w") as fh:
        for x in table(r.out):
            chrom, pos = x["chrom"], int(x["pos"])
            # the same rule with another reader (pyfaidx, no N-padding needed here)
            seq = str(fa[chrom][pos - 1 - 100 : pos - 1 + 300])
            ref_w = seq[:200]
            alt_w = (seq[:100] + x["alt"] + seq[100 + len(x["ref"]) :])[:200]
            fh.write(f">ref_{x['id']}_{x['alt']}\n{ref_w}\n>alt_{x['id']}_{x['alt']}\n{alt_w}\n")
    p = cli("predict", planted_model, tmp_path / "windows.fa")
    assert p.code == 0, p.err
    by_hand = {row["id"]: row for row in table(p.out)}
    for x in table(r.out):
        ref, alt = by_hand[f"ref_{x['id']}_{x['alt']}"], by_hand[f"alt_{x['id']}_{x['alt']}"]
        assert (x["ref_0"], x["ref_1"]) == (ref["prob_0"], ref["prob_1"])
        assert (x["alt_0"], x["alt_1"]) == (alt["prob_0"], alt["prob_1"])
        pr, pa = float(ref["prob_1"]), float(alt["prob_1"])
        if min(pr, pa) > 1e-4 and max(pr, pa) < 1 - 1e-4:  # 6 digits: log-odds to ~1e-3
            logit = math.log(pa / (1 - pa)) - math.log(pr / (1 - pr))
            assert float(x["diff_1"]) == pytest.approx(logit, abs=2e-3)


def test_rc_average_scores_the_mean_of_both_strands(
    tmp_path: Path, cli, planted: dict[str, Path], planted_model: Path
) -> None:
    vcf = tmp_path / "few.vcf"
    lines = planted["variants.vcf"].read_text().splitlines(keepends=True)
    vcf.write_text(
        "".join(x for x in lines if x.startswith("#"))
        + "".join(x for x in lines if not x.startswith("#"))[:2000].rsplit("\n", 1)[0]
        + "\n"
    )
    plain = table(cli("variants", planted_model, vcf, "--genome", planted["planted.fa"]).out)
    both = table(
        cli("variants", planted_model, vcf, "--genome", planted["planted.fa"], "--rc-average").out
    )
    fa = pyfaidx.Fasta(str(planted["planted.fa"]), rebuild=False)
    with open(tmp_path / "w.fa", "w") as fh:
        for x in both:
            pos = int(x["pos"])
            seq = str(fa[x["chrom"]][pos - 101 : pos + 299])
            fh.write(f">r{x['id']}\n{seq[:200]}\n")
    p = {
        row["id"]: row
        for row in table(cli("predict", planted_model, tmp_path / "w.fa", "--rc-average").out)
    }
    assert len(both) == len(plain) > 5
    for x, y in zip(both, plain, strict=True):
        assert x["ref_1"] == p[f"r{x['id']}"]["prob_1"]  # as predict --rc-average reports it
        assert x["alt"] == y["alt"]
    assert any(x["ref_1"] != y["ref_1"] for x, y in zip(both, plain, strict=True))


def test_log_odds_from_logits_match_probabilities() -> None:
    logits = torch.tensor([[2.0, -1.0, 0.5], [30.0, -30.0, 0.0]], dtype=torch.float64)
    got = log_odds("multiclass", logits).numpy()
    p = torch.softmax(logits, -1).numpy()
    assert got[0] == pytest.approx(np.log(p[0] / (1 - p[0])))
    assert np.isfinite(got).all() and got[1, 0] == pytest.approx(30.0, abs=1e-6)
    z = torch.tensor([[3.0], [-40.0]], dtype=torch.float64)
    assert log_odds("binary", z).tolist() == [[-3.0, 3.0], [40.0, -40.0]]


def test_regression_diff_is_alt_minus_ref(tmp_path: Path, cli, planted: dict[str, Path]) -> None:
    model = tmp_path / "reg.bsnn"
    r = cli(
        "train",
        "--genome",
        planted["planted.fa"],
        planted["peaks.bed"],
        "--target",
        "score",
        "--task",
        "regression",
        "--window",
        "200",
        "-o",
        model,
        "--arch",
        "cnn",
        "--channels",
        "8",
        "--kernel-sizes",
        "12",
        "--dilations",
        "1",
        "--pool-sizes",
        "1",
        "--epochs",
        "2",
        "--threads",
        "1",
        "--quiet",
    )
    assert r.code == 0, r.err
    r = cli("variants", model, planted["variants.vcf"], "--genome", planted["planted.fa"])
    rows = table(r.out)
    assert list(rows[0])[5:] == ["ref_score", "alt_score", "diff_score"]
    for x in rows:
        assert float(x["diff_score"]) == pytest.approx(
            float(x["alt_score"]) - float(x["ref_score"]), abs=2e-3
        )


@pytest.mark.slow
def test_chunks_do_not_change_the_rows(
    tmp_path: Path, cli, planted: dict[str, Path], planted_model: Path
) -> None:
    """3000 windows in chunks of 1024 (batch 8): a record's windows fall in two chunks."""
    seq = str(pyfaidx.Fasta(str(planted["planted.fa"]))["NC_000932.1"])
    rng = np.random.default_rng(5)
    rows = []
    for i, p in enumerate(sorted(rng.choice(np.arange(500, 150000), 1000, replace=False))):
        alts = [b for b in "ACGT" if b != seq[p]][: 1 + i % 2]
        rows.append(f"NC_000932.1\t{p + 1}\tx{i}\t{seq[p]}\t{','.join(alts)}\t.\t.\t.")
    vcf = tmp_path / "many.vcf"
    vcf.write_text(vcf_text(rows))
    small = cli(
        "variants", planted_model, vcf, "--genome", planted["planted.fa"], "--batch-size", "8"
    )
    large = cli(
        "variants", planted_model, vcf, "--genome", planted["planted.fa"], "--batch-size", "512"
    )
    assert small.code == large.code == 0
    assert len(table(small.out)) == 1500
    assert small.out == large.out


# --------------------------------------------------------------------------- VCF out


def test_annotated_vcf_is_bgzip_and_read_back_by_pysam_and_cyvcf2(
    tmp_path: Path, cli, planted: dict[str, Path], planted_model: Path
) -> None:
    from cyvcf2 import VCF

    out = tmp_path / "annotated.vcf.gz"
    r = cli(
        "variants",
        planted_model,
        planted["variants.vcf"],
        "--genome",
        planted["planted.fa"],
        "-o",
        out,
    )
    assert r.code == 0 and r.out == ""
    raw = out.read_bytes()
    assert raw[:4] == b"\x1f\x8b\x08\x04" and raw[12:14] == b"BC"  # BGZF blocks
    tsv = table(
        cli(
            "variants", planted_model, planted["variants.vcf"], "--genome", planted["planted.fa"]
        ).out
    )
    scored = {(x["id"], x["alt"]): x for x in tsv}
    vcf = pysam.VariantFile(str(out))
    info = vcf.header.info
    assert (info["BSNN_DIFF_1"].number, info["BSNN_DIFF_1"].type) == ("A", "Float")
    assert (info["BSNN_REF_1"].number, info["BSNN_ALT_0"].number) == (1, "A")
    assert "log-odds" in info["BSNN_DIFF_1"].description
    records = list(vcf)
    original = list(pysam.VariantFile(str(planted["variants.vcf"])))
    assert [(v.chrom, v.pos, v.id, v.ref, v.alts, v.info["KIND"]) for v in records] == [
        (v.chrom, v.pos, v.id, v.ref, v.alts, v.info["KIND"]) for v in original
    ]
    for v in records:
        for k, alt in enumerate(v.alts):
            row = scored.get((v.id, alt))
            if row is None:  # the symbolic allele: a missing value
                assert alt == "<DEL>" and v.info["BSNN_DIFF_1"][k] is None
                continue
            assert v.info["BSNN_DIFF_1"][k] == pytest.approx(
                float(row["diff_1"]), rel=1e-5, abs=1e-6
            )
            assert v.info["BSNN_ALT_0"][k] == pytest.approx(float(row["alt_0"]), rel=1e-5)
        assert v.info["BSNN_REF_1"] == pytest.approx(
            float(scored[(v.id, v.alts[0])]["ref_1"]), rel=1e-5
        )
    # a second parser (cyvcf2) and bcftools read the same values
    again = [(v.ID, v.INFO.get("BSNN_DIFF_1")) for v in VCF(str(out))]
    assert len(again) == len(records)
    first = again[0][1]
    assert first[0] == pytest.approx(float(scored[("v0", records[0].alts[0])]["diff_1"]), rel=1e-5)
    assert first[1] is None or math.isnan(first[1])  # the symbolic allele's missing value
    queried = bcftools.query("-f", "%ID\t%ALT\t%INFO/BSNN_DIFF_1\n", str(out)).splitlines()
    assert queried[0] == f"v0\tG,<DEL>\t{scored[('v0', 'G')]['diff_1']},."
    assert [q.split("\t")[0] for q in queried] == [v.id for v in records]


def test_vcf_to_stdout_and_class_names_as_info_keys(
    cli, planted: dict[str, Path], planted_model: Path
) -> None:
    r = cli(
        "variants",
        planted_model,
        planted["variants.vcf"],
        "--genome",
        planted["planted.fa"],
        "--format",
        "vcf",
    )
    assert r.code == 0
    lines = r.out.splitlines()
    assert lines[0] == "##fileformat=VCFv4.2"
    assert any(x.startswith("##bioseqnn_variants=version ") and "window 200" in x for x in lines)
    assert sum(not x.startswith("#") for x in lines) == 439
    assert info_keys(["pos", "a b", "a/b", "x-1", ""]) == ["pos", "a_b", "a_b_2", "x_1", "_"]


# --------------------------------------------------------------------------- inputs


@pytest.mark.parametrize("packing", ["bgzip", "gzip", "bcf", "xz", "bzip2"])
def test_compressed_and_binary_vcf_inputs(
    tmp_path: Path, cli, planted: dict[str, Path], planted_model: Path, packing: str
) -> None:
    src = planted["variants.vcf"]
    if packing == "bgzip":
        path = tmp_path / "v.vcf.gz"
        pysam.tabix_compress(str(src), str(path))
    elif packing == "gzip":
        path = tmp_path / "v.vcf.gz"
        path.write_bytes(gzip.compress(src.read_bytes()))
    elif packing in ("xz", "bzip2"):  # htslib reads neither: bioseqnn decompresses them
        module = lzma if packing == "xz" else bz2
        path = tmp_path / f"v.vcf.{'xz' if packing == 'xz' else 'bz2'}"
        path.write_bytes(module.compress(src.read_bytes()))
    else:  # bcftools itself (bundled with pysam) converts it
        path = tmp_path / "v.bcf"
        bcftools.view("-Ob", "-o", str(path), str(src), catch_stdout=False)
    plain = cli("variants", planted_model, src, "--genome", planted["planted.fa"])
    packed = cli("variants", planted_model, path, "--genome", planted["planted.fa"])
    assert packed.code == 0, packed.err
    assert packed.out == plain.out


@pytest.mark.slow
def test_stdin_in_a_real_pipeline(
    tmp_path: Path, planted: dict[str, Path], planted_model: Path
) -> None:
    text = planted["variants.vcf"].read_bytes()
    piped = run_bioseqnn(
        "variants",
        planted_model,
        "-",
        "--genome",
        planted["planted.fa"],
        "-q",
        stdin=gzip.compress(text),
    )
    assert piped.returncode == 0, piped.stderr
    direct = run_bioseqnn(
        "variants", planted_model, planted["variants.vcf"], "--genome", planted["planted.fa"], "-q"
    )
    assert piped.stdout == direct.stdout and piped.stderr == b""
    assert len(piped.stdout.splitlines()) == 1 + 439


@pytest.mark.slow
def test_process_substitution_and_a_truncated_vcf(
    tmp_path: Path, planted: dict[str, Path], planted_model: Path
) -> None:
    """A VCF from <(...) (a pipe that htslib, opening the path again, found emptied) gives
    the same rows as the file; a truncated gzip VCF is an error that says so, from a file,
    a pipe or stdin, with no output left."""
    genome = planted["planted.fa"]
    direct = run_bioseqnn("variants", planted_model, planted["variants.vcf"], "--genome", genome)
    packed = tmp_path / "v.vcf.gz"
    packed.write_bytes(gzip.compress(planted["variants.vcf"].read_bytes()))
    command = f"{shlex.quote(sys.executable)} -m bioseqnn variants {planted_model} "
    substituted = subprocess.run(
        ["bash", "-c", command + f"<(cat {packed}) --genome {genome}"],
        capture_output=True,
        check=False,
    )
    assert substituted.returncode == 0, substituted.stderr
    assert substituted.stdout == direct.stdout and len(direct.stdout.splitlines()) == 1 + 439

    cut = tmp_path / "cut.vcf.gz"
    cut.write_bytes(packed.read_bytes()[: packed.stat().st_size // 2])
    out = tmp_path / "out.tsv"
    for args, stdin in (([cut], None), (["-"], cut.read_bytes())):
        r = run_bioseqnn(
            "variants", planted_model, *args, "--genome", genome, "-o", out, "-q", stdin=stdin
        )
        name = "<stdin>" if stdin else str(cut)
        assert r.returncode == 1 and r.stderr.decode().startswith(
            f"bioseqnn: error: {name}: damaged or truncated gzip data ("
        ), r.stderr
        assert not out.exists()


# --------------------------------------------------------------------------- errors


def mini(tmp_path: Path, rows: list[str]) -> tuple[Path, Path]:
    fa = tmp_path / "g.fa"
    fa.write_text(f">chr1\n{CHR1}\n>chr2\nACGTACGTACGTACGTACGTACGT\n")
    vcf = tmp_path / "v.vcf"
    vcf.write_text(vcf_text(rows))
    return fa, vcf


def test_ref_mismatch_is_an_error_or_skipped_or_warned(
    tmp_path: Path, cli, planted_model: Path
) -> None:
    fa, vcf = mini(
        tmp_path,
        ["chr1\t10\ta\tG\tT\t.\t.\t.", "chr1\t12\tb\tC\tT\t.\t.\t.", "chr1\t13\tc\tT\tG\t.\t.\t."],
    )
    out = tmp_path / "out.tsv"
    r = cli("variants", planted_model, vcf, "--genome", fa, "--window", "20", "-o", out, "-q")
    assert r.code == 1 and r.out == ""
    assert r.err == (
        f"bioseqnn: error: {vcf}: line 4: variant chr1:12: REF 'C' does not match "
        f"{fa} ('G'); is the VCF for another assembly? (--on-mismatch skip or "
        "warn)\n"
    )
    assert sorted(os.listdir(tmp_path)) == sorted(["g.fa", "g.fa.fai", "v.vcf"])  # nothing
    r = cli(
        "variants", planted_model, vcf, "--genome", fa, "--window", "20", "--on-mismatch", "skip"
    )
    assert r.code == 0 and [x["id"] for x in table(r.out)] == ["a", "c"]
    assert (
        "1 record(s) with a REF that differs from " in r.err
        and "(e.g. chr1:12 REF C, genome G): skipped (--on-mismatch skip)" in r.err
    )
    r = cli(
        "variants", planted_model, vcf, "--genome", fa, "--window", "20", "--on-mismatch", "warn"
    )
    assert r.code == 0 and [x["id"] for x in table(r.out)] == ["a", "b", "c"]
    assert "scored anyway (--on-mismatch warn)" in r.err
    # a REF past the chromosome's end is another assembly whatever --on-mismatch says
    # (as an interval there is), not a window of N scored with a warning
    fa, vcf = mini(tmp_path, ["chr1\t10\ta\tG\tT\t.\t.\t.", "chr1\t999\tfar\tA\tG\t.\t.\t."])
    for mismatch in ("error", "skip", "warn"):
        r = cli(
            *("variants", planted_model, vcf, "--genome", fa, "--window", "20"),
            *("--on-mismatch", mismatch, "-o", out, "-q"),
        )
        assert r.code == 1 and r.err == (
            f"bioseqnn: error: {vcf}: line 4: variant chr1:999: REF 'A' ends past the end of "
            f"chr1 in {fa} (length 32); is the VCF for another assembly?\n"
        )
        assert not out.exists()


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        (
            ["1\t10\t.\tG\tT\t.\t.\t."],
            r"line 3: variant 1:10: chromosome '1' is not in .*"
            r"the genome calls it 'chr1'",
        ),
        (
            ["chr1\t10\t.\tG\tT\t.\t.\t.", "chr1\tx\t.\tG\tT\t.\t.\t."],
            r"line 4: not a valid VCF record \(after chr1:10\)",
        ),
        (["chr1\t10\t.\tG\tQ\t.\t.\t."], r"line 3: variant chr1:10: ALT 'Q' is neither bases nor"),
        (
            ["chr1\t2\t.\tA\tC\t.\t.\t."],
            r"line 3: variant chr1:2: its 10-base window runs off "
            r"chr1 \(length 32\); --on-edge pad",
        ),
    ],
)
def test_bad_records_name_file_and_line(
    tmp_path: Path, cli, planted_model: Path, rows: list[str], message: str
) -> None:
    fa, vcf = mini(tmp_path, rows)
    r = cli(
        "variants", planted_model, vcf, "--genome", fa, "--window", "10", "--on-edge", "error", "-q"
    )
    assert r.code == 1 and r.out == ""
    assert r.err.count("\n") == 1 and r.err.startswith(f"bioseqnn: error: {vcf}: ")
    import re

    assert re.search(message, r.err), r.err


def test_usage_errors(
    tmp_path: Path, cli, planted_model: Path, hemolytic_model: Path, promoter_model: Path
) -> None:
    fa, vcf = mini(tmp_path, ["chr1\t10\t.\tG\tT\t.\t.\t."])
    bed = tmp_path / "varied.bed"  # intervals of their own lengths: no one window width
    bed.write_text("".join(f"chr1\t{i}\t{i + 5 + i % 7}\tr{i}\t{i % 2}\n" for i in range(20)))
    varied = tmp_path / "varied.bsnn"
    assert (
        cli(
            "train",
            "--genome",
            fa,
            bed,
            "-t",
            "score",
            "-o",
            varied,
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
            "--threads",
            "1",
            "-q",
        ).code
        == 0
    )
    # a model of fixed-length sequences scores windows of that length
    r = cli("variants", promoter_model, vcf, "--genome", fa, "-q")
    assert r.code == 0 and len(table(r.out)) == 1
    cases = [
        (["variants", planted_model, vcf], "--genome"),
        (
            ["variants", planted_model, vcf, "--genome", fa, "-o", tmp_path / "x.bcf"],
            "BCF is not written",
        ),
        (
            [
                "variants",
                planted_model,
                vcf,
                "--genome",
                fa,
                "-o",
                tmp_path / "x.tsv",
                "--format",
                "vcf",
            ],
            "--format vcf: name the output .vcf or .vcf.gz",
        ),
        (["variants", hemolytic_model, vcf, "--genome", fa], "the model reads protein"),
        (
            ["variants", varied, vcf, "--genome", fa],
            "--window: the model was not trained on sequences of one length",
        ),
        (["variants", planted_model, tmp_path / "none.vcf", "--genome", fa], "no such file"),
    ]
    for args, message in cases:
        r = cli(*args, "-q")
        assert r.code == 2 and message in r.err and r.err.count("\n") == 1, (args, r.err)
    not_vcf = tmp_path / "x.vcf"
    not_vcf.write_text("hello\n")
    r = cli("variants", planted_model, not_vcf, "--genome", fa, "-q")
    assert r.code == 1 and "not a VCF or BCF file" in r.err


def test_records_without_a_scored_allele_pass_through(
    tmp_path: Path, cli, planted_model: Path
) -> None:
    fa, vcf = mini(
        tmp_path,
        [
            "chr1\t10\tsv\tG\t<DEL>\t.\t.\t.",
            "chr1\t11\tnone\tG\t.\t.\t.\t.",
            "chr1\t12\tbnd\tG\tG]chr2:3]\t.\t.\t.",
        ],
    )
    r = cli("variants", planted_model, vcf, "--genome", fa, "--window", "20")
    assert r.code == 0 and r.out.splitlines() == ["\t".join(HEADER)]
    assert "skipped 2 symbolic allele(s)" in r.err and "1 record(s) without an alternate" in r.err
    out = tmp_path / "o.vcf"
    assert (
        cli("variants", planted_model, vcf, "--genome", fa, "--window", "20", "-o", out).code == 0
    )
    assert [v.id for v in pysam.VariantFile(str(out))] == ["sv", "none", "bnd"]


def test_vcf_reader_errors_are_data_errors(tmp_path: Path) -> None:
    bad = tmp_path / "b.vcf"
    bad.write_text(
        "##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\nchr1\t5\t.\tA\n"
    )
    with (
        pytest.raises(DataError, match=r"b.vcf: line 3: not a valid VCF record"),
        VcfReader(bad) as reader,
    ):
        list(reader)


# --------------------------------------------------------------------------- Snakemake

SNAKEFILE = EXAMPLES / "workflow" / "variants.smk"
snakemake_exe = shutil.which("snakemake", path=str(Path(sys.executable).parent)) or shutil.which(
    "snakemake"
)


@pytest.mark.skipif(snakemake_exe is None, reason="snakemake is not installed")
@pytest.mark.slow
def test_snakemake_scores_a_vcf_split_by_chromosome_and_gathers_it(
    tmp_path: Path, planted: dict[str, Path], planted_model: Path
) -> None:
    vcf = tmp_path / "input.vcf.gz"
    pysam.tabix_compress(str(planted["variants.vcf"]), str(vcf))
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    cmd = [
        str(snakemake_exe),
        "-s",
        str(SNAKEFILE),
        "--cores",
        "2",
        "--directory",
        str(tmp_path / "run"),
        "--config",
        f"model={planted_model}",
        f"genome={planted['planted.fa']}",
        f"vcf={vcf}",
        "variants_args=--threads 1",
    ]
    run = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
    assert run.returncode == 0, run.stderr[-3000:]
    results = tmp_path / "run" / "results"
    parts = sorted(p.name for p in (results / "variants" / "by_chrom").glob("*"))
    assert parts == ["NC_000932.1.tsv", "NC_005816.1.tsv"]
    gathered = (results / "variants.tsv").read_text()
    whole = run_bioseqnn(
        "variants", planted_model, planted["variants.vcf"], "--genome", planted["planted.fa"], "-q"
    )
    # one header, every row, in input order; the scores to rounding: a batch of the whole
    # VCF holds other windows (another width when an indel's window is padded), and
    # oneDNN may pick another convolution algorithm for it (seen on an Intel Xeon: one
    # score of 439 differed in its sixth digit, 0.000692936 against 0.000692937)
    got, want = gathered.splitlines(), whole.stdout.decode().splitlines()
    assert len(got) == len(want) and got[0] == want[0]
    for a, b in zip(got[1:], want[1:], strict=True):
        fields_a, fields_b = a.split("\t"), b.split("\t")
        assert fields_a[:5] == fields_b[:5]
        assert [float(x) for x in fields_a[5:]] == pytest.approx(
            [float(x) for x in fields_b[5:]], rel=1e-5, abs=1e-8
        )
    assert (
        statistics.median(
            float(x["diff_1"]) for x in table(gathered) if kinds(planted)[x["id"]] == "motif"
        )
        < -3
    )


@pytest.mark.slow
def test_docs_genome_example_runs_as_written(tmp_path: Path) -> None:
    """The genome page's commands on the bundled example, run as a user would from the
    checkout."""
    import shlex

    page = (EXAMPLES.parent / "docs" / "guide" / "genome.md").read_text(encoding="utf-8")
    section = page.split("# Genome intervals and variant effects", 1)[1].split("\n## ", 1)[0]
    commands = [
        line.strip()
        for line in section.splitlines()  # not those on ref.fa
        if line.startswith(("    python ", "    bioseqnn ")) and "planted" in line
    ]
    assert [c.split()[1] for c in commands] == [
        "example_data/genome/make_planted.py",
        "train",
        "variants",
        "variants",
    ]
    (tmp_path / "example_data").symlink_to(EXAMPLES)
    for command in commands:
        args = shlex.split(command)
        if args[0] == "python":
            done = subprocess.run(
                [sys.executable, *args[1:]], cwd=tmp_path, capture_output=True, check=False
            )
        else:
            done = run_bioseqnn(*args[1:], "--threads", "1", cwd=tmp_path)
        assert done.returncode == 0, (command, done.stderr.decode())
    effects = table((tmp_path / "planted" / "effects.tsv").read_text())
    kind = {
        r.id: r.info["KIND"] for r in pysam.VariantFile(str(tmp_path / "planted" / "variants.vcf"))
    }
    motif = [float(x["diff_1"]) for x in effects if kind[x["id"]] == "motif"]
    assert len(effects) == 439 and statistics.median(motif) < -3
    annotated = list(pysam.VariantFile(str(tmp_path / "planted" / "annotated.vcf.gz")))
    assert len(annotated) == 439 and "BSNN_DIFF_1" in annotated[0].info
