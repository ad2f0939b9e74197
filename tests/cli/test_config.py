"""YAML configs, command-line overrides, 'bioseqnn config', and what info shows of them."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import re
from pathlib import Path

import pytest
import yaml

from bioseqnn import api
from bioseqnn.bundle import load_bundle
from bioseqnn.config import (
    RunConfig,
    commented_yaml,
    config_from_dict,
    load_config,
    parse_int_list,
    validate,
)
from bioseqnn.errors import SettingError, UsageError
from bioseqnn.models import REGISTRY, count_parameters
from bioseqnn.yamlio import MAX_DEPTH, SettingsDumper, read_yaml


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_config_command_prints_every_default_with_a_comment(cli, tmp_path: Path) -> None:
    result = cli("config")
    assert result.code == 0 and result.err == ""
    # the printed text is a valid config that reproduces the defaults exactly
    assert load_config(write(tmp_path / "c.yaml", result.out)) == RunConfig()
    lines = result.out.splitlines()
    keys = [i for i, line in enumerate(lines) if re.match(r"^  [a-z_]+: ", line)]
    n_fields = len(dataclasses.fields(RunConfig().model)) + len(
        dataclasses.fields(RunConfig().training)
    )
    assert len(keys) == n_fields
    for i in keys:
        assert lines[i - 1].lstrip().startswith("#"), f"no comment above {lines[i]!r}"
    for name in REGISTRY:  # the architectures are listed with a line each
        assert any(re.match(rf"^  #   {re.escape(name)} +\S", line) for line in lines)
    assert "  channels: [128, 128]" in lines
    assert any(
        line.startswith("  # convolution filters per layer [cnn, cnn-lstm, cnn-gru]")
        for line in lines
    )


def test_config_command_writes_a_file(cli, tmp_path: Path) -> None:
    out = tmp_path / "train.yaml"
    result = cli("config", "-o", out)
    assert result.code == 0 and result.out == ""
    assert out.read_text(encoding="utf-8") == commented_yaml(
        header="bioseqnn configuration: every setting with its default.\n"
        "Use with: bioseqnn train SEQS LABELS --config this.yaml "
        "(command-line flags override it)."
    )


@pytest.fixture(scope="module")
def configured_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A cnn trained from a YAML file with some settings overridden on the command line."""
    from bioseqnn.cli import main

    root = Path(__file__).resolve().parents[2] / "example_data"
    tmp = tmp_path_factory.mktemp("config")
    cfg = write(
        tmp / "train.yaml",
        """
model:
  arch: cnn
  channels: [16]
  kernel_sizes: [5]
  dilations: [1]
  pool_sizes: [2]
  dropout: 0.1
training:
  epochs: 1
  batch_size: 32
  lr: 0.002
  seed: 7
""",
    )
    out = tmp / "m.bsnn"
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main(
            [
                "train",
                str(root / "hemolytic.fasta"),
                str(root / "hemolytic.csv"),
                "-o",
                str(out),
                "--config",
                str(cfg),
                "--epochs",
                "2",
                "--channels",
                "8,12",
                "--kernel-sizes",
                "5",
                "--kernel-sizes",
                "3",
                "--dilations",
                "1,2",
                "--pool-sizes",
                "1, 2",
                "--threads",
                "1",
            ]
        )
    assert code == 0
    return out, err.getvalue()


def test_flags_override_the_config_file_and_the_resolved_config_is_stored(
    configured_model: tuple[Path, str],
) -> None:
    path, _ = configured_model
    manifest = api.info(path)
    model, training = manifest["model"], manifest["training"]
    # from the flags
    assert training["epochs"] == 2
    assert model["channels"] == [8, 12] and model["kernel_sizes"] == [5, 3]
    assert model["dilations"] == [1, 2] and model["pool_sizes"] == [1, 2]
    # from the file
    assert model["arch"] == "cnn" and model["dropout"] == 0.1
    assert training["batch_size"] == 32 and training["lr"] == 0.002 and training["seed"] == 7
    # defaults, and 'auto' pooling resolved to the architecture's choice
    assert training["patience"] == RunConfig().training.patience
    assert model["pooling"] == "max"
    assert len(manifest["metrics"]["best"]) > 0 and manifest["metrics"]["epochs_run"] == 2


