"""The Python API for notebooks: keyword settings, data from memory, values back."""

from __future__ import annotations

import csv
import logging
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from conftest import EXAMPLES, ROOT

import bioseqnn
from bioseqnn.notebook import settings_to_config

pd = pytest.importorskip("pandas")

TINY = {
    "arch": "cnn",
    "channels": [8],
    "kernel_sizes": [5],
    "dilations": [1],
    "epochs": 2,
    "threads": 1,
    "seed": 3,
}
CLI_TINY = [
    "--arch",
    "cnn",
    "--channels",
    "8",
    "--kernel-sizes",
    "5",
    "--dilations",
    "1",
    "--epochs",
    "2",
    "-j",
    "1",
    "--seed",
    "3",
    "--quiet",
]


def _peptides(n: int | None = None) -> tuple[dict[str, str], dict[str, str]]:
    lines = (EXAMPLES / "hemolytic.fasta").read_text().split()
    seqs = dict(zip((h[1:] for h in lines[::2]), lines[1::2], strict=True))
    with open(EXAMPLES / "hemolytic.csv") as fh:
        labels = {row["id"]: row["hemolytic"] for row in csv.DictReader(fh)}
    keep = list(seqs)[:: len(seqs) // n] if n else list(seqs)  # both classes
    return {k: seqs[k] for k in keep}, {k: labels[k] for k in keep}


def test_settings_are_keywords_of_their_config_section() -> None:
    cfg = settings_to_config(
        {"arch": "cnn", "dropout": 0.1, "epochs": 7, "lr": 3e-4, "channels": (32, 16)}
    )
    assert (cfg.model.arch, cfg.model.dropout, cfg.model.channels) == ("cnn", 0.1, [32, 16])
    assert (cfg.training.epochs, cfg.training.lr) == (7, 3e-4)
    base = bioseqnn.RunConfig()
    base.training.epochs = 50
    merged = settings_to_config({"batch_size": 8}, base)
    assert (merged.training.epochs, merged.training.batch_size) == (50, 8)
    assert base.training.batch_size == 64  # the given config is left as it was


def test_a_wrong_setting_is_a_type_error_naming_close_matches() -> None:
    with pytest.raises(TypeError, match=r"unknown setting 'dropuot'; did you mean 'dropout'"):
        bioseqnn.train(["ACGT"], [1], dropuot=0.1)
    with pytest.raises(TypeError, match=r"'batchsize'.*'batch_size'"):
        bioseqnn.train(["ACGT"], [1], batchsize=8)
    with pytest.raises(TypeError, match="unknown setting 'colour'; see"):
        bioseqnn.train(["ACGT"], [1], colour="red")
    with pytest.raises(bioseqnn.UsageError, match="expected int"):
        bioseqnn.train(["ACGT"], [1], epochs="many")


def test_train_from_memory_matches_the_command_line(cli, tmp_path: Path) -> None:
    """A dict of sequences and labels trains the model the CLI trains from the files."""
    seqs, labels = _peptides()
    run = bioseqnn.train(seqs, labels, **TINY)
    assert isinstance(run.model, bioseqnn.Bundle) and run.path is None
    assert [r["epoch"] for r in run.history] == [1, 2]
    frame = run.history.to_pandas()
    assert list(frame["epoch"]) == [1, 2] and "val_loss" in frame.columns
    assert run.best == run.manifest["metrics"]["best"]
    assert run.manifest["model"]["arch"] == "cnn" and run.manifest["training"]["epochs"] == 2
    with pytest.raises(
        bioseqnn.DataError,
        match=r"1 id\(s\) in labels missing from sequences \('nowhere'\)",
    ):
        bioseqnn.train(seqs, {"nowhere": "1", **labels}, **TINY)

    model = tmp_path / "cli.bsnn"
    assert (
        cli(
            "train",
            EXAMPLES / "hemolytic.fasta",
            EXAMPLES / "hemolytic.csv",
            "-o",
            model,
            *CLI_TINY,
        ).code
        == 0
    )
    table = cli("predict", model, EXAMPLES / "hemolytic.fasta").out
    frame = bioseqnn.predict(run, EXAMPLES / "hemolytic.fasta")
    expected = list(csv.reader(table.splitlines(), delimiter="\t"))
    assert list(frame.columns) == expected[0] == ["id", "predicted", "prob_0", "prob_1"]
    assert len(frame) == 1104 and list(frame["id"]) == [r[0] for r in expected[1:]]
    assert list(frame["prob_1"]) == [float(r[3]) for r in expected[1:]]

    assert run.path is None
    saved = run.save(tmp_path / "saved.bsnn")
    assert run.path == saved == tmp_path / "saved.bsnn"
    again = bioseqnn.predict(saved, EXAMPLES / "hemolytic.fasta")
    assert again.equals(frame)


def test_lists_series_and_frames_are_inputs(tmp_path: Path) -> None:
    seqs, labels = _peptides(300)
    ids = list(seqs)
    by_list = bioseqnn.train([seqs[i] for i in ids], [labels[i] for i in ids], **TINY)
    series = pd.Series([seqs[i] for i in ids])
    by_series = bioseqnn.train(
        series, pd.Series([labels[i] for i in ids], name="hemolytic"), **TINY
    )
    frame = pd.DataFrame(
        {"sequence": [seqs[i] for i in ids], "hemolytic": [int(labels[i]) for i in ids]}
    )
    by_frame = bioseqnn.train(frame, **TINY)

    # the same records by position: the same model
    def scores(run: bioseqnn.Trained) -> dict[str, float]:
        return {k: v for k, v in run.best.items() if k != "elapsed_s"}

    assert scores(by_list) == scores(by_series) == scores(by_frame)
    assert by_series.manifest["task"]["targets"] == ["hemolytic"]
    assert by_list.manifest["data"]["sources"] == ["sequences (in memory)", "labels (in memory)"]
    assert by_frame.manifest["data"]["sources"] == ["table (in memory)"]
    assert by_list.manifest["task"]["targets"] == ["label"]
    out = tmp_path / "p.tsv"
    rows = bioseqnn.predict(by_list, {"x": seqs[ids[0]], "y": seqs[ids[1]]}, out)
    assert list(rows["id"]) == ["x", "y"]
    written = list(csv.reader(out.read_text().splitlines(), delimiter="\t"))
    assert written[0] == list(rows.columns) and float(written[1][2]) == rows["prob_0"][0]
    with pytest.raises(bioseqnn.UsageError, match=f"3 labels for {len(seqs)} sequences"):
        bioseqnn.train(list(seqs.values()), [0, 1, 0], **TINY)


def test_predict_writes_nothing_unless_asked(tmp_path: Path, monkeypatch) -> None:
    seqs, labels = _peptides(200)
    monkeypatch.chdir(tmp_path)
    run = bioseqnn.train(seqs, labels, **TINY)
    rows = bioseqnn.predict(run.model, list(seqs.values())[:3])
    assert list(rows["id"]) == ["0", "1", "2"]
    assert sorted(os.listdir(tmp_path)) == []


def test_top_level_names() -> None:
    from bioseqnn import evaluate, explain, export, load_bundle

    assert callable(evaluate) and callable(explain) and callable(export)
    assert load_bundle.__module__ == "bioseqnn.bundle"
    assert {"evaluate", "explain", "export", "load_bundle", "Trained"} <= set(bioseqnn.__all__)
    # evaluate and explain take data in memory, as train and predict do
    assert evaluate.__module__ == explain.__module__ == "bioseqnn.notebook"
    assert export.__module__ == "bioseqnn.ops.export"
    assert bioseqnn.train.__module__ == "bioseqnn.notebook"


SCRIPT = """
import logging, sys
{before}
import bioseqnn
seqs = {{f"s{{i}}": "ACGT"[i % 4] * 5 + "GATTACA"[: 1 + i % 7] for i in range(60)}}
labels = {{k: str(i % 2) for i, k in enumerate(seqs)}}
{setup}
run = bioseqnn.train(seqs, labels, arch="cnn", channels=[4], kernel_sizes=[3],
                     dilations=[1], epochs=2, threads=1)
rows = bioseqnn.predict(run, ["ACGTACGT", "GGGG"])
print(type(rows).__name__, rows[0]["id"] if isinstance(rows, list) else rows["id"][0],
      len(run.history))
"""


def _run(setup: str = "", before: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", SCRIPT.format(setup=setup, before=before)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"},
    )


