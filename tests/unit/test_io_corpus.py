"""Biopython's own test files (tests/data/biopython, see its README) through 'predict':
every FASTA and FASTQ file Biopython reads is read, with the same records (compared with
Bio.SeqIO), and every other file is refused with one line naming where and why.

Each file runs against the model of its alphabet: D (DNA) or P (protein). The expected
outcome is the number of records predicted, or the exit code 1 and a fragment of the
one error line (what comes after 'bioseqnn: error: FILE: ').
"""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest
from conftest import AMINO, random_records, train_tiny

CORPUS = Path(__file__).resolve().parents[1] / "data" / "biopython"

HEADER = "line 1: expected a FASTA header starting with '>' (or '@' for FASTQ), found "
NOT_READ = "which is not read: convert it to FASTA"
M10 = "'; is this a table or another format?"  # FASTA-program output: '# fasta36 ...'
SLXA = "SLXA-B3_649_FC8437_R1_1_1_"

EXPECTED: dict[str, tuple[str, int | str]] = {
    # ---- Tests/Fasta: sequence files (read), alignments and program outputs (refused)
    "Fasta/README": ("D", HEADER + "'FASTA TEST DATA FILES'"),
    "Fasta/aster.pro": ("P", 1),
    "Fasta/aster_no_wrap.pro": ("P", 1),
    # Biopython reads these as 'fasta-blast' and 'fasta-pearson' (text before the first
    # record), its plain 'fasta' refuses them, as bioseqnn does
    "Fasta/aster_blast.pro": ("P", HEADER + "'# Some header'; is this a table or another format?"),
    "Fasta/aster_pearson.pro": ("P", HEADER + "'Some header'"),
    "Fasta/centaurea.nu": ("D", 1),
    "Fasta/dups.fasta": ("D", 5),  # duplicate ids: every record gets its row
    "Fasta/elderberry.nu": ("D", 1),
    "Fasta/f001": ("P", 1),
    "Fasta/f002": ("D", 3),
    "Fasta/f003.fa": ("P", 2),
    # an alignment: gaps are no residues
    "Fasta/fa01": (
        "P",
        "line 2, column 31: record 'AK1H_ECOLI/1-378': invalid protein "
        "symbol '-' at position 31 (use --on-invalid skip or mask)",
    ),
    "Fasta/flowers.pro.gz": ("P", 3),
    "Fasta/lavender.nu": ("D", 1),
    "Fasta/loveliesbleeding.pro": ("P", 1),
    "Fasta/lupine.nu": ("D", 1),
    "Fasta/nucleotide_lib.fa": ("D", 7),
    "Fasta/nucleotide_m8CB.txt": ("D", HEADER + "'# fasta36 -m 8CB seq/mgstm1.nt seq/gs...'"),
    "Fasta/nucleotide_m8CC.txt": ("D", HEADER + "'# fasta36 -m 8CC seq/mgstm1.nt seq/gs...'"),
    **{f"Fasta/output{i:03d}.m10": ("D", M10) for i in range(1, 17)},
    "Fasta/phlox.nu": ("D", 1),
    "Fasta/protein_lib.fa": ("P", 12),
    "Fasta/protein_m8CB.txt": ("P", HEADER + "'# fasta36 -q -m 8CB seq/mgstm1.aa seq...'"),
    "Fasta/protein_m8CC.txt": ("P", HEADER + "'# fasta36 -q -m 8CC seq/mgstm1.aa seq...'"),
    "Fasta/rose.pro": ("P", 1),
    "Fasta/rosemary.pro": ("P", 1),
    "Fasta/sweetpea.nu": ("D", 1),
    "Fasta/wisteria.nu": ("D", 1),
    # ---- Tests/Quality: FASTQ (plain, gzip, bgzip, Windows line ends, wrapped, every
    # quality encoding), and Biopython's damaged files, each refused where the damage is
    "Quality/error_diff_ids.fastq": (
        "D",
        f"line 11: record '{SLXA}850_123': the '+' line "
        f"names '{SLXA}850_124', not the record's header "
        "(line 9)",
    ),
    "Quality/error_double_qual.fastq": (
        "D",
        f"line 13: expected a FASTQ header starting with '@', found '+{SLXA}850_123'",
    ),
    "Quality/error_double_seq.fastq": (
        "D",
        f"line 15: record '{SLXA}362_549' (line 13): a "
        f"header '@{SLXA}362_549' where its sequence "
        "continues or its '+' line belongs",
    ),
    "Quality/error_long_qual.fastq": (
        "D",
        f"line 16: record '{SLXA}362_549': quality has 26 characters, the sequence 25",
    ),
    "Quality/error_no_qual.fastq": (
        "D",
        f"line 4: record '{SLXA}610_79': quality ends after 0 "
        "of 25 characters, before the header on line 5",
    ),
    "Quality/error_qual_del.fastq": (
        "D",
        f"line 16, column 13: record '{SLXA}362_549': '\\x7f' is no quality character",
    ),
    "Quality/error_qual_escape.fastq": (
        "D",
        f"line 20, column 8: record '{SLXA}183_714': '\\x1b' is no quality character",
    ),
    "Quality/error_qual_null.fastq": (
        "D",
        f"line 4, column 4: record '{SLXA}850_123': '\\x00' is no quality character",
    ),
    "Quality/error_qual_space.fastq": (
        "D",
        f"line 16, column 19: record '{SLXA}362_549': ' ' is no quality character",
    ),
    "Quality/error_qual_tab.fastq": (
        "D",
        f"line 20, column 11: record '{SLXA}183_714': '\\t' is no quality character",
    ),
    "Quality/error_qual_unit_sep.fastq": (
        "D",
        f"line 12, column 6: record '{SLXA}850_123': '\\x1f' is no quality character",
    ),
    "Quality/error_qual_vtab.fastq": (
        "D",
        f"line 4, column 11: record '{SLXA}610_79': '\\x0b' is no quality character",
    ),
    "Quality/error_short_qual.fastq": (
        "D",
        f"line 12: record '{SLXA}850_123': quality ends "
        "after 24 of 25 characters, before the header on "
        "line 13",
    ),
    "Quality/error_spaces.fastq": (
        "D",
        f"line 4, column 10: record '{SLXA}610_79': ' ' is no quality character",
    ),
    "Quality/error_tabs.fastq": (
        "D",
        f"line 4, column 10: record '{SLXA}610_79': '\\t' is no quality character",
    ),
    "Quality/error_trunc_at_plus.fastq": (
        "D",
        "line 19: FASTQ record starting at line 17 ends before its '+' line (truncated file?)",
    ),
    "Quality/error_trunc_at_qual.fastq": (
        "D",
        f"line 19: record '{SLXA}183_714': quality ends after 0 of 25 characters (truncated file?)",
    ),
    "Quality/error_trunc_at_seq.fastq": (
        "D",
        "line 18: FASTQ record starting at line 17 ends before its '+' line",
    ),
    "Quality/error_trunc_in_plus.fastq": (
        "D",
        f"line 19: record '{SLXA}183_714': the '+' "
        "line names 'SLXA-B3_649_FC', not the record's "
        "header (line 17)",
    ),
    "Quality/error_trunc_in_qual.fastq": (
        "D",
        f"line 20: record '{SLXA}183_714': quality "
        "ends after 24 of 25 characters (truncated "
        "file?)",
    ),
    "Quality/error_trunc_in_seq.fastq": (
        "D",
        "line 18: FASTQ record starting at line 17 ends before its '+' line",
    ),
    "Quality/error_trunc_in_title.fastq": (
        "D",
        "line 17: FASTQ record starting at line 17 ends before its '+' line",
    ),
    "Quality/example.fasta": ("D", 3),
    "Quality/example.fastq": ("D", 3),
    "Quality/example.fastq.bgz": ("D", 3),
    "Quality/example.fastq.gz": ("D", 3),
    # a QUAL file holds numbers, not residues
    "Quality/example.qual": (
        "D",
        "line 2, column 1: record 'EAS54_6_R1_2_1_413_324': invalid dna symbol '2' at position 1",
    ),
    "Quality/example_dos.fastq": ("D", 3),
    "Quality/example_dos.fastq.bgz": ("D", 3),
    **{f"Quality/{kind}_faked.fastq": ("D", 1) for kind in ("illumina", "sanger", "solexa")},
    **{
        f"Quality/{source}_full_range_{as_}.fastq": ("D", 2)
        for source in ("illumina", "sanger", "solexa")
        for as_ in ("as_illumina", "as_sanger", "as_solexa", f"original_{source}")
    },
    **{
        f"Quality/longreads_{as_}.fastq": ("D", 10)
        for as_ in ("as_illumina", "as_sanger", "as_solexa", "original_sanger")
    },
    **{
        f"Quality/misc_{na}_{as_}.fastq": ("D", 4)
        for na in ("dna", "rna")
        for as_ in ("as_illumina", "as_sanger", "as_solexa", "original_sanger")
    },
    "Quality/sanger_93.fastq": ("D", 1),
    "Quality/solexa_example.fastq": ("D", 5),
    "Quality/tricky.fastq": ("D", 4),  # '@' and '+' starting quality lines
    **{
        f"Quality/wrapping_{as_}.fastq": ("D", 3)
        for as_ in ("as_illumina", "as_sanger", "as_solexa", "original_sanger")
    },
    # Biopython reads a read of no bases; a model has nothing to predict from
    "Quality/zero_length.fastq": ("D", "line 9: record 'EMWLCP001DHOHL' has no sequence"),
    # ---- a few of Tests/GenBank and Tests/EMBL: flat files are named and refused
    "EMBL/A04195.imgt": ("D", f"'; this looks like EMBL (or UniProt text), {NOT_READ}"),
    "EMBL/DD231055_edited.embl": ("D", f"'; this looks like EMBL (or UniProt text), {NOT_READ}"),
    "EMBL/patents.embl": ("P", f"'; this looks like EMBL (or UniProt text), {NOT_READ}"),
    "EMBL/xx_after_co.embl": ("D", f"'; this looks like EMBL (or UniProt text), {NOT_READ}"),
    "GenBank/no_origin_no_end.gb": ("D", f"'; this looks like GenBank, {NOT_READ}"),
    "GenBank/origin_line.gb": ("D", f"'; this looks like GenBank, {NOT_READ}"),
    "GenBank/protein_refseq.gb": ("P", f"'; this looks like GenBank, {NOT_READ}"),
    "GenBank/NC_005816.faa": ("P", 10),
    "GenBank/NC_005816.ffn": ("D", 10),
    "GenBank/NC_005816.fna": ("D", 1),
    "GenBank/NC_005816.tsv": ("D", "a table, but the model reads dna sequences (FASTA/FASTQ)"),
}

