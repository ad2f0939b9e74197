"""A catalogue of malformed inputs, each run through the real CLI entry point.

Every case asserts the documented exit code, exactly one error line on stderr that
names the file (and, where it applies, the record, line and position), no traceback,
nothing on stdout and no file created or left behind (no output, no temporary file).
The second half checks the ambiguous-but-common inputs that must be *accepted*.
"""

from __future__ import annotations

import gzip
import importlib.util
import json
import os
import random
import re
import stat
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from conftest import (
    AMINO,
    PEPTIDES,
    SIX,
    SIX_LABELS,
    fasta,
    random_records,
    run_bioseqnn,
    train_tiny,
)

from bioseqnn import machine, runtime


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A protein binary classifier and a DNA regressor, tiny and quick."""
    d = tmp_path_factory.mktemp("bad-input-models")
    prot = random_records(24, AMINO, 15, seed=1)
    dna = random_records(24, "ACGT", 30, seed=2)
    return {
        "P": str(train_tiny(d, prot, ["0", "1"] * 12, "protein")),
        "D": str(train_tiny(d, dna, [f"{0.1 * i:.2f}" for i in range(24)], "dna")),
    }


# --------------------------------------------------------------------------- catalogue

REG_LABELS = b"id,y\n" + b"".join(f"s{i},{i / 3:.3f}\n".encode() for i in range(6))


def labels(**cells: str) -> bytes:
    """SIX_LABELS with some rows' label replaced (s1='' -> empty cell)."""
    rows = [f"s{i},{cells.get(f's{i}', str(i % 2))}" for i in range(6)]
    return ("id,y\n" + "\n".join(rows) + "\n").encode()


GZ = gzip.compress(fasta(random_records(400, AMINO, 60, seed=3)))
MODEL_HEADER_ONLY = b"\x10\x00\x00\x00\x00\x00\x00\x00{}"  # a safetensors prefix and no more
# DNA for the sample the alphabet is detected from, then a protein record further on.
MIXED = fasta(random_records(2001, "ACGT", 24, seed=4) + [("p1", "MKVLAAGIIEKLQFP")])
DNA_WITH_X = fasta(
    [
        (rid, seq[:20] + "X" + seq[21:] if i % 10 == 3 else seq)
        for i, (rid, seq) in enumerate(random_records(30, "ACGT", 60, seed=14))
    ]
)
MIXED_LABELS = ("id,y\n" + "".join(f"r{i},{i % 2}\n" for i in range(2001)) + "p1,0\n").encode()


@dataclass
class Case:
    id: str
    argv: list[str]
    code: int
    expect: list[str]
    files: dict[str, bytes] = field(default_factory=dict)
    dirs: list[str] = field(default_factory=list)
    marks: list[pytest.MarkDecorator] = field(default_factory=list)
    links: dict[str, str] = field(default_factory=dict)
    """Symbolic links to make: name -> where it points."""
    hardlinks: dict[str, str] = field(default_factory=dict)
    copies: dict[str, str] = field(default_factory=dict)
    """Copies of the models fixture's files: name -> its key ('P', 'D')."""
    big: dict[str, tuple[bytes, bytes, int]] = field(default_factory=dict)
    """Large files, made when the case runs: name -> (a start, then a piece, how many
    times)."""


PRED = ["predict", "{P}", "in.fa", "-o", "out.tsv"]
TUNE = ["tune", "six.fa", "l.csv", "-o", "m.bsnn", "--trials", "1"]
_BOMB = "&a [1, 1, 1, 1, 1, 1, 1, 1, 1]"
for _prev, _name in zip("abcdefg", "bcdefgh", strict=True):
    _BOMB = f"&{_name} [{_BOMB}" + f", *{_prev}" * 8 + "]"
ALIAS_BOMB = f"model:\n  kernel_sizes: {_BOMB}\n".encode()
"""About 400 bytes that a reader that follows aliases turns into 9^8 (43 million) values."""
LONG_VALUE = b"model:\n  arch: [" + b"lstm, " * 9999 + b"x]\n"
TRAIN = ["train", "six.fa", "l.csv", "-o", "m.bsnn", "--epochs", "1", "--hidden-size", "8"]
_CHR1 = "ACGT" * 50
GENOME = {
    "g.fa": f">chr1\n{_CHR1}\n".encode(),
    "g.fa.fai": b"chr1\t200\t6\t200\t201\n",  # indexed already: no file is added
    "v.vcf": b"##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n"
    b"chr1\t50\t.\tG\tA\t.\t.\t.\n",
    "r.bed": b"chr1\t40\t60\n",
}
"""A genome with its index, a VCF and a BED file on it."""


def pred_case(
    id: str, data: bytes, expect: list[str], name: str = "in.fa", model: str = "{P}"
) -> Case:
    return Case(id, ["predict", model, name, "-o", "out.tsv"], 1, expect, {name: data})


def label_case(
    id: str, table: bytes, expect: list[str], *extra: str, seqs: bytes = SIX, code: int = 1
) -> Case:
    return Case(id, [*TRAIN, *extra], code, expect, {"six.fa": seqs, "l.csv": table})


try:
    import matplotlib  # noqa: F401

    HAS_MPL = True
except ImportError:
    HAS_MPL = False
needs_mpl = pytest.mark.skipif(not HAS_MPL, reason="plot-history needs matplotlib")
needs_motifs = pytest.mark.skipif(
    importlib.util.find_spec("memelite") is None, reason="motifs needs the motifs extra"
)

