"""Reading FASTA/FASTQ and tables, joining labels, atomic outputs."""

from __future__ import annotations

import gzip
import os
import stat
from pathlib import Path

import numpy as np
import pytest

from bioseqnn.data.batches import split_indices
from bioseqnn.data.labels import LabelSource, load_labeled
from bioseqnn.errors import DataError, UsageError
from bioseqnn.io.outputs import atomic_output
from bioseqnn.io.sniff import read_sequences
from bioseqnn.io.tables import read_table
from bioseqnn.tasks import prepare_task


def write(path: Path, text: str, gz: bool = False) -> Path:
    data = text.encode()
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


@pytest.mark.parametrize("gz", [False, True])
def test_fasta_ids_descriptions_and_wrapped_lines(tmp_path: Path, gz: bool) -> None:
    # A gzip file keeps its plain name: compression is recognised by content.
    f = write(tmp_path / "x.fa", ">a first record\nACGT\nacg\n>b\r\nTT\r\n", gz)
    records = list(read_sequences(f))
    assert [(r.id, r.seq, r.description) for r in records] == [
        ("a", b"ACGTacg", "first record"),
        ("b", b"TT", ""),
    ]


def test_fastq_is_read_by_content(tmp_path: Path) -> None:
    f = write(tmp_path / "x.fq", "@r1 x\nACGT\n+\nIIII\n@r2\nGG\n+\nII\n")
    assert [(r.id, r.seq) for r in read_sequences(f)] == [("r1", b"ACGT"), ("r2", b"GG")]


def test_byte_order_mark_is_accepted(tmp_path: Path) -> None:
    f = tmp_path / "bom.fa"
    f.write_bytes(b"\xef\xbb\xbf>a\nAC\n")
    assert [r.id for r in read_sequences(f)] == ["a"]


def test_text_before_first_header_is_an_error_naming_the_line(tmp_path: Path) -> None:
    f = write(tmp_path / "x.fa", "\nACGT\n>a\nAC\n")
    with pytest.raises(DataError, match=r"x\.fa: line 2: expected a FASTA header"):
        list(read_sequences(f))


def test_record_without_sequence_names_record_and_line(tmp_path: Path) -> None:
    f = write(tmp_path / "x.fa", ">a\nAC\n>b\n>c\nGG\n")
    with pytest.raises(DataError, match=r"line 3: record 'b' has no sequence"):
        list(read_sequences(f))


@pytest.mark.parametrize(("name", "delim"), [("l.csv", ","), ("l.tsv", "\t"), ("l.txt", "\t")])
def test_table_delimiter_from_name_or_header(tmp_path: Path, name: str, delim: str) -> None:
    f = write(tmp_path / name, f"id{delim}y\na{delim}1\nb{delim}0\n")
    table = read_table(f)
    assert table.header == ["id", "y"] and table.rows == [["a", "1"], ["b", "0"]]


def test_tab_separated_content_in_a_csv_name_is_sniffed(tmp_path: Path) -> None:
    f = write(tmp_path / "l.csv", "id\ty\na\t1\n")
    assert read_table(f).rows == [["a", "1"]]


def test_a_delimiter_ending_every_line_adds_no_column(tmp_path: Path) -> None:
    f = write(tmp_path / "l.csv", "id,y,\na,1,\nb,0,\n")
    table = read_table(f)
    assert table.header == ["id", "y"] and table.rows == [["a", "1"], ["b", "0"]]
    # an unnamed column with values stays, for the label join to name
    f = write(tmp_path / "m.csv", "id,y,\na,1,\nb,0,7\n")
    assert read_table(f).header == ["id", "y", ""]


def test_table_cells_are_stripped_and_blank_rows_skipped_keeping_lines(tmp_path: Path) -> None:
    text = 'id,y\n a ,1\n\n , \n,,\nb,\u00a00\u00a0\n"c","2"\r\nd\t,3\n'
    table = read_table(write(tmp_path / "l.csv", text))
    assert table.rows == [["a", "1"], ["b", "0"], ["c", "2"], ["d", "3"]]
    assert table.lines == [2, 6, 7, 8]
    f = write(tmp_path / "m.csv", "id,y\na,1\nb,2,3\n")
    with pytest.raises(DataError, match=r"m\.csv: line 3: 3 field\(s\), the header has 2"):
        read_table(f)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (
            "AC\tGT",
            "line 4, column 3: record 'b': invalid dna symbol '\\t' at position 3 (a tab in "
            "a sequence line: spaces there are dropped, tabs are not; use --on-invalid",
        ),
        (
            "AC\0GT",
            "line 4, column 3: record 'b': invalid dna symbol '\\x00' at position 3 (a control "
            "character, which no sequence holds: is the file damaged? use --on-invalid",
        ),
        ("AC GT", None),  # spaces are dropped, as Biopython does
    ],
)
def test_a_tab_or_control_character_in_a_sequence_is_named(
    tmp_path: Path, line: str, message: str | None
) -> None:
    from bioseqnn.data.reading import read_inputs

    f = write(tmp_path / "x.fa", f">a\nACGTACGT\n>b\n{line}\n")
    if message is None:
        data, _, _ = read_inputs(f, None, "error")
        assert list(data.lengths) == [8, 4]
        return
    with pytest.raises(DataError) as info:
        read_inputs(f, None, "error")
    assert str(info.value).startswith(f"{f}: {message}")