@pytest.mark.slow
def test_epochs_are_logged_and_logging_silences_them() -> None:
    shown = _run()
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.split() == ["DataFrame", "0", "2"]
    assert "bioseqnn: epoch 1/2  train_loss" in shown.stderr
    assert "bioseqnn: epoch 2/2" in shown.stderr
    quiet = _run('logging.getLogger("bioseqnn").setLevel(logging.WARNING)')
    assert quiet.returncode == 0, quiet.stderr
    assert "epoch 1/2" not in quiet.stderr and "bioseqnn: records:" not in quiet.stderr


@pytest.mark.slow
def test_without_pandas_predict_gives_dicts() -> None:
    r = _run(before="sys.modules['pandas'] = None")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["list", "0", "2"]


def test_errors_in_data_given_in_memory_name_the_argument_and_the_record() -> None:
    """The temporary files that hold data given in memory are no names for the caller:
    an error says which argument and which record (a list's position), not
    'sequences.fasta: line 1'."""
    seqs, labels = _peptides(60)
    values = list(seqs.values())
    with pytest.raises(bioseqnn.DataError) as info:
        bioseqnn.train(["", *values[1:]], list(labels.values()), **TINY)
    assert str(info.value) == "sequences: record '0' has no sequence"
    with pytest.raises(bioseqnn.DataError) as info:
        bioseqnn.train([*values[:-1], "KLV1F"], list(labels.values()), **TINY)
    assert str(info.value).startswith(
        f"sequences: record '{len(values) - 1}': invalid protein symbol '1' at position 4"
    )
    with pytest.raises(bioseqnn.DataError) as info:
        bioseqnn.train(values, [None, *list(labels.values())[1:]], **TINY)
    assert str(info.value) == (
        "cannot join sequences and labels: 1 record(s) with an empty label ('0') in labels"
    )


