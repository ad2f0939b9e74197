"""Numeric series input: long tables of numbers per time step in place of a FASTA.

Real data: UEA BasicMotions (example_data/motions_*: six smartwatch channels, four
activities, 40 + 40 series of 100 steps), trained, predicted, evaluated, explained and
exported through the real CLI; the table reader against csv + float() on tricky tables.
"""

from __future__ import annotations

import csv
import gzip
import json
import math
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import EXAMPLES, run_bioseqnn

from bioseqnn.bundle import load_bundle
from bioseqnn.data.batches import collate
from bioseqnn.data.reading import read_inputs
from bioseqnn.data.sets import SequenceSet
from bioseqnn.engine.predict import infer
from bioseqnn.errors import DataError
from bioseqnn.io import series as series_mod
from bioseqnn.io.fasta import RecordStream
from bioseqnn.io.series import SeriesOptions, SeriesReader
from bioseqnn.io.sniff import TableText, read_input
from bioseqnn.modelfile import read_manifest
from bioseqnn.models.inputs import SeriesInput
from bioseqnn.variants.series import SeriesSpec, fit_normalisation

TRAIN = EXAMPLES / "motions_train.tsv"
TRAIN_LABELS = EXAMPLES / "motions_train.csv"
TEST = EXAMPLES / "motions_test.tsv"
TEST_LABELS = EXAMPLES / "motions_test.csv"
CHANNELS = [f"dim_{i}" for i in range(1, 7)]


def read_reference(
    path: Path, id_column: str = "id", channels: list[str] | None = None
) -> tuple[list[str], list[np.ndarray]]:
    """The series of a clean table as csv and float() read them: the reference."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", newline="") as fh:  # type: ignore[operator]
        first = fh.readline()
        delimiter = "\t" if "\t" in first else ","
        header = next(csv.reader([first], delimiter=delimiter))
        cols = [header.index(c) for c in (channels or [h for h in header if h != id_column])]
        ids: list[str] = []
        rows: dict[str, list[list[float]]] = {}
        for row in csv.reader(fh, delimiter=delimiter):
            if not row or not any(x.strip() for x in row):
                continue
            rid = row[header.index(id_column)].strip()
            if rid not in rows:
                ids.append(rid)
                rows[rid] = []
            rows[rid].append([float(row[c]) for c in cols])
    return ids, [np.array(rows[i], dtype=np.float32) for i in ids]


def as_series(data: SequenceSet) -> list[np.ndarray]:
    return [data.codes[data.offsets[i] : data.offsets[i + 1]] for i in range(len(data))]


def write_table(
    path: Path, header: list[str], rows: list[list[str]], delimiter: str = "\t", newline: str = "\n"
) -> Path:
    text = newline.join(delimiter.join(r) for r in [header, *rows]) + newline
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def motions_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CNN + BiLSTM trained on the 40 BasicMotions training series (about 10 s)."""
    from bioseqnn.cli import main

    out = tmp_path_factory.mktemp("series") / "motions.bsnn"
    code = main(
        [
            "train",
            str(TRAIN),
            str(TRAIN_LABELS),
            "-o",
            str(out),
            "--arch",
            "cnn-lstm",
            "--epochs",
            "40",
            "--patience",
            "20",
            "--quiet",
        ]
    )
    assert code == 0
    return out


# --------------------------------------------------------------------------- reading


def test_read_input_tells_tables_from_sequences(tmp_path: Path) -> None:
    table = read_input(TRAIN)
    assert isinstance(table, TableText) and table.first_line.split("\t") == ["id", *CHANNELS]
    table.close()
    fasta = read_input(EXAMPLES / "hemolytic.fasta")
    assert isinstance(fasta, RecordStream) and next(fasta).id
    fasta.close()
    gz = tmp_path / "m.tsv.gz"
    gz.write_bytes(gzip.compress(TRAIN.read_bytes()))
    opened = read_input(gz)
    assert isinstance(opened, TableText)
    opened.close()