def test_every_duplicated_id_is_reported_once_in_order(tmp_path: Path) -> None:
    ids = [f"r{i}" for i in range(30000)]
    fa = write(tmp_path / "s.fa", "".join(f">{x}\nACGT\n" for x in ids))
    lab = write(tmp_path / "l.csv", "id,y\n" + "".join(f"{x},1\n" for x in ids + ids[::-1]))
    with pytest.raises(DataError) as info:
        load_labeled(fa, LabelSource(lab), None)
    assert "30000 duplicate id(s) in" in str(info.value)
    assert "('r29999', 'r29998', 'r29997', ...)" in str(info.value)


def test_each_labelled_record_names_its_row(tmp_path: Path) -> None:
    fa = write(tmp_path / "s.fa", ">b\nACGT\n>x\nAC\n>a\nGGT\n")
    lab = write(tmp_path / "l.tsv", "y\tid\n\n1\ta\n0\tb\n")
    labeled, _ = load_labeled(fa, LabelSource(lab), None, allow_unmatched=True)
    assert len(labeled.where) == 2
    assert labeled.where[0] == f"{lab}: line 4 (id 'b')"
    assert list(labeled.where) == [f"{lab}: line 4 (id 'b')", f"{lab}: line 3 (id 'a')"]
    assert labeled.where[-1:] == [f"{lab}: line 3 (id 'a')"]


@pytest.mark.parametrize("gz", [False, True])
def test_text_that_is_not_utf8_is_named_at_its_line_and_column(tmp_path: Path, gz: bool) -> None:
    rows = [f"s{i},neg" for i in range(5000)] + ["s5000,n\u00e9g", "s5001,pos"]
    latin = ("id,y\n" + "\n".join(rows) + "\n").encode("latin-1")
    f = tmp_path / "l.csv"
    f.write_bytes(gzip.compress(latin) if gz else latin)
    with pytest.raises(DataError) as info:
        read_table(f)
    assert str(info.value) == (
        f"{f}: line 5002, column 8: byte 0xE9 is not UTF-8 (Latin-1 or Windows-1252 "
        "text?); save the file as UTF-8"
    )
    f.write_bytes("id,y\na,1\nb,0\n".encode("utf-16"))
    with pytest.raises(DataError, match=r"line 1, column 1: UTF-16 text, not UTF-8; save it"):
        read_table(f)


def test_join_reports_every_problem_in_one_message(tmp_path: Path) -> None:
    fa = write(tmp_path / "s.fa", ">a\nACGT\n>b\nACGT\n>c\nACGT\n>c\nAC\n")
    lab = write(tmp_path / "l.csv", "id,y\na,1\nb,\nd,0\n")
    with pytest.raises(DataError) as info:
        load_labeled(fa, LabelSource(lab), None)
    msg = str(info.value)
    assert "1 duplicate id(s) in" in msg and "'c'" in msg
    assert "1 record(s) with an empty label ('b')" in msg
    assert "id(s) in" in msg and "'d'" in msg
    assert "\n" not in msg


def test_join_keeps_fasta_order_and_ignore_unmatched_drops(tmp_path: Path) -> None:
    fa = write(tmp_path / "s.fa", ">b\nACGT\n>x\nAC\n>a\nGGT\n")
    lab = write(tmp_path / "l.tsv", "y\tid\n1\ta\n0\tb\n")
    labeled, alphabet = load_labeled(fa, LabelSource(lab), None, allow_unmatched=True)
    assert labeled.data.ids == ["b", "a"] and labeled.label_values == [["0"], ["1"]]
    assert alphabet.name == "dna"
    assert list(labeled.data.lengths) == [4, 3]


