"""The command line in-process, through the real entry point and its error funnel."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import fresh_python
from safetensors.torch import load_file

from bioseqnn.bundle import load_bundle


def read_tsv(text: str) -> list[list[str]]:
    return list(csv.reader(text.splitlines(), delimiter="\t"))


def test_predict_writes_header_then_one_row_per_record_in_input_order(
    cli, hemolytic_model: Path, examples: Path
) -> None:
    r = cli("predict", hemolytic_model, examples / "hemolytic.fasta")
    assert r.code == 0, r.err
    rows = read_tsv(r.out)
    assert rows[0] == ["id", "predicted", "prob_0", "prob_1"]
    ids = [
        line[1:].split()[0]
        for line in (examples / "hemolytic.fasta").read_text().splitlines()
        if line.startswith(">")
    ]
    assert [row[0] for row in rows[1:]] == ids
    for row in rows[1:]:
        p0, p1 = float(row[2]), float(row[3])
        assert p0 + p1 == pytest.approx(1.0, abs=1e-5)
        assert row[1] == ("1" if p1 > p0 else "0")


def test_stdout_carries_only_data_and_quiet_silences_logs(
    cli, hemolytic_model: Path, examples: Path, tmp_path: Path
) -> None:
    out = tmp_path / "p.csv"
    r = cli("predict", hemolytic_model, examples / "hemolytic.fasta", "-o", out, "--quiet")
    assert r.code == 0 and r.out == "" and r.err == ""
    rows = list(csv.reader(out.read_text().splitlines()))
    assert rows[0][:2] == ["id", "predicted"] and len(rows) == 1105


def test_train_logs_choices_to_stderr_and_writes_log_and_model(
    cli, examples: Path, tmp_path: Path
) -> None:
    model = tmp_path / "m.bsnn"
    r = cli(
        "train",
        examples / "promoters.fasta",
        examples / "promoters.csv",
        "-o",
        model,
        "--epochs",
        "2",
        "--hidden-size",
        "8",
        "--arch",
        "gru",
    )
    assert r.code == 0, r.err
    assert r.out == ""
    assert "alphabet: dna (detected" in r.err and "task: regression" in r.err
    assert "parameters" in r.err
    log_rows = read_tsv((tmp_path / "m.log.tsv").read_text())
    assert log_rows[0][:3] == ["epoch", "train_loss", "val_loss"] and len(log_rows) == 3
    assert "val_r2" in log_rows[0] and "val_pearson" in log_rows[0]
    manifest = load_bundle(model).manifest
    assert manifest["task"]["kind"] == "regression"
    assert manifest["task"]["targets"] == ["log2_expression"]
    assert manifest["data"]["records"] == 2000
    assert len(manifest["data"]["fingerprint_sha256"]) == 64


def test_info_shows_what_the_model_is(cli, hemolytic_model: Path) -> None:
    r = cli("info", hemolytic_model)
    assert r.code == 0
    for expected in (
        "protein",
        "binary",
        "hemolytic",
        "classes",
        "0, 1",
        "lstm",
        "parameters",
        "data sha256",
        "best epoch",
    ):
        assert expected in r.out
    j = cli("info", hemolytic_model, "--json")
    manifest = json.loads(j.out)
    assert manifest["alphabet"] == "protein" and manifest["task"]["classes"] == ["0", "1"]
    assert manifest["model"]["arch"] == "lstm" and manifest["parameters"] > 1000


@pytest.mark.slow
def test_same_seed_gives_identical_weights(cli, examples: Path, tmp_path: Path) -> None:
    args = [
        examples / "hemolytic.fasta",
        examples / "hemolytic.csv",
        "--epochs",
        "2",
        "--hidden-size",
        "16",
        "--bidirectional",
        "--dropout",
        "0.2",
        "--quiet",
    ]
    a, b, c = tmp_path / "a.bsnn", tmp_path / "b.bsnn", tmp_path / "c.bsnn"
    assert cli("train", *args, "-o", a, "--seed", "7").code == 0
    assert cli("train", *args, "-o", b, "--seed", "7").code == 0
    assert cli("train", *args, "-o", c, "--seed", "8").code == 0
    wa, wb, wc = load_file(a), load_file(b), load_file(c)
    assert wa.keys() == wb.keys()
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert not all(torch.equal(wa[k], wc[k]) for k in wa)


@pytest.mark.slow
def test_explicit_validation_files_and_forced_options(cli, examples: Path, tmp_path: Path) -> None:
    model = tmp_path / "nc.bsnn"
    r = cli(
        "train",
        examples / "ncrna_train.fasta",
        examples / "ncrna_train.csv",
        "--val-fasta",
        examples / "ncrna_test.fasta",
        "--val-labels",
        examples / "ncrna_test.csv",
        "--alphabet",
        "rna",
        "--epochs",
        "1",
        "--hidden-size",
        "8",
        "-o",
        model,
    )
    assert r.code == 0, r.err
    assert "alphabet: rna (forced)" in r.err
    assert "780 training, 260 validation" in r.err
    manifest = load_bundle(model).manifest
    assert manifest["alphabet"] == "rna" and len(manifest["task"]["classes"]) == 13


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["train", "{fa}", "{csv}", "--epochs", "0"], 2, "--epochs must be at least 1"),
        (
            ["train", "{fa}", "{csv}", "--val-fraction", "1.0"],
            2,
            "--val-fraction must be in [0, 1)",
        ),
        (["train", "{fa}", "{csv}", "--arch", "perceptron"], 2, "unknown architecture"),
        (["train", "{fa}", "{csv}", "--task", "ranking"], 2, "ranking"),
        (["train", "{fa}", "{csv}", "--device", "cuda"], 2, "CUDA is not available"),
        (["train", "{fa}", "{csv}", "--bogus"], 2, "No such option"),
        (["predict", "missing.bsnn", "{fa}"], 2, "no such model file"),
        (["predict", "-", "{fa}"], 2, "MODEL '-': a model is read from a file (or a pipe"),
        (["train", "{fa}", "{csv}", "--target", "nope"], 1, "no column 'nope'"),
        (["train", "{fa}", "{csv}", "-o", "no/such/dir/m.bsnn"], 2, "does not exist"),
    ],
)
def test_errors_are_one_line_with_the_documented_exit_code(
    cli,
    examples: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    args: list[str],
    code: int,
    message: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    fa, csv_ = examples / "hemolytic.fasta", examples / "hemolytic.csv"
    argv = [a.format(fa=fa, csv=csv_) for a in args]
    r = cli(*argv)
    assert r.code == code
    assert message in r.err
    assert "Traceback" not in r.err
    assert r.out == ""
    assert not list(tmp_path.glob("*.bsnn"))


def test_debug_shows_the_traceback(cli, tmp_path: Path) -> None:
    bad = tmp_path / "bad.bsnn"
    bad.write_bytes(b"not a model at all")
    r = cli("info", bad, "--debug")
    assert r.code == 1 and "Traceback" in r.err and "not a bioseqnn model" in r.err
    r = cli("info", bad)
    assert r.code == 1 and "Traceback" not in r.err
    assert r.err.strip().count("\n") == 0


def test_python_api_matches_the_cli(
    hemolytic_model: Path, examples: Path, tmp_path: Path, cli
) -> None:
    import bioseqnn

    out = tmp_path / "api.tsv"
    rows = bioseqnn.predict(hemolytic_model, examples / "hemolytic.fasta", out, device="cpu")
    assert len(rows) == 1104 and list(rows.columns) == ["id", "predicted", "prob_0", "prob_1"]
    r = cli("predict", hemolytic_model, examples / "hemolytic.fasta")
    assert out.read_text() == r.out


INSTANT = [
    ["--help"],
    ["--version"],
    ["config"],
    ["train", "--help"],
    ["predict", "--help"],
    ["evaluate", "--help"],
    ["variants", "--help"],
    ["info", "--help"],
    ["tune", "--help"],
    ["tune", "--show-space"],
    ["version"],
    ["version", "--verbose"],
    ["--show-completion", "bash"],
]


@pytest.mark.parametrize("args", INSTANT, ids=" ".join)
def test_help_version_and_config_never_import_torch(args: list[str]) -> None:
    """What a user types to find their way (and `import bioseqnn`) loads neither torch nor
    numpy, and changes no process-wide setting: a fresh interpreter says which modules the
    command left in sys.modules. They leave out pydantic too (0.09-0.17 s), which
    typer's coercion imports, where bioseqnn.cli spares it the values it would give back
    unchanged (absent ones, defaults, text). All but config and --show-space leave out
    PyYAML, which only reading or writing a settings file needs."""
    spared = args not in (["config"], ["tune", "--show-space"])
    p = fresh_python(
        "import os, sys\n"
        "import bioseqnn\n"
        "from bioseqnn.cli import main, CHEAP_ABSENT_VALUES\n"
        f"code = main({args!r})\n"
        "heavy = sorted(m for m in ('torch', 'numpy', 'safetensors', 'Bio') "
        "if m in sys.modules)\n"
        "heavy += ['pydantic'] if CHEAP_ABSENT_VALUES and 'pydantic' in sys.modules else []\n"
        f"heavy += ['yaml'] if {spared!r} and 'yaml' in sys.modules else []\n"
        "print('PROBE', code, heavy, os.environ.get('THP_MEM_ALLOC_ENABLE'), "
        "file=sys.stderr)\n",
        from_bash=args[0] == "--show-completion",
    )
    line = [x for x in p.stderr.splitlines() if x.startswith("PROBE")]
    assert line == ["PROBE 0 [] None"], p.stderr
    assert p.stdout.strip()  # the help, version or config was printed


def test_the_group_help_lists_what_the_full_group_would(capsys) -> None:
    """'bioseqnn --help' is answered by a group built without the commands' parameters;
    its text is the full group's, word for word, and so is the usage error of no
    arguments."""
    from bioseqnn import cli

    for args in cli.LISTING_ARGS:
        shown = []
        for group in (cli.listing_group(), cli.click_group()):
            # --help exits; no arguments is an error
            with (
                pytest.raises(BaseException) as ended,
                group.make_context("bioseqnn", list(args)) as ctx,
            ):
                group.invoke(ctx)
            if hasattr(ended.value, "show"):  # the usage error shows the help
                ended.value.show()
            shown.append(capsys.readouterr())
        assert shown[0] == shown[1]
        assert "Commands:" in shown[0].out + shown[0].err
    assert sorted(cli.listing_group().commands) == sorted(cli.click_group().commands)
    assert all(not c.params for c in cli.listing_group().commands.values())
    assert len(cli.click_group().commands["train"].params) > 20


@pytest.mark.slow
def test_runtime_tune_applies_the_process_wide_settings_once() -> None:
    p = fresh_python(
        "import os, torch\n"
        "import bioseqnn\n"
        "before = os.environ.get('THP_MEM_ALLOC_ENABLE')\n"
        "from bioseqnn import runtime\n"
        "runtime.tune(); runtime.tune()\n"
        "x = torch.tensor([1e-30], dtype=torch.float32) * 1e-10  # a denormal\n"
        "print(before, os.environ.get('THP_MEM_ALLOC_ENABLE'), float(x[0]) == 0.0)\n"
    )
    assert p.returncode == 0, p.stderr
    # importing changed nothing; tune() flushes denormals to zero and leaves huge pages
    # to torch's default (off)
    assert p.stdout.split() == ["None", "None", "True"]


@pytest.mark.slow
def test_shell_completion_answers_from_the_installed_app(tmp_path) -> None:
    """The script --show-completion prints calls bioseqnn with _BIOSEQNN_COMPLETE set; the
    CLI's own main() answers it (commands, options, choices), without running anything."""
    from conftest import run_bioseqnn

    script = run_bioseqnn("--show-completion", "bash")
    assert script.returncode == 0
    assert b"_BIOSEQNN_COMPLETE=complete_bash" in script.stdout
    env = {**os.environ, "_BIOSEQNN_COMPLETE": "complete_bash"}
    for words, cword, expected in (
        ("bioseqnn ev", "1", ["evaluate"]),
        ("bioseqnn evaluate --for", "2", ["--format"]),
        ("bioseqnn version --v", "2", ["--verbose"]),
        # a choice option names its values in --help (a|b|c) and completes them
        ("bioseqnn explain --method i", "3", ["ism", "integrated-gradients"]),
    ):
        p = subprocess.run(
            [sys.executable, "-m", "bioseqnn"],
            capture_output=True,
            text=True,
            env={**env, "COMP_WORDS": words, "COMP_CWORD": cword},
            cwd=tmp_path,
            timeout=120,
        )
        assert p.returncode == 0, p.stderr
        assert p.stdout.split() == expected