def test_log_lines_name_data_in_memory_without_the_temporary_folder(caplog) -> None:
    """The alphabet line of a run on sequences given in memory names 'sequences' (the
    argument), as errors do, not a temporary file or folder."""
    import logging
    import tempfile

    seqs, labels = _peptides(120)
    with caplog.at_level(logging.INFO, logger="bioseqnn"):
        bioseqnn.train(seqs, labels, **TINY)
    lines = [r.getMessage() for r in caplog.records if r.name == "bioseqnn"]
    detected = [x for x in lines if x.startswith("alphabet: protein (detected from")]
    assert detected and "detected from sequences:" in detected[0]
    assert not any(tempfile.gettempdir() in x for x in lines)


def test_api_calls_leave_the_callers_torch_threads_as_they_were(tmp_path: Path) -> None:
    """A notebook's own torch work keeps its thread count: train, predict, evaluate and
    explain set theirs for their work and give the caller's back, an error included."""
    import torch

    seqs, labels = _peptides(40)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        run = bioseqnn.train(seqs, labels, tmp_path / "m.bsnn", **{**TINY, "threads": 2})
        assert torch.get_num_threads() == 1
        assert run.manifest["training"]["threads"] == 2
        torch.set_num_threads(2)
        bioseqnn.predict(tmp_path / "m.bsnn", seqs, threads=1)
        assert torch.get_num_threads() == 2
        fasta = tmp_path / "s.fa"
        fasta.write_text("".join(f">{k}\n{v}\n" for k, v in seqs.items()))
        table = tmp_path / "l.csv"
        table.write_text("id,label\n" + "".join(f"{k},{v}\n" for k, v in labels.items()))
        bioseqnn.evaluate(tmp_path / "m.bsnn", fasta, table, threads=1)
        assert torch.get_num_threads() == 2
        bioseqnn.explain(tmp_path / "m.bsnn", fasta, method="ism", threads=1)
        assert torch.get_num_threads() == 2
        with pytest.raises(bioseqnn.UsageError):
            bioseqnn.train(seqs, labels, tmp_path / "m2.bsnn", **{**TINY, "threads": 1}, lr=-1)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_fasta_text_in_a_sequence_string_is_refused(tmp_path: Path) -> None:
    """A string holding '\\n>b\\n...' had become two records: more rows than inputs."""
    seqs, labels = _peptides(40)
    run = bioseqnn.train(seqs, labels, tmp_path / "m.bsnn", **TINY)
    for given in (["KLVFFAE\n>evil\nGIGAV", "WWWW"], {"a": ">a\nKLVFF", "b": "WWWW"}):
        with pytest.raises(bioseqnn.UsageError) as info:
            bioseqnn.predict(run, given)
        assert "holds a line break or starts with '>'" in str(info.value)
    assert len(bioseqnn.predict(run, ["KLVFFAE", "WWWW"])) == 2