def test_sequence_column_table(tmp_path: Path) -> None:
    lab = write(tmp_path / "t.csv", "id,seq,y\na,MKVL,1.5\nb,MKV,2.5\n")
    labeled, alphabet = load_labeled(None, LabelSource(lab, sequence_column="seq"), None)
    assert alphabet.name == "protein" and labeled.targets == ["y"]
    task = prepare_task(labeled, None)
    assert task.kind == "regression" and task.target_mean == pytest.approx([2.0])


def _labeled(tmp_path: Path, ys: list[str]):  # type: ignore[no-untyped-def]
    fa = write(tmp_path / "s.fa", "".join(f">r{i}\nACGT\n" for i in range(len(ys))))
    lab = write(tmp_path / "l.tsv", "id\ty\n" + "".join(f"r{i}\t{y}\n" for i, y in enumerate(ys)))
    return load_labeled(fa, LabelSource(lab), None)[0]


def test_numbers_with_a_missing_value_or_a_decimal_comma_are_refused(tmp_path: Path) -> None:
    values = [f"{0.37 * i:.2f}" for i in range(30)]
    for cell, message in [
        ("NA", "l.tsv: line 5 (id 'r3'): 'NA' in column 'y' is not a number, but 29 of its 30"),
        ("n/a", "'n/a' in column 'y' is not a number, but 29 of its 30 labels are (1 is not)"),
        ("0,5", "'0,5' in column 'y' is a number with a decimal comma; write it with a point"),
    ]:
        with pytest.raises(DataError) as info:
            prepare_task(_labeled(tmp_path, [*values[:3], cell, *values[4:]]), None)
        assert message in str(info.value)
    # every value with a decimal comma
    with pytest.raises(DataError, match="'0,00' in column 'y' is a number with a decimal"):
        prepare_task(_labeled(tmp_path, [v.replace(".", ",") for v in values]), None)
    # three digits after the comma: a thousands separator as likely as a decimal comma
    with pytest.raises(DataError) as info:
        prepare_task(_labeled(tmp_path, [*values[:3], "71,433", *values[4:]]), None)
    assert (
        "'71,433' in column 'y' is a number written with a comma: a thousands separator "
        "('71433') or a decimal comma ('71.433')? Write it without the comma or with a point"
    ) in str(info.value)
    # 0/1 with a missing value would have made a third class
    with pytest.raises(DataError, match="'NA' in column 'y' is not a number, but 5 of its 6"):
        prepare_task(_labeled(tmp_path, ["0", "1", "0", "NA", "1", "0"]), None)
    # an explicit task wins; class names that are mostly words are classes
    labeled = _labeled(tmp_path, ["0", "1", "0", "NA", "1", "0"])
    assert prepare_task(labeled, "multiclass").classes == ["0", "1", "NA"]
    words = ["low", "high", "mid", "1", "low", "high", "mid", "high", "low", "mid"]
    assert prepare_task(_labeled(tmp_path, words), None).kind == "multiclass"


def test_a_class_named_as_a_missing_value_is_refused_unless_the_task_is_given(
    tmp_path: Path, caplog
) -> None:
    """R's write.csv writes a missing label as NA: read as a class it made a binary set
    a 3-class one whose NA class was predicted for real records. Refused with the line,
    the count and the way out; --task trains it as a class, with a warning."""
    ys = ["toxic", "safe", "safe", "NA", "toxic", "safe", "null", "NA", "safe", "toxic"]
    with pytest.raises(DataError) as info:
        prepare_task(_labeled(tmp_path, ys), None)
    assert str(info.value) == str(tmp_path / "l.tsv") + (
        ": line 5 (id 'r3'): label 'NA' (2 record(s)) is how R and spreadsheets "
        "write a missing value: leave those records out of the table, or give --task "
        "multiclass to train 'NA' as a class"
    )
    with caplog.at_level("WARNING", logger="bioseqnn"):
        task = prepare_task(_labeled(tmp_path, ys), "multiclass")
    assert task.classes == ["NA", "null", "safe", "toxic"]
    assert "label 'NA' (2 record(s)) is how R" in caplog.text
    assert "trained as a class, as --task multiclass asks" in caplog.text
    # a class that merely contains the letters is a class
    words = ["NAD", "safe", "NAD", "safe", "Nan1", "safe"]
    assert prepare_task(_labeled(tmp_path, words), None).classes == ["NAD", "Nan1", "safe"]


def test_stratified_split_is_seeded_and_keeps_class_proportions() -> None:
    strata = np.array([0] * 80 + [1] * 20)
    tr1, va1 = split_indices(100, 0.2, seed=3, strata=strata)
    tr2, va2 = split_indices(100, 0.2, seed=3, strata=strata)
    tr3, va3 = split_indices(100, 0.2, seed=4, strata=strata)
    assert np.array_equal(va1, va2) and not np.array_equal(va1, va3)
    assert (strata[va1] == 0).sum() == 16 and (strata[va1] == 1).sum() == 4
    assert len(np.intersect1d(tr1, va1)) == 0 and len(tr1) + len(va1) == 100


