"""What a user meets at the edges: refused inputs leave stdout empty, clear messages, caps."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import EXAMPLES, run_bioseqnn

HEMOLYTIC = (EXAMPLES / "hemolytic.fasta", EXAMPLES / "hemolytic.csv")


def one_error(err: str) -> str:
    """The single error line of a failed command (no traceback)."""
    errors = [line for line in err.splitlines() if line.startswith("bioseqnn: error: ")]
    assert len(errors) == 1 and "Traceback" not in err, err
    return errors[0]


@pytest.mark.parametrize(
    ("fasta", "extra", "message"),
    [
        (b">a\nKWK3SF\n", [], "invalid protein symbol '3' at position 4"),
        (b">a\nKWKSF\n", ["--rc-average"], "reverse complements need DNA or RNA"),
        (b"", [], "no sequence records"),
        (
            b">d\n" + b"ACGTTGCA" * 10 + b"\n",
            [],
            "look like dna but the model was trained on protein",
        ),
    ],
)
@pytest.mark.slow
def test_a_refused_input_writes_nothing_to_stdout(
    hemolytic_model: Path, tmp_path: Path, fasta: bytes, extra: list[str], message: str
) -> None:
    path = tmp_path / "in.fa"
    path.write_bytes(fasta)
    run = run_bioseqnn("predict", hemolytic_model, path, *extra)
    assert run.returncode in (1, 2)
    assert run.stdout == b""  # not even the header row
    assert message in one_error(run.stderr.decode())


@pytest.mark.slow
def test_short_peptides_of_nucleotide_letters_are_read_as_protein(
    hemolytic_model: Path, tmp_path: Path
) -> None:
    path = tmp_path / "pep.fa"
    path.write_text(">a\nGAGTCA\n>b\nGCCA\n")  # Gly, Ala, Thr, Cys: valid peptides
    run = run_bioseqnn("predict", hemolytic_model, path)
    assert run.returncode == 0, run.stderr.decode()
    assert [line.split("\t")[0] for line in run.stdout.decode().splitlines()] == ["id", "a", "b"]


def test_skip_drops_the_records_of_another_alphabet(
    cli, promoter_model: Path, tmp_path: Path
) -> None:
    path = tmp_path / "mixed.fa"
    path.write_text(
        ">r\nACGTACGTNNRYACGTACGTAC\n>p\nKWKSFLLKIIPQEFLLKIIPQE\n>s\nTTTTGGGGCCCCAAAA\n"
    )
    refused = cli("predict", promoter_model, path)
    assert refused.code == 1 and "look like protein" in refused.err
    kept = cli("predict", promoter_model, path, "--on-invalid", "skip")
    assert kept.code == 0, kept.err
    assert [line.split("\t")[0] for line in kept.out.splitlines()[1:]] == ["r", "s"]
    assert "skipped 1 record(s) with invalid symbols" in kept.err


@pytest.mark.slow
def test_too_many_threads_are_capped_with_a_warning(hemolytic_model: Path) -> None:
    run = run_bioseqnn(
        "predict", hemolytic_model, EXAMPLES / "hemolytic.fasta", "--threads", "100000"
    )
    assert run.returncode == 0, run.stderr.decode()
    assert b"warning: --threads 100000: this machine has" in run.stderr
    assert len(run.stdout.decode().splitlines()) == 1105


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["predict", "{model}", "{fasta}", "-o", "{tmp}/out/"],
            "names a directory; give a file name",
        ),
        (
            ["train", "-", "-", "-o", "{tmp}/m.bsnn"],
            "only one input can be '-' (standard input); SEQUENCES and LABELS both are",
        ),
        (
            ["train", "{fasta}", "{csv}", "-o", "{tmp}/m.bsnn", "--seed", "-1"],
            "--seed must be from 0 to 2^63 - 1",
        ),
        (
            ["train", "{fasta}", "{csv}", "-o", "{tmp}/m.bsnn", "--checkpoint-dir", "{csv}"],
            "is a file, not a directory",
        ),
        (["predict", "{tmp}/nosuch.bsnn", "{fasta}"], "nosuch.bsnn: no such model file"),
        (
            ["ensemble", "{model}", "{model}", "-o", "{model}"],
            "cannot write: it is an input (one of the MODELS); writing it would destroy it",
        ),
    ],
)
def test_usage_errors_stop_before_any_work(
    cli, hemolytic_model: Path, tmp_path: Path, args: list[str], message: str
) -> None:
    names = {"model": hemolytic_model, "fasta": HEMOLYTIC[0], "csv": HEMOLYTIC[1], "tmp": tmp_path}
    before = sorted(tmp_path.iterdir())
    result = cli(*[a.format(**names) for a in args])
    assert result.code == 2, result.err
    assert message in one_error(result.err)
    assert "epoch" not in result.err  # nothing trained
    assert sorted(tmp_path.iterdir()) == before and result.out == ""


def test_skipped_records_take_their_labels_with_them(cli, tmp_path: Path) -> None:
    fasta, labels = tmp_path / "s.fa", tmp_path / "l.csv"
    records = {f"p{i}": ("KWKSFLKGGLL" if i % 2 else "GLFDIVKKVVGAL") for i in range(30)}
    records["bad"] = "KK3K"
    fasta.write_text("".join(f">{k}\n{v}\n" for k, v in records.items()))
    labels.write_text("id,y\n" + "".join(f"{k},{i % 2}\n" for i, k in enumerate(records)))
    result = cli(
        "train",
        fasta,
        labels,
        "--on-invalid",
        "skip",
        "--epochs",
        "1",
        "--hidden-size",
        "8",
        "-o",
        tmp_path / "m.bsnn",
    )
    assert result.code == 0, result.err
    assert "skipped 1 record(s) with invalid symbols" in result.err
    assert "cannot join" not in result.err
    assert json.loads(cli("info", tmp_path / "m.bsnn", "--json").out)["data"]["records"] == 30


def test_a_column_of_unique_labels_is_named_as_the_likely_mistake(cli, tmp_path: Path) -> None:
    """A column of one label per record (here the ids copied as 'name'); the id column
    itself as --target is a usage error of its own (test_bad_input)."""
    rows = Path(HEMOLYTIC[1]).read_text().splitlines()
    table = tmp_path / "named.csv"
    table.write_text(
        "id,name,hemolytic\n"
        + "".join(f"{r.split(',')[0]},{r.split(',')[0]}x,{r.split(',')[1]}\n" for r in rows[1:])
    )
    result = cli("train", HEMOLYTIC[0], table, "-t", "name", "-o", tmp_path / "m.bsnn")
    assert result.code == 1
    assert (
        "column 'name' holds 1104 distinct labels in 1104 records, nearly one class per "
        "record: is it the right column (--target)?"
    ) in one_error(result.err)


def test_labels_and_fasta_swapped_says_so(cli, hemolytic_model: Path) -> None:
    result = cli("evaluate", hemolytic_model, HEMOLYTIC[1], HEMOLYTIC[0])
    assert result.code == 1
    assert (
        "hemolytic.fasta: line 1: a FASTA header where a table's header row belongs; is "
        "the order of the arguments right"
    ) in one_error(result.err)


def test_export_check_errors_suggest_no_option_export_lacks(
    cli, hemolytic_model: Path, tmp_path: Path
) -> None:
    bad = tmp_path / "bad.fa"
    bad.write_text(">a\nKWK3SF\n")
    result = cli("export", hemolytic_model, "-o", tmp_path / "m.pt", "--check", bad)
    assert result.code == 1
    line = one_error(result.err)
    assert "invalid protein symbol '3'" in line and "--on-invalid" not in line


@pytest.mark.slow
def test_info_through_a_pipe_is_one_unpadded_line_per_field(hemolytic_model: Path) -> None:
    lines = run_bioseqnn("info", hemolytic_model).stdout.decode().splitlines()
    assert lines[0].startswith("format ") and all(line == line.rstrip() for line in lines)
    trained = next(line for line in lines if line.startswith("trained on"))
    assert trained.endswith("994 training + 110 validation records")


def test_evaluate_reads_the_target_from_a_named_column(
    cli, hemolytic_model: Path, tmp_path: Path
) -> None:
    renamed = tmp_path / "labels.csv"
    renamed.write_text(HEMOLYTIC[1].read_text().replace("hemolytic", "activity", 1))
    missing = cli("evaluate", hemolytic_model, HEMOLYTIC[0], renamed)
    assert missing.code == 1
    assert "no column 'hemolytic'" in one_error(missing.err)
    assert "name the column that holds it with --target" in missing.err
    named = cli("evaluate", hemolytic_model, HEMOLYTIC[0], renamed, "--target", "activity")
    original = cli("evaluate", hemolytic_model, *HEMOLYTIC)
    assert named.code == original.code == 0, named.err
    assert json.loads(named.out)["metrics"] == json.loads(original.out)["metrics"]


def test_per_position_evaluate_from_a_table_column(cli, tmp_path: Path) -> None:
    model = tmp_path / "ss.bsnn"
    assert (
        cli(
            "train",
            EXAMPLES / "ss_train.fasta",
            EXAMPLES / "ss_train_ss3.fasta",
            "--arch",
            "gru",
            "--hidden-size",
            "8",
            "--epochs",
            "1",
            "-o",
            model,
            "--quiet",
        ).code
        == 0
    )
    labels = {}
    rid = ""
    for line in (EXAMPLES / "ss_test_ss3.fasta").read_text().splitlines():
        if line.startswith(">"):
            rid = line[1:].split()[0]
            labels[rid] = ""
        else:
            labels[rid] += line.strip()
    table = tmp_path / "ss.csv"
    table.write_text("id,ss\n" + "".join(f"{k},{v}\n" for k, v in labels.items()))
    from_fasta = cli("evaluate", model, EXAMPLES / "ss_test.fasta", EXAMPLES / "ss_test_ss3.fasta")
    from_table = cli("evaluate", model, EXAMPLES / "ss_test.fasta", table, "--target", "ss")
    assert from_fasta.code == from_table.code == 0, from_table.err
    metrics = json.loads(from_table.out)["metrics"]
    assert metrics == json.loads(from_fasta.out)["metrics"]
    assert isinstance(metrics["positions"], int)


def test_yaml_syntax_errors_name_the_line(cli, tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("model:\n  arch: lstm\n  channels: [1, 2\ntraining:\n  epochs: 2\n")
    result = cli("train", *HEMOLYTIC, "--config", config, "-o", tmp_path / "m.bsnn")
    assert result.code == 2
    assert (
        f"{config}: line 4, column 9: not valid YAML: expected ',' or ']', but got ':'"
    ) in one_error(result.err)


def test_per_position_pooling_is_reported_unused(cli, tmp_path: Path) -> None:
    result = cli(
        "train",
        EXAMPLES / "ss_train.fasta",
        EXAMPLES / "ss_train_ss3.fasta",
        "--arch",
        "lstm",
        "--hidden-size",
        "8",
        "--epochs",
        "1",
        "--pooling",
        "mean",
        "-o",
        tmp_path / "ss.bsnn",
    )
    assert result.code == 0, result.err
    assert (
        "warning: --pooling mean is not used: this model has one output per position" in result.err
    )


def test_train_help_shows_the_defaults_a_run_takes() -> None:
    import os
    import re
    import subprocess
    import sys

    from bioseqnn.config import RunConfig

    env = {**os.environ, "COLUMNS": "400", "TERM": "dumb"}
    text = subprocess.run(
        [sys.executable, "-m", "bioseqnn", "train", "--help"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    flat = " ".join(text.split())  # wrapped help lines joined
    defaults = RunConfig().to_dict()
    for section, name, shown in (
        ("training", "lr", "0.001"),
        ("training", "epochs", "100"),
        ("training", "batch_size", "64"),
        ("model", "hidden_size", "128"),
        ("model", "arch", "auto"),
        ("model", "channels", "128,128"),
        ("model", "bidirectional", "no"),
    ):
        value = defaults[section][name]
        assert shown == (
            ",".join(map(str, value))
            if isinstance(value, list)
            else ("yes" if value else "no")
            if isinstance(value, bool)
            else str(value)
        )
        option = "--" + name.replace("_", "-")
        match = re.search(re.escape(option) + r"\b.*?\(default: ([^)]*)\)", flat)
        assert match is not None, option
        assert match.group(1) == shown, (option, match.group(1))


@pytest.mark.slow
def test_stdin_errors_name_the_line_and_column_as_for_a_file(
    hemolytic_model: Path, tmp_path: Path
) -> None:
    # 60 clean records, then one with irregular lines (a short line and a blank one before
    # the bad residue) and an invalid symbol: stdin cannot be read again to find the line,
    # so the block reader's own text must give it
    good = "".join(f">r{i}\nGLFDIVKKVVGALGSL\n" for i in range(60))
    text = good + ">bad\nGLFDIV\nKK\n\nVV1GALG\n>after\nGLFDIVKK\n"
    fasta = tmp_path / "bad.fa"
    fasta.write_text(text)
    from_file = run_bioseqnn("predict", hemolytic_model, fasta)
    from_stdin = run_bioseqnn("predict", hemolytic_model, "-", stdin=text.encode())
    line = 121 + 4  # the header of "bad" is line 121; the residue is 4 lines below it
    for run in (from_file, from_stdin):
        assert run.returncode == 1
        assert (
            f": line {line}, column 3: record 'bad': invalid protein symbol '1' at "
            "position 11" in run.stderr.decode()
        ), run.stderr
        assert run.stdout == b""


def _float_options() -> list[tuple[str, str, list[str]]]:
    """(command, option, the command's required arguments as placeholders) for every
    option of every command whose value is a number with a fraction."""
    import typing

    import typer

    from bioseqnn.cli import app

    group = typer.main.get_command(app)
    out = []
    for info in app.registered_commands:
        assert info.callback is not None
        name = info.name or info.callback.__name__.replace("_", "-")
        command = group.commands[name]  # type: ignore[attr-defined]
        required = ["x" for p in command.params if p.param_type_name == "argument" and p.required]
        hints = typing.get_type_hints(info.callback)
        for param in command.params:
            if param.param_type_name == "option" and hints.get(param.name) in (float, float | None):
                out.append((name, param.opts[0], required))
    return out


FLOAT_OPTIONS = _float_options()


def test_every_float_option_is_found() -> None:
    assert {(c, o) for c, o, _ in FLOAT_OPTIONS} >= {
        ("train", "--lr"),
        ("train", "--dropout"),
        ("train", "--val-fraction"),
        ("export", "--tolerance"),
        ("generate", "--temperature"),
        ("generate", "--top-p"),
    }


@pytest.mark.parametrize(
    ("command", "option", "arguments"), FLOAT_OPTIONS, ids=[f"{c}{o}" for c, o, _ in FLOAT_OPTIONS]
)
@pytest.mark.parametrize("value", ["inf", "-inf", "nan", "1e999"])
def test_float_options_take_finite_numbers_only(
    cli, command: str, option: str, arguments: list[str], value: str
) -> None:
    """'--lr inf' passed the range check (inf > 0) and failed during training: every float
    option of every command refuses what is not a finite number while parsing."""
    r = cli(command, *arguments, option, value)
    assert r.code == 2
    assert r.err.splitlines() == [
        f"bioseqnn: error: Invalid value for '{option}': '{value}' is not a finite number "
        f"(see 'bioseqnn {command} --help')"
    ]


def test_config_files_take_finite_numbers_only(cli, tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("training:\n  lr: .inf\n")
    r = cli("train", *HEMOLYTIC, "-o", tmp_path / "m.bsnn", "--config", config)
    assert r.code == 2
    assert r.err.splitlines() == [
        f"bioseqnn: error: {config}: config key 'training.lr' must be a finite number (got inf)"
    ]


def test_an_option_given_twice_warns_and_the_last_value_is_used(cli, tmp_path: Path) -> None:
    """'--epochs -1 ... --epochs 1' silently took the last value. The rule is the one of a
    config file and flags (what comes later wins), said in one warning per option."""
    model = tmp_path / "m.bsnn"
    r = cli(
        "train",
        *HEMOLYTIC,
        "-o",
        model,
        "--epochs",
        "-1",
        "--hidden-size",
        "8",
        "--epochs",
        "1",
        "--threads",
        "1",
    )
    assert r.code == 0, r.err
    # (a one-epoch model of 8 units may also be warned of as no better than a constant)
    warnings = [line for line in r.err.splitlines() if "warning: --" in line]
    assert warnings == [
        "bioseqnn: warning: --epochs given 2 times (-1, then 1): the last value, 1, is used"
    ]
    from bioseqnn.modelfile import read_manifest

    assert read_manifest(model)[0]["metrics"]["epochs_run"] == 1
    r = cli("train", *HEMOLYTIC, "-o", model, "--epochs", "1", "--epochs", "-1")
    assert r.code == 2  # the last value, -1, is refused
    assert r.err.splitlines() == [
        "bioseqnn: warning: --epochs given 2 times (1, then -1): the last value, -1, is used",
        "bioseqnn: error: --epochs must be at least 1",
    ]


@pytest.mark.parametrize(
    ("args", "warnings"),
    [
        (
            ["predict", "m", "x", "-o", "a.tsv", "--output=b.tsv"],
            ["-o/--output given 2 times (a.tsv, then b.tsv): the last value, b.tsv, is used"],
        ),
        (
            ["train", "x", "--unidirectional", "--bidirectional"],
            [
                "--unidirectional, then --bidirectional given: the last one, --bidirectional, "
                "is used"
            ],
        ),
        (["train", "x", "--lr", "0.1", "--lr=0.1", "--quiet", "-q"], []),  # the same value
        (["train", "x", "--target", "a", "--target", "b"], []),  # an option of several values
        (["train", "x", "--", "--epochs", "1", "--epochs", "2"], []),  # arguments, not options
        (["nosuch", "--epochs", "1", "--epochs", "2"], []),
    ],
)
def test_repeated_options_are_found_in_every_spelling(args: list[str], warnings: list[str]) -> None:
    from bioseqnn.cli import repeated_options

    assert repeated_options(args) == warnings


def test_quiet_silences_the_repeated_option_warning(cli, hemolytic_model: Path) -> None:
    r = cli(
        "predict", hemolytic_model, HEMOLYTIC[0], "--batch-size", "8", "--batch-size", "16", "-q"
    )
    assert r.code == 0 and r.err == ""
