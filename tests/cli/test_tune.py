"""bioseqnn tune: real Optuna studies on a tiny subset of the hemolytic peptides, tiny
networks, two epochs; the outputs read back as files."""

from __future__ import annotations

import csv
import glob
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import yaml
from conftest import EXAMPLES, ROOT

optuna = pytest.importorskip("optuna")

TINY_SPACE = {
    "families": ["gru", "cnn", "lstm"],
    "model": {
        "hidden_size": {"low": 4, "high": 8},
        "conv_layers": 1,
        "channels": [4, 8],
        "kernel_sizes": [3, 5],
        "dilations": 1,
        "pool_sizes": 1,
        "pooling": ["mean", "max"],
        "dropout": {"low": 0.0, "high": 0.3},
    },
    "training": {
        "lr": {"low": 1.0e-3, "high": 1.0e-2, "log": True},
        "batch_size": [16, 32],
        "class_weight": ["none", "balanced"],
        "epochs": 2,
        "threads": 1,
    },
}


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """60 hemolytic peptides (30 of each class) and the tiny space as a file."""
    folder = tmp_path_factory.mktemp("tune_data")
    with (EXAMPLES / "hemolytic.csv").open() as fh:
        labels = dict(row for row in csv.reader(fh))
    records = (EXAMPLES / "hemolytic.fasta").read_text().split(">")[1:]
    chosen: list[str] = []
    for label in ("1", "0"):
        chosen += [r for r in records if labels[r.split()[0]] == label][:30]
    (folder / "s.fasta").write_text("".join(">" + r for r in chosen))
    (folder / "s.csv").write_text(
        "id,hemolytic\n" + "".join(f"{r.split()[0]},{labels[r.split()[0]]}\n" for r in chosen)
    )
    (folder / "space.yaml").write_text(yaml.safe_dump(TINY_SPACE))
    # train's defaults build a cnn-gru: a study starts with them only where it may
    with_default = {**TINY_SPACE, "families": [*TINY_SPACE["families"], "cnn-gru"]}
    (folder / "space_with_default.yaml").write_text(yaml.safe_dump(with_default))
    return {
        "fasta": folder / "s.fasta",
        "labels": folder / "s.csv",
        "space": folder / "space.yaml",
        "space_with_default": folder / "space_with_default.yaml",
        "dir": folder,
    }


def _tune_args(data: dict[str, Path], out: Path, *extra: str, space: str = "space") -> list[str]:
    return [
        "tune",
        str(data["fasta"]),
        str(data["labels"]),
        "-o",
        str(out),
        "--space",
        str(data[space]),
        *extra,
    ]


def _table(path: Path) -> list[dict[str, str]]:
    with path.open() as fh:
        return list(csv.DictReader(fh, delimiter="\t"))


def _manifest(path: Path) -> dict:
    from bioseqnn.modelfile import read_manifest

    return read_manifest(path)[0]


def test_trials_write_best_model_table_and_config(cli, data, tmp_path) -> None:
    out = tmp_path / "best.bsnn"
    r = cli(*_tune_args(data, out, "--trials", "3", "--seed", "1", "--no-defaults-first"))
    assert r.code == 0, r.err
    assert r.out == ""  # stdout carries data only
    assert sum(line.startswith("bioseqnn: trial ") for line in r.err.splitlines()) == 3
    rows = _table(tmp_path / "best.trials.tsv")
    assert [row["trial"] for row in rows] == ["0", "1", "2"]
    assert set(rows[0]) >= {"trial", "state", "val_loss", "seconds", "arch", "lr", "batch_size"}
    complete = [row for row in rows if row["state"] == "complete"]
    best_row = min(complete, key=lambda row: float(row["val_loss"]))
    tune = _manifest(out)["tune"]
    assert tune["trials"] == 3 and tune["metric"] == "val_loss"
    assert tune["best_trial"] == int(best_row["trial"])
    assert tune["value"] == pytest.approx(float(best_row["val_loss"]), rel=1e-5)
    assert tune["best_settings"]["model"]["arch"] == best_row["arch"]
    # every complete trial kept its model; the output is the best one's network
    for row in complete:
        assert (tmp_path / "best.trials" / f"{int(row['trial']):03d}.bsnn").is_file()
    best_file = tmp_path / "best.trials" / f"{tune['best_trial']:03d}.bsnn"
    assert _manifest(best_file)["model"] == _manifest(out)["model"]
    assert (tmp_path / "best.tune.log").is_file()

    # best.yaml is a train config: the same network trains from it
    again = tmp_path / "again.bsnn"
    r = cli(
        "train",
        data["fasta"],
        data["labels"],
        "--config",
        tmp_path / "best.yaml",
        "-o",
        again,
        "--quiet",
    )
    assert r.code == 0, r.err
    assert _manifest(again)["model"] == _manifest(out)["model"]
    assert _manifest(again)["training"]["lr"] == pytest.approx(
        tune["best_settings"]["training"]["lr"]
    )


@pytest.mark.slow
def test_same_seed_proposes_the_same_trials(cli, data, tmp_path) -> None:
    tables = []
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        r = cli(
            *_tune_args(
                data, tmp_path / name / "best.bsnn", "--trials", "3", "--seed", "5", "--quiet"
            )
        )
        assert r.code == 0, r.err
        tables.append(
            [
                {k: v for k, v in row.items() if k != "seconds"}
                for row in _table(tmp_path / name / "best.trials.tsv")
            ]
        )
    assert tables[0] == tables[1]
    (tmp_path / "c").mkdir()
    assert (
        cli(
            *_tune_args(
                data, tmp_path / "c" / "best.bsnn", "--trials", "3", "--seed", "6", "--quiet"
            )
        ).code
        == 0
    )
    other = [row["lr"] for row in _table(tmp_path / "c" / "best.trials.tsv")]
    assert other != [row["lr"] for row in tables[0]]