def test_motions_table_reads_as_csv_and_float_do() -> None:
    data, spec, lines = read_inputs(TRAIN, None, "error")
    ids, expected = read_reference(TRAIN)
    assert data.ids == ids and len(ids) == 40
    assert spec.channels == tuple(CHANNELS) and spec.size == 6
    assert data.codes.dtype == np.float32 and data.codes.shape == (4000, 6)
    assert all(np.array_equal(a, b) for a, b in zip(as_series(data), expected, strict=True))
    assert lines[:3] == [2, 102, 202]  # the first row of each series, after the header


@pytest.mark.parametrize("block", [3, 7, 1000])
def test_block_boundaries_and_long_series(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, block: int
) -> None:
    """Series longer than a block, blocks cut anywhere, quotes, blank and CRLF lines, ids
    in another column than the first: the same values as csv + float()."""
    monkeypatch.setattr(series_mod, "BLOCK_ROWS", block)
    monkeypatch.setattr(series_mod, "BLOCK_CHARS", 64)
    rng = random.Random(block)
    rows: list[list[str]] = []
    for s in range(30):
        for _ in range(rng.choice([1, 2, 5, 40])):
            a, b = rng.uniform(-1e3, 1e3), rng.gauss(0, 1e-4)
            rows.append([f"{a:.9g}", f"s{s}" if s % 7 else f'"s,{s}"', f"{b:.6e}", "x"])
    rows.insert(5, [""])  # a blank line
    path = write_table(tmp_path / "t.csv", ["a", "sid", "b", "note"], rows, ",", "\r\n")
    data, spec, _ = read_inputs(path, None, "error", series=SeriesOptions("sid", ["b", "a"]))
    ids, expected = read_reference(path, "sid", ["b", "a"])
    assert spec.channels == ("b", "a")
    assert data.ids == ids and len(ids) == 30
    assert all(np.array_equal(a, b) for a, b in zip(as_series(data), expected, strict=True))


def test_chunks_hold_whole_series(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(series_mod, "BLOCK_ROWS", 64)
    table = read_input(TEST)
    assert isinstance(table, TableText)
    reader = SeriesReader(table, SeriesOptions(columns=CHANNELS))
    chunks = list(reader.chunks(chunk_rows=250))
    assert [len(c.ids) for c in chunks] == [3] * 13 + [1]  # 300 rows >= 250: 3 series each
    assert all(np.array_equal(np.diff(c.offsets), [100] * len(c.ids)) for c in chunks)


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        (
            [["x", "1", "2"], ["x", "3", "NA"]],
            "line 3, column 'b': series 'x', step 2: missing value",
        ),
        ([["x", "1", ""]], "line 2, column 'b': series 'x', step 1: missing value"),
        (
            [["x", "1", "2"], ["x", "inf", "4"]],
            "line 3, column 'a': series 'x', step 2: not a finite number: 'inf'",
        ),
        (
            [["x", "1", "2"], ["x", "3", "walk"]],
            "line 3, column 'b': series 'x', step 2: not a "
            "number: 'walk' (the table is read as a numeric "
            "series, one row per time step: a column of "
            "sequences is read with --sequence-column",
        ),
        (
            [["x", "1e39", "2"]],
            "line 2, column 'a': series 'x', step 1: '1e39' is beyond the "
            "float32 range (+-3.4e38) (use --on-invalid mask",
        ),
        ([["x", "1_000", "2"]], "line 2, column 'a': series 'x', step 1: not a number: '1_000'"),
        ([["x", "１２", "2"]], "line 2, column 'a': series 'x', step 1: not a number: '１２'"),
        (
            [["x", "1", "2"], ["id", "a", "b"], ["y", "1", "2"]],
            "line 3: the header row again (tables joined with their headers? keep the first header "
            "only)",
        ),
        ([["x", "1", "2"], ['"y', "1", "2"]], "line 3: a quoted field is left open"),
        (
            [["x", "1", "2"], ["y", "3", "4"], ["x", "5", "6"]],
            "line 4: rows of series 'x' resume after other series (its first rows are at line 2)",
        ),
        ([["x", "1", "2"], ["y", "3"]], "line 3: 2 field(s), the header has 3 (delimiter TAB)"),
        ([["x", "1", "2"], ["", "3", "4"]], "line 3: empty id in column 'id'"),
        ([], "no series (a header row but no data rows)"),
    ],
)
def test_bad_tables_name_line_column_and_series(
    cli, tmp_path: Path, rows: list[list[str]], message: str
) -> None:
    table = write_table(tmp_path / "bad.tsv", ["id", "a", "b"], rows)
    labels = write_table(tmp_path / "l.csv", ["id", "y"], [["x", "0"], ["y", "1"]], ",")
    out = tmp_path / "m.bsnn"
    result = cli("train", table, labels, "-o", out)
    assert result.code == 1
    errors = [line for line in result.err.splitlines() if "error:" in line]
    assert len(errors) == 1 and errors[0].startswith(f"bioseqnn: error: {table}: {message}")
    assert "Traceback" not in result.err and "Warning" not in result.err
    assert not out.exists() and result.out == ""


