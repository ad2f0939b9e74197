"""bzip2, xz and zstd inputs (found by their magic bytes) and outputs (chosen by the
output's suffix), through xopen; gzip has tests of its own (pipelines/test_pipes, unit/test_io)."""

from __future__ import annotations

import bz2
import io
import lzma
from pathlib import Path

import pytest
from conftest import EXAMPLES, run_bioseqnn
from xopen import xopen

FORMATS = ["bz2", "xz", "zst"]


def compress(data: bytes, fmt: str) -> bytes:
    """Compressed by another implementation than the one bioseqnn writes with, where the
    standard library has one (bz2, lzma); zstd by xopen's."""
    if fmt == "bz2":
        return bz2.compress(data)
    if fmt == "xz":
        return lzma.compress(data)
    buf = io.BytesIO()
    with xopen(buf, "wb", format="zst") as fh:
        fh.write(data)
    return buf.getvalue()


def decompress(data: bytes, fmt: str) -> bytes:
    if fmt == "bz2":
        return bz2.decompress(data)
    if fmt == "xz":
        return lzma.decompress(data)
    with xopen(io.BytesIO(data), "rb", format="zst") as fh:
        return fh.read()


@pytest.fixture(scope="module")
def plain_rows(hemolytic_model: Path, tmp_path_factory: pytest.TempPathFactory) -> bytes:
    out = tmp_path_factory.mktemp("plain") / "p.tsv"
    r = run_bioseqnn("predict", hemolytic_model, EXAMPLES / "hemolytic.fasta", "-o", out)
    assert r.returncode == 0, r.stderr
    return out.read_bytes()


@pytest.mark.parametrize("fmt", FORMATS)
def test_an_output_named_by_its_compression_is_compressed(
    cli, fmt: str, hemolytic_model: Path, examples: Path, tmp_path: Path, plain_rows: bytes
) -> None:
    """-o p.tsv.bz2 wrote plain text before; now each suffix gives its format, with the
    same rows inside."""
    out = tmp_path / f"p.tsv.{fmt}"
    r = cli("predict", hemolytic_model, examples / "hemolytic.fasta", "-o", out)
    assert r.code == 0, r.err
    packed = out.read_bytes()
    assert packed != plain_rows and len(packed) < len(plain_rows) / 2
    assert decompress(packed, fmt) == plain_rows
    assert [p.name for p in tmp_path.iterdir()] == [out.name]  # no temporary left


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.slow
def test_a_compressed_input_is_read_by_its_magic_bytes(
    fmt: str, hemolytic_model: Path, examples: Path, tmp_path: Path, plain_rows: bytes
) -> None:
    """Whatever the name (here none that says it), from a file and from stdin."""
    packed = compress((examples / "hemolytic.fasta").read_bytes(), fmt)
    src = tmp_path / "reads"
    src.write_bytes(packed)
    r = run_bioseqnn("predict", hemolytic_model, src)
    assert r.returncode == 0, r.stderr
    assert r.stdout == plain_rows
    r = run_bioseqnn("predict", hemolytic_model, "-", stdin=packed)
    assert r.returncode == 0, r.stderr
    assert r.stdout == plain_rows


@pytest.mark.parametrize("fmt", FORMATS)
def test_damaged_compressed_input_is_one_line_and_no_output(
    cli, fmt: str, hemolytic_model: Path, examples: Path, tmp_path: Path
) -> None:
    packed = compress((examples / "hemolytic.fasta").read_bytes(), fmt)
    src = tmp_path / f"cut.fa.{fmt}"
    src.write_bytes(packed[: len(packed) // 2])  # truncated halfway
    out = tmp_path / "p.tsv"
    r = cli("predict", hemolytic_model, src, "-o", out)
    assert r.code == 1
    lines = r.err.strip().splitlines()
    assert (
        len(lines) == 1
        and lines[0].startswith(f"bioseqnn: error: {src}: ")
        and (f"damaged or truncated {fmt} data" in lines[0])
    ), r.err
    assert not out.exists()


def test_labels_and_training_read_compressed_tables(cli, examples: Path, tmp_path: Path) -> None:
    """train reads a bzip2 FASTA and an xz labels table as it reads the plain ones."""
    fasta = tmp_path / "s.fa.bz2"
    fasta.write_bytes(bz2.compress((examples / "hemolytic.fasta").read_bytes()))
    labels = tmp_path / "l.csv.xz"
    labels.write_bytes(lzma.compress((examples / "hemolytic.csv").read_bytes()))
    r = cli(
        "train",
        fasta,
        labels,
        "-o",
        tmp_path / "m.bsnn",
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
        "1",
        "--quiet",
    )
    assert r.code == 0, r.err
    from bioseqnn.modelfile import read_manifest

    assert read_manifest(tmp_path / "m.bsnn")[0]["data"]["records"] == 1104
