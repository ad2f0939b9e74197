"""The block FASTA path (io.fasta._fast_fasta) against the line-based reference path
(Biopython's SimpleFastaParser via fasta._read_by_lines): the same records, header
lines, error messages and order of records before an error, on tricky inputs, with
small chunk and block sizes so that every boundary case (inside a header, right after
a newline, on a '>') occurs."""

from __future__ import annotations

import gzip
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bioseqnn import kernels
from bioseqnn.data.reading import read_encoded
from bioseqnn.errors import DataError
from bioseqnn.io import fasta, files
from bioseqnn.io.fasta import FastaBlock
from bioseqnn.io.sniff import read_sequences


def outcome(records: Any) -> list[tuple[Any, ...]]:
    """Every record as a tuple, then the error (if any) as ('error', message)."""
    out: list[tuple[Any, ...]] = []
    try:
        for r in records:
            out.append((r.id, r.seq, r.description, r.line, r.width))
    except DataError as exc:
        out.append(("error", str(exc)))
    return out


def both(path: Path) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    def run(reader: Any) -> list[tuple[Any, ...]]:
        try:
            return outcome(reader(path))
        except DataError as exc:  # raised when opening (first line)
            return [("error at open", str(exc))]

    return run(read_sequences), run(fasta._read_by_lines)