def test_header_problems(cli, tmp_path: Path) -> None:
    labels = write_table(tmp_path / "l.csv", ["id", "y"], [["x", "0"]], ",")
    pandas = write_table(tmp_path / "pd.csv", ["", "id", "a"], [["0", "x", "1"]], ",")
    r = cli("train", pandas, labels)
    assert (
        r.code == 1
        and "column 1 of the header has no name (a row index written by "
        "pandas' to_csv? write the table with index=False"
        in r.err
    )
    numbers = write_table(tmp_path / "n.tsv", ["0.5", "1.5"], [["2", "3"]])
    r = cli("train", numbers, labels)
    assert r.code == 1 and "the first line holds numbers, not column names" in r.err
    semicolons = tmp_path / "semi.csv"
    semicolons.write_text("id;a\nx;1\n")
    r = cli("train", semicolons, labels)
    assert r.code == 1 and "is this a table separated by ';'?" in r.err
    dup = write_table(tmp_path / "dup.tsv", ["id", "a", "a"], [["x", "1", "2"]])
    r = cli("train", dup, labels)
    assert r.code == 1 and "duplicate column name(s) in the header: a" in r.err
    noid = write_table(tmp_path / "noid.tsv", ["name", "a"], [["x", "1"]])
    r = cli("train", noid, labels)
    assert r.code == 1 and "no id column 'id' in the series table" in r.err
    assert "--id-column" in r.err
    r = cli("train", noid, labels, "--series-columns", "a,b")
    assert r.code == 1 and "no id column" in r.err
    ok = write_table(tmp_path / "ok.tsv", ["id", "a"], [["x", "1"]])
    r = cli("train", ok, labels, "--series-columns", "a,zz")
    assert r.code == 1 and "no column 'zz' in the series table" in r.err
    r = cli("train", ok, labels, "--series-columns", "a,,b")
    assert r.code == 2 and "empty name" in r.err


def test_on_invalid_mask_and_skip(tmp_path: Path) -> None:
    table = write_table(
        tmp_path / "t.tsv",
        ["id", "a", "b"],
        [["x", "1", "2"], ["x", "3", "NA"], ["y", "5", "6"], ["z", ".", "oops"], ["z", "1", "1"]],
    )
    masked, _, _ = read_inputs(table, None, "mask")
    assert masked.ids == ["x", "y", "z"]
    assert np.isnan(masked.codes[1, 1]) and np.isnan(masked.codes[3]).all()
    assert np.array_equal(masked.codes[[0, 2, 4]], [[1, 2], [5, 6], [1, 1]])
    skipped_ids: list[str] = []
    kept, _, _ = read_inputs(table, None, "skip", skipped_ids)
    assert kept.ids == ["y"] and skipped_ids == ["x", "z"]


def test_skipped_series_take_their_labels_along(cli, tmp_path: Path) -> None:
    """--on-invalid skip drops a series and its label row (no false 'missing' error)."""
    rows = [[f"s{i}", str(i), str(i % 3)] for i in range(12)] + [["bad", "NA", "1"]]
    table = write_table(tmp_path / "t.tsv", ["id", "a", "b"], rows)
    labels = write_table(
        tmp_path / "l.csv",
        ["id", "y"],
        [[f"s{i}", str(i % 2)] for i in range(12)] + [["bad", "1"]],
        ",",
    )
    out = tmp_path / "m.bsnn"
    r = cli(
        "train",
        table,
        labels,
        "-o",
        out,
        "--on-invalid",
        "skip",
        "--epochs",
        "1",
        "--hidden-size",
        "8",
        "--val-fraction",
        "0.25",
    )
    assert r.code == 0, r.err
    assert "skipped 1 series with missing or invalid values" in r.err
    assert read_manifest(out)[0]["data"]["records"] == 12


