"""Ensembles: several seeds trained into one model file that predicts their mean."""

from __future__ import annotations

import csv
import io
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from bioseqnn.api import train
from bioseqnn.bundle import load_bundle, save_bundle
from bioseqnn.config import RunConfig, config_from_dict
from bioseqnn.errors import ModelFileError
from bioseqnn.modelfile import read_manifest
from bioseqnn.models.base import Ensemble, combine_members
from bioseqnn.tasks import output_activation

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

ZERO, ONE = torch.zeros(1), torch.ones(1)


def config(**training: object) -> RunConfig:
    return config_from_dict(
        {
            "model": {
                "arch": "cnn",
                "channels": [16, 16],
                "kernel_sizes": [5, 3],
                "pool_sizes": [1, 1],
            },
            "training": {"epochs": 2, "threads": 1, **training},
        }
    )


def read_table(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text), delimiter="\t"))


# --------------------------------------------------------------------------- combining


def test_combined_classes_are_the_log_of_the_mean_probability() -> None:
    torch.manual_seed(1)
    outs = torch.randn(3, 5, 4) * 3  # 3 members, 5 sequences, 4 classes
    combined = combine_members("multiclass", outs)
    mean = torch.softmax(outs, dim=-1).mean(dim=0)
    assert torch.allclose(torch.softmax(combined, dim=-1), mean, atol=1e-6)
    assert torch.allclose(combined.exp().sum(dim=-1), torch.ones(5), atol=1e-6)
    # a single member gives its own probabilities back
    assert torch.allclose(
        torch.softmax(combine_members("multiclass", outs[:1]), dim=-1),
        torch.softmax(outs[0], dim=-1),
        atol=1e-6,
    )


def test_combined_binary_logit_gives_the_mean_sigmoid_even_when_saturated() -> None:
    outs = torch.tensor([[[40.0], [-3.0], [0.0]], [[-40.0], [5.0], [0.0]]])
    combined = combine_members("binary", outs)
    assert torch.isfinite(combined).all()
    mean = torch.sigmoid(outs).mean(dim=0)
    assert torch.allclose(torch.sigmoid(combined), mean, atol=1e-6)
    assert abs(float(torch.sigmoid(combined[0])) - 0.5) < 1e-6  # one sure yes, one sure no
    assert torch.allclose(
        output_activation("binary", combined, ZERO, ONE)[:, 1], mean.view(-1), atol=1e-6
    )


def test_combined_regression_is_the_mean_and_positions_keep_their_shape() -> None:
    outs = torch.tensor([[[1.0], [2.0]], [[3.0], [6.0]]])
    assert combine_members("regression", outs).tolist() == [[2.0], [4.0]]
    per_pos = torch.randn(4, 2, 7, 3)  # members, sequences, positions, classes
    combined = combine_members("per-position", per_pos)
    assert combined.shape == (2, 7, 3)
    assert torch.allclose(
        torch.softmax(combined, -1), torch.softmax(per_pos, -1).mean(0), atol=1e-6
    )


# --------------------------------------------------------------------------- training


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """An ensemble of three and a single model with the second member's seed, both
    validated on the same explicit records (a run's split would follow its seed)."""
    ex = Path(__file__).resolve().parents[2] / "example_data"
    out = tmp_path_factory.mktemp("ensemble")
    records = (ex / "hemolytic.fasta").read_text().split(">")[1:]
    lines = (ex / "hemolytic.csv").read_text().splitlines(keepends=True)
    (out / "train.fasta").write_text("".join(">" + r for r in records[100:]))
    (out / "val.fasta").write_text("".join(">" + r for r in records[:100]))
    (out / "train.csv").write_text(lines[0] + "".join(lines[101:]))
    (out / "val.csv").write_text(lines[0] + "".join(lines[1:101]))
    val = {"val_fasta": out / "val.fasta", "val_labels": out / "val.csv"}
    train(out / "train.fasta", out / "train.csv", out / "ens.bsnn", config(ensemble=3), **val)
    train(out / "train.fasta", out / "train.csv", out / "seed1.bsnn", config(seed=1), **val)
    return {
        "ensemble": out / "ens.bsnn",
        "seed1": out / "seed1.bsnn",
        "dir": out,
        "fasta": ex / "hemolytic.fasta",
        "labels": ex / "hemolytic.csv",
    }