def test_evaluate_explain_and_export_take_what_train_returned(tmp_path: Path, caplog) -> None:
    """evaluate and explain take the model and the data as train and predict do (in
    memory too) and give what the files give; export needs the file it records."""
    seqs, labels = _peptides(60)
    run = bioseqnn.train(seqs, labels, **TINY)
    test = dict(list(seqs.items())[:20])
    fasta = tmp_path / "t.fa"
    fasta.write_text("".join(f">{k}\n{v}\n" for k, v in test.items()))
    table = tmp_path / "t.csv"
    table.write_text("id,label\n" + "".join(f"{k},{labels[k]}\n" for k in test))
    with caplog.at_level(logging.INFO, logger="bioseqnn"):
        in_memory = bioseqnn.evaluate(run, test, {k: labels[k] for k in test}, threads=1)
    assert not any(tempfile.gettempdir() in r.getMessage() for r in caplog.records)
    run.save(tmp_path / "m.bsnn")
    from_files = bioseqnn.evaluate(tmp_path / "m.bsnn", fasta, table, threads=1)
    assert in_memory.metrics == pytest.approx(from_files.metrics, nan_ok=True)
    assert in_memory.model == "the model in memory"
    assert bioseqnn.evaluate(run, fasta, table).model == str(tmp_path / "m.bsnn")  # saved
    attributed = bioseqnn.explain(run.model, list(test.values())[:3], threads=1)
    assert [r.id for r in attributed.records] == ["0", "1", "2"]
    by_file = bioseqnn.explain(tmp_path / "m.bsnn", fasta, threads=1)
    assert attributed.records[0].scores == pytest.approx(by_file.records[0].scores)
    with pytest.raises(bioseqnn.UsageError, match="export records the model file"):
        bioseqnn.export(run.model, tmp_path / "m.pt")
    assert bioseqnn.export(run, tmp_path / "m.pt").output == tmp_path / "m.pt"
    with pytest.raises(bioseqnn.UsageError, match="model: expected a model file, a Bundle"):
        bioseqnn.evaluate(3, test, labels)


def test_load_bundle_takes_paths_only() -> None:
    """An int was read as a file descriptor ('3: cannot read: Bad file descriptor')."""
    for wrong in (3, None, b"model.bsnn"):
        with pytest.raises(bioseqnn.UsageError, match="load_bundle: expected a model file"):
            bioseqnn.load_bundle(wrong)


def test_no_output_replaces_an_input_of_the_call(tmp_path: Path) -> None:
    """The model file (given as a path, loaded, or trained and saved), each sequence file
    and the training inputs are refused as outputs, before anything is written."""
    seqs, labels = _peptides(60)
    fa, lab = tmp_path / "s.fa", tmp_path / "l.csv"
    fa.write_text("".join(f">{k}\n{v}\n" for k, v in seqs.items()))
    lab.write_text("id,y\n" + "".join(f"{k},{v}\n" for k, v in labels.items()))
    model = tmp_path / "m.bsnn"
    run = bioseqnn.train(fa, lab, model, **TINY)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    loaded = bioseqnn.load_bundle(model)
    assert loaded.path == model
    for given, sequences, output, what in [
        (model, fa, fa, "SEQUENCES"),
        (loaded, ["KLLK"], model, "MODEL"),
        (run, ["KLLK"], model, "MODEL"),
        (model, [fa, Path(lab)], lab, r"SEQUENCES \(2 of 2\)"),
    ]:
        with pytest.raises(bioseqnn.UsageError, match=rf"it is an input \({what}\)"):
            bioseqnn.predict(given, sequences, output)
    for output, what in [(lab, "LABELS"), (fa, "SEQUENCES")]:
        with pytest.raises(bioseqnn.UsageError, match=rf"it is an input \({what}\)"):
            run.save(output)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
    assert run.save(tmp_path / "copy.bsnn") == tmp_path / "copy.bsnn"


def test_missing_labels_in_a_list_are_empty_labels_not_a_class() -> None:
    seqs, labels = _peptides(60)
    values: list[object] = list(labels.values())
    for missing in (None, float("nan")):
        with pytest.raises(bioseqnn.DataError, match=r"2 record\(s\) with an empty label"):
            bioseqnn.train(list(seqs.values()), values[:-2] + [missing, missing], **TINY)
    with pytest.raises(bioseqnn.UsageError, match="a label is a class name or a number, not dict"):
        bioseqnn.train(list(seqs.values()), values[:-1] + [{"a": 1}], **TINY)


def test_numpy_floats_in_a_list_are_numbers() -> None:
    np = pytest.importorskip("numpy")
    seqs, _ = _peptides(60)
    values = list(np.linspace(0.0, 1.0, len(seqs)))  # numpy float64 values
    run = bioseqnn.train(list(seqs.values()), values, **TINY)
    assert run.manifest["task"]["kind"] == "regression"
    assert run.manifest["task"]["target_mean"] == pytest.approx([0.5])