CASES = [
    # ---- sequence files that are empty, not FASTA, or damaged
    pred_case("empty-file", b"", ["in.fa: empty input, no sequence records"]),
    pred_case("blank-lines-only", b"\n  \n\t\n", ["in.fa: empty input"]),
    pred_case(
        "binary-file",
        bytes(range(256)) * 8,  # byte 10 ends line 1; 0x80 is the first that is not UTF-8
        ["in.fa: line 2, column 118: not text (undecodable bytes); is this a binary file?"],
    ),
    pred_case(
        "gzip-truncated",
        GZ[: len(GZ) // 2],
        ["in.fa.gz: damaged or truncated gzip"],
        name="in.fa.gz",
    ),
    pred_case(
        "gzip-corrupt",
        GZ[:10] + b"\x00" * 40 + GZ[50:],
        ["in.fa.gz: damaged or truncated gzip"],
        name="in.fa.gz",
    ),
    pred_case(
        "genbank-given-as-fasta",
        b"LOCUS       AB000001   30 bp    DNA\nORIGIN\n",
        ["in.gb: line 1: expected a FASTA header", "GenBank"],
        name="in.gb",
    ),
    pred_case(
        "embl-given-as-fasta",
        b"ID   X56734; SV 1; linear; mRNA; STD; PLN; 1859 BP.\nXX\nAC   X56734;\n",
        [
            "in.embl: line 1: expected a FASTA header starting with '>' (or '@' for FASTQ), "
            "found 'ID   X56734; SV 1; linear; mRNA; STD;...'; this looks like EMBL (or "
            "UniProt text), which is not read: convert it to FASTA"
        ],
        name="in.embl",
    ),
    pred_case(
        "table-given-as-fasta",
        b"id,seq\na,KLV\n",
        ["in.fa: a table, but the model reads protein sequences (FASTA/FASTQ)"],
    ),
    pred_case(
        "sequence-before-first-header",
        b"KLVFF\n>a\nKLVFF\n",
        ["in.fa: line 1: expected a FASTA header", "found 'KLVFF'"],
    ),
    pred_case(
        "sequence-after-blank-lines-before-header",
        b"\n\nKLV\n>a\nKLV\n",
        ["in.fa: line 3: expected a FASTA header"],
    ),
    pred_case(
        "record-without-sequence", b">a\n>b\nKLVFF\n", ["in.fa: line 1: record 'a' has no sequence"]
    ),
    pred_case(
        "last-record-without-sequence",
        b">a\nKLVFF\n\n>b\n",
        ["in.fa: line 4: record 'b' has no sequence"],
    ),
    pred_case("header-without-id", b">a\nKLVFF\n>\nKLVFF\n", ["in.fa: line 3: header has no id"]),
    # ---- invalid symbols: file, line, column, record, position
    pred_case(
        "digit-in-protein",
        b">a\nKLVFF\n>b\nKL3VF\n",
        ["in.fa: line 4, column 3: record 'b': invalid protein symbol '3' at position 3"],
    ),
    pred_case(
        "stop-codon-mid-protein",
        b">a\nKLV*FF\n",
        ["in.fa: line 2, column 4: record 'a': invalid protein symbol '*' at position 4"],
    ),
    pred_case(
        "stop-codon-alone",  # no residues: it would be predicted as NaN
        b">a\nKLVFF\n>star\n*\n",
        ["in.fa: line 4, column 1: record 'star': invalid protein symbol '*' at position 1"],
    ),
    pred_case("gap-dash", b">a\nKL-VF\n", ["line 2, column 3: record 'a'", "symbol '-'"]),
    pred_case("gap-dot", b">a\nKL.VF\n", ["line 2, column 3: record 'a'", "symbol '.'"]),
    pred_case(
        "invalid-on-third-sequence-line",
        b">x\nKLVFA\nKLVFA\nKL1\n",
        ["in.fa: line 4, column 3: record 'x'", "'1' at position 13"],
    ),
    pred_case(
        "invalid-with-irregular-line-widths",
        b">x\nKLV\nKLVFA\nK1\n",
        ["in.fa: line 4, column 2: record 'x'", "'1' at position 10"],
    ),
    pred_case(
        "non-ascii-letter",
        ">a\nKLVé\n".encode(),
        ["in.fa: line 2, column 4: record 'a': non-ASCII character 'é' at position 4"],
    ),
    pred_case("nul-byte", b">a\nKL\x00V\n", ["line 2, column 3: record 'a'", r"symbol '\x00'"]),
    pred_case(
        "crlf-with-invalid-symbol",
        b">a\r\nKLVFF\r\n>b\r\nK#V\r\n",
        ["in.fa: line 4, column 2: record 'b'", "symbol '#'"],
    ),
    # ---- FASTQ damage (FASTQ itself is accepted, see below)
    pred_case(
        "fastq-quality-truncated",
        b"@r1\nKLVFF\n+\nIII\n",
        ["in.fq: line 4: record 'r1': quality ends after 3 of 5"],
        name="in.fq",
    ),
    pred_case(
        "fastq-without-plus-line", b"@r1\nKLVFF\n", ["in.fq: line 2:", "'+' line"], name="in.fq"
    ),
    pred_case(
        "fastq-quality-too-long",
        b"@r1\nKLV\n+\nIIIII\n",
        ["in.fq: line 4: record 'r1': quality has 5 characters, the sequence 3"],
        name="in.fq",
    ),
    pred_case(
        "fastq-second-header-missing-at",
        b"@r1\nKLV\n+\nIII\nr2\nKLV\n",
        ["in.fq: line 5: expected a FASTQ header starting with '@'"],
        name="in.fq",
    ),
    # damage is named where it is, not where the reader notices the lengths disagree
    pred_case(
        "fastq-record-missing-plus-and-quality",
        b"@r1\nKLVFF\n@r2\nKLVFF\n+\nIIIII\n",
        [
            "in.fq: line 3: record 'r1' (line 1): a header '@r2' where its sequence "
            "continues or its '+' line belongs; are its '+' and quality lines missing?"
        ],
        name="in.fq",
    ),
    pred_case(
        "fastq-quality-missing-before-next-record",
        b"@r1\nKLVFF\n+\n\n@r2\nKLVFF\n+\nIIIII\n",
        [
            "in.fq: line 4: record 'r1': quality ends after 0 of 5 characters, before the "
            "header on line 5 ('@r2')"
        ],
        name="in.fq",
    ),
    pred_case(
        "fastq-plus-line-names-another-record",
        b"@r1 x\nKLVFF\n+r2\nIIIII\n",
        ["in.fq: line 3: record 'r1': the '+' line names 'r2', not the record's header (line 1)"],
        name="in.fq",
    ),
    pred_case(
        "fastq-quality-with-a-tab",
        b"@r1\nKLVFF\n+\nII\tII\n",
        ["in.fq: line 4, column 3: record 'r1': '\\t' is no quality character ('!' to '~')"],
        name="in.fq",
    ),
    # ---- alphabets that do not fit
    pred_case(
        "dna-given-to-protein-model",
        fasta(random_records(5, "ACGT", 40, seed=5)),
        ["in.fa: the sequences look like dna but the model was trained on protein"],
    ),
    # a few reads with a protein-only symbol ('X') made the whole sample look like protein
    pred_case(
        "dna-reads-with-a-few-x-given-to-protein-model",
        DNA_WITH_X,
        [
            "in.fa: 27 of the first 30 records look like DNA/RNA (e.g. 'r0', line 1), but "
            "the model was trained on protein; check that this is the right model for "
            "this input"
        ],
    ),
    Case(
        "evaluate-dna-reads-with-a-few-x-on-protein-model",
        ["evaluate", "{P}", "in.fa", "l.csv", "-o", "m.json"],
        1,
        [
            "in.fa: 27 of the first 30 records look like DNA/RNA (e.g. 'r0'), but the model "
            "was trained on protein"
        ],
        {
            "in.fa": DNA_WITH_X,
            "l.csv": b"id,y\n" + b"".join(b"r%d,%d\n" % (i, i % 2) for i in range(30)),
        },
    ),
    pred_case(
        "protein-given-to-dna-model",
        fasta([("a", PEPTIDES[0])]),
        ["in.fa: the sequences look like protein but the model was trained on dna"],
        model="{D}",
    ),
    label_case(
        "mixed-dna-then-protein",
        MIXED_LABELS,
        [
            "six.fa: line 4004, column 4: record 'p1': invalid dna symbol 'L' at position 4",
            "the record looks like protein",
            "does the file mix dna and protein?",
        ],
        seqs=MIXED,
    ),
    # ---- missing or unreadable inputs
    Case("missing-sequence-file", ["predict", "{P}", "nosuch.fa"], 2, ["nosuch.fa: no such file"]),
    Case(
        "sequence-path-is-directory",
        ["predict", "{P}", "adir"],
        2,
        ["adir: is a directory"],
        dirs=["adir"],
    ),
    Case(
        "missing-labels-file",
        [*TRAIN[:2], "nosuch.csv", *TRAIN[3:]],
        2,
        ["nosuch.csv: no such file"],
        {"six.fa": SIX},
    ),
    # ---- label tables
    label_case(
        "labels-without-id-column",
        b"name,y\ns0,0\ns1,1\n",
        ["l.csv: no column 'id'; columns are: 'name', 'y'"],
    ),
    label_case(
        "target-given-twice",
        SIX_LABELS,
        ["--target 'y' given more than once"],
        "-t",
        "y",
        "--target",
        "y",
        code=2,
    ),
    label_case(
        "target-is-the-id-column",  # was: 'nearly one class per record'
        SIX_LABELS,
        [
            "--target 'id' is the id column; give a column of labels (or name another id "
            "column with --id-column)"
        ],
        "--target",
        "id",
        code=2,
    ),
    label_case(
        "labels-id-column-in-capitals",
        SIX_LABELS.replace(b"id,y", b"ID,y"),
        ["l.csv: no column 'id'; columns are: 'ID', 'y'; did you mean 'ID'? (column names"],
    ),
    label_case(
        "labels-semicolon-delimited",
        SIX_LABELS.replace(b",", b";"),
        ["l.csv: no column 'id'", "separated by ';'"],
    ),
    label_case(
        "labels-without-target-column", b"id\ns0\ns1\n", ["l.csv: no target column besides 'id'"]
    ),
    label_case("labels-unknown-target", SIX_LABELS, ["l.csv: no column 'z'"], "--target", "z"),
    label_case(
        "labels-empty-cell",
        labels(s1=""),
        ["1 record(s) with an empty label ('s1') in l.csv, line 3"],
    ),
    label_case(
        "labels-nan-regression",
        REG_LABELS.replace(b"0.333", b"nan"),
        ["l.csv: line 3 (id 's1'): column 'y': 'nan' is not finite"],
    ),
    label_case(
        "labels-inf-regression",
        REG_LABELS.replace(b"1.000", b"-inf"),
        ["l.csv: line 5 (id 's3'): column 'y': '-inf' is not finite"],
    ),
    label_case(
        "labels-beyond-float32-regression",
        REG_LABELS.replace(b"0.333", b"1e39"),
        [
            "l.csv: line 3 (id 's1'): column 'y': '1e39' is beyond the range of the "
            "numbers a model computes with (float32, +-3.4e38); rescale the targets"
        ],
        "--task",
        "regression",
    ),
    label_case(
        "class-name-with-a-tab",
        labels(s1='"a\tb"', s3='"a\tb"', s5='"a\tb"'),
        [
            "l.csv: line 3 (id 's1'): class 'a\\tb' holds a control character; class "
            "names become columns and cells of the predictions (a TAB or a newline would "
            "break their rows): remove it"
        ],
    ),
    label_case(
        "class-name-with-an-escape-code",
        labels(s0="0\x1b[2J"),
        ["l.csv: line 2 (id 's0'): class '0\\x1b[2J' holds a control character"],
    ),
    label_case(
        "class-name-with-a-newline",
        labels(s2='"a\nb"'),
        ["l.csv: line 4: a quoted field runs over several lines"],
    ),
    label_case(
        "target-name-with-a-tab",
        SIX_LABELS.replace(b"id,y", b'id,"y\tz"'),
        [
            "l.csv: line 1: column 'y\\tz' holds a control character; target names "
            "become columns of the predictions: remove it"
        ],
    ),
    Case(
        "per-position-label-letter-is-a-control-character",
        [*TRAIN[:2], "ss.fa", *TRAIN[3:]],
        1,
        ["ss.fa: record 's1', position 2: label '\\x01' is no printable ASCII letter"],
        {
            "six.fa": SIX,
            "ss.fa": fasta(
                [
                    (f"s{i}", ("H\x01" if i == 1 else "HE") + "C" * (len(p) - 2))
                    for i, p in enumerate(PEPTIDES[:6])
                ]
            ),
        },
    ),
    label_case(
        "labels-text-in-forced-regression",
        labels(s2="high"),
        ["l.csv: --task regression needs numbers", "'high'"],
        "--task",
        "regression",
    ),
    label_case(
        "labels-single-class",
        labels(s1="0", s3="0", s5="0"),
        ["l.csv: column 'y' holds a single class ('0')"],
    ),
    Case(
        "class-only-in-validation",
        [*TRAIN, "--val-fasta", "v.fa", "--val-labels", "v.csv"],
        1,
        ["v.csv: line 3 (id 'v1'): class '7' was not seen in training (classes: 0, 1)"],
        {
            "six.fa": SIX,
            "l.csv": SIX_LABELS,
            "v.fa": fasta([("v0", "KLVFF"), ("v1", "GIGAV")]),
            "v.csv": b"id,y\nv0,1\nv1,7\n",
        },
    ),
    label_case(
        "label-ids-not-in-fasta",
        SIX_LABELS + b"zz,1\n",
        ["1 id(s) in l.csv missing from six.fa ('zz'), line 8", "--ignore-unmatched"],
    ),
    label_case(
        "label-id-not-in-fasta-on-many-rows",
        SIX_LABELS + b"zz,1\nzz,0\nzz,1\n",
        ["1 id(s) in l.csv missing from six.fa ('zz'), lines 8, 9, 10 (--ignore"],
    ),
    label_case(
        "fasta-ids-not-in-labels",
        SIX_LABELS.replace(b"s5,1\n", b""),
        ["1 id(s) in six.fa missing from l.csv ('s5'), line 11"],
    ),
    label_case(
        "fasta-id-with-description-vs-label",
        SIX_LABELS.replace(b"s0,", b"s0 x,"),
        ["six.fa missing from l.csv ('s0'), line 1", "l.csv missing from six.fa ('s0 x')"],
    ),
    label_case(
        "duplicate-ids-in-fasta",
        SIX_LABELS,
        ["1 duplicate id(s) in six.fa ('s2'), lines 5, 13"],
        seqs=SIX + b">s2\nKLVFF\n",
    ),
    label_case(
        "duplicate-ids-in-labels",
        SIX_LABELS + b"s3,0\n",
        ["1 duplicate id(s) in l.csv ('s3'), lines 5, 8"],
    ),
    label_case(
        "labels-ragged-row",
        SIX_LABELS.replace(b"s2,0", b"s2,0,9"),
        ["l.csv: line 4: 3 field(s), the header has 2 (delimiter ',')"],
    ),
    label_case(
        "labels-open-quote",
        SIX_LABELS.replace(b"s2,0", b's2,"0'),
        ["l.csv: line 4: a quoted field runs over several lines"],
    ),
    label_case("labels-header-only", b"id,y\n", ["l.csv: a header row but no data rows"]),
    label_case("labels-empty-file", b"", ["l.csv: empty table, expected a header row"]),
    label_case(
        "labels-binary-file",
        bytes(range(256)),
        ["l.csv: line 2, column 118: not text (undecodable bytes); is this a binary file?"],
    ),
    label_case(
        "labels-excel-workbook",
        b"PK\x03\x04\x14\x00\x06\x00" + bytes(200),  # a zip archive, as .xlsx files are
        [
            "l.csv: a zip archive (an Excel .xlsx workbook?), not text; save the sheet as "
            "CSV or TSV, or unzip it"
        ],
    ),
    label_case(
        "labels-old-excel-workbook",
        b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(200),
        ["l.csv: an Excel .xls workbook (or another OLE2 file), not text; save the sheet"],
    ),
    label_case(
        "labels-unnamed-index-column",
        b",id,y\n" + b"".join(f"{i},s{i},{i % 2}\n".encode() for i in range(6)),
        [
            "l.csv: line 1: column 1 has no name (a row index written by pandas? write "
            "the table with index=False); name it, remove it, or choose the label "
            "columns with --target"
        ],
    ),
    label_case(
        "target-name-too-long",
        SIX_LABELS.replace(b"id,y", b"id," + b"y" * 1001),
        ["l.csv: line 1: a column name of 1001 characters; target names become columns"],
    ),
    label_case(
        "class-name-too-long",
        labels(s1="A" * 1001, s3="A" * 1001, s5="A" * 1001),
        ["l.csv: line 3 (id 's1'): a class name of 1001 characters; class names become"],
    ),
    label_case(
        "labels-duplicate-columns",
        b"id,y,y\ns0,0,1\n",
        ["l.csv: duplicate column name(s) in the header: y"],
    ),
    # ---- model files
    Case(
        "model-truncated",
        ["predict", "trunc.bsnn", "in.fa"],
        1,
        ["trunc.bsnn: model file is truncated"],
        {"in.fa": SIX},
    ),
    Case(
        "model-header-without-tensors",
        ["predict", "short.bsnn", "in.fa"],
        1,
        ["short.bsnn: model file is truncated"],
        {"in.fa": SIX, "short.bsnn": MODEL_HEADER_ONLY},
    ),
    Case(
        "model-is-a-fasta-file",
        ["predict", "six.fa", "in.fa"],
        1,
        ["six.fa: not a bioseqnn model file"],
        {"in.fa": SIX, "six.fa": SIX},
    ),
    Case(
        "model-empty-file",
        ["info", "empty.bsnn"],
        1,
        ["empty.bsnn: not a bioseqnn model file (too short)"],
        {"empty.bsnn": b""},
    ),
    Case(
        "model-future-format-version",
        ["predict", "future.bsnn", "in.fa"],
        1,
        ["future.bsnn: model file format 99 is newer", "upgrade bioseqnn"],
        {"in.fa": SIX},
    ),
    Case(
        "model-future-format-version-info",
        ["info", "future.bsnn"],
        1,
        ["future.bsnn: model file format 99 is newer"],
    ),
    Case(
        "model-missing",
        ["predict", "nosuch.bsnn", "in.fa"],
        2,
        ["nosuch.bsnn: no such model file"],
        {"in.fa": SIX},
    ),
    Case("model-is-directory", ["info", "mdir"], 2, ["mdir: is a directory"], dirs=["mdir"]),
    Case(
        "model-is-a-device",
        ["info", "/dev/zero"],
        1,
        ["/dev/zero: not a bioseqnn model file (a device or socket, not a file)"],
    ),
    Case(
        "model-and-sequences-swapped",
        ["predict", "in.fa", "{P}"],
        1,
        [
            "in.fa: not a bioseqnn model file (no safetensors header); it starts like FASTA: "
            "is the order of the arguments right?"
        ],
        {"in.fa": SIX},
    ),
    Case(
        "model-is-a-symbolic-link-loop",
        ["predict", "loop1", "in.fa"],
        1,
        ["loop1: cannot read: Too many levels of symbolic links"],
        {"in.fa": SIX},
        links={"loop1": "loop2", "loop2": "loop1"},
    ),
    Case(
        "sequences-are-a-symbolic-link-loop",
        ["predict", "{P}", "loop1", "-o", "out.tsv"],
        1,
        ["loop1: cannot read: Too many levels of symbolic links"],
        links={"loop1": "loop2", "loop2": "loop1"},
    ),
    Case(
        "output-is-a-symbolic-link-loop",
        ["predict", "{P}", "in.fa", "-o", "loop1"],
        2,
        ["loop1: cannot write: Too many levels of symbolic links"],
        {"in.fa": SIX},
        links={"loop1": "loop2", "loop2": "loop1"},
    ),
    Case(
        "labels-are-a-symbolic-link-loop",
        [*TRAIN[:2], "loop1", *TRAIN[3:]],
        1,
        ["loop1: cannot read: Too many levels of symbolic links"],
        {"six.fa": SIX},
        links={"loop1": "loop2", "loop2": "loop1"},
    ),
    Case(
        "evaluate-with-truncated-model",
        ["evaluate", "trunc.bsnn", "six.fa", "l.csv"],
        1,
        ["trunc.bsnn: model file is truncated"],
        {"six.fa": SIX, "l.csv": SIX_LABELS},
    ),
    Case(
        "explain-with-invalid-symbol",
        ["explain", "{P}", "in.fa", "-o", "attr.tsv"],
        1,
        ["in.fa: line 2, column 2: record 'a': invalid protein symbol '9'"],
        {"in.fa": b">a\nK9V\n"},
    ),
    Case(
        "config-from-non-model",
        ["config", "--from", "six.fa"],
        1,
        ["six.fa: not a bioseqnn model file"],
        {"six.fa": SIX},
    ),
    # ---- options out of range
    label_case(
        "epochs-negative", SIX_LABELS, ["--epochs must be at least 1"], "--epochs", "-3", code=2
    ),
    label_case(
        "batch-size-zero",
        SIX_LABELS,
        ["--batch-size must be at least 1"],
        "--batch-size",
        "0",
        code=2,
    ),
    label_case(
        "unknown-architecture",
        SIX_LABELS,
        ["unknown architecture 'perceptron'"],
        "--arch",
        "perceptron",
        code=2,
    ),
    label_case(
        "val-fraction-one",
        SIX_LABELS,
        ["--val-fraction must be in [0, 1)"],
        "--val-fraction",
        "1.0",
        code=2,
    ),
    label_case(
        "hidden-size-zero",
        SIX_LABELS,
        ["--hidden-size must be at least 1"],
        "--hidden-size",
        "0",
        code=2,
    ),
    label_case(
        "hidden-size-beyond-what-is-built",
        SIX_LABELS,
        [
            "the model (lstm, hidden-size 100000, layers 1) would hold 40,008,900,001 "
            "weights, more than bioseqnn builds (4,294,967,296, 16 GiB as float32); lower "
            "those settings"
        ],
        "--arch",
        "lstm",
        "--hidden-size",
        "100000",
        code=2,
    ),
    label_case(
        "cnn-ensemble-beyond-what-is-built",
        SIX_LABELS,
        [
            "the model (cnn, channels 9000,9000, kernel-sizes 9,5, dilations 1,1, "
            "pool-sizes auto, 64 members) would hold"
        ],
        "--arch",
        "cnn",
        "--channels",
        "9000,9000",
        "--ensemble",
        "64",
        code=2,
    ),
    label_case(
        "learning-rate-not-a-number",
        SIX_LABELS,
        ["Invalid value for '--lr'", "(see 'bioseqnn train --help')"],
        "--lr",
        "fast",
        code=2,
    ),
    label_case(
        "learning-rate-infinite",
        SIX_LABELS,
        ["Invalid value for '--lr': 'inf' is not a finite number"],
        "--lr",
        "inf",
        code=2,
    ),
    label_case("unknown-option", SIX_LABELS, ["No such option: --epoch"], "--epoch", "3", code=2),
    Case(
        "predict-batch-size-zero",
        [*PRED, "--batch-size", "0"],
        2,
        ["Invalid value for '--batch-size'"],
        {"in.fa": SIX},
    ),
    Case(
        "predict-on-invalid-unknown",
        [*PRED, "--on-invalid", "ignore"],
        2,
        ["Invalid value for '--on-invalid'"],
        {"in.fa": SIX},
    ),
    Case("unknown-command", ["fit", "six.fa"], 2, ["No such command 'fit'"]),
    Case(
        "config-file-binary",
        [*TRAIN, "--config", "c.yaml"],
        2,
        ["c.yaml: not a YAML config"],
        {"six.fa": SIX, "l.csv": SIX_LABELS, "c.yaml": bytes(range(256))},
    ),
    Case(
        "config-file-alias-bomb",
        [*TRAIN, "--config", "c.yaml"],
        2,
        ["c.yaml: line 2, column ", ": not valid YAML: aliases (*name) are not accepted"],
        {"six.fa": SIX, "l.csv": SIX_LABELS, "c.yaml": ALIAS_BOMB},
    ),
    Case(
        "search-space-alias-bomb",
        [*TUNE, "--space", "s.yaml"],
        2,
        ["s.yaml: line 2, column ", ": not valid YAML: aliases (*name) are not accepted"],
        {"six.fa": SIX, "l.csv": SIX_LABELS, "s.yaml": ALIAS_BOMB},
    ),
    Case(
        # the search's trials folder is made before the data is read: not left behind
        "tune-on-unmatched-labels",
        TUNE,
        1,
        ["cannot join sequences and labels"],
        {"six.fa": SIX, "l.csv": b"id,y\nzz,1\n"},
    ),
    Case(
        # every trial reads the inputs again: a pipe would be empty from the second read
        "tune-on-stdin",
        ["tune", "-", "l.csv", "-o", "m.bsnn", "--trials", "1"],
        2,
        ["SEQUENCES <stdin>: tune reads its inputs again for every trial"],
        {"l.csv": SIX_LABELS},
    ),
    Case(
        "tune-with-no-time",
        ["tune", "six.fa", "l.csv", "-o", "m.bsnn", "--time", "0s"],
        2,
        ["Invalid value for '--time': '0s': a search needs some time (e.g. 90s, 30m or 2h)"],
        {"six.fa": SIX, "l.csv": SIX_LABELS},
    ),
    Case(
        "tune-with-a-time-that-is-no-duration",
        ["tune", "six.fa", "l.csv", "-o", "m.bsnn", "--time", "5x"],
        2,
        ["Invalid value for '--time': '5x' is not a duration (give e.g. 90s, 30m or 2h)"],
        {"six.fa": SIX, "l.csv": SIX_LABELS},
    ),
    Case(
        "tune-with-a-device-as-validation",
        [*TUNE, "--val-fasta", "/dev/zero", "--val-labels", "l.csv"],
        2,
        ["--val-fasta /dev/zero: tune reads its inputs again for every trial"],
        {"six.fa": SIX, "l.csv": SIX_LABELS},
    ),
    Case(
        # folders made before the data is read are taken away again, nested ones too
        "train-failure-leaves-no-output-folders",
        [*TRAIN, "--plots", "p/q", "--checkpoint-dir", "ck", "--tensorboard", "tb"],
        1,
        ["cannot join sequences and labels"],
        {"six.fa": SIX, "l.csv": b"id,y\nzz,1\n"},
        marks=[needs_mpl],
    ),
    Case(
        "explain-failure-leaves-no-plot-folder",
        ["explain", "{P}", "in.fa", "--plot", "logos", "-o", "a.tsv"],
        1,
        ["in.fa: line 1: not text"],
        {"in.fa": b"\x00\x01"},
        marks=[needs_mpl],
    ),
    Case(
        "config-value-shown-cut-short",
        [*TRAIN, "--config", "c.yaml"],
        2,
        ["c.yaml: config key 'model.arch': expected str, got ['lstm', 'lstm', ", "..."],
        {"six.fa": SIX, "l.csv": SIX_LABELS, "c.yaml": LONG_VALUE},
    ),
    # ---- outputs
    Case(
        "output-directory-missing",
        ["predict", "{P}", "in.fa", "-o", "nodir/out.tsv"],
        2,
        ["nodir/out.tsv: cannot write: directory 'nodir' does not exist"],
        {"in.fa": SIX},
    ),
    Case(
        "output-parent-is-a-file",
        ["predict", "{P}", "in.fa", "-o", "in.fa/out.tsv"],
        2,
        ["in.fa/out.tsv: cannot write: directory 'in.fa' is not a directory"],
        {"in.fa": SIX},
    ),
    Case(
        "output-is-a-directory",
        ["predict", "{P}", "in.fa", "-o", "odir"],
        2,
        ["odir: cannot write: it is a directory"],
        {"in.fa": SIX},
        dirs=["odir"],
    ),
    label_case(
        "train-output-to-stdout", SIX_LABELS, ["the model file needs a path"], "-o", "-", code=2
    ),
    # ---- an output that is one of the inputs (same device and inode, through links)
    Case(
        "predict-output-is-the-sequences",
        ["predict", "{P}", "in.fa", "-o", "in.fa"],
        2,
        [
            "in.fa: cannot write: it is an input (SEQUENCES); writing it would destroy it: "
            "choose another output name"
        ],
        {"in.fa": SIX},
    ),
    Case(
        "predict-output-is-the-model",
        ["predict", "m.bsnn", "in.fa", "-o", "m.bsnn"],
        2,
        ["m.bsnn: cannot write: it is an input (MODEL)"],
        {"in.fa": SIX},
        copies={"m.bsnn": "P"},
    ),
    Case(
        "predict-output-links-to-the-sequences",
        ["predict", "{P}", "in.fa", "-o", "o.tsv"],
        2,
        ["o.tsv: cannot write: it is an input (SEQUENCES in.fa, the same file)"],
        {"in.fa": SIX},
        links={"o.tsv": "in.fa"},
    ),
    Case(
        "predict-output-is-a-hard-link-to-the-sequences",
        ["predict", "{P}", "in.fa", "-o", "o.tsv"],
        2,
        ["o.tsv: cannot write: it is an input (SEQUENCES in.fa, the same file)"],
        {"in.fa": SIX},
        hardlinks={"o.tsv": "in.fa"},
    ),
    label_case(
        "train-output-is-the-labels",
        SIX_LABELS,
        ["l.csv: cannot write: it is an input (LABELS)"],
        "-o",
        "l.csv",
        code=2,
    ),
    label_case(
        "train-output-is-the-sequences-through-a-path",
        SIX_LABELS,
        ["./six.fa: cannot write: it is an input (SEQUENCES); writing it would destroy it"],
        "-o",
        "./six.fa",
        code=2,
    ),
    label_case(
        "train-log-is-the-sequences",
        SIX_LABELS,
        ["six.fa: cannot write: it is an input (SEQUENCES)"],
        "--log",
        "six.fa",
        code=2,
    ),
    label_case(
        "train-log-is-the-checkpoint",
        SIX_LABELS,
        [
            "checkpoint.safetensors: the metrics log and the checkpoint "
            "(--checkpoint-dir) are one file; give --log another name"
        ],
        "--checkpoint-dir",
        ".",
        "--log",
        "checkpoint.safetensors",
        code=2,
    ),
    label_case(
        "train-log-is-the-model-file",
        SIX_LABELS,
        ["m.bsnn: the metrics log and the model file (-o) are one file"],
        "--log",
        "m.bsnn",
        code=2,
    ),
    Case(
        # a FASTA as labels is per-residue labels: each residue would be its own label
        "train-with-the-sequences-given-as-their-labels",
        ["train", "six.fa", "./six.fa", "-o", "m.bsnn"],
        2,
        ["./six.fa: given as both SEQUENCES and LABELS: its residues would be their own labels"],
        {"six.fa": SIX},
    ),
    Case(
        "train-with-the-validation-sequences-given-as-their-labels",
        [*TRAIN, "--val-fasta", "v.fa", "--val-labels", "v.fa"],
        2,
        ["v.fa: given as both --val-fasta and --val-labels: its residues would be their own"],
        {"six.fa": SIX, "l.csv": SIX_LABELS, "v.fa": SIX},
    ),
    Case(
        "train-output-is-the-config",
        [*TRAIN[:4], "c.yaml", *TRAIN[5:], "--config", "c.yaml"],
        2,
        ["c.yaml: cannot write: it is an input (--config)"],
        {"six.fa": SIX, "l.csv": SIX_LABELS, "c.yaml": b"training:\n  epochs: 1\n"},
    ),
    Case(
        "evaluate-output-is-the-labels",
        ["evaluate", "{P}", "six.fa", "l.csv", "-o", "l.csv"],
        2,
        ["l.csv: cannot write: it is an input (LABELS)"],
        {"six.fa": SIX, "l.csv": SIX_LABELS},
    ),
    Case(
        "explain-output-is-the-sequences",
        ["explain", "{P}", "in.fa", "-o", "in.fa"],
        2,
        ["in.fa: cannot write: it is an input (SEQUENCES)"],
        {"in.fa": SIX},
    ),
    Case(
        "export-output-is-the-check-set",
        ["export", "{P}", "-o", "check.pt", "--check", "check.pt"],
        2,
        ["check.pt: cannot write: it is an input (--check)"],
        {"check.pt": SIX},
    ),
    Case(
        "generate-output-is-the-model",
        ["generate", "m.bsnn", "-o", "m.bsnn"],
        2,
        ["m.bsnn: cannot write: it is an input (MODEL)"],
        copies={"m.bsnn": "P"},
    ),
    Case(
        "config-output-is-the-model",
        ["config", "--from", "m.bsnn", "-o", "m.bsnn"],
        2,
        ["m.bsnn: cannot write: it is an input (--from)"],
        copies={"m.bsnn": "P"},
    ),
    Case(
        "plot-history-output-is-the-log",
        ["plot-history", "h.png", "-o", "h.png"],
        2,
        ["h.png: cannot write: it is an input (LOG_FILE)"],
        {"h.png": b"epoch\ttrain_loss\n1\t0.5\n"},
        marks=[needs_mpl],
    ),
    # ---- the training-log plot
    Case(
        "plot-history-empty-log",
        ["plot-history", "m.log.tsv", "-o", "c.png"],
        1,
        ["m.log.tsv: not a bioseqnn training log"],
        {"m.log.tsv": b""},
        marks=[needs_mpl],
    ),
    Case(
        "plot-history-binary-log",
        ["plot-history", "m.log.tsv", "-o", "c.png"],
        1,
        ["m.log.tsv: cannot read the training log"],
        {"m.log.tsv": bytes(range(256))},
        marks=[needs_mpl],
    ),
]


def _tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def _prepare(case: Case, tmp_path: Path, models: dict[str, str]) -> None:
    for name in case.dirs:
        (tmp_path / name).mkdir()
    for name, data in case.files.items():
        (tmp_path / name).write_bytes(data)
    for name, target in case.links.items():
        (tmp_path / name).symlink_to(target)
    for name, target in case.hardlinks.items():
        os.link(tmp_path / target, tmp_path / name)
    for name, key in case.copies.items():
        (tmp_path / name).write_bytes(Path(models[key]).read_bytes())
    for name, (start, piece, times) in case.big.items():
        (tmp_path / name).write_bytes(start + piece * times)
    good = Path(models["P"]).read_bytes()
    if any("trunc.bsnn" in a for a in case.argv):
        (tmp_path / "trunc.bsnn").write_bytes(good[: len(good) * 2 // 3])
    if any("future.bsnn" in a for a in case.argv):
        from safetensors.torch import save_file

        from bioseqnn.bundle import load_bundle

        bundle = load_bundle(models["P"])
        save_file(
            bundle.model.state_dict(),
            tmp_path / "future.bsnn",
            metadata={"bioseqnn": json.dumps({**bundle.manifest, "format_version": 99})},
        )


def test_the_catalogue_has_at_least_forty_cases() -> None:
    assert len(CASES) >= 40
    assert len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id, marks=c.marks) for c in CASES])