def test_ensemble_file_records_members_and_their_seeds(trained: dict[str, Path]) -> None:
    manifest, _ = read_manifest(trained["ensemble"])
    assert manifest["format_version"] == 4  # ensembles are format 2, digests format 4
    assert manifest["ensemble"] == 3
    members = manifest["metrics"]["members"]
    assert [m["seed"] for m in members] == [0, 1, 2]
    assert all(m["epochs_run"] == 2 for m in members)
    assert 0 < manifest["metrics"]["best"]["val_accuracy"] <= 1
    single, _ = read_manifest(trained["seed1"])
    assert single["format_version"] == 4 and "ensemble" not in single
    assert manifest["parameters"] == 3 * single["parameters"]
    # the per-epoch log has one row per member and epoch, member first
    rows = read_table((trained["dir"] / "ens.log.tsv").read_text())
    assert [(r["member"], r["epoch"]) for r in rows] == [
        (str(m), str(e)) for m in (1, 2, 3) for e in (1, 2)
    ]


def test_member_is_the_model_a_single_run_with_its_seed_trains(
    trained: dict[str, Path],
) -> None:
    ensemble = load_bundle(trained["ensemble"]).model
    single = load_bundle(trained["seed1"]).model
    assert isinstance(ensemble, Ensemble)
    second = ensemble.members[1].state_dict()
    for name, value in single.state_dict().items():
        assert torch.equal(second[name], value), name
    first = ensemble.members[0].state_dict()
    assert not all(torch.equal(first[k], second[k]) for k in first)  # seeds differ


def test_predictions_are_the_mean_of_the_members_probabilities(
    trained: dict[str, Path], cli
) -> None:
    result = cli("predict", trained["ensemble"], trained["fasta"])
    assert result.code == 0, result.err
    rows = read_table(result.out)
    assert len(rows) == 1104
    bundle = load_bundle(trained["ensemble"])
    assert isinstance(bundle.model, Ensemble)
    per_member = []
    for i, member in enumerate(bundle.model.members):
        path = trained["dir"] / f"member{i}.bsnn"
        save_bundle(
            path,
            member,
            {
                k: v
                for k, v in bundle.manifest.items()
                if k not in ("format", "format_version", "ensemble")
            },
        )
        out = cli("predict", path, trained["fasta"])
        assert out.code == 0, out.err
        per_member.append([float(r["prob_1"]) for r in read_table(out.out)])
    mean = np.mean(per_member, axis=0)
    got = np.array([float(r["prob_1"]) for r in rows])
    assert np.abs(got - mean).max() < 2e-6
    assert np.abs(np.array(per_member[0]) - np.array(per_member[1])).max() > 1e-3
    assert [r["predicted"] for r in rows] == ["1" if p >= 0.5 else "0" for p in got]


def test_evaluate_and_info_read_an_ensemble(trained: dict[str, Path], cli) -> None:
    result = cli("evaluate", trained["ensemble"], trained["fasta"], trained["labels"])
    assert result.code == 0, result.err
    metrics = json.loads(result.out)["metrics"]
    assert 0.6 < metrics["accuracy"] <= 1
    info = cli("info", trained["ensemble"])
    assert info.code == 0
    assert "3 members, seeds 0, 1, 2" in " ".join(info.out.split())


def test_regression_ensemble_predicts_the_mean_value(tmp_path: Path, cli) -> None:
    ex = Path(__file__).resolve().parents[2] / "example_data"
    out = tmp_path / "prom.bsnn"
    train(ex / "promoters.fasta", ex / "promoters.csv", out, config(ensemble=2))
    bundle = load_bundle(out)
    assert isinstance(bundle.model, Ensemble)
    result = cli("predict", out, ex / "promoters.fasta")
    assert result.code == 0, result.err
    got = np.array([float(r["log2_expression"]) for r in read_table(result.out)])
    values = []
    for i, member in enumerate(bundle.model.members):
        path = tmp_path / f"m{i}.bsnn"
        save_bundle(path, member, {k: v for k, v in bundle.manifest.items() if k != "ensemble"})
        res = cli("predict", path, ex / "promoters.fasta")
        values.append([float(r["log2_expression"]) for r in read_table(res.out)])
    assert np.abs(got - np.mean(values, axis=0)).max() < 1e-4
    assert np.abs(np.subtract(*values)).max() > 1e-3