def test_show_space_prints_yaml_that_space_accepts(cli, tmp_path) -> None:
    r = cli("tune", "--show-space")
    assert r.code == 0 and r.err == ""
    space = yaml.safe_load(r.out)
    assert "transformer" in space["families"]
    assert space["training"]["lr"] == {"low": 1e-4, "high": 1e-2, "log": True}
    (tmp_path / "space.yaml").write_text(r.out)
    again = cli("tune", "--show-space", "--space", tmp_path / "space.yaml")
    assert again.code == 0 and yaml.safe_load(again.out) == space


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("model:\n  hidden_sise: [8, 16]\n", "model.hidden_sise"),
        ("model:\n  hidden_size: {low: 64, high: 8}\n", "model.hidden_size"),
        ("training:\n  lr: {low: 0, high: 0.1, log: true}\n", "training.lr"),
        ("training:\n  schedule: [cosine, sometimes]\n", "training.schedule"),
        ("training:\n  seed: 3\n", "training.seed"),
        ("families: [gru, lstmm]\n", "families"),
        ("colour: blue\n", "colour"),
        # values train would refuse, refused before the study starts (inf crashed the
        # sampler; the others failed every trial that drew them)
        ("training:\n  lr: {low: 0.001, high: .inf}\n", "training.lr.high"),
        ("training:\n  lr: {low: .nan, high: 0.1}\n", "training.lr.low"),
        ("model:\n  dropout: {low: -1.0e308, high: 1.0e308}\n", "model.dropout.low"),
        ("training:\n  batch_size: [0]\n", "training.batch_size"),
        ("training:\n  epochs: [0, 1]\n", "training.epochs"),
        ("model:\n  hidden_size: [16, 1000000000]\n", "model.hidden_size"),
        ("model:\n  kernel_sizes: {low: 3, high: 2000000}\n", "model.kernel_sizes.high"),
        ("families: [transformer]\nmodel:\n  heads: [3]\n", "model.d_model"),
    ],
)
def test_a_bad_space_is_a_one_line_usage_error(cli, data, tmp_path, text, named) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    r = cli(
        "tune",
        data["fasta"],
        data["labels"],
        "-o",
        tmp_path / "best.bsnn",
        "--space",
        bad,
        "--trials",
        "1",
    )
    assert r.code == 2
    assert r.out == ""
    lines = r.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("bioseqnn: error: ")
    assert named in lines[0] and "Traceback" not in r.err
    assert not (tmp_path / "best.tune.log").exists()


@pytest.mark.slow
def test_no_output_replaces_the_space_file_or_another_output(cli, data, tmp_path) -> None:
    """The config written beside the model (NAME.yaml) is checked like the model: it may
    not be the --space file, nor the model file itself (-o NAME.yaml)."""
    space = tmp_path / "best.yaml"
    space.write_text(data["space"].read_text())
    kept = space.read_bytes()
    for out in (tmp_path / "best.bsnn", space):
        r = cli("tune", data["fasta"], data["labels"], "-o", out, "--space", space, "--trials", "1")
        assert r.code == 2, r.err
        assert r.err.strip() == (
            f"bioseqnn: error: {space}: cannot write: it is an input (--space); writing it "
            "would destroy it: choose another output name"
        )
    r = cli(*_tune_args(data, tmp_path / "m.yaml", "--trials", "1"))
    assert r.code == 2 and "so -o cannot be that name" in r.err and "-o " in r.err
    assert space.read_bytes() == kept
    # the trials' folder (NAME.trials) is a file: named, before any trial
    (tmp_path / "t.trials").write_text("mine\n")
    r = cli(*_tune_args(data, tmp_path / "t.bsnn", "--trials", "1"))
    assert r.code == 2, r.err
    assert r.err.strip() == (
        f"bioseqnn: error: {tmp_path / 't.trials'}: tune keeps each trial's model in a folder "
        "of this name beside the model file, and this is a file: move it, or give -o "
        "another name"
    )
    assert (tmp_path / "t.trials").read_text() == "mine\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.yaml", "t.trials"]


def test_budget_is_required_and_time_parses(cli, data, tmp_path) -> None:
    r = cli(*_tune_args(data, tmp_path / "best.bsnn"))
    assert r.code == 2 and "--trials N or --time" in r.err
    r = cli(*_tune_args(data, tmp_path / "best.bsnn", "--time", "soon"))
    assert r.code == 2 and "not a duration" in r.err
    r = cli(*_tune_args(data, tmp_path / "best.bsnn", "--time", "1s", "--quiet"))
    assert r.code == 0, r.err
    assert len(_table(tmp_path / "best.trials.tsv")) >= 1
    r = cli(*_tune_args(data, tmp_path / "other.bsnn", "--trials", "0"))
    assert r.code == 2 and "0 only with --resume" in r.err
    # --resume --trials 0: the outputs again from the study, no trial run
    (tmp_path / "best.bsnn").unlink()
    table = (tmp_path / "best.trials.tsv").read_text()
    r = cli(*_tune_args(data, tmp_path / "best.bsnn", "--resume", "--trials", "0", "--quiet"))
    assert r.code == 0, r.err
    assert (tmp_path / "best.trials.tsv").read_text() == table
    assert _manifest(tmp_path / "best.bsnn")["tune"]["trials"] == len(
        _table(tmp_path / "best.trials.tsv")
    )