# --------------------------------------------------------------------------- normalisation


def test_normalisation_statistics_and_input_layer() -> None:
    values = np.array([[1, 10, 5], [3, np.nan, 5], [5, 30, 5]], dtype=np.float32)
    spec = fit_normalisation(values, SeriesSpec(("a", "b", "c")), "t")
    assert spec.mean == pytest.approx((3, 20, 5))
    assert spec.std == pytest.approx((math.sqrt(8 / 3), 10, 1))  # constant: scaled by 1
    layer = SeriesInput(spec)
    z = layer(torch.tensor(values)[None])[0]
    expected = (np.nan_to_num(values, nan=20) - np.array(spec.mean)) / np.array(spec.std)
    assert torch.allclose(z, torch.tensor(expected, dtype=torch.float32), atol=1e-6)
    assert z[1, 1] == 0  # missing: the channel's mean
    with pytest.raises(DataError, match="channel 'b' has no value"):
        fit_normalisation(np.array([[1, np.nan]], dtype=np.float32), SeriesSpec(("a", "b")), "t")


def test_padding_never_changes_a_prediction() -> None:
    """Series of different lengths, predicted alone and batched with longer ones."""
    from bioseqnn.models.base import ModelConfig, SequenceModel

    rng = np.random.default_rng(3)
    lengths = [5, 17, 40, 3, 64]
    values = rng.standard_normal((sum(lengths), 4)).astype(np.float32) * 3 + 1
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    data = SequenceSet([f"s{i}" for i in range(5)], values, offsets)
    spec = fit_normalisation(values, SeriesSpec(("a", "b", "c", "d")), "t")
    layer = SeriesInput(spec)
    codes, _ = collate(data, np.arange(5))
    assert np.isnan(codes.numpy()[0, 5:]).all()  # padding is NaN, read as 0
    for arch in ("lstm", "gru", "cnn", "cnn-lstm", "transformer"):
        torch.manual_seed(0)
        model = SequenceModel(
            ModelConfig(arch=arch, hidden_size=8, channels=[8, 8], d_model=16, heads=2, ff_size=16),
            4,
            3,
        ).eval()
        together = infer(model, layer, data, 5, torch.device("cpu"))
        alone = torch.cat(
            [
                infer(model, layer, data.subset(np.array([i])), 1, torch.device("cpu"))
                for i in range(5)
            ]
        )
        assert torch.allclose(together, alone, atol=1e-5), arch


# --------------------------------------------------------------------------- train and predict


def test_motions_learned(motions_model: Path, cli, tmp_path: Path) -> None:
    """BasicMotions: the test split's activities, from a CNN + BiLSTM trained on the
    training split alone (accuracy 1.0 when this test was written: 0.9 leaves room for
    rounding differences between machines)."""
    metrics = tmp_path / "metrics.json"
    r = cli("evaluate", motions_model, TEST, TEST_LABELS, "-o", metrics)
    assert r.code == 0, r.err
    summary = json.loads(metrics.read_text())["metrics"]
    assert summary["accuracy"] >= 0.9
    manifest = read_manifest(motions_model)[0]
    assert manifest["format_version"] == 4 and "alphabet" not in manifest
    spec = manifest["input"]
    assert spec["channels"] == CHANNELS and spec["id_column"] == "id"
    # the normalisation is every training series' per-channel mean and spread
    train, _, _ = read_inputs(TRAIN, None, "error")
    assert spec["mean"] == pytest.approx(train.codes.astype(np.float64).mean(0).tolist())
    assert spec["std"] == pytest.approx(train.codes.astype(np.float64).std(0).tolist())