def test_bad_input_gives_one_clear_line(
    case: Case,
    cli,
    models: dict[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    _prepare(case, tmp_path, models)
    before = _tree(tmp_path)
    contents = {p: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}
    r = (
        cli(*[a.format(**models) for a in case.argv], "--threads", "1", "--quiet")
        if case.argv[0] in ("train", "predict", "evaluate", "explain")
        else cli(*[a.format(**models) for a in case.argv], "--quiet")
    )
    lines = r.err.splitlines()
    assert len(lines) == 1, r.err
    assert lines[0].startswith("bioseqnn: error: ")
    for fragment in case.expect:
        assert fragment in lines[0]
    assert "Traceback" not in r.err
    assert r.code == case.code, r.err
    assert r.out == ""
    assert _tree(tmp_path) == before, "an output or temporary file was left behind"
    assert {p: p.read_bytes() for p in contents} == contents, "an input was changed"


# Inputs that made a command hang (minutes or forever), each run as a real process under
# a time limit that only a hang exceeds: start-up (importing torch) is most of the time,
# up to 20 s on a loaded machine. test_the_first_bytes_decide_in_bounded_time bounds the
# reading itself more tightly.
HANGS = [
    label_case(
        "train-a-million-layers",
        SIX_LABELS,
        [
            "the model (lstm, hidden-size 8, layers 1000000) would hold 4,000,002 tensors, "
            "more than bioseqnn builds (20,000); lower those settings"
        ],
        "--arch",
        "lstm",
        "--layers",
        "1000000",
        code=2,
    ),
    # a first line without a newline was searched again on every 8 kB read (145 s for
    # 40 MB), and /dev/zero was read until memory ran out: the first bytes decide
    Case(
        "predict-a-40-MB-one-line-file",
        ["predict", "{P}", "one.txt", "-o", "out.tsv"],
        1,
        [
            "one.txt: line 1: expected a FASTA header starting with '>' (or '@' for FASTQ), "
            "found 'ACGTACGTACGTACGTACGTACGTACGTACGTACGTA...'"
        ],
        big={"one.txt": (b"", b"ACGT", 10**7)},
    ),
    Case(
        "train-on-a-40-MB-one-line-file",
        ["train", "one.txt", "l.csv", "-o", "m.bsnn"],
        1,
        ["one.txt: line 3: expected a FASTA header starting with '>'"],
        {"l.csv": SIX_LABELS},
        big={"one.txt": (b"\n\n", b"KLVF", 10**7)},
    ),
    Case(
        # a window of 10^13 bases: refused by its size before anything is allocated
        "predict-intervals-with-a-huge-window",
        ["predict", "{D}", "r.bed", "--genome", "g.fa", "--window", "1" + "0" * 13, "-o", "o.tsv"],
        2,
        ["--window must be at most 1,048,576 bases"],
        GENOME,
    ),
    Case(
        # a table's line is bounded (64 MB); FASTA lines, a chromosome long, are not
        "train-with-a-65-MB-label-row",
        ["train", "six.fa", "l.csv", "-o", "m.bsnn"],
        1,
        ["l.csv: line 3: longer than 67,108,864 bytes; is this a table?"],
        {"six.fa": SIX},
        big={"l.csv": (b"id,y\ns0,0\n", b"A" * (1 << 20), 65)},
    ),
    Case(
        "predict-dev-zero",
        ["predict", "{P}", "/dev/zero", "-o", "out.tsv"],
        1,
        ["/dev/zero: line 1: not text (a NUL byte); is this a binary file?"],
    ),
    Case(
        "train-on-dev-zero",
        ["train", "/dev/zero", "l.csv", "-o", "m.bsnn"],
        1,
        ["/dev/zero: line 1: not text (a NUL byte)"],
        {"l.csv": SIX_LABELS},
    ),
    Case(
        "train-with-dev-zero-as-labels",
        ["train", "six.fa", "/dev/zero", "-o", "m.bsnn"],
        1,
        ["/dev/zero: line 1: not text (a NUL byte)"],
        {"six.fa": SIX},
    ),
    Case(
        "evaluate-with-dev-zero-as-labels",
        ["evaluate", "{P}", "six.fa", "/dev/zero"],
        1,
        ["/dev/zero: line 1: not text (a NUL byte)"],
        {"six.fa": SIX},
    ),
    label_case(
        "train-with-dev-zero-as-config",
        SIX_LABELS,
        ["/dev/zero: not a YAML config (longer than 1 MB)"],
        "--config",
        "/dev/zero",
        code=2,
    ),
    Case(
        "tune-with-dev-zero-as-space",
        [*TUNE, "--space", "/dev/zero"],
        2,
        ["/dev/zero: not a YAML search space (longer than 1 MB)"],
        {"six.fa": SIX, "l.csv": SIX_LABELS},
    ),
    Case(
        "variants-with-dev-zero-as-vcf",
        ["variants", "{D}", "/dev/zero", "--genome", "g.fa", "--window", "20"],
        1,
        ["/dev/zero: line 1: not text (a NUL byte); is this a binary file?"],
        GENOME,
    ),
    Case(
        "variants-with-dev-zero-as-genome",
        ["variants", "{D}", "v.vcf", "--genome", "/dev/zero", "--window", "20"],
        2,
        ["--genome /dev/zero: not a regular file; the genome is read at random"],
        GENOME,
    ),
    Case(
        "predict-intervals-on-dev-zero",
        ["predict", "{D}", "/dev/zero", "--genome", "g.fa", "--window", "20"],
        1,
        ["/dev/zero: line 1: not text (a NUL byte); is this a binary file?"],
        GENOME,
    ),
    Case(
        "predict-with-dev-zero-as-genome",
        ["predict", "{D}", "r.bed", "--genome", "/dev/zero", "--window", "20"],
        2,
        ["--genome /dev/zero: not a regular file"],
        GENOME,
    ),
    Case(
        "motifs-with-dev-zero-as-database",
        ["motifs", "{D}", "six.fa", "-o", "r", "--database", "/dev/zero"],
        1,
        ["/dev/zero: line 1: not text (a NUL byte); is this a binary file?"],
        {"six.fa": fasta(random_records(6, "ACGT", 30, seed=6))},
        marks=[needs_motifs],
    ),
    Case(
        "tune-with-dev-zero-as-study",
        [*TUNE, "--study", "/dev/zero"],
        2,
        ["--study /dev/zero: not a regular file"],
        {"six.fa": SIX, "l.csv": SIX_LABELS},
    ),
    Case(
        "plot-history-of-dev-zero",
        ["plot-history", "/dev/zero", "-o", "c.png"],
        1,
        ["/dev/zero: cannot read the training log: this is a binary file"],
        marks=[needs_mpl],
    ),
]


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id, marks=c.marks) for c in HANGS])
@pytest.mark.slow
def test_inputs_that_hung_are_refused_in_time(
    case: Case, models: dict[str, str], tmp_path: Path
) -> None:
    _prepare(case, tmp_path, models)
    before = _tree(tmp_path)
    p = run_bioseqnn(*[a.format(**models) for a in case.argv], "--quiet", cwd=tmp_path, timeout=120)
    lines = p.stderr.decode().splitlines()
    assert len(lines) == 1 and lines[0].startswith("bioseqnn: error: "), lines
    for fragment in case.expect:
        assert fragment in lines[0]
    assert p.returncode == case.code and p.stdout == b""
    assert _tree(tmp_path) == before, "an output or temporary file was left behind"