def test_resume_adds_trials_and_an_existing_study_needs_it(cli, data, tmp_path) -> None:
    out = tmp_path / "best.bsnn"
    r = cli(*_tune_args(data, out, "--resume", "--trials", "1"))
    assert r.code == 2 and "no tune study" in r.err
    assert cli(*_tune_args(data, out, "--trials", "2", "--quiet")).code == 0
    r = cli(*_tune_args(data, out, "--trials", "2"))
    assert r.code == 2 and "--resume" in r.err
    r = cli(*_tune_args(data, out, "--trials", "2", "--resume", "--quiet"))
    assert r.code == 0, r.err
    rows = _table(tmp_path / "best.trials.tsv")
    assert [row["trial"] for row in rows] == ["0", "1", "2", "3"]
    # the resumed trials are new proposals, not the first run's again
    assert {rows[2]["lr"], rows[3]["lr"]}.isdisjoint({rows[0]["lr"], rows[1]["lr"]})
    assert _manifest(out)["tune"]["trials"] == 4
    # another space does not continue this study
    other = tmp_path / "other.yaml"
    other.write_text(yaml.safe_dump({**TINY_SPACE, "families": ["gru"]}))
    r = cli(
        "tune",
        data["fasta"],
        data["labels"],
        "-o",
        out,
        "--space",
        other,
        "--trials",
        "1",
        "--resume",
    )
    assert r.code == 2 and "another search space" in r.err


def test_a_failing_trial_is_recorded_and_the_search_goes_on(cli, data, tmp_path) -> None:
    space = {
        **TINY_SPACE,
        "families": ["gru"],
        "training": {**TINY_SPACE["training"], "class_weight": ["none", "1,2,3"]},
    }
    (tmp_path / "space.yaml").write_text(yaml.safe_dump(space))
    out = tmp_path / "best.bsnn"
    r = cli(
        "tune",
        data["fasta"],
        data["labels"],
        "-o",
        out,
        "--space",
        tmp_path / "space.yaml",
        "--trials",
        "6",
        "--seed",
        "2",
    )
    assert r.code == 0, r.err
    rows = _table(tmp_path / "best.trials.tsv")
    assert len(rows) == 6
    failed = [row for row in rows if row["state"] == "fail"]
    assert failed and all(row["class_weight"] == "1,2,3" and row["note"] for row in failed)
    assert any(row["state"] == "complete" for row in rows)
    failed_lines = [x for x in r.err.splitlines() if ": failed: " in x]
    assert len(failed_lines) == len(failed)
    for row in failed:
        assert not (tmp_path / "best.trials" / f"{int(row['trial']):03d}.bsnn").exists()
    tune = _manifest(out)["tune"]
    assert tune["failed"] == len(failed) and tune["trials"] == 6


@pytest.mark.slow
def test_ensemble_top_combines_the_best_trials(cli, data, tmp_path) -> None:
    out = tmp_path / "best.bsnn"
    r = cli(*_tune_args(data, out, "--trials", "3", "--ensemble-top", "2", "--quiet"))
    assert r.code == 0, r.err
    manifest = _manifest(out)
    rows = [row for row in _table(tmp_path / "best.trials.tsv") if row["state"] == "complete"]
    ranked = sorted(rows, key=lambda row: (float(row["val_loss"]), int(row["trial"])))
    assert manifest["ensemble"] == 2
    assert manifest["tune"]["ensemble_trials"] == [int(row["trial"]) for row in ranked[:2]]
    r = cli("predict", out, data["fasta"])
    assert r.code == 0 and len(r.out.splitlines()) == 61


def _subprocess(args: list[str], **kwargs) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-m", "bioseqnn", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        **kwargs,
    )


@pytest.mark.slow
def test_two_processes_share_one_journal_file(data, tmp_path) -> None:
    journal = tmp_path / "shared.log"
    procs = [
        _subprocess(
            _tune_args(
                data,
                tmp_path / "best.bsnn",
                "--trials",
                "2",
                "--study",
                str(journal),
                "--join",
                "--seed",
                "4",
                space="space_with_default",
            )
        )
        for _ in range(2)
    ]
    results = [p.communicate(timeout=300) for p in procs]
    for p, (out, err) in zip(procs, results, strict=True):
        assert p.returncode == 0, err.decode()
        assert out == b""
    storage = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(journal))
    )
    study = optuna.load_study(study_name="bioseqnn-tune", storage=storage)
    states = [t.state for t in study.trials]
    assert len(states) == 4
    assert all(
        s in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED) for s in states
    )
    # the two processes proposed different trials
    assert len({json.dumps(t.params, sort_keys=True) for t in study.trials}) == 4
    # one process made the study, and only it queued train's defaults as a trial
    assert sum(bool(t.user_attrs.get("defaults")) for t in study.trials) == 1


def test_a_process_that_joins_waits_for_the_makers_settings(tmp_path) -> None:
    """Two processes started together with --join: the one that loses the race to make
    the study may read it between the maker's two writes of its settings. It waits for
    them instead of refusing the study as one of 'another search space'."""
    import threading

    from bioseqnn.search.storage import STUDY_NAME, _storage, open_study

    journal = tmp_path / "shared.log"
    space = {"lr": {"low": 0.001, "high": 0.01, "log": True}}
    storage, _ = _storage(optuna, str(journal), journal)
    maker = optuna.create_study(storage=storage, study_name=STUDY_NAME, direction="maximize")
    maker.set_user_attr("space", space)  # the maker is between its two writes

    def finish() -> None:
        time.sleep(0.5)
        maker.set_user_attr("monitor", "val_mcc")

    late = threading.Thread(target=finish)
    late.start()
    opened = open_study(
        optuna, str(journal), journal, space, "val_loss", "auto", 4, False, True, True
    )
    late.join()
    study, monitor, _ = opened
    # the study's monitor, not this process's own guess; no second default trial queued
    assert monitor == "val_mcc"
    assert study.user_attrs == {"space": space, "monitor": "val_mcc"}
    assert study.get_trials(deepcopy=False) == []
    # a study made with another space is still refused
    with pytest.raises(Exception, match="another search space"):
        open_study(
            optuna, str(journal), journal, {"lr": 1}, "val_loss", "auto", 4, False, True, True
        )