def test_per_position_ensemble_from_the_command_line(tmp_path: Path, cli) -> None:
    ex = Path(__file__).resolve().parents[2] / "example_data"
    model = tmp_path / "ss.bsnn"
    result = cli(
        "train",
        ex / "ss_train.fasta",
        ex / "ss_train_ss3.fasta",
        "--position-mask",
        ex / "ss_train_mask.fasta",
        "--arch",
        "cnn",
        "--channels",
        "16",
        "--kernel-sizes",
        "7",
        "--dilations",
        "1",
        "--pool-sizes",
        "1",
        "--epochs",
        "2",
        "--ensemble",
        "2",
        "--threads",
        "1",
        "-o",
        model,
    )
    assert result.code == 0, result.err
    assert "member 2  epoch 2/2" in result.err
    assert "ensemble of 2 on validation" in result.err
    pred = cli("predict", model, ex / "ss_test.fasta")
    assert pred.code == 0, pred.err
    rows = read_table(pred.out)
    lengths = sum(
        len(s)
        for s in (ex / "ss_test.fasta").read_text().split(">")[1:]
        for s in ["".join(s.splitlines()[1:])]
    )
    assert len(rows) == lengths
    probs = np.array([[float(r[f"prob_{c}"]) for c in "CEH"] for r in rows])
    assert np.abs(probs.sum(axis=1) - 1).max() < 1e-4


def test_resume_retrains_only_the_member_without_a_checkpoint(
    tmp_path: Path,
    trained: dict[str, Path],
) -> None:
    ckpt = tmp_path / "ck"
    cfg = config(ensemble=2, checkpoint_dir=str(ckpt))
    first = train(trained["fasta"], trained["labels"], tmp_path / "a.bsnn", cfg)
    assert sorted(p.name for p in ckpt.iterdir()) == ["member-1", "member-2"]
    shutil.rmtree(ckpt / "member-2")  # the run was killed before member 2 began
    again = train(trained["fasta"], trained["labels"], tmp_path / "b.bsnn", cfg, resume=True)
    assert again.manifest["metrics"]["members"][0]["resumed_from"] == 2
    assert again.manifest["metrics"]["members"][1]["resumed_from"] == 0
    a, b = load_bundle(tmp_path / "a.bsnn").model, load_bundle(tmp_path / "b.bsnn").model
    for name, value in a.state_dict().items():
        assert torch.equal(b.state_dict()[name], value), name
    assert math.isclose(
        first.manifest["metrics"]["best"]["val_loss"], again.manifest["metrics"]["best"]["val_loss"]
    )


@pytest.mark.parametrize(
    "members, version, message",
    [
        (1, 2, "ensemble must be a member count from 2 to 64"),
        (65, 2, "ensemble must be a member count from 2 to 64"),
        ("3", 2, "ensemble must be a member count from 2 to 64"),
        (3, 1, "an ensemble needs format_version 2"),
        (2, 4, r"weights do not fit the manifest \(unexpected tensor 'members\.2\."),
    ],
)
def test_damaged_ensemble_manifest_is_refused(
    trained: dict[str, Path],
    tmp_path: Path,
    members: object,
    version: int,
    message: str,
) -> None:
    from safetensors.torch import load_file, save_file

    manifest, _ = read_manifest(trained["ensemble"])
    manifest.update(ensemble=members, format_version=version)
    path = tmp_path / "bad.bsnn"
    save_file(load_file(trained["ensemble"]), path, metadata={"bioseqnn": json.dumps(manifest)})
    with pytest.raises(ModelFileError, match=message):
        load_bundle(path)


def test_bad_ensemble_setting_is_a_usage_error(
    trained: dict[str, Path], cli, tmp_path: Path
) -> None:
    result = cli(
        "train", trained["fasta"], trained["labels"], "--ensemble", "0", "-o", tmp_path / "m.bsnn"
    )
    assert result.code == 2
    assert "error: --ensemble must be from 1 to 64\n" in result.err
    assert not (tmp_path / "m.bsnn").exists()