def test_training_logs_and_info_reports_the_parameter_count(
    configured_model: tuple[Path, str],
    cli,
) -> None:
    path, train_log = configured_model
    n = count_parameters(load_bundle(path).model)
    # conv 8x20x5 + 12x8x3 (no biases), two norms 2x(8+12), head 12+1
    assert n == 800 + 288 + 40 + 13
    assert api.info(path)["parameters"] == n
    assert (
        f"model: cnn, channels 8,12, kernel-sizes 5,3, dilations 1,2, pool-sizes 1,2, "
        f"pooling max, dropout 0.1, {n:,} parameters" in train_log
    )
    result = cli("info", path)
    assert result.code == 0
    text = " ".join(result.out.split())  # rich wraps long rows
    assert f"parameters {n:,}" in text
    assert (
        "architecture cnn, channels 8,12, kernel-sizes 5,3, dilations 1,2, pool-sizes 1,2,"
        " pooling max, dropout 0.1" in text
    )
    assert "training epochs 2, batch-size 32, lr 0.002," in text


def test_config_from_a_model_file_retrains_the_same_model(
    configured_model: tuple[Path, str],
    cli,
    tmp_path: Path,
) -> None:
    path, _ = configured_model
    result = cli("config", "--from", path)
    assert result.code == 0
    assert result.out.startswith(f"# the resolved config of {path}\n")
    cfg = load_config(write(tmp_path / "again.yaml", result.out))
    manifest = api.info(path)
    assert dataclasses.asdict(cfg) == {"model": manifest["model"], "training": manifest["training"]}


@pytest.mark.slow
def test_config_from_a_per_position_model_or_a_language_model_trains_again(
    cli, tmp_path: Path, examples: Path
) -> None:
    """One output per position leaves pooling unused: the config says auto, so training
    with it warns of nothing; a language model's task is no setting, so its header says
    how to train again, and that command works."""
    small = ("--arch", "cnn", "--channels", "8", "--kernel-sizes", "3", "--epochs", "1", "-q")
    pp, lm = tmp_path / "pp.bsnn", tmp_path / "lm.bsnn"
    seqs, states = examples / "ss_train.fasta", examples / "ss_train_ss3.fasta"
    assert cli("train", seqs, states, "-o", pp, *small).code == 0
    tiny_lm = ("--arch", "gru", "--hidden-size", "8", "--epochs", "1", "-q")
    assert cli("train", seqs, "--task", "language-model", "-o", lm, *tiny_lm).code == 0
    for model, task in ((pp, ()), (lm, ("--task", "language-model"))):
        result = cli("config", "--from", model)
        assert result.code == 0
        assert "\n  pooling: auto\n" in result.out
        config = write(tmp_path / f"{model.stem}.yaml", result.out)
        labels = (states,) if model is pp else ()
        again = cli("train", seqs, *labels, *task, "--config", config, "-o", tmp_path / "x.bsnn")
        assert again.code == 0, again.err
        assert "--pooling" not in again.err and "not used" not in again.err
    header = cli("config", "--from", lm).out.splitlines()[0]
    assert header == (
        f"# the resolved config of {lm} (a language model: train again with bioseqnn train "
        "SEQUENCES --task language-model --config THIS.yaml)"
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("model:\n  chanels: [8]\n", "unknown config key 'model.chanels'; known keys: arch,"),
        ("training:\n  epochs: ten\n", "config key 'training.epochs': expected int, got 'ten'"),
        ("training:\n  epochs: true\n", "config key 'training.epochs': expected an integer"),
        ("model:\n  channels: [8, x]\n", "config key 'model.channels[1]': expected int, got 'x'"),
        ("model:\n  kernel_sizes: 9\n", "config key 'model.kernel_sizes': expected a list, got 9"),
        ("model:\n  bidirectional: 2\n", "config key 'model.bidirectional': expected bool"),
        ("optimizer:\n  lr: 1\n", "unknown config section 'optimizer'; expected: model, training"),
        ("- arch\n", "a config file must be a mapping"),
        ("model: [\n", "not valid YAML"),
        (
            "training:\n  epochs: 50\n  lr: 0.01\n  epochs: 5\n",
            "line 4, column 3: not valid YAML: 'epochs' is given twice (first on line 2)",
        ),
        ("model: {}\ntraining: {}\nmodel: {}\n", "'model' is given twice (first on line 1)"),
    ],
)
def test_bad_config_files_are_usage_errors_naming_the_key(
    cli,
    tmp_path: Path,
    examples: Path,
    text: str,
    message: str,
) -> None:
    cfg = write(tmp_path / "bad.yaml", text)
    out = tmp_path / "m.bsnn"
    result = cli(
        "train",
        examples / "hemolytic.fasta",
        examples / "hemolytic.csv",
        "-o",
        out,
        "--config",
        cfg,
    )
    assert result.code == 2, result.err
    assert result.err.startswith(f"bioseqnn: error: {cfg}: ")
    assert message in result.err
    assert len(result.err.strip().splitlines()) == 1
    assert not out.exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--arch", "cnn", "--kernel-sizes", "9,x"],
            "--kernel-sizes: 'x' is not an integer (give a comma list, e.g. 9,5)",
        ),
        (
            ["--arch", "cnn", "--channels", "64,64,64"],
            "--kernel-sizes has 2 entries but --channels has 3: give one value per "
            "convolution layer",
        ),
        (
            ["--arch", "cnn", "--pool-sizes", "0,1"],
            "--pool-sizes must all be at least 1",
        ),
        (
            ["--arch", "cnn", "--pooling", "last"],
            "pooling 'last' is not available for cnn; choose one of: mean, max, attention",
        ),
        (
            ["--arch", "transformer", "--d-model", "30", "--heads", "4"],
            "--d-model (30) must be divisible by --heads (4)",
        ),
        (
            ["--arch", "mamba"],
            "unknown architecture 'mamba'; choose one of: rnn, lstm, gru, cnn, "
            "cnn-lstm, cnn-gru, transformer",
        ),
        (
            ["--pooling", "sum"],
            "--pooling must be one of: auto, last, mean, max, attention (got 'sum')",
        ),
    ],
)
def test_bad_architecture_flags_are_usage_errors(
    cli,
    tmp_path: Path,
    examples: Path,
    args: list[str],
    message: str,
) -> None:
    out = tmp_path / "m.bsnn"
    result = cli(
        "train", examples / "hemolytic.fasta", examples / "hemolytic.csv", "-o", out, *args
    )
    assert result.code == 2, result.err
    assert result.err == f"bioseqnn: error: {message}\n"
    assert not out.exists()