@pytest.mark.parametrize(
    "mixed", [[1, 0, 1.0, 0.0], [1, True, 0.0, False], [True, 0, 1.0, False]], ids=str
)
def test_equal_numbers_of_different_types_are_one_class(mixed: list[object]) -> None:
    """1, 1.0 and True are one label: a list that mixed them trained a class per
    spelling ('0', '0.0', '1', '1.0'), four classes for two."""
    seqs, _ = _peptides(60)
    values = [mixed[i % 4] for i in range(len(seqs))]
    run = bioseqnn.train(list(seqs.values()), values, **TINY)
    assert run.manifest["task"]["kind"] == "binary"
    assert run.manifest["task"]["classes"] == ["0", "1"]


def test_config_is_a_run_config_a_yaml_file_or_a_dict(tmp_path: Path) -> None:
    from bioseqnn.config import RunConfig

    yaml_file = tmp_path / "c.yaml"
    yaml_file.write_text("model:\n  arch: gru\ntraining:\n  epochs: 7\n")
    for config in (
        yaml_file,
        str(yaml_file),
        {"model": {"arch": "gru"}, "training": {"epochs": 7}},
    ):
        cfg = settings_to_config({"lr": 0.01}, config)
        assert (cfg.model.arch, cfg.training.epochs, cfg.training.lr) == ("gru", 7, 0.01)
    given = RunConfig()
    assert settings_to_config({"epochs": 3}, given).training.epochs == 3
    assert given.training.epochs != 3  # the caller's config is not changed
    with pytest.raises(bioseqnn.UsageError, match="unknown config section 'optimizer'"):
        settings_to_config({}, {"optimizer": {"lr": 1}})
    with pytest.raises(bioseqnn.UsageError, match="config: expected a RunConfig, a YAML"):
        settings_to_config({}, 5)


def test_one_target_may_be_named_alone(tmp_path: Path) -> None:
    seqs, labels = _peptides(60)
    frame = pd.DataFrame(
        {"sequence": list(seqs.values()), "hemolytic": [int(v) for v in labels.values()]}
    )
    frame["other"] = 1.0
    run = bioseqnn.train(frame, targets="hemolytic", **TINY)  # not 'h', 'e', 'm', ...
    assert run.manifest["task"]["targets"] == ["hemolytic"]
    with pytest.raises(bioseqnn.UsageError, match="models: expected a list of model files"):
        bioseqnn.combine(str(tmp_path / "m.bsnn"), tmp_path / "e.bsnn")


def test_a_failed_run_leaves_no_empty_folder(tmp_path: Path, monkeypatch) -> None:
    seqs, _ = _peptides(60)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "kept").mkdir()
    with pytest.raises(bioseqnn.DataError, match="holds a single class"):
        bioseqnn.train(
            list(seqs.values()),
            ["x"] * len(seqs),
            "m.bsnn",
            tensorboard="tb/run1",
            checkpoint_dir="kept",
            **TINY,
        )
    assert sorted(os.listdir(tmp_path)) == ["kept"]


def test_a_value_of_the_wrong_type_is_a_usage_error_naming_it(tmp_path: Path) -> None:
    import numpy as np

    import bioseqnn.api as api

    seqs, labels = _peptides(60)
    run = bioseqnn.train(list(seqs.values()), list(labels.values()), tmp_path / "m.bsnn", **TINY)
    model = tmp_path / "m.bsnn"
    for call, message in [
        (lambda: bioseqnn.predict(model, ["KLLK"], batch_size="x"), "batch_size must be an "),
        (lambda: bioseqnn.predict(run, ["KLLK"], threads=1.5), "threads must be an integer"),
        (lambda: bioseqnn.info(None), "info: model must be a path, not None"),
        (lambda: bioseqnn.export(model, tmp_path / "m.onnx", tolerance="x"), "a number"),
        (lambda: bioseqnn.evaluate(model, seqs, labels, batch_size="8"), "batch_size must"),
        (lambda: api.predict(model, None, tmp_path / "p.tsv"), "sequences: expected a file"),
        (lambda: bioseqnn.combine(None, tmp_path / "e.bsnn"), "models: expected a list"),
        (lambda: bioseqnn.predict(5, ["KLLK"], tmp_path / "p.tsv"), "model: expected a model"),
        (lambda: api.predict(None, model, tmp_path / "p.tsv"), "model: expected a model"),
    ]:
        with pytest.raises(bioseqnn.UsageError, match=message):
            call()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.bsnn", "m.log.tsv"]
    rows = bioseqnn.predict(model, ["KLLK"], batch_size=np.int64(8))  # numpy ints are ints
    assert list(rows["id"]) == ["0"]