def test_predict_rows_in_input_order_and_by_channel_name(
    motions_model: Path, cli, tmp_path: Path
) -> None:
    r = cli("predict", motions_model, TEST)
    assert r.code == 0, r.err
    lines = r.out.splitlines()
    header, rows = lines[0].split("\t"), [x.split("\t") for x in lines[1:]]
    assert header == [
        "id",
        "predicted",
        "prob_badminton",
        "prob_running",
        "prob_standing",
        "prob_walking",
    ]
    assert [row[0] for row in rows] == read_reference(TEST)[0]
    assert all(abs(sum(map(float, row[2:])) - 1) < 1e-5 for row in rows)
    truth = dict(csv.reader(TEST_LABELS.read_text().splitlines()[1:]))
    correct = sum(row[1] == truth[row[0]] for row in rows)
    ev = cli("evaluate", motions_model, TEST, TEST_LABELS)
    assert json.loads(ev.out)["metrics"]["accuracy"] == pytest.approx(correct / 40)
    # the channels found by name: reordered columns, an extra one and another id column
    with open(TEST) as fh:
        table = [line.rstrip("\n").split("\t") for line in fh]
    order = [3, 0, 6, 1, 5, 2, 4]
    moved = [
        [row[i] for i in order] + ["extra" if k == 0 else str(k)] for k, row in enumerate(table)
    ]
    moved[0][1] = "sample"
    shuffled = write_table(tmp_path / "moved.csv", moved[0], moved[1:], ",")
    r2 = cli("predict", motions_model, shuffled, "--id-column", "sample")
    assert r2.code == 0, r2.err
    assert r2.out.replace(",", "\t") == r.out
    r3 = cli("predict", motions_model, shuffled)
    assert r3.code == 1 and "no id column 'id'" in r3.err and r3.out == ""


@pytest.mark.slow
def test_predict_in_a_pipeline_gzip_and_stdin(motions_model: Path, tmp_path: Path, cli) -> None:
    plain = cli("predict", motions_model, TEST)
    assert plain.code == 0, plain.err
    piped = run_bioseqnn(
        "predict",
        motions_model,
        "-",
        "-o",
        tmp_path / "p.csv",
        stdin=gzip.compress(TEST.read_bytes()),
    )
    assert piped.returncode == 0 and piped.stdout == b""
    assert (tmp_path / "p.csv").read_text().replace(",", "\t") == plain.out


def test_bad_series_in_predict_leave_no_output(motions_model: Path, cli, tmp_path: Path) -> None:
    with open(TEST) as fh:
        lines = fh.read().splitlines()
    lines[3900] = lines[3900].replace(lines[3900].split("\t")[4], "NaN", 1)
    bad = tmp_path / "bad.tsv"
    bad.write_text("\n".join(lines) + "\n")
    out = tmp_path / "p.tsv"
    r = cli("predict", motions_model, bad, "-o", out)
    assert r.code == 1 and "line 3901, column 'dim_4': series 'test_39'" in r.err
    assert not out.exists() and not list(tmp_path.glob(".*p.tsv*"))
    masked = cli("predict", motions_model, bad, "--on-invalid", "skip")
    assert masked.code == 0 and len(masked.out.splitlines()) == 40  # header + 39


@pytest.mark.slow
def test_fasta_and_series_models_refuse_each_other(
    motions_model: Path, hemolytic_model: Path, cli
) -> None:
    r = cli("predict", motions_model, EXAMPLES / "hemolytic.fasta")
    assert r.code == 1 and "sequences (FASTA/FASTQ), but the model reads numeric series" in r.err
    for command in (
        ["predict", hemolytic_model, TEST],
        ["explain", hemolytic_model, TEST],
        ["evaluate", hemolytic_model, TEST, EXAMPLES / "hemolytic.csv"],
    ):
        r = cli(*command)
        assert r.code == 1 and r.err == (
            f"bioseqnn: error: {TEST}: a table, but the model "
            "reads protein sequences (FASTA/FASTQ)\n"
        ), command
    r = cli("train", TRAIN_LABELS, TRAIN)
    assert (
        r.code == 2 and "has one row per id and" in r.err and "are the arguments swapped?" in r.err
    )
    r = cli("predict", hemolytic_model, EXAMPLES / "hemolytic.fasta", "--id-column", "x")
    assert r.code == 2 and "--id-column names the id column of a numeric series" in r.err
    for args, message in [
        (["--task", "language-model"], "learns from the sequences alone"),
        (["--rc-augment"], "--rc-augment and --rc-average are for DNA/RNA"),
        (["--alphabet", "dna"], "--alphabet dna applies to sequences"),
        (["--task", "per-position"], "--task per-position is for sequences"),
    ]:
        r = cli("train", TRAIN, TRAIN_LABELS, *args)
        assert r.code == 2 and message in r.err, (args, r.err)
    r = cli("train", TRAIN, "--task", "language-model")
    assert r.code == 2 and "learns from sequences (FASTA)" in r.err
    r = cli("train", TRAIN_LABELS, TRAIN_LABELS)
    assert r.code == 2 and "is given as the series table and as the labels table" in r.err
    r = cli(
        "train", EXAMPLES / "hemolytic.fasta", EXAMPLES / "hemolytic.csv", "--series-columns", "a"
    )
    assert r.code == 2 and "--series-columns applies to a numeric series table" in r.err
    r = cli("explain", motions_model, TEST, "--method", "ism")
    assert r.code == 2 and "a numeric series model is explained by saliency or grad-input" in r.err
    for args in (
        ["predict", motions_model, TEST, "--rc-average"],
        ["generate", motions_model],
        ["evaluate", motions_model, TEST_LABELS, "--sequence-column", "x"],
        ["ensemble", motions_model, hemolytic_model, "-o", "x.bsnn"],
    ):
        r = cli(*args)
        assert r.code == 2 and r.err.count("error:") == 1, (args, r.err)


