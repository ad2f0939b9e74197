"""What an input is gets decided once per command (io.sniff.sniff), and the decision is
handed down: a command opens each input file at most twice, once to decide and once to
read it. Counted with Python's audit hook on "open", in a fresh interpreter running the
real command."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import EXAMPLES, fresh_python

from bioseqnn.io.sniff import sniff

PROBE = """
import json, os, sys
inputs = {os.path.realpath(p): 0 for p in sys.argv[2:]}

def count(event, args):
    if event == "open" and isinstance(args[0], (str, bytes, os.PathLike)):
        path = os.path.realpath(os.fsdecode(args[0]))
        if path in inputs:
            inputs[path] += 1

sys.addaudithook(count)
from bioseqnn.cli import main
code = main(json.loads(sys.argv[1]))
print(json.dumps({"code": code, "opens": list(inputs.values())}))
"""


def opens(argv: list[str], *inputs: Path) -> list[int]:
    proc = fresh_python(PROBE, json.dumps(argv), *inputs)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["code"] == 0, proc.stderr
    return result["opens"]


@pytest.mark.slow
def test_a_series_table_and_its_labels_are_each_opened_twice(tmp_path: Path) -> None:
    series, labels = EXAMPLES / "motions_train.tsv", EXAMPLES / "motions_train.csv"
    argv = ["train", str(series), str(labels), "-o", str(tmp_path / "m.bsnn")]
    argv += ["--arch", "cnn", "--channels", "8", "--kernel-sizes", "3", "--dilations", "1"]
    argv += ["--epochs", "1", "--quiet"]
    # before the one sniff: three times each (is_table, the rows-per-id check that
    # tells a series table from labels, then the read)
    assert opens(argv, series, labels) == [2, 2]


@pytest.mark.slow
def test_per_residue_labels_are_opened_once_to_decide_and_once_to_read(tmp_path: Path) -> None:
    seqs, labels = EXAMPLES / "ss_train.fasta", EXAMPLES / "ss_train_ss3.fasta"
    argv = ["train", str(seqs), str(labels), "-o", str(tmp_path / "m.bsnn")]
    argv += ["--arch", "cnn", "--channels", "8", "--kernel-sizes", "3", "--dilations", "1"]
    argv += ["--epochs", "1", "--quiet"]
    # before: the labels three times (is_fasta by train, again by the per-position
    # loader, then the read)
    assert opens(argv, seqs, labels) == [2, 2]


def test_sniff_tells_fasta_fastq_tables_and_the_undecided(tmp_path: Path) -> None:
    import gzip

    cases = {
        "a.fa": (b"\xef\xbb\xbf\n  >r1\nACGT\n", "fasta"),
        "a.fq": (b"@r1\nACGT\n+\nIIII\n", "fastq"),
        "a.csv": (b"id,y\nr1,1\n", "table"),
        "a.tsv.gz": (gzip.compress(b"\n\nid\ty\nr1\t1\n"), "table"),
        "a.txt": (b"ACGT\n", None),
        "damaged.gz": (gzip.compress(b">r1\nACGT\n" * 1000)[:40], None),
    }
    for name, (data, kind) in cases.items():
        (tmp_path / name).write_bytes(data)
        assert sniff(tmp_path / name).kind == kind, name
    assert sniff("-").kind is None and sniff(None).kind is None
    assert sniff(tmp_path / "missing.fa").kind is None  # the reader says it is missing
    table = sniff(tmp_path / "a.csv")
    assert table.is_table and not table.is_fasta and table.head_lines() == ["id,y", "r1,1"]