# A setting's values are declared once (config.setting); each front end names the setting
# its own way: the library by its key, the command line by its flag, a config file by
# section.key.
@pytest.mark.parametrize(
    ("section", "key", "value", "flags", "rule"),
    [
        ("model", "hidden_size", 0, ["--hidden-size", "0"], "must be at least 1"),
        ("model", "dropout", 1.5, ["--dropout", "1.5"], "must be in [0, 1)"),
        (
            "model",
            "channels",
            [8, 0],
            ["--arch", "cnn", "--channels", "8,0"],
            "must all be at least 1",
        ),
        # what a model file holds (modelfile checks the same): refused before training
        (
            "model",
            "max_length",
            2_000_000,
            ["--arch", "transformer", "--max-length", "2000000"],
            "must be at most 1,048,576 (got 2,000,000)",
        ),
        (
            "model",
            "kernel_sizes",
            [1_100_000, 5],
            ["--arch", "cnn", "--kernel-sizes", "1100000,5"],
            "must be at most 1,048,576 (got 1,100,000)",
        ),
        (
            "model",
            "channels",
            [8] * 65,
            ["--arch", "cnn", "--channels", ",".join(["8"] * 65)],
            "has 65 entries, more than a model holds (64)",
        ),
        ("training", "lr", 0.0, ["--lr", "0"], "must be positive"),
        (
            "training",
            "schedule",
            "bogus",
            ["--schedule", "bogus"],
            "must be one of: none, plateau, cosine, onecycle (got 'bogus')",
        ),
        ("training", "cv", 1, ["--cv", "1"], "must be 0 (off) or from 2 to 64"),
        ("training", "threads", -1, ["-j", "-1"], "must be at least 0"),
        ("training", "seed", -1, ["--seed", "-1"], "must be from 0 to 2^63 - 1"),
    ],
)
def test_setting_errors_name_the_key_the_flag_and_the_config_key(
    cli,
    tmp_path: Path,
    examples: Path,
    section: str,
    key: str,
    value: object,
    flags: list[str],
    rule: str,
) -> None:
    cfg = RunConfig()
    setattr(getattr(cfg, section), key, value)
    with pytest.raises(SettingError) as raised:
        validate(cfg)
    assert str(raised.value) == f"{key} {rule}" and raised.value.keys == (key,)
    assert raised.value.exit_code == UsageError.exit_code

    out = tmp_path / "m.bsnn"
    inputs = (examples / "hemolytic.fasta", examples / "hemolytic.csv", "-o", out)
    flag = "--threads" if flags == ["-j", "-1"] else flags[-2]
    result = cli("train", *inputs, *flags)
    assert (result.code, result.err) == (2, f"bioseqnn: error: {flag} {rule}\n")

    config = write(tmp_path / "c.yaml", yaml.safe_dump({section: {key: value}}))
    result = cli("train", *inputs, "--config", config)
    assert (result.code, result.err) == (
        2,
        f"bioseqnn: error: {config}: config key '{section}.{key}' {rule}\n",
    )
    assert not out.exists()