@pytest.mark.parametrize("kind", ["one-line", "one-line-after-blank-lines", "dev-zero", "binary"])
@pytest.mark.parametrize("tables", [False, True], ids=["sequences", "sequences-or-table"])
def test_the_first_bytes_decide_in_bounded_time(tmp_path: Path, kind: str, tables: bool) -> None:
    """A first line without a newline was searched again on every 8 kB read: 40 MB took
    one to two minutes to be refused, /dev/zero never was. Now it takes milliseconds; the
    bound only a quadratic (or endless) read exceeds."""
    import time

    from bioseqnn.errors import DataError
    from bioseqnn.io.sniff import read_input, read_sequences

    path = Path("/dev/zero") if kind == "dev-zero" else tmp_path / "big.txt"
    if kind != "dev-zero":
        start = b"\n" * 1000 if "blank" in kind else b""
        piece = bytes(range(1, 256)) if kind == "binary" else b"ACGT"
        path.write_bytes(start + piece * (40_000_000 // len(piece)))
    began = time.monotonic()
    with pytest.raises(DataError) as err:
        read_input(path) if tables else read_sequences(path)
    assert time.monotonic() - began < 10
    line = 1001 if "blank" in kind else 1
    if kind == "binary":  # byte 10 ends line 1; 0x80 is the first that is not UTF-8
        assert str(err.value) == (
            f"{path}: line 2, column 118: not text (undecodable bytes); is this a binary file?"
        )
    else:
        assert str(err.value).startswith(f"{path}: line {line}: ")


@pytest.mark.slow
def test_error_in_stdin_names_stdin_line_and_column(models: dict[str, str], tmp_path: Path) -> None:
    p = run_bioseqnn(
        "predict",
        models["P"],
        "-",
        "-o",
        tmp_path / "out.tsv",
        "--threads",
        "1",
        stdin=gzip.compress(b">a\nKLVFF\n>b desc\nKLVFF\nKLB1F\n"),
    )
    assert p.returncode == 1
    assert p.stderr.decode().splitlines() == [
        # stdin cannot be read twice: the line and column come from the text the block
        # reader holds, as a file's do
        "bioseqnn: error: <stdin>: line 5, column 4: record 'b': invalid protein symbol '1' "
        "at position 9 (use --on-invalid skip or mask)"
    ]
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_output_disk_full_on_stdout(models: dict[str, str], tmp_path: Path) -> None:
    if not Path("/dev/full").is_char_device():
        pytest.skip("no /dev/full here")
    fa = tmp_path / "in.fa"
    fa.write_bytes(SIX)
    with open("/dev/full", "wb") as full:
        p = subprocess.run(
            [sys.executable, "-m", "bioseqnn", "predict", models["P"], fa, "--threads", "1"],
            stdout=full,
            stderr=subprocess.PIPE,
            check=False,
        )
    assert p.returncode == 1
    assert p.stderr.decode().splitlines() == [
        "bioseqnn: error: <stdout>: cannot write: No space left on device"
    ]


def _limit_file_size() -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_FSIZE, (2000, 2000))


@pytest.mark.slow
def test_output_file_too_large_leaves_nothing(models: dict[str, str], tmp_path: Path) -> None:
    """A write that fails half way (here: a 2 kB file size limit) removes the partial file."""
    fa = tmp_path / "in.fa"
    fa.write_bytes(fasta(random_records(300, AMINO, 12, seed=6)))
    out = tmp_path / "out.tsv"
    p = subprocess.run(
        [sys.executable, "-m", "bioseqnn", "predict", models["P"], fa, "-o", out, "--threads", "1"],
        capture_output=True,
        preexec_fn=_limit_file_size,
        check=False,
    )
    assert p.returncode == 1
    assert p.stderr.decode().splitlines() == [
        f"bioseqnn: error: {out}: cannot write: File too large"
    ]
    assert sorted(x.name for x in tmp_path.iterdir()) == ["in.fa"]


def _limit_memory() -> None:
    """1.5 GB of data for the child (shared libraries do not count: torch loads)."""
    import resource

    resource.setrlimit(resource.RLIMIT_DATA, (3 << 29, 3 << 29))


@pytest.mark.skipif(sys.platform != "linux", reason="RLIMIT_DATA bounds mmap on Linux only")
@pytest.mark.parametrize(
    ("what", "argv", "message"),
    [
        (
            "predict-a-20-million-residue-record",
            ["predict", "{P}", "long.fa", "-o", "out.tsv"],
            "out of memory on cpu (memory ceiling 1.5 GB, from ulimit -d) predicting record "
            "'huge' (20,000,000 positions) on its own; "
            "split or trim the longest sequences",
        ),
        (
            "train-with-a-5-million-residue-record",
            [
                "train",
                "long5.fa",
                "l.csv",
                "-o",
                "m.bsnn",
                "--arch",
                "lstm",
                "--hidden-size",
                "8",
                "--epochs",
                "1",
                "--val-fraction",
                "0",
            ],
            "out of memory on cpu (memory ceiling 1.5 GB, from ulimit -d) training the model "
            "(lstm, hidden-size 8, layers 1): 969 weights "
            "(3.8 kB as float32, about four times that while training), batches of up to 64 "
            "records "
            "(no --max-tokens), the longest record 'huge' has 5,000,000 positions; lower "
            "--batch-size or set --max-tokens, split or trim the longest records, or lower the "
            "model's settings",
        ),
        (
            "train-a-model-larger-than-memory",
            [
                "train",
                "six.fa",
                "l.csv",
                "-o",
                "m.bsnn",
                "--arch",
                "lstm",
                "--hidden-size",
                "16000",
            ],
            "out of memory on cpu (memory ceiling 1.5 GB, from ulimit -d) building the model "
            "(lstm, hidden-size 16000, layers 1): "
            "1,025,424,001 weights (3.8 GB as float32); lower those settings",
        ),
    ],
)
@pytest.mark.slow
def test_out_of_cpu_memory_names_the_record_or_the_settings(
    models: dict[str, str], tmp_path: Path, what: str, argv: list[str], message: str
) -> None:
    """CPU memory that runs out (here a 1.5 GB limit) was an 'unexpected' RuntimeError or
    MemoryError: now one line naming the record or the settings to lower, as on a GPU."""
    rng = random.Random(13)
    (tmp_path / "six.fa").write_bytes(SIX)
    huge = "".join(rng.choice(AMINO) for _ in range(1000)).encode()
    with open(tmp_path / "long.fa", "wb") as fh:
        fh.write(b">short\nKLVFFAE\n>huge\n" + huge * 20_000 + b"\n")
    with open(tmp_path / "long5.fa", "wb") as fh:
        fh.write(SIX + b">huge\n" + huge * 5_000 + b"\n")
    (tmp_path / "l.csv").write_bytes(SIX_LABELS + (b"huge,1\n" if "5-million" in what else b""))
    before = _tree(tmp_path)
    p = subprocess.run(
        [
            sys.executable,
            "-m",
            "bioseqnn",
            *[a.format(**models) for a in argv],
            "--threads",
            "1",
            "--quiet",
        ],
        capture_output=True,
        cwd=tmp_path,
        preexec_fn=_limit_memory,
        timeout=300,
        check=False,
    )
    assert p.returncode == 1
    assert p.stderr.decode().splitlines() == [f"bioseqnn: error: {message}"]
    assert _tree(tmp_path) == before


def _limit_address_space() -> None:
    """3 GB of address space for the child (ulimit -v, as SGE's h_vmem sets it)."""
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))