def test_ensemble_command_combines_separately_trained_members(
    trained: dict[str, Path],
    cli,
    tmp_path: Path,
) -> None:
    """The members of a --ensemble 3 run, saved as three files and combined again,
    predict byte for byte what the run's own file predicts."""
    bundle = load_bundle(trained["ensemble"])
    assert isinstance(bundle.model, Ensemble)
    parts = []
    for i, member in enumerate(bundle.model.members):
        parts.append(tmp_path / f"part{i}.bsnn")
        save_bundle(
            parts[-1],
            member,
            {**{k: v for k, v in bundle.manifest.items() if k != "ensemble"}, "seed": i},
        )
    out = tmp_path / "combined.bsnn"
    result = cli("ensemble", parts[0], parts[1], parts[2], "-o", out)
    assert result.code == 0, result.err
    manifest, _ = read_manifest(out)
    assert manifest["ensemble"] == 3
    assert [m["seed"] for m in manifest["metrics"]["members"]] == [0, 1, 2]
    combined = cli("predict", out, trained["fasta"])
    original = cli("predict", trained["ensemble"], trained["fasta"])
    assert combined.code == 0 and combined.out == original.out
    # an ensemble and a single model: their members are put together
    nested = cli("ensemble", out, trained["seed1"], "-o", tmp_path / "four.bsnn")
    assert nested.code == 0, nested.err
    assert read_manifest(tmp_path / "four.bsnn")[0]["ensemble"] == 4


def test_files_that_differ_in_strand_averaging_are_combined_with_a_warning(
    cli, examples: Path, tmp_path: Path
) -> None:
    """--rc-average is a default of prediction, one per ensemble: the first file's is
    kept, and a mix is said in one line (it changed predictions with the files' order
    without a word)."""
    dna = tmp_path / "dna.bsnn"
    small = ("--arch", "cnn", "--channels", "8", "--kernel-sizes", "5", "--epochs", "1", "-q")
    fasta, labels = examples / "ncrna_train.fasta", examples / "ncrna_train.csv"
    assert cli("train", fasta, labels, "-o", dna, *small).code == 0
    bundle = load_bundle(dna)
    member, manifest = bundle.model, bundle.manifest
    plain, both = tmp_path / "plain.bsnn", tmp_path / "both.bsnn"
    save_bundle(
        plain, member, {**manifest, "training": {**manifest["training"], "rc_average": False}}
    )
    save_bundle(
        both, member, {**manifest, "training": {**manifest["training"], "rc_average": True}}
    )
    for first, second, kept in ((plain, both, False), (both, plain, True)):
        out = tmp_path / f"{first.stem}_first.bsnn"
        result = cli("ensemble", first, second, "-o", out)
        assert result.code == 0, result.err
        assert (
            "warning: the model files differ in --rc-average (1 of 2 average both strands): "
            "the ensemble takes the first file's, "
            + ("averaging both strands" if kept else "the strand given")
        ) in result.err
        assert read_manifest(out)[0]["training"]["rc_average"] is kept
    same = cli("ensemble", plain, plain, "-o", tmp_path / "same.bsnn")
    assert same.code == 0 and "--rc-average" not in same.err


