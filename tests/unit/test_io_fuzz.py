"""Property-based fuzzing of the FASTA/FASTQ and table readers and of the encoder.

Arbitrary bytes never raise anything but the project's own errors; every valid record
round-trips; a reported line and column point at the offending character in the file.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bioseqnn.alphabets import ALPHABETS, INVALID
from bioseqnn.data.reading import SequenceEncoder, read_encoded
from bioseqnn.encoding import Encoder
from bioseqnn.errors import BioseqnnError
from bioseqnn.io.fasta import Record
from bioseqnn.io.sniff import read_sequences
from bioseqnn.io.tables import read_table

FUZZ = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

# Bytes that look a little like our formats, so the fuzzer reaches past the first line.
FORMATISH = st.lists(
    st.sampled_from(
        [
            b">",
            b"@",
            b"+",
            b"\n",
            b"\r\n",
            b" ",
            b"\t",
            b",",
            b'"',
            b"ACGT",
            b"KLVF",
            b"N",
            b"*",
            b"-",
            b"id",
            b"\x00",
            b"\xff",
            b"\xef\xbb\xbf",
            b"\x1f\x8b",
            "é".encode(),
        ]
    ),
    max_size=40,
).map(b"".join)
ANY_BYTES = st.one_of(st.binary(max_size=300), FORMATISH)


def _write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


@FUZZ
@given(data=ANY_BYTES, compress=st.booleans())
def test_sequence_reader_raises_only_its_own_errors(
    tmp_path: Path, data: bytes, compress: bool
) -> None:
    path = _write(tmp_path, "x.fa", gzip.compress(data) if compress else data)
    try:
        records = list(read_sequences(path))
    except BioseqnnError as exc:
        assert "\n" not in str(exc) and str(path) in str(exc)
        return
    for rec in records:
        assert rec.id and not any(c.isspace() for c in rec.id)
        assert rec.seq and rec.line >= 1


@FUZZ
@given(data=ANY_BYTES)
def test_truncated_gzip_raises_only_its_own_errors(tmp_path: Path, data: bytes) -> None:
    packed = gzip.compress(b">a\nACGT\n" + data)
    path = _write(tmp_path, "x.fa.gz", packed[: max(2, len(packed) // 2)])
    with pytest.raises(BioseqnnError):
        list(read_sequences(path))


@FUZZ
@given(data=ANY_BYTES, name=st.sampled_from(["l.csv", "l.tsv", "l.txt"]))
def test_table_reader_raises_only_its_own_errors(tmp_path: Path, data: bytes, name: str) -> None:
    path = _write(tmp_path, name, data)
    try:
        table = read_table(path)
    except BioseqnnError as exc:
        assert "\n" not in str(exc)
        return
    assert table.rows and all(len(row) == len(table.header) for row in table.rows)
    assert len(table.lines) == len(table.rows)


@FUZZ
@given(
    seqs=st.lists(st.binary(max_size=50), max_size=8),
    alphabet=st.sampled_from(sorted(ALPHABETS)),
    on_invalid=st.sampled_from(["error", "skip", "mask"]),
)
def test_encoder_reports_exactly_the_invalid_symbols(
    seqs: list[bytes], alphabet: str, on_invalid: str
) -> None:
    enc = Encoder(ALPHABETS[alphabet], on_invalid)
    codes, offsets, bad = enc.encode(seqs)
    table = ALPHABETS[alphabet].byte_table()
    expected = []
    for i, s in enumerate(seqs):
        if alphabet == "protein" and s.endswith(b"*") and len(s) > 1:
            s = s[:-1]  # a terminal stop is dropped, but a stop alone is a symbol
        assert offsets[i + 1] - offsets[i] == len(s)
        wrong = [p for p, b in enumerate(s) if table[b] == INVALID]
        if wrong:
            expected.append((i, wrong[0] + 1, chr(s[wrong[0]])))
    assert [(b.index, b.position, b.char) for b in bad] == expected
    if on_invalid == "mask":
        assert not (codes == INVALID).any()
    assert codes.dtype == np.uint8


@FUZZ
@given(
    records=st.lists(
        st.tuples(
            st.text("ACGTKLVFxyz*-1 ", max_size=30), st.sampled_from(["auto", "dna", "protein"])
        ),
        min_size=1,
        max_size=6,
    ),
    on_invalid=st.sampled_from(["error", "skip", "mask"]),
)
def test_encoding_records_raises_only_its_own_errors(
    records: list[tuple[str, str]], on_invalid: str
) -> None:
    recs = [Record(f"r{i}", s.encode(), line=2 * i + 1) for i, (s, _) in enumerate(records)]
    try:
        data, alphabet, skipped = read_encoded(recs, "x.fa", records[0][1], on_invalid)
    except BioseqnnError as exc:
        assert "\n" not in str(exc)
        return
    assert len(data) + skipped == len(recs)


RECORD_ID = st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=12)
SEQUENCE = st.text("ACDEFGHIKLMNPQRSTVWYacgtnx", min_size=1, max_size=120)


@FUZZ
@given(
    records=st.lists(
        st.tuples(RECORD_ID, SEQUENCE, st.text("ab =|", max_size=10)), min_size=1, max_size=6
    ),
    width=st.integers(1, 80),
    eol=st.sampled_from(["\n", "\r\n"]),
    bom=st.booleans(),
    compress=st.booleans(),
    fastq=st.booleans(),
)
def test_valid_records_round_trip(
    tmp_path: Path,
    records: list[tuple[str, str, str]],
    width: int,
    eol: str,
    bom: bool,
    compress: bool,
    fastq: bool,
) -> None:
    parts = []
    for rid, seq, desc in records:
        header = f"{rid} {desc}".rstrip()
        if fastq:
            parts.append(f"@{header}{eol}{seq}{eol}+{eol}{'I' * len(seq)}{eol}")
        else:
            lines = eol.join(seq[i : i + width] for i in range(0, len(seq), width))
            parts.append(f">{header}{eol}{lines}{eol}")
    data = ("\ufeff" if bom else "") + "".join(parts)
    raw = data.encode()
    path = _write(tmp_path, "r.fa", gzip.compress(raw) if compress else raw)
    back = list(read_sequences(path))
    assert [(r.id, r.seq.decode()) for r in back] == [(rid, seq) for rid, seq, _ in records]
    assert [r.description for r in back] == [desc.strip() for _, _, desc in records]


@FUZZ
@given(
    seq=st.text("ACGT", min_size=1, max_size=200),
    width=st.integers(1, 70),
    where=st.integers(0, 10_000),
    bad=st.sampled_from("1*.-#X"),
    eol=st.sampled_from(["\n", "\r\n"]),
    before=st.integers(0, 3),
)
def test_reported_line_and_column_point_at_the_bad_symbol(
    tmp_path: Path, seq: str, width: int, where: int, bad: str, eol: str, before: int
) -> None:
    pos = where % len(seq)  # (no float strategy: torch flushes denormals process-wide)
    seq = seq[:pos] + bad + seq[pos + 1 :]
    text = "".join(f">ok{i}{eol}ACGT{eol}" for i in range(before))
    text += f">x desc{eol}" + eol.join(seq[i : i + width] for i in range(0, len(seq), width))
    path = _write(tmp_path, "p.fa", (text + eol).encode())
    enc = SequenceEncoder(str(path), "dna", "error")
    with pytest.raises(BioseqnnError) as info:
        enc.encode_chunk(list(read_sequences(path)))
    message = str(info.value)
    assert f"'{bad}' at position {pos + 1}" in message
    line, column = message.split(": line ")[1].split(": record")[0].split(", column ")
    file_lines = text.split(eol)
    assert file_lines[int(line) - 1][int(column) - 1] == bad