def test_rules_between_two_settings_name_both() -> None:
    cfg = RunConfig()
    cfg.model.d_model, cfg.model.heads = 30, 4
    with pytest.raises(SettingError) as raised:
        validate(cfg)
    error = raised.value
    assert str(error) == "d_model (30) must be divisible by heads (4)"
    assert error.keys == ("d_model", "heads")
    assert error.named(lambda key: key.upper()) == "D_MODEL (30) must be divisible by HEADS (4)"
    cfg = RunConfig()
    cfg.training.cv, cfg.training.ensemble = 5, 3
    with pytest.raises(
        SettingError,
        match=r"^cv trains one model per fold already \(an ensemble of folds\): "
        r"drop ensemble$",
    ):
        validate(cfg)
    cfg = RunConfig()
    cfg.training.epochs, cfg.training.warmup_epochs = 3, 1e308  # overflowed a step count
    with pytest.raises(SettingError) as raised:
        validate(cfg)
    assert str(raised.value) == (
        "warmup_epochs (1e+308) must be at most epochs (3): the warm-up would not end "
        "before training does"
    )
    cfg.training.warmup_epochs = 3.0
    validate(cfg)


def test_the_python_api_names_settings_by_their_keys(tmp_path: Path) -> None:
    import bioseqnn

    with pytest.raises(SettingError, match=r"^batch_size must be at least 1$"):
        bioseqnn.train(["ACGT", "ACGA", "TTGA", "TTGC"], [0, 1, 0, 1], batch_size=0)
    cfg = RunConfig()
    cfg.model.hidden_size = 0
    with pytest.raises(SettingError, match=r"^hidden_size must be at least 1$"):
        api.train("absent.fasta", "absent.csv", tmp_path / "m.bsnn", cfg)
    with pytest.raises(
        UsageError, match=r"^config key 'training.warmup_epochs' must be at least 0$"
    ):
        config_from_dict({"training": {"warmup_epochs": -1}})


def test_config_and_help_show_each_setting_s_range(cli) -> None:
    lines = cli("config").out.splitlines()
    hidden = "recurrent units per direction [rnn, lstm, gru, cnn-lstm, cnn-gru]; at least 1"
    assert f"  # {hidden}" in lines
    assert "  # AdamW learning rate; positive" in lines
    assert lines[lines.index("  ensemble: 1") - 1].endswith("; from 1 to 64")
    assert lines[lines.index("  cv: 0") - 1].endswith("; 0 (off) or from 2 to 64")
    assert lines[lines.index("  channels: [128, 128]") - 1].endswith("; each at least 1")
    help_text = " ".join(cli("train", "--help").out.split())
    dropout = "Dropout between layers and before the head; in [0, 1). (default: 0.2)"
    assert f"--dropout NUMBER {dropout}" in help_text


def test_transformer_max_length_shorter_than_the_data_names_the_record(
    cli,
    tmp_path: Path,
    examples: Path,
) -> None:
    out = tmp_path / "m.bsnn"
    result = cli(
        "train",
        examples / "hemolytic.fasta",
        examples / "hemolytic.csv",
        "-o",
        out,
        "--arch",
        "transformer",
        "--max-length",
        "50",
        "--quiet",
    )
    assert result.code == 1
    assert re.fullmatch(
        r"bioseqnn: error: .*hemolytic\.fasta: record '\S+' has \d+ positions, more than this "
        r"transformer model's max-length 50 \(\d+ record\(s\) too long\); split or trim the "
        r"sequences, or train with a larger --max-length\n",
        result.err,
    )
    assert not out.exists()


def test_parse_int_list_accepts_commas_and_repeats() -> None:
    assert parse_int_list(["9,5", "3"], "--kernel-sizes") == [9, 5, 3]
    assert parse_int_list([" 1 , 2 "], "--dilations") == [1, 2]
    assert parse_int_list(None, "--channels") is None
    with pytest.raises(UsageError, match="--channels: give at least one integer"):
        parse_int_list([","], "--channels")