@pytest.mark.slow
def test_ensemble_command_combines_different_architectures(
    trained: dict[str, Path],
    cli,
    tmp_path: Path,
) -> None:
    """A CNN and a bidirectional GRU trained apart make one file: each member keeps its
    own network, and the file predicts their mean probability."""
    gru_file, both = tmp_path / "gru.bsnn", tmp_path / "mixed.bsnn"
    gru = config()
    gru.model.arch, gru.model.hidden_size, gru.model.bidirectional = "gru", 8, True
    train(
        trained["dir"] / "train.fasta",
        trained["dir"] / "train.csv",
        gru_file,
        gru,
        val_fasta=trained["dir"] / "val.fasta",
        val_labels=trained["dir"] / "val.csv",
    )
    result = cli("ensemble", trained["seed1"], gru_file, "-o", both)
    assert result.code == 0, result.err
    manifest, _ = read_manifest(both)
    assert manifest["ensemble"] == 2
    assert [m["arch"] for m in manifest["member_models"]] == ["cnn", "gru"]
    assert manifest["model"] == manifest["member_models"][0]
    assert manifest["member_models"][1]["pooling"] == "last"  # resolved, not "auto"
    model = load_bundle(both).model
    assert isinstance(model, Ensemble)
    assert [m.config.arch for m in model.members] == ["cnn", "gru"]
    probs = []
    for path in (trained["seed1"], gru_file, both):
        out = cli("predict", path, trained["fasta"])
        assert out.code == 0, out.err
        probs.append(np.array([float(r["prob_1"]) for r in read_table(out.out)]))
    assert len(probs[2]) == 1104
    assert np.abs(probs[2] - (probs[0] + probs[1]) / 2).max() < 2e-6
    assert np.abs(probs[0] - probs[1]).max() > 1e-3  # two different models
    shown = " ".join(cli("info", both).out.split())
    assert "1 x cnn, channels 16,16" in shown and "1 x gru, hidden-size 8" in shown
    config_text = cli("config", "--from", both).out
    assert "first member's" in config_text and "arch: cnn" in config_text
    # members of one architecture are written as before: no per-member settings
    again = cli("ensemble", trained["seed1"], trained["seed1"], "-o", tmp_path / "same.bsnn")
    assert again.code == 0, again.err
    assert "member_models" not in read_manifest(tmp_path / "same.bsnn")[0]


def test_mixed_ensemble_accepts_what_every_member_accepts(tmp_path: Path) -> None:
    """A transformer member's max-length bounds the whole ensemble."""
    from bioseqnn.errors import DataError
    from bioseqnn.models.base import ModelConfig, SequenceModel, check_lengths

    cnn = SequenceModel(
        ModelConfig(arch="cnn", channels=[4], kernel_sizes=[3], dilations=[1], pool_sizes=[1]),
        20,
        2,
    )
    short = SequenceModel(
        ModelConfig(arch="transformer", d_model=8, heads=2, ff_size=8, max_length=50), 20, 2
    )
    assert cnn.max_length is None and short.max_length == 50
    assert Ensemble([cnn, short], "multiclass").max_length == 50
    assert Ensemble([cnn, cnn], "multiclass").max_length is None
    with pytest.raises(
        DataError,
        match=r"'long' has 60 positions, more than this "
        r"ensemble's max-length 50 \(1 record",
    ):
        check_lengths(Ensemble([cnn, short], "multiclass"), ["ok", "long"], [50, 60], "x.fa")


def test_damaged_member_models_are_refused(trained: dict[str, Path], tmp_path: Path) -> None:
    from safetensors.torch import load_file, save_file

    manifest, _ = read_manifest(trained["ensemble"])
    tensors = load_file(trained["ensemble"])
    for members, message in (
        ([manifest["model"]] * 2, "one config per ensemble member"),
        (
            [manifest["model"]] * 2 + [{"arch": "cnn", "hidden_size": "big"}],
            r"member_models\[2\]\.hidden_size has an invalid value",
        ),
        (
            [manifest["model"]] * 2 + [{**manifest["model"], "channels": [64, 64]}],
            "weights do not fit the manifest",
        ),
    ):
        path = tmp_path / "bad.bsnn"
        save_file(
            tensors, path, metadata={"bioseqnn": json.dumps({**manifest, "member_models": members})}
        )
        with pytest.raises(ModelFileError, match=message):
            load_bundle(path)


def test_ensemble_command_refuses_members_that_do_not_fit(
    trained: dict[str, Path],
    cli,
    tmp_path: Path,
) -> None:
    other = tmp_path / "named.bsnn"
    named = trained["dir"] / "named.csv"  # the same records, classes named no/yes
    lines = (trained["dir"] / "train.csv").read_text().splitlines()
    named.write_text(
        "\n".join(
            lines[:1] + [line.replace(",0", ",no").replace(",1", ",yes") for line in lines[1:]]
        )
        + "\n"
    )
    train(trained["dir"] / "train.fasta", named, other, config())
    out = tmp_path / "never.bsnn"
    result = cli("ensemble", trained["seed1"], other, "-o", out)
    assert result.code == 2
    assert "differ in task" in result.err
    assert "Traceback" not in result.err
    single = cli("ensemble", trained["seed1"], "-o", out)
    assert single.code == 2 and "two or more model files" in single.err
    assert not out.exists()