@pytest.fixture(autouse=True, params=["compiled", "python"])
def cutter(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test runs with the compiled block cutter (bioseqnn/csrc/fasta.c) and
    with its Python form, which an install without a C compiler uses."""
    if request.param == "compiled" and not kernels.available():
        pytest.skip("the compiled code is not built")
    if request.param == "python":
        monkeypatch.setenv("BIOSEQNN_NATIVE", "0")
    return str(request.param)


@pytest.fixture(
    params=[(8192, 4 << 20), (7, 1), (16, 50), (1, 3)],
    ids=["default", "chunk7", "chunk16", "chunk1"],
)
def sizes(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> tuple[int, int]:
    chunk, block = request.param
    monkeypatch.setattr(files, "CHUNK", chunk)
    monkeypatch.setattr(fasta, "BLOCK", block)
    return chunk, block


CASES = {
    "plain": b">a one\nACGT\nAC\n>b\nGGGG\n>c  x  y \nT\n",
    "no final newline": b">a\nACGT\n>b\nGG",
    "crlf": b">a desc\r\nACGT\r\nAC\r\n>b\r\nTT\r\n",
    "crlf later": b">a\nAC\n>b\nGG\n>c\r\nTT\r\n>d\nAA\n",
    "lone cr": b">a\nAC\rGT\n>b\nTT\n",
    "blank lines": b">a\n\nAC\n\nGT\n\n\n>b\nTT\n\n",
    "leading blank lines": b"\n\n>a\nAC\n",
    "spaces in sequence": b">a\nAC GT\n>b\nT T\n",
    "spaces later": b">a x\nACGT\n>b y\nAC GT \n>c\nGG\n",
    "tab in sequence": b">a\nAC\tGT\n>b\nTT\n",
    "trailing tab": b">a\nACGT\t\n>b\nTT\n",
    "tab in header": b">a\tdesc\there\nACGT\n>b\nTT\n",
    "form feed header": b">a\x0cb\nAC\n>c\x1cd\nGG\n",
    "unit separator seq": b">a\nAC\x1f\n>b\nGG\n",
    "lowercase": b">a\nacgtn\n>b\nNNacg\n",
    "empty id": b">a\nAC\n>\nGG\n",
    "blank id": b">a\nAC\n>   \nGG\n",
    "empty record": b">a\nAC\n>b\n>c\nGG\n",
    "empty last record": b">a\nAC\n>b\n",
    "header at end": b">a\nAC\n>b",
    "only header": b">a\n",
    "gt in sequence": b">a\nAC>GT\n>b\nGG\n",
    "gt in header": b">a>b c>d\nAC\n>e\nGG\n",
    "indented gt": b">a\nAC\n >b\nGG\n",
    "non-ascii header": ">a µ\nAC\n>b\nGG\n".encode(),
    "non-ascii sequence": ">a\nACµ\n>b\nGG\n".encode(),
    "latin-1 later": b">a\nAC\n>b\nGG\n>c \xe9\nTT\n>d\nAA\n",
    "bad utf-8 first": b">\xff\nAC\n",
    "bom": b"\xef\xbb\xbf>a\nAC\n>b\nGG\n",
    "fastq": b"@r1\nACGT\n+\nIIII\n",
    "genbank": b"LOCUS x\n",
    "empty": b"",
    "nul": b">a\nA\x00C\n>b\nGG\n",
    # a line of NUL bytes longer than NUL_RUN (a file cut into /dev/zero): refused at it
    "nul run": b">a\nAC\n>b\nGG\n" + b"\x00" * 70000 + b"\n>c\nTT\n",
    "nul run at end": b">a\nAC\n>b\n" + b"\x00" * 70000,
    "long header": b">" + b"h" * 30000 + b" d\nACGT\n>b\nGG\n",
    "long record": b">a\n" + b"ACGT" * 20000 + b"\n>b\nGG\n",
    "binary": bytes(range(256)) * 8,
    "star": b">p\nMKV*\n>q\nMA\n",
}


@pytest.mark.parametrize("name", CASES)
def test_tricky_inputs_match_the_reference(tmp_path: Path, name: str, sizes: Any) -> None:
    path = tmp_path / "x.fa"
    path.write_bytes(CASES[name])
    fast, ref = both(path)
    assert fast == ref


@pytest.mark.parametrize("name", ["plain", "crlf later", "latin-1 later", "empty record"])
def test_gzip_matches_the_reference(tmp_path: Path, name: str, sizes: Any) -> None:
    path = tmp_path / "x.fa.gz"
    path.write_bytes(gzip.compress(CASES[name] * 50))
    fast, ref = both(path)
    assert fast == ref
    if name == "plain":
        assert len(fast) == 150 and fast[-1][3] == 50 * 7 - 1


def test_truncated_gzip_gives_the_records_before_it_then_the_error(tmp_path: Path) -> None:
    data = b"".join(b">r%d x\n%s\n" % (i, b"ACGT" * 100) for i in range(5000))
    path = tmp_path / "x.fa.gz"
    packed = gzip.compress(data)
    path.write_bytes(packed[: len(packed) // 2])
    fast, ref = both(path)
    assert fast == ref
    assert fast[-1][0] == "error" and "damaged or truncated gzip" in fast[-1][1]
    assert len(fast) > 100


def test_bad_bytes_late_in_a_large_file_name_the_same_line(tmp_path: Path) -> None:
    """The undecodable-bytes line depends on where the reference's chunks fall: the
    block path replays the same chunks, so the message is the same."""
    lines = [b">r%d\n%s\n" % (i, b"ACGT" * 30) for i in range(20000)]
    lines[15000] = b">r15000 \xff\xfe\n" + b"AC" * 7 + b"\n"
    path = tmp_path / "x.fa"
    path.write_bytes(b"".join(lines))
    fast, ref = both(path)
    assert fast == ref
    assert len(fast) > 14000
    assert fast[-1][1] == (
        f"{path}: line 30001, column 9: byte 0xFF is not UTF-8 (Latin-1 or Windows-1252 "
        "text?); save the file as UTF-8"
    )


def test_the_block_path_is_taken_and_gives_columns(tmp_path: Path) -> None:
    path = tmp_path / "x.fa"
    path.write_bytes(CASES["plain"])
    batches = list(read_sequences(path).batches())
    assert len(batches) == 1 and isinstance(batches[0], FastaBlock)
    assert batches[0].ids == ["a", "b", "c"] and batches[0].lines == [1, 4, 6]
    assert batches[0].record(2).description == "x  y"


def test_block_then_reference_path_in_one_stream(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.setattr(fasta, "BLOCK", 1)
    path = tmp_path / "x.fa"
    path.write_bytes(b"".join(b">r%d\nACGT\n" % i for i in range(3000)) + b">s\r\nGG\r\n")
    kinds = {type(b).__name__ for b in read_sequences(path).batches()}
    assert kinds == {"FastaBlock", "Record"}
    fast, ref = both(path)
    assert fast == ref and fast[-1][:4] == ("s", b"GG", "", 3001 * 2 - 1)


def test_stdin_matches_a_file(tmp_path: Path) -> None:
    data = b"".join(b">r%d d\n%s\n%s\n" % (i, b"AC" * 40, b"GT" * (i % 50)) for i in range(3000))
    data += b">last\r\nAC GT\r\n"
    path = tmp_path / "x.fa"
    path.write_bytes(data)
    code = (
        "import sys; from bioseqnn.io.sniff import read_sequences\n"
        "for r in read_sequences('-'):\n"
        "    sys.stdout.write(f'{r.id}\\t{r.seq.decode()}\\t{r.description}\\t{r.line}\\n')\n"
    )
    for payload in (data, gzip.compress(data)):
        out = subprocess.run(
            [sys.executable, "-c", code], input=payload, capture_output=True, check=True
        ).stdout.decode()
        expected = "".join(
            f"{r.id}\t{r.seq.decode()}\t{r.description}\t{r.line}\n"
            for r in fasta._read_by_lines(path)
        )
        assert out == expected and out.count("\n") == 3001


def test_stdin_error_message_matches(tmp_path: Path) -> None:
    data = b"".join(b">r%d\nACGT\n" % i for i in range(2000)) + b">x\n>y\nAC\n"
    code = (
        "import sys; from bioseqnn.io.sniff import read_sequences\n"
        "from bioseqnn.errors import DataError\n"
        "try:\n    n = sum(1 for _ in read_sequences('-'))\n"
        "except DataError as e:\n    print(e)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], input=data, capture_output=True, check=True
    ).stdout.decode()
    assert out == "<stdin>: line 4001: record 'x' has no sequence\n"


def test_encoded_set_and_invalid_symbol_message_unchanged(tmp_path: Path) -> None:
    records = [b">r%d\n%s\n" % (i, b"ACGT" * 20) for i in range(6000)]
    records[5000] = b">bad\nACGT\nACJT\n"
    path = tmp_path / "x.fa"
    path.write_bytes(b"".join(records))
    with pytest.raises(DataError) as fast:
        read_encoded(read_sequences(path), str(path), "dna", "error")
    with pytest.raises(DataError) as ref:
        read_encoded(list(fasta._read_by_lines(path)), str(path), "dna", "error")
    assert str(fast.value) == str(ref.value)
    assert "line 10003, column 3" in str(fast.value) and "'J' at position 7" in str(fast.value)
    for mode in ("skip", "mask"):
        a = read_encoded(read_sequences(path), str(path), None, mode)
        b = read_encoded(list(fasta._read_by_lines(path)), str(path), None, mode)
        assert a[0].ids == b[0].ids and a[1].name == b[1].name and a[2] == b[2]
        assert np.array_equal(a[0].codes, b[0].codes)
        assert np.array_equal(a[0].offsets, b[0].offsets)


def test_parse_error_after_an_invalid_symbol_in_the_same_chunk_wins(tmp_path: Path) -> None:
    """As before: a chunk of records is read whole before it is encoded."""
    records = [b">r%d\nACGT\n" % i for i in range(100)]
    records[10] = b">bad\nACJT\n"
    records[50] = b">empty\n"
    path = tmp_path / "x.fa"
    path.write_bytes(b"".join(records))
    with pytest.raises(DataError, match="record 'empty' has no sequence"):
        read_encoded(read_sequences(path), str(path), "dna", "error")


LINE_PIECES = st.sampled_from(
    [
        b">",
        b">a",
        b">b desc",
        b"> x",
        b">\t",
        b"ACGT",
        b"acgt",
        b"NN",
        b"AC GT",
        b" ",
        b"\t",
        b"",
        b"\r",
        b"*",
        b"-",
        b">>",
        b"A>C",
        "µ".encode(),
        b"\xff",
        b"\x1c",
        b"GATTACA" * 9,
    ]
)
ENDINGS = st.sampled_from([b"\n", b"\n", b"\n", b"\r\n", b"\r", b""])


@st.composite
def fasta_bytes(draw: Any) -> bytes:
    n = draw(st.integers(0, 30))
    out = [b">first\n"] if draw(st.booleans()) else []
    for _ in range(n):
        out.append(draw(LINE_PIECES) + draw(ENDINGS))
    return b"".join(out)


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    data=fasta_bytes(), chunk=st.integers(1, 40), block=st.integers(1, 200), packed=st.booleans()
)
def test_property_same_as_reference(
    tmp_path_factory: pytest.TempPathFactory, data: bytes, chunk: int, block: int, packed: bool
) -> None:
    path = tmp_path_factory.mktemp("p") / "x.fa"
    path.write_bytes(gzip.compress(data) if packed else data)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(files, "CHUNK", chunk)
        mp.setattr(fasta, "BLOCK", block)
        fast, ref = both(path)
    assert fast == ref


@settings(max_examples=100, deadline=None)
@given(
    seqs=st.lists(
        st.binary(min_size=1, max_size=200).filter(lambda s: b"\n" not in s),
        min_size=1,
        max_size=20,
    ),
    width=st.integers(1, 70),
)
def test_property_clean_records_take_the_block_path(
    tmp_path_factory: pytest.TempPathFactory, seqs: list[bytes], width: int
) -> None:
    letters = [bytes(c for c in s if 33 <= c < 127 and c != ord(">")) or b"A" for s in seqs]
    text = b"".join(
        b">r%d\n" % i + b"\n".join(s[k : k + width] for k in range(0, len(s), width)) + b"\n"
        for i, s in enumerate(letters)
    )
    path = tmp_path_factory.mktemp("c") / "x.fa"
    path.write_bytes(text)
    batches = list(read_sequences(path).batches())
    assert all(isinstance(b, FastaBlock) for b in batches)
    fast, ref = both(path)
    assert fast == ref and [r[1] for r in fast] == letters


@settings(max_examples=300, deadline=None)
@given(
    data=fasta_bytes(),
    pos=st.integers(0, 400),
    fine=st.integers(0, 400),
    last_ok=st.booleans(),
    line=st.integers(1, 9),
)
def test_property_compiled_cut_is_the_python_cut(
    data: bytes, pos: int, fine: int, last_ok: bool, line: int
) -> None:
    """The two forms of the block cut give the same records, buffers and state from any
    header, within any plain part."""
    if kernels._load() is None:
        pytest.skip("the compiled code is not built")
    starts = [i for i in range(len(data)) if data[i] == ord(">") and (i == 0 or data[i - 1] == 10)]
    if not starts:
        return
    pos = starts[pos % len(starts)]
    fine = min(len(data), pos + fine)
    spaces = [c for c in fasta._WHITESPACE if data.find(c, pos, fine) >= 0]
    last_ok = last_ok and fine == len(data)
    compiled = fasta._cut_records_c(data, pos, fine, last_ok, spaces, line)
    python = fasta._cut_records_py(data, pos, fine, last_ok, spaces, line)
    assert compiled == python


@settings(max_examples=300, deadline=None)
@given(
    records=st.lists(
        st.tuples(
            st.text(alphabet="ACGT>N", min_size=0, max_size=300),
            st.integers(1, 100),
            st.sampled_from(["", "\n"]),
        ),
        min_size=1,
        max_size=8,
    ),
    cut=st.integers(0, 2000),
    last_ok=st.booleans(),
)
def test_property_compiled_cut_of_long_lines_is_the_python_cut(
    records: list[tuple[str, int, str]], cut: int, last_ok: bool
) -> None:
    """Lines longer than the compiled copy's 32-byte steps, with '>' inside them (a
    residue there, not a header) and at step boundaries, blank lines, and plain parts
    that end anywhere: the same records as the Python cut."""
    if kernels._load() is None:
        pytest.skip("the compiled code is not built")
    text = ""
    for i, (seq, width, blank) in enumerate(records):
        lines = [seq[k : k + width] for k in range(0, len(seq), width)]
        text += f">r{i}\n" + "".join(line + "\n" + blank for line in lines)
    data = text.encode()
    fine = min(len(data), cut) if cut < len(data) else len(data)
    last_ok = last_ok and fine == len(data)
    compiled = fasta._cut_records_c(data, 0, fine, last_ok, [], 1)
    assert compiled == fasta._cut_records_py(data, 0, fine, last_ok, [], 1)


def test_compiled_cut_of_many_short_records_is_the_python_cut() -> None:
    """Records far shorter than the compiled cut's first guess at their number make it
    ask for more room, several times."""
    if kernels._load() is None:
        pytest.skip("the compiled code is not built")
    data = b"".join(b">r%d d\nA\nC\n" % i for i in range(20000))
    for last_ok in (True, False):
        compiled = fasta._cut_records_c(data, 0, len(data), last_ok, [b" "], 1)
        assert compiled == fasta._cut_records_py(data, 0, len(data), last_ok, [b" "], 1)
        taken = len(compiled[1])
        assert taken == 20000 - (not last_ok) and compiled[4][-1] == 3 * taken - 2


def test_a_long_line_of_nul_bytes_is_refused_at_its_line(tmp_path: Path) -> None:
    """The records before it are read; the line is refused without being read whole."""
    path = tmp_path / "x.fa"
    path.write_bytes(CASES["nul run"])
    got = outcome(read_sequences(path))
    assert [r[0] for r in got[:-1]] == ["a"]  # 'b' ends at the line that is refused
    assert got[-1] == ("error", f"{path}: line 5: not text (a NUL byte); is this a binary file?")