@pytest.mark.skipif(sys.platform != "linux", reason="the memory ceiling is Linux's")
@pytest.mark.slow
def test_out_of_memory_under_ulimit_v_names_that_limit(
    models: dict[str, str], tmp_path: Path
) -> None:
    """Under an address-space limit the message named the default ceiling (90% of the
    free memory, 18.8 GB here) and BIOSEQNN_MAX_MEMORY, which could not help: it names
    the limit that stopped it."""
    rng = random.Random(13)
    huge = "".join(rng.choice(AMINO) for _ in range(1000)).encode()
    with open(tmp_path / "long.fa", "wb") as fh:
        fh.write(b">short\nKLVFFAE\n>huge\n" + huge * 40_000 + b"\n")
    p = subprocess.run(
        [sys.executable, "-m", "bioseqnn", "predict", models["P"], "long.fa", "-o", "out.tsv"]
        + ["--threads", "1", "--quiet"],
        capture_output=True,
        cwd=tmp_path,
        preexec_fn=_limit_address_space,
        timeout=300,
        check=False,
    )
    assert p.returncode == 1
    assert p.stderr.decode().splitlines() == [
        "bioseqnn: error: out of memory on cpu (memory ceiling 3.0 GB, from ulimit -v) "
        "predicting record 'huge' (40,000,000 positions) on its own; split or trim the "
        "longest sequences"
    ]
    assert sorted(x.name for x in tmp_path.iterdir()) == ["long.fa"]