def test_yaml_round_trip_keeps_types() -> None:
    cfg = RunConfig()
    cfg.model.arch, cfg.model.channels, cfg.training.lr = "cnn-lstm", [32, 64], 3e-4
    loaded = yaml.safe_load(commented_yaml(cfg))
    assert loaded["model"]["channels"] == [32, 64]
    assert loaded["training"]["lr"] == 3e-4 and loaded["model"]["arch"] == "cnn-lstm"


def test_numbers_without_a_point_in_exponent_form_are_floats(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        "training:\n  lr: 1e-3\n  weight_decay: 5E-4\n  grad_clip: +2e0\n"
        "model:\n  arch: cnn\n  channels: [8, 16]\n"
    )
    cfg = load_config(path)
    assert (cfg.training.lr, cfg.training.weight_decay, cfg.training.grad_clip) == (
        1e-3,
        5e-4,
        2.0,
    )
    assert cfg.model.channels == [8, 16]  # integers stay integers
    # only settings files: plain PyYAML still reads the YAML 1.1 way
    assert yaml.safe_load("x: 1e-3") == {"x": "1e-3"}
    assert read_yaml(path, "config")["training"]["lr"] == 1e-3


def test_docs_config_example_is_valid() -> None:
    guide = Path(__file__).resolve().parents[2] / "docs" / "guide"
    page = (guide / "pipelines.md").read_text(encoding="utf-8")
    block = page.split("## Config files", 1)[1].split("```yaml\n", 1)[1].split("```", 1)[0]
    cfg = config_from_dict(yaml.safe_load(block))
    validate(cfg)
    assert cfg.model.arch == "cnn-lstm" and cfg.model.pool_sizes == [4]
    assert cfg.training.epochs == 30
    # and every architecture in the registry has a row in the architectures table
    table = (guide / "training.md").read_text(encoding="utf-8").split("## Architectures", 1)[1]
    for name in REGISTRY:
        assert f"| `{name}` |" in table


def test_settings_files_are_read_and_written_without_aliases(tmp_path: Path) -> None:
    """A value shared by two keys is written out twice, so that what bioseqnn writes its
    own reader (which refuses aliases) reads back."""
    shared = [5, 3]
    text = yaml.dump(
        {"model": {"kernel_sizes": shared, "dilations": shared}}, Dumper=SettingsDumper
    )
    assert "&" not in text and "*" not in text
    cfg = load_config(write(tmp_path / "c.yaml", text))
    assert cfg.model.kernel_sizes == cfg.model.dilations == [5, 3]
    with pytest.raises(UsageError, match=r"line 4, column 4: not valid YAML: aliases \(\*name\)"):
        read_yaml(write(tmp_path / "a.yaml", yaml.safe_dump({"a": shared, "b": shared})), "x")


def test_default_dilations_fit_any_number_of_layers() -> None:
    from bioseqnn.modelspec import resolve_model

    cfg = RunConfig()
    cfg.model.arch, cfg.model.channels, cfg.model.kernel_sizes = "cnn", [8], [5]
    validate(cfg)  # dilations [1, 1] (the default) with one layer
    assert resolve_model(cfg.model).dilations == [1]
    cfg.model.channels, cfg.model.kernel_sizes = [8, 8, 8], [5, 5, 5]
    assert resolve_model(cfg.model).dilations == [1, 1, 1]
    cfg.model.dilations = [1, 2]  # chosen dilations still need one per layer
    with pytest.raises(SettingError, match=r"^dilations has 2 entries but channels has 3"):
        validate(cfg)


# ------------------------------------------------------------------ hostile settings files


def _train_with_config(cli, examples: Path, tmp_path: Path, cfg: Path):
    out = tmp_path / "m.bsnn"
    result = cli(
        "train",
        examples / "hemolytic.fasta",
        examples / "hemolytic.csv",
        "-o",
        out,
        "--config",
        cfg,
    )
    assert not out.exists()
    return result


def _one_clear_line(result, cfg: Path) -> str:
    """A usage error: one line that names the file, without 'unexpected', no traceback."""
    assert result.code == 2, result.err
    assert result.out == ""
    lines = result.err.splitlines()
    assert len(lines) == 1, result.err[:500]
    assert lines[0].startswith(f"bioseqnn: error: {cfg}: "), lines[0][:500]
    assert "unexpected" not in lines[0] and "Traceback" not in result.err
    return lines[0]