@pytest.mark.parametrize(
    ("sig", "code", "said"),
    [(signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "terminated")],
)
@pytest.mark.slow
def test_a_stopped_search_keeps_the_best_model_so_far(data, tmp_path, sig, code, said) -> None:
    """Ctrl-C exits 130, SIGTERM (a batch system ending the job) 143; either way the best
    model so far is written and no trial is left 'running' in the study."""
    out = tmp_path / "best.bsnn"
    # as a shell's foreground job: a test runner's worker may ignore SIGINT, and a child
    # inherits that
    proc = _subprocess(
        _tune_args(data, out, "--trials", "500"),
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    first = tmp_path / "best.trials" / "001.bsnn"
    deadline = time.monotonic() + 120
    while not first.exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert first.exists()
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == code, err.decode()
    assert "Traceback" not in err.decode()
    assert err.decode().strip().splitlines()[-1] == f"bioseqnn: error: {said}"
    stopped = "interrupted" if sig == signal.SIGINT else "stopped"
    said_all = err.decode()
    assert f"warning: {stopped}: writing the best model found so far" in said_all, said_all
    tune = _manifest(out)["tune"]
    rows = _table(tmp_path / "best.trials.tsv")
    assert 2 <= tune["trials"] == len(rows) < 500
    assert "running" not in {row["state"] for row in rows}
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".") or "tmp" in p.name]


@pytest.mark.slow
def test_missing_optuna_is_a_usage_error_naming_the_extra(data, tmp_path) -> None:
    probe = (
        "import sys\nsys.modules['optuna'] = None  # as if it were not installed\n"
        "from bioseqnn.cli import main\n"
        f"sys.exit(main({_tune_args(data, tmp_path / 'best.bsnn', '--trials', '1')!r}))\n"
    )
    p = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=120,
    )
    assert p.returncode == 2
    assert p.stderr.strip().splitlines() == [
        "bioseqnn: error: tune needs optuna: pip install 'bioseqnn[tune]'"
    ]


@pytest.mark.slow
def test_monitor_sets_the_direction_and_the_pruner_stops_trials_early(cli, data, tmp_path) -> None:
    space = {**TINY_SPACE, "training": {**TINY_SPACE["training"], "epochs": 4}}
    (tmp_path / "space.yaml").write_text(yaml.safe_dump(space))
    out = tmp_path / "best.bsnn"
    r = cli(
        "tune",
        data["fasta"],
        data["labels"],
        "-o",
        out,
        "--space",
        tmp_path / "space.yaml",
        "--trials",
        "10",
        "--monitor",
        "val_auroc",
        "--quiet",
    )
    assert r.code == 0, r.err
    rows = _table(tmp_path / "best.trials.tsv")
    complete = [row for row in rows if row["state"] == "complete"]
    best = max(complete, key=lambda row: (float(row["val_auroc"]), -int(row["trial"])))
    tune = _manifest(out)["tune"]
    assert tune["metric"] == "val_auroc" and tune["best_trial"] == int(best["trial"])
    assert all(row["epochs_trained"] == "4" for row in complete)
    pruned = [row for row in rows if row["state"] == "pruned"]
    assert pruned and all(int(row["epochs_trained"]) < 4 for row in pruned)
    assert tune["pruned"] == len(pruned)


@pytest.mark.slow
def test_space_follows_the_data_and_sqlite_holds_the_study(cli, tmp_path) -> None:
    """DNA regression: rc_augment is searched, class weights are not; a transformer
    whose max_length is below the longest sequence (50) is left out. The study is in an
    SQLite database given as --study."""
    records = (EXAMPLES / "promoters.fasta").read_text().split(">")[1:61]
    (tmp_path / "p.fasta").write_text("".join(">" + r for r in records))
    with (EXAMPLES / "promoters.csv").open() as fh:
        values = dict(row for row in csv.reader(fh))
    (tmp_path / "p.csv").write_text(
        "id,log2_expression\n"
        + "".join(f"{r.split()[0]},{values[r.split()[0]]}\n" for r in records)
    )
    space = {
        "families": ["gru", "transformer"],
        "model": {"hidden_size": [4, 8], "max_length": 40, "d_model": 8, "heads": 2, "ff_size": 8},
        "training": {
            "epochs": 1,
            "threads": 1,
            "rc_augment": [False, True],
            "class_weight": ["none", "balanced"],
            "lr": {"low": 1.0e-3, "high": 1.0e-2, "log": True},
        },
    }
    (tmp_path / "space.yaml").write_text(yaml.safe_dump(space))
    db = tmp_path / "tune.db"
    r = cli(
        "tune",
        tmp_path / "p.fasta",
        tmp_path / "p.csv",
        "-o",
        tmp_path / "best.bsnn",
        "--space",
        tmp_path / "space.yaml",
        "--trials",
        "4",
        "--study",
        f"sqlite:///{db}",
    )
    assert r.code == 0, r.err
    assert "transformer left out" in r.err
    rows = _table(tmp_path / "best.trials.tsv")
    assert {row["arch"] for row in rows if "arch" in row} <= {"gru", ""}
    assert "rc_augment" in rows[0] and "class_weight" not in rows[0]
    assert not (tmp_path / "best.tune.log").exists()
    study = optuna.load_study(study_name="bioseqnn-tune", storage=f"sqlite:///{db}")
    assert len(study.trials) == 4
    assert study.direction == optuna.study.StudyDirection.MINIMIZE  # val_loss
    assert _manifest(tmp_path / "best.bsnn")["tune"]["best_trial"] == study.best_trial.number