@pytest.mark.skipif(sys.platform != "linux", reason="the memory ceiling is Linux's RLIMIT_DATA")
@pytest.mark.parametrize(
    ("setting", "code", "message"),
    [
        (
            "1G",
            1,
            "out of memory on cpu (memory ceiling 1.0 GB, from BIOSEQNN_MAX_MEMORY) predicting "
            "record 'huge' (8,000,000 positions) on its own; split or trim the longest sequences",
        ),
        (
            "1 gigabyte",
            2,
            "BIOSEQNN_MAX_MEMORY: '1 gigabyte' is not a size (e.g. 8G, 500M, 0 for none)",
        ),
        (  # too little to import torch: the error funnel itself must still get a line out
            "60M",
            1,
            "out of memory (memory ceiling 60 MB, from BIOSEQNN_MAX_MEMORY); lower the sizes "
            "the command asks for (--batch-size, the model's settings) or split large inputs",
        ),
    ],
)
@pytest.mark.parametrize("light", ["1", "0"])
def test_the_memory_ceiling_comes_from_the_environment(
    models: dict[str, str], tmp_path: Path, setting: str, code: int, message: str, light: str
) -> None:
    """BIOSEQNN_MAX_MEMORY sets the ceiling under which memory that runs out is an error
    naming the record, not the kernel's out-of-memory killer; a value that is no size is
    a usage error. Nothing is written either way. The same without torch (light "1": the
    model is small enough, and its run out of memory is made again through torch)."""
    rng = random.Random(14)
    piece = "".join(rng.choice(AMINO) for _ in range(1000)).encode()
    (tmp_path / "long.fa").write_bytes(b">short\nKLVFFAE\n>huge\n" + piece * 8_000 + b"\n")
    before = _tree(tmp_path)
    p = subprocess.run(
        [sys.executable, "-m", "bioseqnn", "predict", models["P"], "long.fa", "-o", "out.tsv"],
        capture_output=True,
        cwd=tmp_path,
        env={**os.environ, "BIOSEQNN_MAX_MEMORY": setting, "BIOSEQNN_LIGHT": light},
        timeout=300,
        check=False,
    )
    assert p.returncode == code
    assert p.stderr.decode().splitlines() == [f"bioseqnn: error: {message}"]
    assert _tree(tmp_path) == before