@pytest.mark.slow
def test_stdin_and_other_id_columns(motions_model: Path, cli, tmp_path: Path) -> None:
    """--series-columns with a table on stdin; --id-column in every command that reads a
    series model's table (evaluate: both tables, as train)."""
    out = tmp_path / "two.bsnn"
    piped = run_bioseqnn(
        "train",
        "-",
        TRAIN_LABELS,
        "--series-columns",
        "dim_2,dim_5",
        "-o",
        out,
        "--epochs",
        "1",
        "--hidden-size",
        "8",
        stdin=gzip.compress(TRAIN.read_bytes()),
    )
    assert piped.returncode == 0, piped.stderr.decode()
    assert read_manifest(out)[0]["input"]["channels"] == ["dim_2", "dim_5"]
    renamed = tmp_path / "s.tsv"
    renamed.write_text(TEST.read_text().replace("id\t", "sample\t", 1))
    labels = tmp_path / "l.csv"
    labels.write_text(TEST_LABELS.read_text().replace("id,", "sample,", 1))
    reference = cli("evaluate", motions_model, TEST, TEST_LABELS)
    r = cli("evaluate", motions_model, renamed, labels, "--id-column", "sample")
    assert r.code == 0 and json.loads(r.out)["metrics"] == json.loads(reference.out)["metrics"]
    r = cli("explain", motions_model, renamed, "--id-column", "sample", "-o", tmp_path / "a.tsv")
    assert r.code == 0, r.err
    r = cli(
        "export",
        motions_model,
        "-o",
        tmp_path / "m.pt",
        "--check",
        renamed,
        "--id-column",
        "sample",
    )
    assert r.code == 0 and "(" + str(renamed) + ")" in r.err
    r = cli("explain", motions_model, renamed)
    assert r.code == 1 and "no id column 'id' in the series table" in r.err


def test_warnings_for_likely_mistakes(cli, tmp_path: Path) -> None:
    """A target among the channels, a signal below float32's resolution on a large offset."""
    rows, labels = [], []
    for i in range(20):
        for t in range(5):
            rows.append([f"s{i}", f"{i % 2}", f"{100000 + 0.01 * t:.2f}", f"{t * (i % 2)}"])
        labels.append([f"s{i}", str(i % 2)])
    table = write_table(tmp_path / "t.tsv", ["id", "y", "pressure", "x"], rows)
    label_table = write_table(tmp_path / "l.csv", ["id", "y"], labels, ",")
    r = cli(
        "train",
        table,
        label_table,
        "-o",
        tmp_path / "m.bsnn",
        "--epochs",
        "1",
        "--hidden-size",
        "8",
    )
    assert r.code == 0, r.err
    assert "channel 'y' has the name of a target column: is the target among the inputs?" in r.err
    assert "channel(s) 'pressure' vary by less than 1e-5 of their mean" in r.err