# The same files given to the model of the other alphabet.
OTHER_MODEL: dict[str, tuple[str, str]] = {
    "Fasta/aster.pro": ("D", "the sequences look like protein but the model was trained on dna"),
    "Fasta/f002": ("P", "the sequences look like dna but the model was trained on protein"),
    # lower case and every ambiguity code: the whole sample does not look like DNA, three
    # of its four records do
    "Quality/misc_dna_original_sanger.fastq": (
        "P",
        "3 of the first 4 records look like "
        "DNA/RNA (e.g. 'FAKE0007', line 1), but "
        "the model was trained on protein",
    ),
}


@pytest.fixture(scope="module")
def corpus_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("corpus-models")
    return {
        "P": train_tiny(d, random_records(24, AMINO, 15, seed=31), ["0", "1"] * 12, "p"),
        "D": train_tiny(d, random_records(24, "ACGT", 30, seed=32), ["0", "1"] * 12, "d"),
    }


def test_every_file_of_the_corpus_has_an_expected_outcome() -> None:
    files = {str(p.relative_to(CORPUS)) for p in CORPUS.rglob("*") if p.is_file()}
    assert files - {"README.md", "LICENSE.rst"} == set(EXPECTED)
    assert len(EXPECTED) == 118


def _biopython_ids(path: Path) -> list[str]:
    """The record ids Biopython's own parser reads (the reference for what is read)."""
    from Bio import SeqIO

    fmt = "fastq" if ".fastq" in path.name else "fasta"
    opener = gzip.open if path.suffix in (".gz", ".bgz") else open
    with opener(path, "rt") as handle:
        return [r.id for r in SeqIO.parse(handle, fmt)]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_biopython_corpus(cli, corpus_models: dict[str, Path], tmp_path: Path, name: str) -> None:
    key, expected = EXPECTED[name]
    path = CORPUS / name
    out = tmp_path / "out.tsv"
    r = cli("predict", corpus_models[key], path, "-o", out, "--threads", "1", "--quiet")
    if isinstance(expected, int):
        assert r.code == 0, r.err
        assert r.err == ""
        ids = [line.split("\t")[0] for line in out.read_text().splitlines()[1:]]
        assert len(ids) == expected
        assert ids == _biopython_ids(path)
    else:
        lines = r.err.splitlines()
        assert r.code == 1 and len(lines) == 1, r.err
        assert lines[0].startswith(f"bioseqnn: error: {path}: ")
        assert expected in lines[0]
        assert not out.exists()


@pytest.mark.parametrize("name", sorted(OTHER_MODEL))
def test_biopython_corpus_with_the_other_alphabets_model(
    cli, corpus_models: dict[str, Path], tmp_path: Path, name: str
) -> None:
    key, expected = OTHER_MODEL[name]
    assert key != EXPECTED[name][0]
    path = CORPUS / name
    r = cli("predict", corpus_models[key], path, "-o", tmp_path / "out.tsv", "--threads", "1")
    assert r.code == 1
    assert r.err.splitlines() == [
        f"bioseqnn: error: {path}: {expected}; check that this is the right model for this input"
    ]