@pytest.mark.skipif(sys.platform != "linux", reason="the memory ceiling is Linux's RLIMIT_DATA")
def test_a_prediction_without_torch_runs_under_the_ceiling(
    models: dict[str, str], tmp_path: Path
) -> None:
    """A model small enough to predict without torch does so under the ceiling: at 1 GB
    the record of 8 million residues runs out and the run goes to torch (which names
    it); at 3 GB it is predicted without torch, rows as torch's."""
    rng = random.Random(14)
    piece = "".join(rng.choice(AMINO) for _ in range(1000)).encode()
    (tmp_path / "long.fa").write_bytes(b">short\nKLVFFAE\n>huge\n" + piece * 8_000 + b"\n")
    runs = {}
    for setting, light, out in [("1G", "1", "a.tsv"), ("3G", "1", "b.tsv"), ("3G", "0", "c.tsv")]:
        runs[out] = subprocess.run(
            [sys.executable, "-m", "bioseqnn", "predict", models["P"], "long.fa", "-o", out]
            + ["--debug"],
            capture_output=True,
            cwd=tmp_path,
            env={**os.environ, "BIOSEQNN_MAX_MEMORY": setting, "BIOSEQNN_LIGHT": light},
            timeout=300,
            check=False,
        )
    err = runs["a.tsv"].stderr.decode()
    assert runs["a.tsv"].returncode == 1
    assert "bioseqnn: out of memory without torch; predicting through torch" in err
    assert "predicting record 'huge' (8,000,000 positions) on its own" in err
    assert not (tmp_path / "a.tsv").exists()
    assert runs["b.tsv"].returncode == runs["c.tsv"].returncode == 0
    assert "predicted 2 record(s) without torch" in runs["b.tsv"].stderr.decode()
    assert "without torch" not in runs["c.tsv"].stderr.decode()
    assert (tmp_path / "b.tsv").read_bytes() == (tmp_path / "c.tsv").read_bytes()