def test_ensembles_and_validation_tables(cli, tmp_path: Path, motions_model: Path) -> None:
    """train --ensemble and bioseqnn ensemble on series; an explicit validation table."""
    ens = tmp_path / "ens.bsnn"
    r = cli(
        "train",
        TRAIN,
        TRAIN_LABELS,
        "-o",
        ens,
        "--arch",
        "gru",
        "--hidden-size",
        "8",
        "--epochs",
        "1",
        "--ensemble",
        "2",
        "--val-fasta",
        TEST,
        "--val-labels",
        TEST_LABELS,
    )
    assert r.code == 0, r.err
    m = read_manifest(ens)[0]
    assert m["ensemble"] == 2 and m["data"]["val_records"] == 40 and m["format_version"] == 4
    both = tmp_path / "both.bsnn"
    r = cli("ensemble", ens, motions_model, "-o", both)
    assert r.code == 0, r.err
    bundle = load_bundle(both)
    assert bundle.series is not None and bundle.series.channels == tuple(CHANNELS)
    rows = cli("predict", both, TEST)
    assert rows.code == 0 and len(rows.out.splitlines()) == 41


@pytest.mark.slow
def test_regression_on_series(cli, tmp_path: Path) -> None:
    """A property of each real series (the spread of its third channel) learned from the
    series: Pearson r on the test split."""
    for split in ("train", "test"):
        data, _, _ = read_inputs(EXAMPLES / f"motions_{split}.tsv", None, "error")
        spread = [float(np.log(s[:, 2].std())) for s in as_series(data)]
        write_table(
            tmp_path / f"{split}.csv",
            ["id", "log_sd"],
            [[i, f"{v:.6g}"] for i, v in zip(data.ids, spread, strict=True)],
            ",",
        )
    model = tmp_path / "r.bsnn"
    r = cli(
        "train",
        TRAIN,
        tmp_path / "train.csv",
        "-o",
        model,
        "--arch",
        "cnn",
        "--epochs",
        "40",
        "--lr",
        "0.003",
        "--quiet",
    )
    assert r.code == 0, r.err
    assert read_manifest(model)[0]["task"]["kind"] == "regression"
    r = cli("evaluate", model, TEST, tmp_path / "test.csv")
    assert r.code == 0, r.err
    assert json.loads(r.out)["metrics"]["pearson"] > 0.8


# --------------------------------------------------------------------------- explain, export


@pytest.mark.slow
def test_explain_per_channel(motions_model: Path, cli, tmp_path: Path) -> None:
    out = tmp_path / "a.tsv"
    few = write_table(
        tmp_path / "few.tsv",
        ["id", *CHANNELS],
        [line.split("\t") for line in TEST.read_text().splitlines()[1:201]],
    )
    r = cli("explain", motions_model, few, "-o", out, "--plot", tmp_path / "plots")
    assert r.code == 0, r.err
    rows = list(csv.reader(out.read_text().splitlines(), delimiter="\t"))
    assert rows[0] == ["id", "target", "position", "score", *(f"attr_{c}" for c in CHANNELS)]
    assert len(rows) == 201 and [r[2] for r in rows[1:101]] == [str(i) for i in range(1, 101)]
    for row in rows[1:]:
        assert float(row[3]) == pytest.approx(sum(map(float, row[4:])), rel=1e-4, abs=1e-6)
    assert sorted(p.name for p in (tmp_path / "plots").iterdir()) == ["test_01.png", "test_02.png"]
    sal = cli("explain", motions_model, few, "--method", "saliency")
    for row in csv.reader(sal.out.splitlines()[1:], delimiter="\t"):
        parts = list(map(float, row[4:]))
        assert min(parts) >= 0 and float(row[3]) == pytest.approx(max(parts), rel=1e-5)


