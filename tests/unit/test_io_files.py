"""gzip input, decompressed on a background thread (io.files._Gunzip)."""

from __future__ import annotations

import gzip
import sys
import threading
import time
import zlib
from pathlib import Path
from typing import Any

import pytest

from bioseqnn.errors import DataError
from bioseqnn.io import files
from bioseqnn.io.files import open_binary, open_text
from bioseqnn.io.sniff import read_sequences


def _fasta(n: int, start: int = 0) -> bytes:
    return b"".join(b">r%d\n%s\n" % (i, b"ACGTTGCA" * (20 + i % 7)) for i in range(start, n))


@pytest.fixture(params=["isal", "zlib"])
def inflater(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Each gzip test with ISA-L's inflate (what an x86-64 or ARM64 install has) and
    with zlib's (where the isal package is missing)."""
    if request.param == "zlib":
        monkeypatch.setattr(files, "_inflate_module", lambda: zlib)
        return zlib
    isal_zlib = pytest.importorskip("isal.isal_zlib")
    assert files._inflate_module() is isal_zlib
    return isal_zlib


@pytest.mark.usefixtures("inflater")
def test_concatenated_members_and_zero_padding_read_as_one_stream(tmp_path: Path) -> None:
    first, second = _fasta(3000), _fasta(6000, 3000)
    path = tmp_path / "two.fa.gz"
    path.write_bytes(gzip.compress(first) + b"\0" * 7 + gzip.compress(second) + b"\0" * 3)
    with open_binary(path) as fh:
        assert fh.read() == first + second
    ids = [r.id for r in read_sequences(path)]
    assert ids == [f"r{i}" for i in range(6000)]


def test_read1_hands_out_at_most_the_size_asked(tmp_path: Path) -> None:
    data = _fasta(5000)
    path = tmp_path / "x.fa.gz"
    path.write_bytes(gzip.compress(data))
    fh = open_binary(path)
    parts = []
    while part := fh.read1(8192):
        assert len(part) <= 8192
        parts.append(part)
    fh.close()
    assert b"".join(parts) == data


@pytest.mark.usefixtures("inflater")
def test_a_damaged_member_is_an_error_naming_the_file(tmp_path: Path) -> None:
    packed = bytearray(gzip.compress(_fasta(4000)))
    packed[-6] ^= 0xFF  # inside the CRC-32 / length trailer
    path = tmp_path / "bad.fa.gz"
    path.write_bytes(bytes(packed))
    with pytest.raises(DataError, match=r"bad\.fa\.gz: damaged or truncated gzip data"):
        list(read_sequences(path))


@pytest.mark.usefixtures("inflater")
def test_an_invalid_deflate_block_is_an_error_naming_the_file(tmp_path: Path) -> None:
    header = gzip.compress(b"")[:10]
    path = tmp_path / "junk.fa.gz"
    path.write_bytes(header + b"\xff" * 64)
    with pytest.raises(DataError, match=r"junk\.fa\.gz: damaged or truncated gzip data \(.+\)"):
        list(read_sequences(path))


@pytest.mark.usefixtures("inflater")
def test_truncated_input_gives_the_records_before_the_damage(tmp_path: Path) -> None:
    packed = gzip.compress(_fasta(20000))
    path = tmp_path / "cut.fa.gz"
    path.write_bytes(packed[: len(packed) * 3 // 4])
    seen = []
    with pytest.raises(DataError, match="damaged or truncated gzip data"):
        for record in read_sequences(path):
            seen.append(record.id)
    assert len(seen) > 1000
    assert seen == [f"r{i}" for i in range(len(seen))]


def _bgzip_blocks(data: bytes, path: Path) -> list[int]:
    """Write ``data`` as bgzip (Biopython's writer, end-of-file block included) and give
    the offsets at which its blocks start (the last one is the end-of-file block)."""
    from Bio import bgzf

    with bgzf.BgzfWriter(str(path), "wb") as out:
        out.write(data)
    packed, starts, at = path.read_bytes(), [], 0
    while at < len(packed):
        starts.append(at)
        at += int.from_bytes(packed[at + 16 : at + 18], "little") + 1  # BSIZE + 1
    return starts


@pytest.mark.usefixtures("inflater")
def test_bgzip_cut_between_blocks_is_an_error(tmp_path: Path) -> None:
    """A bgzip file cut after one of its blocks is whole gzip members, yet short: without
    its end-of-file block it is refused, not read as fewer records with the last one cut
    mid-sequence. The whole file reads as the plain one."""
    data = _fasta(20000)
    path = tmp_path / "whole.fa.gz"
    starts = _bgzip_blocks(data, path)
    assert len(starts) > 4
    with open_binary(path) as fh:
        assert fh.read() == data
    packed = path.read_bytes()
    for cut in (starts[1], starts[3], starts[-1]):  # the last: only the end block missing
        short = tmp_path / "short.fa.gz"
        short.write_bytes(packed[:cut])
        with pytest.raises(DataError, match=r"short\.fa\.gz: damaged or truncated bgzip data"):
            list(read_sequences(short))
    # plain gzip has no end block: members that end where a file was cut cannot be told
    # from a whole file, and are read as they are
    members = gzip.compress(_fasta(10)) + gzip.compress(_fasta(20, 10))
    plain = tmp_path / "members.fa.gz"
    plain.write_bytes(members)
    assert len(list(read_sequences(plain))) == 20


def test_closing_early_stops_the_thread(tmp_path: Path) -> None:
    path = tmp_path / "big.fa.gz"
    path.write_bytes(gzip.compress(_fasta(40000)))
    before = threading.active_count()
    fh = open_binary(path)
    assert fh.read1(100).startswith(b">r0")
    fh.close()
    deadline = time.monotonic() + 5
    while threading.active_count() > before and time.monotonic() < deadline:
        time.sleep(0.01)
    assert threading.active_count() == before
    assert fh.closed


def test_the_switch_interval_is_restored_when_the_last_reader_closes(tmp_path: Path) -> None:
    path = tmp_path / "x.fa.gz"
    path.write_bytes(gzip.compress(_fasta(100)))
    before = sys.getswitchinterval()
    a, b = open_binary(path), open_binary(path)
    assert sys.getswitchinterval() < before
    a.close()
    assert sys.getswitchinterval() < before
    b.close()
    assert sys.getswitchinterval() == before


@pytest.mark.parametrize("packing", ["plain", "gzip"])
def test_bounded_lines_stop_at_a_line_too_long(tmp_path: Path, packing: str) -> None:
    """A line of exactly the bound is read (with or without its newline, CRLF or not); one
    character more is an error naming the line, before the rest of the line is read."""
    text = b"a" * 10 + b"\r\n" + b"b" * 10 + b"\n" + b"c" * 10 + b"\n" + b"d" * 11 + b"e" * 10**6
    path = tmp_path / "t.bed"
    path.write_bytes(gzip.compress(text) if packing == "gzip" else text)
    with open_text(path) as lines:
        read = []
        with pytest.raises(DataError, match=r"t.bed: line 4: longer than 10 characters; is this X"):
            for line in lines.bounded(10, "X"):
                read.append(line)
    assert read == ["a" * 10 + "\n", "b" * 10 + "\n", "c" * 10 + "\n"]

    path.write_bytes(b"ok\nno\x00\n")
    with (
        open_text(path) as lines,
        pytest.raises(DataError, match=r"t.bed: line 2: not text \(a NUL byte\)"),
    ):
        list(lines.bounded(10, "X"))