@pytest.mark.skipif(sys.platform != "linux", reason="the memory ceiling is Linux's RLIMIT_DATA")
def test_a_command_runs_under_a_memory_ceiling_and_lifts_it_when_done(
    cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without BIOSEQNN_MAX_MEMORY the ceiling is what the process holds plus 90% of the
    memory free at start; train names it, and main() restores the process's own limit
    (a program that runs commands in-process keeps its limits)."""
    import resource

    monkeypatch.delenv("BIOSEQNN_MAX_MEMORY", raising=False)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "six.fa").write_bytes(SIX)
    (tmp_path / "l.csv").write_bytes(SIX_LABELS)
    before = resource.getrlimit(resource.RLIMIT_DATA)
    free = runtime.memory_room()
    r = cli(*TRAIN, "--threads", "1")
    assert r.code == 0, r.err
    found = re.search(r"device: cpu, 1 CPU thread\(s\), memory ceiling ([0-9.]+) GB", r.err)
    assert found, r.err
    if before[0] == resource.RLIM_INFINITY and free is not None:
        ceiling = float(found.group(1)) * (1 << 30)
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        assert 0.5 * free < ceiling < total + (8 << 30)  # held + 90% of the free memory
    assert resource.getrlimit(resource.RLIMIT_DATA) == before
    assert machine.memory_ceiling is None


@pytest.mark.slow
def test_a_huge_file_in_the_models_place_is_refused_by_its_first_bytes(
    models: dict[str, str], tmp_path: Path
) -> None:
    """Arguments swapped, with a FASTA larger than memory (64 GB, sparse): the model
    path's first 8 bytes refuse it, the file is never read whole (that was a
    MemoryError)."""
    big = tmp_path / "big.fa"
    with open(big, "wb") as fh:
        fh.write(b">a\nACGT\n")
        fh.truncate(64 << 30)
    p = run_bioseqnn("predict", big, models["P"], "-o", tmp_path / "out.tsv", timeout=120)
    assert p.returncode == 1
    assert p.stderr.decode().splitlines() == [
        f"bioseqnn: error: {big}: not a bioseqnn model file (no safetensors header); it starts "
        "like FASTA: is the order of the arguments right? The model file comes first, then "
        "the sequences"
    ]
    assert sorted(x.name for x in tmp_path.iterdir()) == ["big.fa"]


@pytest.mark.skipif(
    os.name != "posix" or os.geteuid() == 0, reason="root may write into a read-only directory"
)
def test_output_in_read_only_directory(cli, models: dict[str, str], tmp_path: Path) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(stat.S_IRUSR | stat.S_IXUSR)
    fa = tmp_path / "in.fa"
    fa.write_bytes(SIX)
    try:
        r = cli("predict", models["P"], fa, "-o", ro / "out.tsv")
    finally:
        ro.chmod(stat.S_IRWXU)
    assert r.code == 2
    assert r.err.splitlines() == [
        f"bioseqnn: error: {ro / 'out.tsv'}: cannot write: directory '{ro}' is not writable"
    ]
    assert list(ro.iterdir()) == []


# --------------------------------------------------------------------------- accepted


def _predict(cli, model: str, path: Path, *extra: str) -> list[list[str]]:
    r = cli("predict", model, path, "--threads", "1", *extra)
    assert r.code == 0, r.err
    return [line.split("\t") for line in r.out.splitlines()]


def test_windows_line_endings_and_bom_are_accepted(
    cli, models: dict[str, str], tmp_path: Path
) -> None:
    records = [("a", "KLVFFAE"), ("b", "GIGAVLKV")]
    plain, windows = tmp_path / "plain.fa", tmp_path / "windows.fa"
    plain.write_bytes(fasta(records))
    windows.write_bytes(b"\xef\xbb\xbf" + fasta(records, eol="\r\n"))
    rows = _predict(cli, models["P"], windows)
    assert [r[0] for r in rows] == ["id", "a", "b"]
    assert rows == _predict(cli, models["P"], plain)


def test_fastq_named_fasta_is_read_as_fastq(cli, models: dict[str, str], tmp_path: Path) -> None:
    fq, fa = tmp_path / "reads.fasta", tmp_path / "same.fa"
    # The second quality line starts with '@': only the length tells it from a header.
    fq.write_bytes(b"@r1 lane 1\nKLVFF\nAE\n+\nIIIII\nII\n@r2\nGIGAV\n+r2\n@IIII\n")
    fa.write_bytes(fasta([("r1", "KLVFFAE"), ("r2", "GIGAV")]))
    rows = _predict(cli, models["P"], fq)
    assert [r[0] for r in rows] == ["id", "r1", "r2"]
    assert rows == _predict(cli, models["P"], fa)


def test_duplicate_ids_in_predict_input_keep_every_row_in_order(
    cli, models: dict[str, str], tmp_path: Path
) -> None:
    fa = tmp_path / "dup.fa"
    fa.write_bytes(fasta([("x", "KLVFF"), ("y", "GIGAVLK"), ("x", "RRWWRRWW")]))
    rows = _predict(cli, models["P"], fa)
    assert [r[0] for r in rows] == ["id", "x", "y", "x"]
    assert rows[1] != rows[3]  # different sequences, different predictions


def test_ids_end_at_the_first_whitespace(cli, models: dict[str, str], tmp_path: Path) -> None:
    fa = tmp_path / "desc.fa"
    fa.write_bytes(b">sp|P1|ABC some protein OS=x\nKLVFF\n>  lead\tTAB desc\nGIGAV\n")
    assert [r[0] for r in _predict(cli, models["P"], fa)] == ["id", "sp|P1|ABC", "lead"]


def test_one_megabyte_single_line_sequence_is_accepted(
    cli, models: dict[str, str], tmp_path: Path
) -> None:
    rng = random.Random(8)
    long = "".join(rng.choice(AMINO) for _ in range(1 << 20))
    fa = tmp_path / "long.fa"
    fa.write_bytes(fasta([("short", "KLVFF"), ("long", long)]))
    rows = _predict(cli, models["P"], fa)
    assert [r[0] for r in rows] == ["id", "short", "long"]
    assert abs(float(rows[2][2]) + float(rows[2][3]) - 1) < 1e-5


def test_lowercase_and_masked_symbols_are_accepted(
    cli, models: dict[str, str], tmp_path: Path
) -> None:
    upper, lower = tmp_path / "u.fa", tmp_path / "l.fa"
    upper.write_bytes(fasta([("a", "KLVFFAE")]))
    lower.write_bytes(fasta([("a", "klvFFae")]))
    assert _predict(cli, models["P"], lower) == _predict(cli, models["P"], upper)
    gap = tmp_path / "gap.fa"
    gap.write_bytes(fasta([("a", "KL-FFAE"), ("b", "KLVFF")]))
    masked = _predict(cli, models["P"], gap, "--on-invalid", "mask")
    assert [r[0] for r in masked] == ["id", "a", "b"]
    assert [r[0] for r in _predict(cli, models["P"], gap, "--on-invalid", "skip")] == ["id", "b"]


def test_mixed_alphabets_in_the_sample_warn_and_read_as_protein(cli, tmp_path: Path) -> None:
    records = [(f"p{i}", p) for i, p in enumerate(PEPTIDES[:4])] + random_records(
        2, "ACGT", 24, seed=9, prefix="d"
    )
    fa, lab = tmp_path / "mixed.fa", tmp_path / "mixed.csv"
    fa.write_bytes(fasta(records))
    lab.write_text("id,y\n" + "".join(f"{r},{i % 2}\n" for i, (r, _) in enumerate(records)))
    r = cli(
        "train",
        fa,
        lab,
        "-o",
        tmp_path / "m.bsnn",
        "--epochs",
        "1",
        "--hidden-size",
        "8",
        "--threads",
        "1",
        "--val-fraction",
        "0",
    )
    assert r.code == 0, r.err
    warning = [line for line in r.err.splitlines() if "warning" in line]
    assert warning == [
        f"bioseqnn: warning: {fa}: the records seem to mix nucleotide and protein sequences: "
        "2 of the first 6 look like DNA/RNA (e.g. 'd0', line 9), others like protein (e.g. "
        "'p0', line 1); all are read as protein (choose with --alphabet)"
    ]
    assert "alphabet: protein" in r.err


def test_regression_targets_near_float32s_limit_train_without_warnings(cli, tmp_path: Path) -> None:
    """+-3e38 fit float32, but their float32 sum overflowed: numpy warnings, then a NaN
    loss. Statistics and scaling are now computed in float64."""
    records = random_records(40, AMINO, 12, seed=12)
    fa, lab = tmp_path / "r.fa", tmp_path / "r.csv"
    fa.write_bytes(fasta(records))
    values = [3e38 if i % 3 else -3e38 for i in range(40)]
    lab.write_text(
        "id,y\n" + "".join(f"{r},{v}\n" for (r, _), v in zip(records, values, strict=True))
    )
    model = tmp_path / "m.bsnn"
    r = cli(
        "train",
        fa,
        lab,
        "-o",
        model,
        "--task",
        "regression",
        "--epochs",
        "1",
        "--hidden-size",
        "8",
        "--threads",
        "1",
        "--val-fraction",
        "0",
    )
    assert r.code == 0, r.err
    assert "Warning" not in r.err and "nan" not in r.err
    import numpy as np

    from bioseqnn.modelfile import read_manifest

    task = read_manifest(model)[0]["task"]
    as_read = np.array(values, dtype=np.float32).astype(np.float64)  # float32 targets
    assert task["target_mean"] == [float(np.mean(as_read))]
    assert task["target_std"] == [float(np.std(as_read))]
    rows = _predict(cli, str(model), fa)
    assert all(abs(float(row[1])) < 3.5e38 for row in rows[1:])


def test_a_few_dna_records_given_to_a_protein_model_are_named_in_a_warning(
    cli, models: dict[str, str], tmp_path: Path
) -> None:
    """As train warns about a file that mixes alphabets; most records being DNA is refused
    (the catalogue), a few is a warning naming one."""
    records = [(f"p{i}", p) for i, p in enumerate(PEPTIDES)] + random_records(
        1, "ACGT", 40, seed=15, prefix="d"
    )
    fa = tmp_path / "mixed.fa"
    fa.write_bytes(fasta(records))
    r = cli("predict", models["P"], fa, "--threads", "1")
    assert r.code == 0, r.err
    assert len(r.out.splitlines()) == 10
    assert r.err.splitlines() == [
        f"bioseqnn: warning: {fa}: 1 of the first 9 records look like DNA/RNA (e.g. 'd0', "
        "line 17); the model reads protein and scores them as protein"
    ]


def test_writing_to_dev_null_keeps_the_device(cli, models: dict[str, str], tmp_path: Path) -> None:
    if not Path("/dev/null").is_char_device():
        pytest.skip("no /dev/null here")
    fa = tmp_path / "in.fa"
    fa.write_bytes(SIX)
    r = cli("predict", models["P"], fa, "-o", "/dev/null", "--threads", "1")
    assert r.code == 0 and r.out == ""
    assert Path("/dev/null").is_char_device()


def test_training_into_dev_null_writes_no_log_beside_it(cli, tmp_path: Path) -> None:
    """-o /dev/null is a trial run: no NAME.log.tsv or NAME.oof.tsv appears in /dev."""
    if not Path("/dev/null").is_char_device():
        pytest.skip("no /dev/null here")
    (tmp_path / "six.fa").write_bytes(SIX)
    (tmp_path / "l.csv").write_bytes(SIX_LABELS)
    for extra in ([], ["--cv", "2"]):
        r = cli(
            "train", tmp_path / "six.fa", tmp_path / "l.csv", "-o", "/dev/null",
            "--arch", "lstm", "--hidden-size", "4", "--epochs", "1", "--threads", "1", *extra,
        )  # fmt: skip
        assert r.code == 0, r.err
        assert not Path("/dev/null.log.tsv").exists() and not Path("/dev/null.oof.tsv").exists()
        assert Path("/dev/null").is_char_device()
    # --log still names a log
    log = tmp_path / "run.log.tsv"
    r = cli(
        "train", tmp_path / "six.fa", tmp_path / "l.csv", "-o", "/dev/null", "--log", log,
        "--arch", "lstm", "--hidden-size", "4", "--epochs", "2", "--threads", "1",
    )  # fmt: skip
    assert r.code == 0 and len(log.read_text().splitlines()) == 3


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="no /dev/full here")
def test_a_log_that_is_a_pipe_or_a_device_is_written_as_it_is(tmp_path: Path) -> None:
    """--log /dev/stdout in a pipe, a named pipe: the rows, each flushed (a pipe cannot
    be locked and emptied as a file is); /dev/full: one line naming the log, no model.
    -o /dev/stdout where the shell redirects to a file: the model there, no log in /dev."""
    import threading

    (tmp_path / "six.fa").write_bytes(SIX)
    (tmp_path / "l.csv").write_bytes(SIX_LABELS)
    base = [
        sys.executable, "-m", "bioseqnn", "train", str(tmp_path / "six.fa"),
        str(tmp_path / "l.csv"), "--arch", "lstm", "--hidden-size", "4", "--epochs", "2",
        "--threads", "1", "-q",
    ]  # fmt: skip
    piped = subprocess.run(
        [*base, "-o", str(tmp_path / "a.bsnn"), "--log", "/dev/stdout"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert piped.returncode == 0, piped.stderr
    rows = piped.stdout.splitlines()
    assert rows[0].startswith("epoch\ttrain_loss") and [r.split("\t")[0] for r in rows[1:]] == [
        "1",
        "2",
    ]
    fifo = tmp_path / "log.fifo"
    os.mkfifo(fifo)
    got: list[str] = []
    reader = threading.Thread(target=lambda: got.extend(fifo.read_text().splitlines()))
    reader.start()
    named = subprocess.run(
        [*base, "-o", str(tmp_path / "b.bsnn"), "--log", str(fifo)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    reader.join(timeout=60)
    assert named.returncode == 0, named.stderr
    assert len(got) == 3 and got[0] == rows[0]
    full = subprocess.run(
        [*base, "-o", str(tmp_path / "c.bsnn"), "--log", "/dev/full"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert full.returncode == 1
    assert full.stderr.strip() == (
        "bioseqnn: error: /dev/full: cannot write the metrics log: No space left on device"
    )
    assert not (tmp_path / "c.bsnn").exists()
    stray = Path("/dev/stdout.log.tsv")
    existed = stray.exists()
    with open(tmp_path / "d.bsnn", "wb") as sink:
        redirected = subprocess.run(
            [*base, "-o", "/dev/stdout"], stdout=sink, stderr=subprocess.PIPE, timeout=300
        )
    try:
        assert redirected.returncode == 0, redirected.stderr
        assert stray.exists() == existed
    finally:
        if stray.exists() and not existed:
            stray.unlink()
    info = subprocess.run(
        [sys.executable, "-m", "bioseqnn", "info", str(tmp_path / "d.bsnn")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert info.returncode == 0 and "lstm" in info.stdout


def test_checkpoint_folder_named_as_the_model_is_refused_before_training(
    cli, tmp_path: Path
) -> None:
    (tmp_path / "six.fa").write_bytes(SIX)
    (tmp_path / "l.csv").write_bytes(SIX_LABELS)
    out = tmp_path / "m.bsnn"
    r = cli(
        "train", tmp_path / "six.fa", tmp_path / "l.csv", "-o", out, "--checkpoint-dir", out,
        "--arch", "lstm", "--hidden-size", "4", "--epochs", "1", "--threads", "1",
    )  # fmt: skip
    assert r.code == 2
    assert r.err.strip().splitlines()[-1] == (
        f"bioseqnn: error: --checkpoint-dir {out}: it is also the model file (-o); give the "
        "checkpoints a folder of their own"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["l.csv", "six.fa"]


def test_labels_that_are_one_value_or_one_number_twice_or_all_distinct(cli, tmp_path: Path) -> None:
    """A constant regression target is refused (nothing to learn); '1' and '1.0' as
    classes are kept apart with a warning; a column of one class per record is refused
    unless --task multiclass is given, which then warns and goes on."""
    rng = random.Random(4)
    records = [(f"r{i}", "".join(rng.choice(AMINO) for _ in range(12))) for i in range(30)]
    (tmp_path / "s.fa").write_bytes(fasta(records))

    def table(values: list[str]) -> Path:
        path = tmp_path / "l.csv"
        path.write_text("id,y\n" + "".join(f"r{i},{v}\n" for i, v in enumerate(values)))
        return path

    small = ["--arch", "cnn", "--channels", "4", "--kernel-sizes", "3", "--epochs", "1"]
    small += ["--threads", "1", "-o", str(tmp_path / "m.bsnn")]
    r = cli("train", tmp_path / "s.fa", table(["2.5"] * 30), "--task", "regression", *small)
    assert r.code == 1 and r.err.strip().splitlines()[-1] == (
        f"bioseqnn: error: {tmp_path / 'l.csv'}: column 'y' holds one value (2.5) in every "
        "record: a regression has nothing to learn from it"
    )
    r = cli("train", tmp_path / "s.fa", table(["1", "1.0", "0"] * 10), *small)
    assert r.code == 0, r.err
    assert (
        f"warning: {tmp_path / 'l.csv'}: the classes '1' and '1.0' are one number written 2 "
        "ways; they are different classes here: write them alike if they are one"
    ) in r.err
    distinct = table([f"c{i // 2}" if i < 4 else f"c{i}" for i in range(30)])
    r = cli("train", tmp_path / "s.fa", distinct, *small)
    assert r.code == 1 and "nearly one class per record" in r.err
    assert "--task multiclass trains on it anyway" in r.err
    r = cli("train", tmp_path / "s.fa", distinct, "--task", "multiclass", *small)
    assert "nearly one class per record (trained as --task multiclass asks)" in r.err
    assert r.code == 0, r.err