@pytest.mark.slow
def test_export_reads_raw_values(motions_model: Path, cli, tmp_path: Path) -> None:
    onnxruntime = pytest.importorskip("onnxruntime")
    out = tmp_path / "m.onnx"
    r = cli("export", motions_model, "-o", out, "--check", TEST)
    assert r.code == 0, r.err
    side = json.loads((tmp_path / "m.onnx.json").read_text())
    assert side["inputs"][0]["name"] == "values" and side["channels"] == CHANNELS
    assert side["normalisation"]["mean"] == read_manifest(motions_model)[0]["input"]["mean"]
    # run the graph on the raw table, three series zero-padded into one batch with a short one
    data, _, _ = read_inputs(TEST, None, "error")
    series = as_series(data)[:3]
    series[1] = series[1][:37]
    width = 100
    x = np.zeros((3, width, 6), dtype=np.float32)
    for i, s in enumerate(series):
        x[i, : len(s)] = s
    session = onnxruntime.InferenceSession(out.read_bytes(), providers=["CPUExecutionProvider"])
    got = session.run(None, {"values": x, "lengths": np.array([100, 37, 100])})[0]
    bundle = load_bundle(motions_model)
    subset = SequenceSet(
        ["a", "b", "c"],
        np.concatenate(series),
        np.concatenate([[0], np.cumsum([len(s) for s in series])]),
    )
    want = bundle.task.outputs(
        infer(bundle.model, SeriesInput(bundle.series), subset, 3, torch.device("cpu"))
    ).numpy()
    assert np.abs(got - want).max() < 1e-5
    pt = cli("export", motions_model, "-o", tmp_path / "m.pt")
    assert pt.code == 0 and "random series of 6 channel(s)" in pt.err


@pytest.mark.slow
def test_docs_series_commands_run_as_written(tmp_path: Path) -> None:
    """The Numeric series page's commands, run as a user would from the checkout."""
    import shlex

    page = (EXAMPLES.parent / "docs" / "guide" / "series.md").read_text(encoding="utf-8")
    section = page.split("# Numeric series", 1)[1].split("\n## ", 1)[0]
    commands = [line.strip() for line in section.splitlines() if line.startswith("    bioseqnn ")]
    assert [c.split()[1] for c in commands] == ["train", "predict", "evaluate", "explain"]
    (tmp_path / "example_data").symlink_to(EXAMPLES)
    outputs: dict[str, bytes] = {}
    for command in commands:
        args = shlex.split(command.split(">")[0])[1:]
        done = run_bioseqnn(*args, cwd=tmp_path)
        assert done.returncode == 0, (command, done.stderr.decode())
        outputs[args[0]] = done.stdout
    assert json.loads(outputs["evaluate"])["metrics"]["accuracy"] >= 0.9
    rows = outputs["predict"].decode().splitlines()
    assert len(rows) == 41 and rows[0].startswith("id\tpredicted\tprob_badminton")
    assert (tmp_path / "motions_attributions.tsv").read_text().count("\n") == 4001
    assert len(list((tmp_path / "motions_plots").glob("*.png"))) == 4


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda m: m["input"].update(std=[0.0] * 6), "input.std must be > 0"),
        (lambda m: m["input"].update(mean=[1.0] * 5), "input.mean must hold one finite number"),
        (lambda m: m["input"].update(mean=["1"] * 6), "input.mean must hold one finite number"),
        (lambda m: m["input"].update(channels=["a"] * 6), "input.channels are not unique"),
        (lambda m: m["input"].update(kind="image"), "input must be a numeric series"),
        (lambda m: m["input"].update(code="import os"), "unknown input fields"),
        (lambda m: m.update(alphabet="dna"), "a series model has no alphabet"),
        (lambda m: m.update(format_version=2), "numeric series input needs format_version 3"),
        (
            lambda m: m["input"].update(
                channels=[f"c{i}" for i in range(7)], mean=[0.0] * 7, std=[1.0] * 7
            ),
            "weights do not fit",
        ),
    ],
)
def test_damaged_series_manifests_are_refused(
    motions_model: Path, tmp_path: Path, cli, change, message: str
) -> None:
    """Every field of a series model's input is checked before use: one line, exit 1."""
    from safetensors.torch import load, save

    data = motions_model.read_bytes()
    manifest = read_manifest(motions_model)[0]
    change(manifest)
    damaged = tmp_path / "damaged.bsnn"
    damaged.write_bytes(save(load(data), metadata={"bioseqnn": json.dumps(manifest)}))
    commands = [["predict", damaged, TEST], ["info", damaged]]
    for args in commands[: 1 if "weights" in message else 2]:  # info reads no weights
        r = cli(*args)
        assert r.code == 1 and message in r.err and r.out == "", (args, r.err)
        assert r.err.count("\n") == 1