@pytest.fixture(scope="module")
def postgres_url():
    """A private PostgreSQL server on a Unix socket in a temporary folder, for the
    module's tests (skipped where PostgreSQL or psycopg2 is not installed). initdb
    refuses to run as root: there it runs as the 'postgres' user."""
    pytest.importorskip("psycopg2")
    found = shutil.which("initdb") or next(
        iter(sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))), None
    )
    if found is None:
        pytest.skip("PostgreSQL is not installed (initdb not found)")
    bin_dir = Path(found).resolve().parent
    # not under pytest's temporary folder, which only root may enter
    folder = Path(tempfile.mkdtemp(prefix="bioseqnn-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:
        if shutil.which("runuser") is None:
            pytest.skip("running as root without runuser to start PostgreSQL as postgres")
        shutil.chown(folder, "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    data_dir, port = folder / "data", 50000 + os.getpid() % 10000
    subprocess.run(
        [*as_user, str(bin_dir / "initdb"), "-D", str(data_dir), "-A", "trust", "-U", "postgres"],
        check=True,
        capture_output=True,
        timeout=120,
    )
    subprocess.run(
        [
            *as_user,
            str(bin_dir / "pg_ctl"),
            "-D",
            str(data_dir),
            "-w",
            "-l",
            str(folder / "server.log"),
            "-o",
            f"-k {folder} -p {port} -c listen_addresses=''",
            "start",
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    try:
        yield f"postgresql://postgres@/postgres?host={folder}&port={port}"
    finally:
        subprocess.run(
            [*as_user, str(bin_dir / "pg_ctl"), "-D", str(data_dir), "-m", "fast", "-w", "stop"],
            capture_output=True,
            timeout=120,
        )
        shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.slow
def test_two_processes_share_a_postgresql_study(data, tmp_path, postgres_url) -> None:
    procs = [
        _subprocess(
            _tune_args(
                data, tmp_path / "best.bsnn", "--trials", "2", "--study", postgres_url, "--join"
            )
        )
        for _ in range(2)
    ]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err.decode()
    study = optuna.load_study(study_name="bioseqnn-tune", storage=postgres_url)
    assert len(study.trials) == 4
    assert {t.state for t in study.trials} <= {
        optuna.trial.TrialState.COMPLETE,
        optuna.trial.TrialState.PRUNED,
    }
    # a new run on that storage without --resume or --join is refused
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "bioseqnn",
            *_tune_args(data, tmp_path / "best.bsnn", "--trials", "1", "--study", postgres_url),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert r.returncode == 2 and "a tune study exists in postgresql://..." in r.stderr


@pytest.mark.slow
def test_a_database_server_that_drops_connections_is_an_error_not_a_wait(data, tmp_path) -> None:
    """A PostgreSQL host that drops packets (down, firewalled) held each of tune's three
    attempts for the system's TCP timeout (over two minutes on Linux). A listening socket
    whose accept queue is full drops connections the same way."""
    pytest.importorskip("psycopg2")
    import socket

    with socket.socket() as server, socket.socket() as filler:
        server.bind(("127.0.0.1", 0))
        server.listen(0)
        filler.connect(server.getsockname())  # the queue is full from here on
        url = f"postgresql://u@127.0.0.1:{server.getsockname()[1]}/db"
        proc = _subprocess(
            _tune_args(data, tmp_path / "best.bsnn", "--trials", "1", "--study", url)
        )
        _, raw = proc.communicate(timeout=200)  # without a connection timeout: 409 s
    err = raw.decode()
    assert proc.returncode == 2, err
    assert err.startswith("bioseqnn: error: --study postgresql://...: cannot open")
    assert "timeout expired" in err and err.count("\n") == 1
    assert not (tmp_path / "best.bsnn").exists()


def test_database_urls_get_a_connection_timeout_unless_they_set_one() -> None:
    from bioseqnn.search.storage import CONNECT_TIMEOUT_S, _engine

    timeout = {"connect_args": {"connect_timeout": CONNECT_TIMEOUT_S}}
    for url in (
        "postgresql://u@h/db",
        "postgresql+psycopg2://u@h/db",
        "mysql+pymysql://u@h/db",
        "mysql://u@h/db",
    ):
        assert _engine(url) == timeout, url
    for url in ("sqlite:///runs.db", "postgresql://u@h/db?connect_timeout=60"):
        assert _engine(url) == {}, url


def test_the_python_api_returns_the_best_trial(data, tmp_path) -> None:
    import bioseqnn

    outcome = bioseqnn.tune(
        data["fasta"], data["labels"], tmp_path / "best.bsnn", trials=2, space=TINY_SPACE, seed=3
    )
    tune = _manifest(tmp_path / "best.bsnn")["tune"]
    assert (outcome.best_trial, outcome.monitor, outcome.trials) == (
        tune["best_trial"],
        tune["metric"],
        2,
    )
    assert outcome.value == tune["value"]
    assert outcome.table == tmp_path / "best.trials.tsv"
    with pytest.raises(bioseqnn.UsageError, match="model.colour"):
        bioseqnn.tune(
            data["fasta"],
            data["labels"],
            tmp_path / "x.bsnn",
            trials=1,
            space={"model": {"colour": [1]}},
        )


def test_per_position_labels_keep_every_position(cli, tmp_path) -> None:
    """Per-residue labels: convolution pooling would shorten the sequence, so the space's
    pool sizes are not used and every trial completes."""
    for name in ("ss_train.fasta", "ss_train_ss3.fasta"):
        records = (EXAMPLES / name).read_text().split(">")[1:21]
        (tmp_path / name).write_text("".join(">" + r for r in records))
    space = {
        **TINY_SPACE,
        "families": ["cnn"],
        "model": {**TINY_SPACE["model"], "pool_sizes": [2, 3]},
    }
    (tmp_path / "space.yaml").write_text(yaml.safe_dump(space))
    r = cli(
        "tune",
        tmp_path / "ss_train.fasta",
        tmp_path / "ss_train_ss3.fasta",
        "-o",
        tmp_path / "best.bsnn",
        "--space",
        tmp_path / "space.yaml",
        "--trials",
        "2",
        "--quiet",
    )
    assert r.code == 0, r.err
    rows = _table(tmp_path / "best.trials.tsv")
    assert [row["state"] for row in rows] == ["complete", "complete"]
    assert "pool_size_0" not in rows[0]
    assert _manifest(tmp_path / "best.bsnn")["model"]["pool_sizes"] == [1]


@pytest.mark.slow
def test_time_budget_stops_the_running_trial_after_an_epoch(cli, data, tmp_path) -> None:
    """--time bounds the running trial too: with a 2-second budget and trials of 400
    epochs (no early stopping), the first trial stops after an epoch past the budget,
    keeps its best epoch and is the best model; the table notes why it stopped."""
    space = {
        **TINY_SPACE,
        "families": ["cnn"],
        "training": {**TINY_SPACE["training"], "epochs": 400, "patience": 0},
    }
    (tmp_path / "space.yaml").write_text(yaml.safe_dump(space))
    r = cli(
        "tune",
        data["fasta"],
        data["labels"],
        "-o",
        tmp_path / "best.bsnn",
        "--space",
        tmp_path / "space.yaml",
        "--time",
        "2s",
    )
    assert r.code == 0, r.err
    rows = _table(tmp_path / "best.trials.tsv")
    assert len(rows) == 1 and rows[0]["state"] == "complete"
    epochs = int(rows[0]["epochs_trained"])
    assert 1 <= epochs < 400
    assert rows[0]["note"] == f"stopped by --time after epoch {epochs}"
    metrics = _manifest(tmp_path / "best.bsnn")["metrics"]
    assert metrics["epochs_run"] == epochs and metrics["stopped_early"] is True
    assert 1 <= metrics["best_epoch"] <= epochs


@pytest.mark.parametrize("records, searched", [("promoters", True), ("hemolytic", False)])
def test_rna_structure_is_searched_for_nucleic_records(
    cli, data, tmp_path, records, searched
) -> None:
    """training.structure is a parameter for DNA/RNA records (folded by ViennaRNA), and
    left out for proteins even when the space lists it."""
    pytest.importorskip("RNA")
    if records == "hemolytic":  # both classes: the module's peptides
        shutil.copy(data["fasta"], tmp_path / "s.fasta")
        shutil.copy(data["labels"], tmp_path / "s.csv")
    else:
        fasta = (EXAMPLES / f"{records}.fasta").read_text().split(">")[1:41]
        (tmp_path / "s.fasta").write_text("".join(">" + r for r in fasta))
        with (EXAMPLES / f"{records}.csv").open() as fh:
            rows = list(csv.reader(fh))
        values = dict(rows[1:])
        (tmp_path / "s.csv").write_text(
            f"id,{rows[0][1]}\n"
            + "".join(f"{r.split()[0]},{values[r.split()[0]]}\n" for r in fasta)
        )
    space = {
        **TINY_SPACE,
        "families": ["cnn"],
        "training": {
            **TINY_SPACE["training"],
            "epochs": 1,
            "structure": ["none", "mfe"],
            "rc_augment": [False, True],
        },
    }
    (tmp_path / "space.yaml").write_text(yaml.safe_dump(space))
    r = cli(
        "tune",
        tmp_path / "s.fasta",
        tmp_path / "s.csv",
        "-o",
        tmp_path / "best.bsnn",
        "--space",
        tmp_path / "space.yaml",
        "--trials",
        "4",
        "--seed",
        "2",
        "--no-defaults-first",
    )
    assert r.code == 0, r.err
    table = _table(tmp_path / "best.trials.tsv")
    assert [row["state"] for row in table] == ["complete"] * 4
    assert ("structure" in table[0]) is searched
    if searched:
        assert {row["structure"] for row in table} == {"none", "mfe"}
        # a folding trial has no strand setting (the two cannot go together)
        assert all((row["rc_augment"] == "") == (row["structure"] == "mfe") for row in table)
        best = min(table, key=lambda row: float(row["val_loss"]))
        model = _manifest(tmp_path / "best.bsnn")
        assert model["training"]["structure"] == best["structure"]


@pytest.mark.slow
def test_plots_draw_the_history_and_the_importances(cli, data, tmp_path) -> None:
    """--plots DIR: the optimisation history and the parameter importances, as PNG."""
    pytest.importorskip("matplotlib")
    r = cli(
        *_tune_args(
            data,
            tmp_path / "best.bsnn",
            "--trials",
            "5",
            "--seed",
            "4",
            "--plots",
            tmp_path / "figs",
        )
    )
    assert r.code == 0, r.err
    for name in ("optimisation_history.png", "param_importances.png"):
        assert (tmp_path / "figs" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"wrote {tmp_path / 'figs' / name}" in r.err
    # --format pdf: the same figures as vector files (fonts embedded as TrueType)
    r = cli(
        *_tune_args(
            data,
            tmp_path / "best.bsnn",
            "--trials",
            "1",
            "--resume",
            "--plots",
            tmp_path / "pdf",
            "--format",
            "pdf",
            "--quiet",
        )
    )
    assert r.code == 0, r.err
    assert sorted(p.name for p in (tmp_path / "pdf").iterdir()) == [
        "optimisation_history.pdf",
        "param_importances.pdf",
    ]
    assert (tmp_path / "pdf" / "optimisation_history.pdf").read_bytes()[:5] == b"%PDF-"
    r = cli(
        *_tune_args(
            data, tmp_path / "x.bsnn", "--trials", "1", "--plots", tmp_path / "f", "--dpi", "20"
        )
    )
    assert r.code == 2 and not (tmp_path / "x.trials.tsv").exists()


@pytest.mark.slow
def test_a_terminal_shows_a_live_bar_with_the_best_value(data, tmp_path) -> None:
    """On a terminal (a real pseudo-terminal here) the search shows a bar counting the
    trials with the best value so far; the trial lines still print, above it."""
    import pty

    leader, follower = pty.openpty()
    env = dict(os.environ, COLUMNS="120", TERM="xterm")
    env.pop("NO_COLOR", None)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bioseqnn",
            *_tune_args(data, tmp_path / "best.bsnn", "--trials", "3", "--seed", "1"),
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=follower,
        env=env,
        cwd=tmp_path,
    )
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    assert proc.wait(timeout=300) == 0
    shown = b"".join(chunks).decode("utf-8", "replace")
    best = float(_table(tmp_path / "best.trials.tsv")[0]["val_loss"])
    for row in _table(tmp_path / "best.trials.tsv"):
        best = min(best, float(row["val_loss"]))
    assert f"search: 3 trial(s), best {best:.4f}" in shown
    assert all(f"bioseqnn: trial {n}: val_loss" in shown for n in range(3))


def test_the_first_trial_is_trains_defaults(cli, data, tmp_path) -> None:
    """A new study starts with train's own recipe (with the space's fixed epochs and
    threads) as trial 0: no sampled parameters, noted in the table; the search's best
    is never worse than it on validation."""
    out = tmp_path / "best.bsnn"
    r = cli(*_tune_args(data, out, "--trials", "3", "--seed", "1", space="space_with_default"))
    assert r.code == 0, r.err
    assert "trial 0: " in r.err and "train's defaults" in r.err
    rows = _table(tmp_path / "best.trials.tsv")
    assert rows[0]["note"] == "train's defaults" and rows[0]["arch"] == ""
    assert all(rows[i]["arch"] in [*TINY_SPACE["families"], "cnn-gru"] for i in (1, 2))
    first = _manifest(tmp_path / "best.trials" / "000.bsnn")
    plain = tmp_path / "plain.bsnn"  # the same run through train, with no options
    assert (
        cli(
            "train",
            data["fasta"],
            data["labels"],
            "-o",
            plain,
            "--epochs",
            "2",
            "--threads",
            "1",
            "--seed",
            "1",
            "--quiet",
        ).code
        == 0
    )
    assert first["model"] == _manifest(plain)["model"]
    assert first["metrics"]["best"]["val_loss"] == pytest.approx(
        _manifest(plain)["metrics"]["best"]["val_loss"], rel=1e-6
    )
    tune = _manifest(out)["tune"]
    assert tune["value"] <= first["metrics"]["best"]["val_loss"]
    # --no-defaults-first: every trial sampled
    r = cli(
        *_tune_args(
            data,
            tmp_path / "s.bsnn",
            "--trials",
            "2",
            "--no-defaults-first",
            "--quiet",
            space="space_with_default",
        )
    )
    assert r.code == 0, r.err
    assert all(row["arch"] for row in _table(tmp_path / "s.trials.tsv"))
    # families without train's architecture (cnn-gru): no defaults trial, and the best
    # model is one of the families
    r = cli(*_tune_args(data, tmp_path / "f.bsnn", "--trials", "1", "--seed", "1"))
    assert r.code == 0, r.err
    assert "no trial of train's defaults: their architecture (cnn-gru) is not among" in r.err
    (row,) = _table(tmp_path / "f.trials.tsv")
    assert row["arch"] in TINY_SPACE["families"] and row["note"] == ""
    assert _manifest(tmp_path / "f.bsnn")["model"]["arch"] in TINY_SPACE["families"]


@pytest.mark.slow
def test_a_ctrl_c_lost_in_a_finaliser_still_stops_the_search() -> None:
    """Python drops an exception raised inside __del__: a Ctrl-C that lands there would
    let the search run on. tune remembers the signal and raises it again at the next
    epoch (here: at the next check). Run in a fresh interpreter, the main thread of a
    process whose SIGINT is Python's own (a test runner's worker may differ)."""
    script = """
import os, signal, time
from bioseqnn.search.trials import _signalled, _signals_remembered

class Freed:
    def __del__(self):
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.1)  # the handler runs here, inside the finaliser

running = {}
with _signals_remembered(running):
    Freed()  # freed at once: its KeyboardInterrupt is printed and dropped
    print("remembered", running["signal"][0] == signal.SIGINT, flush=True)
    try:
        _signalled(running)
    except KeyboardInterrupt:
        print("raised again", flush=True)
print("restored", signal.getsignal(signal.SIGINT) is signal.default_int_handler)
"""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    p = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    assert p.stdout.splitlines() == ["remembered True", "raised again", "restored True"], (
        p.stdout + p.stderr
    )
    assert "KeyboardInterrupt" in p.stderr  # what Python printed and dropped


def test_the_trials_table_has_one_column_per_name(tmp_path: Path) -> None:
    """A searched epochs (the cap) and the epochs a trial trained were both 'epochs':
    csv.DictReader kept one, pandas and R renamed the other."""
    from bioseqnn.search.results import _write_table

    trial = optuna.trial.create_trial(
        params={"epochs": 30, "lr": 0.001},
        distributions={
            "epochs": optuna.distributions.CategoricalDistribution([10, 30]),
            "lr": optuna.distributions.FloatDistribution(1e-4, 1e-2, log=True),
        },
        value=0.5,
        user_attrs={"epochs": 12},
    )
    path = tmp_path / "best.trials.tsv"
    _write_table([trial], "val_loss", path)
    header = path.read_text().splitlines()[0].split("\t")
    assert len(header) == len(set(header))
    (row,) = _table(path)
    assert (row["epochs_trained"], row["epochs"], row["lr"]) == ("12", "30", "0.001")


def _refused_space(cli, data, tmp_path: Path, text: str) -> str:
    """tune with the space ``text``: one usage error line naming the file, before any
    trial (no log), never an 'unexpected' error."""
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    r = cli(
        "tune",
        data["fasta"],
        data["labels"],
        "-o",
        tmp_path / "best.bsnn",
        "--space",
        bad,
        "--trials",
        "2",
    )
    assert r.code == 2, r.err[:500]
    assert r.out == ""
    lines = r.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"bioseqnn: error: {bad}: "), r.err[:500]
    assert "unexpected" not in r.err and "Traceback" not in r.err
    assert not (tmp_path / "best.tune.log").exists()
    return lines[0]


@pytest.mark.parametrize(
    ("text", "named", "got"),
    [
        ("model:\n  conv_layers: 1000000\n", "'model.conv_layers'", "1,000,000"),
        ("model:\n  conv_layers: {low: 1, high: 100000}\n", "'model.conv_layers.high'", "100,000"),
        ("model:\n  conv_layers: [2, 65]\n", "'model.conv_layers'", "65"),
        ("model:\n  conv_layers: 0\n", "'model.conv_layers'", "0"),
        ("model:\n  conv_layers: {low: -3, high: 2}\n", "'model.conv_layers.low'", "-3"),
    ],
)
def test_conv_layers_is_bounded_as_train_bounds_the_layers(
    cli, data, tmp_path, text, named, got
) -> None:
    """conv_layers 1000000 passed the space's checks: every trial then failed on
    'model.channels' (a key the space never gave) after reading the data, exit 1."""
    from bioseqnn.config import MODEL_LIST_MAX

    line = _refused_space(cli, data, tmp_path, "families: [cnn]\n" + text)
    assert f"space key {named} must be from 1 to {MODEL_LIST_MAX}" in line
    assert f"got {got})" in line


def test_conv_layers_up_to_what_train_takes_is_a_valid_space() -> None:
    from bioseqnn.config import MODEL_LIST_MAX
    from bioseqnn.search.space import validate_space

    for value in (1, MODEL_LIST_MAX, [1, MODEL_LIST_MAX], {"low": 1, "high": MODEL_LIST_MAX}):
        space = validate_space({"families": ["cnn"], "model": {"conv_layers": value}})
        assert space["model"]["conv_layers"] == value


HOSTILE_SPACES = {
    # nested thousands deep: PyYAML's recursive composer ran out of stack
    "deep lists": ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
    "deep mappings": ("model: " + "{b: " * 5000 + "1" + "}" * 5000, "nested too deeply"),
    # a step of nan crashed the sampler (decimal.InvalidOperation)
    "nan step": (
        "training:\n  lr: {low: 0.001, high: 0.01, step: .nan}\n",
        "space key 'training.lr': step must be a finite number above 0",
    ),
    # a step that does not divide the range: Optuna lowered high, with a raw warning
    "step past high": (
        "model:\n  hidden_size: {low: 16, high: 250, step: 16}\n",
        "space key 'model.hidden_size': step 16 does not divide high - low (250 - 16)",
    ),
    # not names: sorting or hashing them was an unexpected TypeError
    "mixed keys": ("1: a\nb: 2\n", "unknown space key 1; expected families"),
    "a list as a family": ("families: [[gru]]\n", "unknown architecture ['gru']"),
    "a mapping as a family": ("families: [{gru: 1}]\n", "unknown architecture {'gru': 1}"),
    # long values, written out whole
    "long family": (f"families: [{'x' * 900_000}]\n", "unknown architecture 'xxx"),
    "long key": (f"? {'x' * 900_000}\n: 1\n", "unknown space key 'xxx"),
    "long model key": (f"model:\n  ? {'x' * 900_000}\n  : 1\n", "unknown space key 'model.xxx"),
    "long range key": (
        f"model:\n  hidden_size:\n    low: 1\n    high: 2\n    ? {'x' * 900_000}\n    : 3\n",
        "(got keys low, high, xxx",
    ),
    "long choice": (f"model:\n  pooling: [[{'x' * 900_000}]]\n", "a single value, got ['xxx"),
    # control characters, shown escaped
    "control range key": (
        'model:\n  hidden_size: {low: 1, high: 2, "\\e[2J\\0": 3}\n',
        "(got keys low, high, \\x1b[2J\\x00)",
    ),
    "control key": ('model:\n  "a\\0\\e[2J": 1\n', "unknown space key 'model.a\\x00\\x1b[2J'"),
    "control family": ('families: ["gr\\eu"]\n', "unknown architecture 'gr\\x1bu'"),
}


@pytest.mark.parametrize(("text", "said"), HOSTILE_SPACES.values(), ids=HOSTILE_SPACES.keys())
def test_a_hostile_space_is_one_short_printable_line(cli, data, tmp_path, text, said) -> None:
    line = _refused_space(cli, data, tmp_path, text)
    assert said in line
    assert line.isprintable(), repr(line[:500])
    assert len(line) < len(str(tmp_path)) + 300, line[:500]
    assert "x" * 100 not in line