def test_many_small_classes_hold_out_the_fraction_not_half(caplog) -> None:
    """200 classes of two records: a record of each would validate on half the data;
    the fraction asked for is held out instead, every class keeping a training record,
    and the log says so. Classes large enough keep the stratified split exactly."""
    strata = np.repeat(np.arange(200), 2)
    with caplog.at_level("WARNING", logger="bioseqnn"):
        train, val = split_indices(400, 0.1, seed=0, strata=strata)
    assert len(val) == 40 and len(train) == 360
    assert set(strata[train].tolist()) == set(range(200))
    assert caplog.messages == [
        "validation: a record of each class would hold out 200 of 400 records; holding out "
        "40 (--val-fraction 0.1) at random instead, so some classes have no validation record"
    ]
    again = split_indices(400, 0.1, seed=0, strata=strata)
    assert np.array_equal(again[1], val)
    caplog.clear()
    strata = np.repeat(np.arange(10), 12)  # one each is 10 of 120, asked 12: unchanged
    with caplog.at_level("WARNING", logger="bioseqnn"):
        _, val = split_indices(120, 0.1, seed=0, strata=strata)
    assert len(val) == 10 and caplog.messages == []


def test_atomic_output_leaves_nothing_on_failure(tmp_path: Path) -> None:
    target = tmp_path / "out.tsv"
    with pytest.raises(RuntimeError), atomic_output(target) as fh:
        fh.write("half")
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []
    with atomic_output(target) as fh:
        fh.write("done\n")
    assert target.read_text() == "done\n" and list(tmp_path.iterdir()) == [target]


def test_atomic_output_gzip_by_name(tmp_path: Path) -> None:
    target = tmp_path / "out.tsv.gz"
    with atomic_output(target) as fh:
        fh.write("a\tb\n")
    assert gzip.decompress(target.read_bytes()) == b"a\tb\n"


def test_output_in_missing_directory_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="does not exist"), atomic_output(tmp_path / "no" / "x"):
        pass


def test_an_output_has_the_mode_a_plain_open_would_give_and_the_umask_stays(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The temporary file is private until it is complete, then gets the mode that
    0o666 and the process's umask give, read without setting the umask even for a moment
    (another thread could create a file in that moment)."""
    old = os.umask(0o027)
    try:
        seen: list[int] = []
        real = os.umask
        monkeypatch.setattr(os, "umask", lambda mask: seen.append(mask) or real(mask))
        with atomic_output(tmp_path / "out.tsv") as fh:
            fh.write("x\n")
        monkeypatch.undo()
        assert stat.S_IMODE((tmp_path / "out.tsv").stat().st_mode) == 0o640
        assert seen == []  # read from /proc/self/status, never set
        assert os.umask(0o027) == 0o027
    finally:
        os.umask(old)


def test_an_output_replacing_a_file_keeps_its_mode(tmp_path: Path) -> None:
    """A private file written again stays private (the new file would otherwise get the
    umask's 0644, readable by everyone)."""
    target = tmp_path / "private.tsv"
    target.write_text("old\n")
    target.chmod(0o600)
    with atomic_output(target) as fh:
        fh.write("new\n")
    assert target.read_text() == "new\n"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600


def test_an_output_may_use_the_longest_name_the_file_system_takes(tmp_path: Path) -> None:
    """The temporary file beside the output adds its own characters; they must not make
    a legal name fail (255 bytes, here in two-byte characters cut in the middle)."""
    limit = os.pathconf(tmp_path, "PC_NAME_MAX")
    for name in ("d" * (limit - 4) + ".tsv", "é" * ((limit - 4) // 2) + ".tsv"):
        target = tmp_path / name
        assert len(os.fsencode(target.name)) <= limit
        with atomic_output(target) as fh:
            fh.write("x\n")
        assert target.read_text() == "x\n"
        assert [p.name for p in tmp_path.iterdir()] == [name]
        target.unlink()


def test_a_split_with_one_record_per_class_says_what_to_do() -> None:
    with pytest.raises(DataError) as info:
        split_indices(2, 0.1, seed=0, strata=np.array([0, 1]))
    assert str(info.value) == (
        "no record can be held out for validation: 2 record(s), and no class has two; give "
        "more records, --val-fasta, or --val-fraction 0 to train without validation"
    )
    train, val = split_indices(3, 0.1, seed=0, strata=np.array([0, 1, 1]))
    assert len(val) == 1 and len(train) == 2