DEEP = {
    "flow lists": "[" * 100_000 + "]" * 100_000,
    "flow mappings": "a: " + "{b: " * 5000 + "1" + "}" * 5000,
    "block lists": "- " * 5000 + "x\n",
    "block mappings": "".join(" " * i + "b:\n" for i in range(1300)) + " " * 1300 + "1\n",
}


@pytest.mark.parametrize("text", DEEP.values(), ids=DEEP.keys())
def test_a_deeply_nested_settings_file_is_a_usage_error(
    cli, tmp_path: Path, examples: Path, text: str
) -> None:
    """Nesting thousands deep (a few kB) ran PyYAML's recursive composer out of stack:
    'unexpected RecursionError', exit 1."""
    cfg = write(tmp_path / "deep.yaml", text)
    line = _one_clear_line(_train_with_config(cli, examples, tmp_path, cfg), cfg)
    assert f"nested too deeply (more than {MAX_DEPTH} levels" in line
    with pytest.raises(UsageError, match="nested too deeply"):
        read_yaml(cfg, "search space")


def test_nesting_up_to_the_limit_is_read(tmp_path: Path) -> None:
    text = "[" * MAX_DEPTH + "1" + "]" * MAX_DEPTH
    data = read_yaml(write(tmp_path / "c.yaml", text), "config")
    for _ in range(MAX_DEPTH):
        (data,) = data
    assert data == 1
    with pytest.raises(UsageError, match="nested too deeply"):
        read_yaml(write(tmp_path / "c.yaml", "[" + text + "]"), "config")


LONG = "x" * 900_000
LONG_VALUES = {
    "arch": (f"model:\n  arch: {LONG}\n", "config key 'model.arch': unknown architecture 'xxx"),
    "pooling": (f"model:\n  pooling: {LONG}\n", "config key 'model.pooling' must be one of"),
    "structure": (f"training:\n  structure: {LONG}\n", "config key 'training.structure'"),
    # a key of over 1024 characters is written explicitly (? KEY)
    "key": (f"model:\n  ? {LONG}\n  : 1\n", "unknown config key 'model.xxx"),
    "section": (f"? {LONG}\n: 1\n", "unknown config section 'xxx"),
    "twice": (f"? {LONG[:400_000]}\n: 1\n? {LONG[:400_000]}\n: 2\n", "not valid YAML: 'xxx"),
    "tag": (f"model:\n  arch: !<tag:{LONG}> 1\n", "constructor for the tag 'tag:xxx"),
    "handle": (f"model:\n  arch: !{LONG}!a 1\n", "undefined tag handle '!xxx"),
}


@pytest.mark.parametrize(("text", "said"), LONG_VALUES.values(), ids=LONG_VALUES.keys())
def test_a_long_value_or_key_is_cut_in_the_message(
    cli, tmp_path: Path, examples: Path, text: str, said: str
) -> None:
    """A 900 kB architecture name made a 900 kB error line that named neither the file
    nor the key."""
    cfg = write(tmp_path / "long.yaml", text)
    line = _one_clear_line(_train_with_config(cli, examples, tmp_path, cfg), cfg)
    assert said in line
    assert len(line) < len(f"bioseqnn: error: {cfg}: ") + 400, line[:500]
    assert "x" * 100 not in line and "..." in line


CONTROL = {
    "key": ('model:\n  "ar\\0\\e[31m\\x9b\\x7fch": 1\n', "unknown config key 'model.ar\\x00"),
    "section": ('"mo\\0\\e[31mdel": 1\n', "unknown config section 'mo\\x00"),
    "arch": ('model:\n  arch: "cn\\0\\e[31mn"\n', "config key 'model.arch'"),
    "pooling": ('model:\n  pooling: "ma\\0\\e[31mx"\n', "config key 'model.pooling'"),
    "twice": ('model:\n  "a\\e[2J": 1\n  "a\\e[2J": 2\n', "'a\\x1b[2J' is given twice"),
    "tag": ("model:\n  arch: !<%1b%00> 1\n", "the tag '\\x1b\\x00'"),
}


@pytest.mark.parametrize(("text", "said"), CONTROL.values(), ids=CONTROL.keys())
def test_control_characters_are_shown_escaped(
    cli, tmp_path: Path, examples: Path, text: str, said: str
) -> None:
    """A key holding NUL and ESC was written raw to the terminal."""
    cfg = write(tmp_path / "ctrl.yaml", text)
    line = _one_clear_line(_train_with_config(cli, examples, tmp_path, cfg), cfg)
    assert said in line
    assert line.isprintable(), repr(line)
