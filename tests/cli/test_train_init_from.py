"""Fine-tuning: train --init-from starts from another model file's weights."""

from __future__ import annotations

import hashlib
import random
import re
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

from bioseqnn import api
from bioseqnn.bundle import load_bundle
from bioseqnn.cli import main
from bioseqnn.config import RunConfig, load_config
from bioseqnn.errors import ModelFileError, SettingError, UsageError
from bioseqnn.modelfile import read_manifest

EXAMPLES = Path(__file__).resolve().parents[2] / "example_data"
# small and quick: one thread, no schedule, a rate that learns in a few epochs
LSTM = [
    "--arch",
    "lstm",
    "--hidden-size",
    "16",
    "--lr",
    "0.01",
    "--schedule",
    "none",
    "--threads",
    "1",
    "--seed",
    "0",
]
CHILD = ["--lr", "0.01", "--schedule", "none", "--threads", "1", "--seed", "0", "--epochs", "1"]


def _split_hemolytic(folder: Path) -> dict[str, Path]:
    """The hemolytic peptides in two disjoint halves (a.*, b.*; seeded), and b's records
    relabelled into three classes by length (b3.csv)."""
    records = (EXAMPLES / "hemolytic.fasta").read_text().split(">")[1:]
    rows = (EXAMPLES / "hemolytic.csv").read_text().splitlines()[1:]
    order = list(range(len(records)))
    random.Random(0).shuffle(order)
    out: dict[str, Path] = {}
    for name, part in (("a", order[::2]), ("b", order[1::2])):
        out[f"{name}.fasta"] = folder / f"{name}.fasta"
        out[f"{name}.csv"] = folder / f"{name}.csv"
        out[f"{name}.fasta"].write_text("".join(">" + records[i] for i in part))
        out[f"{name}.csv"].write_text("id,hemolytic\n" + "".join(rows[i] + "\n" for i in part))
    three = []
    for i in order[1::2]:
        rid, seq = records[i].split("\n", 1)
        n = len(seq.replace("\n", ""))
        three.append(f"{rid.split()[0]},{'short' if n < 15 else 'mid' if n < 25 else 'long'}\n")
    out["b3.csv"] = folder / "b3.csv"
    out["b3.csv"].write_text("id,size\n" + "".join(three))
    return out


def _train(*args: str | Path) -> None:
    assert main(["train", *map(str, args), "--quiet"]) == 0


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return _split_hemolytic(tmp_path_factory.mktemp("hemolytic"))


@pytest.fixture(scope="module")
def parent(data: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An LSTM trained on half the hemolytic peptides (validation loss about 0.21)."""
    out = tmp_path_factory.mktemp("parent") / "parent.bsnn"
    _train(data["a.fasta"], data["a.csv"], "-o", out, *LSTM, "--epochs", "12")
    return out


def _best(path: Path) -> dict[str, Any]:
    manifest, _ = read_manifest(path)
    return manifest["metrics"]["best"]


def _part(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}


def test_fine_tuning_beats_a_fresh_start_after_one_epoch(
    cli, data: dict[str, Path], parent: Path, tmp_path: Path
) -> None:
    # the other half of the records: the parent never saw the child's validation records
    fresh, tuned = tmp_path / "fresh.bsnn", tmp_path / "tuned.bsnn"
    r = cli("train", data["b.fasta"], data["b.csv"], "-o", fresh, *LSTM, "--epochs", "1")
    assert r.code == 0, r.err
    r = cli("train", data["b.fasta"], data["b.csv"], "-o", tuned, "--init-from", parent, *CHILD)
    assert r.code == 0, r.err
    assert r.out == ""
    assert "backbone copied, head too (the same outputs)" in r.err
    a, b = _best(fresh), _best(tuned)
    # measured: fresh val_loss 0.684, accuracy 0.53 (the majority); tuned 0.41, 0.85
    assert b["val_loss"] < a["val_loss"] - 0.15, (a, b)
    assert b["val_accuracy"] > a["val_accuracy"] + 0.15, (a, b)
    assert "overstate" not in r.err  # disjoint halves: no validation record seen before
    # the parent's network settings are the child's
    assert read_manifest(tuned)[0]["model"] == read_manifest(parent)[0]["model"]


@pytest.mark.parametrize("arch", ["lstm", "cnn"])
def test_freeze_backbone_keeps_the_parents_backbone_exactly(
    cli, data: dict[str, Path], tmp_path: Path, arch: str
) -> None:
    if arch == "lstm":
        network = LSTM
    else:  # batch norm: its running statistics must stay the parent's too
        network = [
            "--arch",
            "cnn",
            "--channels",
            "8",
            "--kernel-sizes",
            "5",
            "--dilations",
            "1",
            "--pool-sizes",
            "1",
            "--lr",
            "0.01",
            "--threads",
            "1",
        ]
    source = tmp_path / "parent.bsnn"
    _train(data["a.fasta"], data["a.csv"], "-o", source, *network, "--epochs", "2")
    child = tmp_path / "child.bsnn"
    r = cli(
        "train",
        data["b.fasta"],
        data["b.csv"],
        "-o",
        child,
        "--init-from",
        source,
        "--freeze-backbone",
        *CHILD,
        "--epochs",
        "2",
    )
    assert r.code == 0, r.err
    before, after = load_file(str(source)), load_file(str(child))
    backbone = _part(before, "backbone.")
    assert backbone and backbone.keys() == _part(after, "backbone.").keys()
    for name, tensor in backbone.items():
        assert torch.equal(tensor, _part(after, "backbone.")[name]), name
    assert not torch.equal(before["head.weight"], after["head.weight"])
    head = before["head.weight"].numel() + before["head.bias"].numel()
    total = sum(t.numel() for k, t in before.items() if not k.startswith("bioseqnn."))
    if arch == "cnn":  # batch norm's running statistics and count are buffers
        total -= sum(t.numel() for k, t in before.items() if "running" in k or "tracked" in k)
    assert f"--freeze-backbone: {head:,} of {total:,} parameters train (the head)" in r.err
    assert read_manifest(child)[0]["init_from"]["frozen"] is True


def test_a_new_class_set_gets_a_new_head(
    cli, data: dict[str, Path], parent: Path, tmp_path: Path
) -> None:
    child = tmp_path / "child.bsnn"
    r = cli(
        "train",
        data["b.fasta"],
        data["b3.csv"],
        "-o",
        child,
        "--init-from",
        parent,
        "--freeze-backbone",
        *CHILD,
    )
    assert r.code == 0, r.err
    assert [line for line in r.err.splitlines() if "new head" in line] == [
        f"bioseqnn: --init-from {parent}: backbone copied; new head: 3 classes here, the parent's 2"
    ]
    tensors, before = load_file(str(child)), load_file(str(parent))
    assert tensors["head.weight"].shape == (3, 16)
    assert before["head.weight"].shape == (1, 16)
    source, got = _part(before, "backbone."), _part(tensors, "backbone.")
    assert source and all(torch.equal(source[k], got[k]) for k in source)
    assert read_manifest(child)[0]["task"]["classes"] == ["long", "mid", "short"]


def test_a_differing_setting_is_refused_in_one_line(
    cli, data: dict[str, Path], parent: Path, tmp_path: Path
) -> None:
    child = tmp_path / "child.bsnn"
    r = cli(
        "train",
        data["b.fasta"],
        data["b.csv"],
        "-o",
        child,
        "--init-from",
        parent,
        "--hidden-size",
        "64",
        "--arch",
        "gru",
        *CHILD,
    )
    assert r.code == 2
    assert r.out == ""
    lines = r.err.strip().splitlines()
    assert lines == [
        f"bioseqnn: error: --init-from {parent}: arch gru here, lstm in the parent; "
        "hidden-size 64 here, 16 in the parent (the network settings are the "
        "parent's: leave them out)"
    ]
    assert not child.exists()
    # a flag given on purpose at its default value counts too
    r = cli(
        "train",
        data["b.fasta"],
        data["b.csv"],
        "-o",
        child,
        "--init-from",
        parent,
        "--hidden-size",
        "128",
        *CHILD,
    )
    assert r.code == 2 and "hidden-size 128 here, 16 in the parent" in r.err
    # in a config file too
    config = tmp_path / "run.yaml"
    config.write_text("model:\n  hidden_size: 128\n  dropout: 0.3\n")
    r = cli(
        "train",
        data["b.fasta"],
        data["b.csv"],
        "-o",
        child,
        "--init-from",
        parent,
        "--config",
        config,
        *CHILD,
    )
    assert r.code == 2 and "hidden-size 128 here, 16 in the parent" in r.err
    # the same settings as the parent's, and dropout (no weights), are accepted
    r = cli(
        "train",
        data["b.fasta"],
        data["b.csv"],
        "-o",
        child,
        "--init-from",
        parent,
        "--hidden-size",
        "16",
        "--arch",
        "lstm",
        "--dropout",
        "0.5",
        *CHILD,
    )
    assert r.code == 0, r.err
    assert read_manifest(child)[0]["model"]["dropout"] == 0.5


def test_another_alphabet_is_refused(cli, data: dict[str, Path], tmp_path: Path) -> None:
    fasta, labels = tmp_path / "p.fasta", tmp_path / "p.csv"
    fasta.write_text(
        "\n".join((EXAMPLES / "promoters.fasta").read_text().splitlines()[:400]) + "\n"
    )
    labels.write_text("\n".join((EXAMPLES / "promoters.csv").read_text().splitlines()[:201]) + "\n")
    dna = tmp_path / "dna.bsnn"
    _train(
        fasta,
        labels,
        "-o",
        dna,
        "--arch",
        "gru",
        "--hidden-size",
        "8",
        "--epochs",
        "1",
        "--threads",
        "1",
    )
    child = tmp_path / "child.bsnn"
    r = cli("train", data["b.fasta"], data["b.csv"], "-o", child, "--init-from", dna, *CHILD)
    assert r.code == 2
    assert r.err.strip().splitlines()[-1] == (
        f"bioseqnn: error: --init-from {dna}: the input is protein here, dna in the parent; "
        "fine-tuning needs the same input"
    )
    assert "Traceback" not in r.err
    assert not child.exists()
    # DNA again, another target: the regression head starts anew
    renamed = tmp_path / "renamed.csv"
    renamed.write_text(labels.read_text().replace("log2_expression", "strength", 1))
    r = cli("train", fasta, renamed, "-o", child, "--init-from", dna, *CHILD)
    assert r.code == 0, r.err
    assert "new head: targets strength here, the parent's log2_expression" in r.err


def test_the_manifest_records_the_parent_and_info_shows_it(
    cli, data: dict[str, Path], parent: Path, tmp_path: Path
) -> None:
    child = tmp_path / "child.bsnn"
    r = cli("train", data["b.fasta"], data["b.csv"], "-o", child, "--init-from", parent, *CHILD)
    assert r.code == 0, r.err
    manifest, _ = read_manifest(child)
    sha = hashlib.sha256(parent.read_bytes()).hexdigest()
    assert manifest["init_from"] == {
        "fingerprint_sha256": sha,
        "path": str(parent),
        "frozen": False,
    }
    assert manifest["format_version"] == 4  # an optional field: no new format
    assert manifest["training"]["init_from"] == str(parent)
    r = cli("info", child)
    assert r.code == 0
    rows = [line for line in r.out.splitlines() if line.startswith("fine-tuned from")]
    assert rows == [f"fine-tuned from  {parent} (sha256 {sha}), all weights trained"]
    r = cli("info", parent)
    assert "fine-tuned from" not in r.out


@pytest.mark.parametrize(
    "value",
    [
        {"fingerprint_sha256": "abc", "path": "p.bsnn", "frozen": False},
        {"fingerprint_sha256": "0" * 64, "path": 3, "frozen": False},
        {"fingerprint_sha256": "0" * 64, "path": "p.bsnn", "frozen": "yes"},
        {"fingerprint_sha256": "0" * 64, "path": "p.bsnn", "frozen": True, "member": 0},
        "p.bsnn",
    ],
)
def test_a_damaged_init_from_field_is_refused(parent: Path, tmp_path: Path, value: Any) -> None:
    import json

    from safetensors.torch import save_file

    from bioseqnn.bundle import save_bundle
    from bioseqnn.errors import DataError

    bundle = load_bundle(parent)
    damaged = tmp_path / "damaged.bsnn"
    manifest = {**bundle.manifest, "init_from": value}
    with pytest.raises(DataError, match="init_from"):  # bioseqnn never writes one
        save_bundle(damaged, bundle.model, manifest, bundle.train_digest)
    assert not damaged.exists()
    manifest["data"] = {k: v for k, v in manifest["data"].items() if k != "digest"}
    tensors = {k: v.contiguous() for k, v in bundle.model.state_dict().items()}
    save_file(tensors, damaged, metadata={"bioseqnn": json.dumps(manifest)})
    with pytest.raises(ModelFileError, match="init_from"):
        read_manifest(damaged)


def test_an_ensemble_parent_needs_a_member(
    cli, data: dict[str, Path], parent: Path, tmp_path: Path
) -> None:
    pair = tmp_path / "pair.bsnn"
    _train(data["a.fasta"], data["a.csv"], "-o", pair, *LSTM, "--epochs", "1", "--ensemble", "2")
    child = tmp_path / "child.bsnn"
    r = cli("train", data["b.fasta"], data["b.csv"], "-o", child, "--init-from", pair, *CHILD)
    assert r.code == 2
    assert r.err.strip().splitlines()[-1] == (
        f"bioseqnn: error: --init-from {pair}: an ensemble of 2 members; choose the one to "
        "start from with --init-member 1..2"
    )
    r = cli(
        "train",
        data["b.fasta"],
        data["b.csv"],
        "-o",
        child,
        "--init-from",
        pair,
        "--init-member",
        "3",
        *CHILD,
    )
    assert r.code == 2 and "--init-member 3: " in r.err
    r = cli(
        "train",
        data["b.fasta"],
        data["b.csv"],
        "-o",
        child,
        "--init-from",
        pair,
        "--init-member",
        "2",
        "--freeze-backbone",
        *CHILD,
    )
    assert r.code == 0, r.err
    assert read_manifest(child)[0]["init_from"]["member"] == 2
    second = _part(load_file(str(pair)), "members.1.backbone.")
    got = _part(load_file(str(child)), "backbone.")
    assert second.keys() == got.keys()
    assert all(torch.equal(second[k], got[k]) for k in second)
    r = cli("info", child)
    assert f"fine-tuned from  {pair}, member 2 (sha256 " in r.out


@pytest.mark.parametrize("option", [["--ensemble", "2"], ["--cv", "2"]])
def test_every_member_starts_from_the_parent(
    cli, data: dict[str, Path], parent: Path, tmp_path: Path, option: list[str]
) -> None:
    child = tmp_path / "child.bsnn"
    r = cli(
        "train",
        data["b.fasta"],
        data["b.csv"],
        "-o",
        child,
        "--init-from",
        parent,
        "--freeze-backbone",
        *option,
        *CHILD,
    )
    assert r.code == 0, r.err
    source = _part(load_file(str(parent)), "backbone.")
    tensors = load_file(str(child))
    for member in (0, 1):
        got = _part(tensors, f"members.{member}.backbone.")
        assert got.keys() == source.keys()
        assert all(torch.equal(source[k], got[k]) for k in source), member
    assert read_manifest(child)[0]["init_from"]["frozen"] is True


def test_a_language_model_parent_starts_a_classifier(
    cli, data: dict[str, Path], tmp_path: Path
) -> None:
    lm = tmp_path / "lm.bsnn"
    _train(
        data["a.fasta"],
        "--task",
        "language-model",
        "-o",
        lm,
        "--arch",
        "gru",
        "--hidden-size",
        "16",
        "--unidirectional",
        "--epochs",
        "1",
        "--threads",
        "1",
    )
    child = tmp_path / "child.bsnn"
    r = cli(
        "train",
        data["b.fasta"],
        data["b.csv"],
        "-o",
        child,
        "--init-from",
        lm,
        "--freeze-backbone",
        *CHILD,
    )
    assert r.code == 0, r.err
    assert (
        "the parent is a language model: its backbone (gru, read left to right) starts "
        "this binary model; new head"
    ) in r.err
    manifest, _ = read_manifest(child)
    assert manifest["task"]["kind"] == "binary"
    assert manifest["model"]["pooling"] == "last"
    source, got = _part(load_file(str(lm)), "backbone."), _part(load_file(str(child)), "backbone.")
    assert all(torch.equal(source[k], got[k]) for k in source)


def test_resume_continues_a_fine_tuning_run_exactly(
    data: dict[str, Path], parent: Path, tmp_path: Path
) -> None:
    cfg = RunConfig()
    cfg.training.epochs, cfg.training.lr, cfg.training.threads = 3, 0.01, 1
    cfg.training.schedule, cfg.training.patience = "none", 0
    whole = api.train(
        data["b.fasta"],
        data["b.csv"],
        tmp_path / "whole.bsnn",
        cfg,
        init_from=parent,
        freeze_backbone=True,
    )
    assert whole.manifest["init_from"]["frozen"] is True

    class StopAfterOne:
        def start(self, epochs: int, batches: int, monitor: str = "val_loss") -> None: ...
        def batch(self, epoch: int, loss: float) -> None: ...
        def finish(self) -> None: ...

        def epoch(self, record: dict[str, Any]) -> None:
            if record["epoch"] == 2:  # the checkpoint of epoch 1 is written
                raise KeyboardInterrupt

    cfg.training.checkpoint_dir = str(tmp_path / "ck")
    out = tmp_path / "resumed.bsnn"
    with pytest.raises(KeyboardInterrupt):
        api.train(
            data["b.fasta"],
            data["b.csv"],
            out,
            cfg,
            init_from=parent,
            freeze_backbone=True,
            reporter=StopAfterOne(),
        )
    assert not out.exists()
    done = api.train(
        data["b.fasta"],
        data["b.csv"],
        out,
        cfg,
        init_from=parent,
        freeze_backbone=True,
        resume=True,
    )
    assert done.result.resumed_from == 1
    expected, got = load_file(str(tmp_path / "whole.bsnn")), load_file(str(out))
    assert expected.keys() == got.keys()
    assert all(torch.equal(expected[k], got[k]) for k in expected)


def test_the_yaml_training_key_and_the_library(
    data: dict[str, Path], parent: Path, tmp_path: Path
) -> None:
    config = tmp_path / "run.yaml"
    config.write_text(
        f"training:\n  init_from: {parent}\n  freeze_backbone: true\n  epochs: 1\n  threads: 1\n"
    )
    cfg = load_config(config)
    assert cfg.training.init_from == str(parent) and cfg.training.freeze_backbone
    outcome = api.train(data["b.fasta"], data["b.csv"], tmp_path / "m.bsnn", cfg)
    assert outcome.manifest["init_from"]["path"] == str(parent)
    # a model setting in the config that differs from the parent's (library: any value
    # other than the default) is refused
    config.write_text(f"model:\n  layers: 2\ntraining:\n  init_from: {parent}\n")
    with pytest.raises(UsageError, match="layers 2 here, 1 in the parent"):
        api.train(data["b.fasta"], data["b.csv"], tmp_path / "n.bsnn", load_config(config))
    with pytest.raises(SettingError, match="^freeze_backbone goes with init_from "):
        cfg = RunConfig()
        cfg.training.freeze_backbone = True
        api.train(data["b.fasta"], data["b.csv"], tmp_path / "n.bsnn", cfg)


def test_the_parent_cannot_be_the_output(cli, data: dict[str, Path], parent: Path) -> None:
    before = parent.read_bytes()
    r = cli("train", data["b.fasta"], data["b.csv"], "-o", parent, "--init-from", parent, *CHILD)
    assert r.code == 2
    assert "--init-from" in r.err
    assert parent.read_bytes() == before


def test_validation_records_the_parent_learnt_are_warned_about(
    cli, data: dict[str, Path], parent: Path, tmp_path: Path
) -> None:
    child = tmp_path / "child.bsnn"
    # the parent's own records again (the same split: its validation records, which chose
    # its best epoch, are in its training data's digests)
    r = cli("train", data["a.fasta"], data["a.csv"], "-o", child, "--init-from", parent, *CHILD)
    assert r.code == 0, r.err
    warned = [line for line in r.err.splitlines() if "overstate" in line]
    assert len(warned) == 1
    found = re.search(r"(\d+) of (\d+) validation record\(s\)", warned[0])
    assert found is not None, warned
    seen, held = int(found[1]), int(found[2])
    assert held == 55 and 40 <= seen <= 55, warned
    # the child's training digests include the parent's: evaluate finds those records too
    mine, theirs = load_bundle(child).train_digest, load_bundle(parent).train_digest
    assert mine is not None and theirs is not None
    assert set(theirs.tolist()) <= set(mine.tolist())
    tuned = tmp_path / "tuned.bsnn"
    r = cli("train", data["b.fasta"], data["b.csv"], "-o", tuned, "--init-from", parent, *CHILD)
    got = load_bundle(tuned).train_digest
    assert got is not None and set(theirs.tolist()) <= set(got.tolist())


def test_what_is_no_model_file_is_refused_as_the_parent(
    cli, data: dict[str, Path], tmp_path: Path
) -> None:
    child = tmp_path / "child.bsnn"
    for given, code, line in (
        ("-", 2, "--init-from needs a model file's path, not '-'"),
        (tmp_path / "none.bsnn", 2, f"{tmp_path / 'none.bsnn'}: no such model file"),
        (
            data["b.fasta"],
            1,
            f"--init-from {data['b.fasta']}: not a bioseqnn model file (no safetensors header)",
        ),
    ):
        r = cli("train", data["b.fasta"], data["b.csv"], "-o", child, "--init-from", given, *CHILD)
        assert (r.code, r.err.strip().splitlines()) == (code, [f"bioseqnn: error: {line}"])
        assert not child.exists()
    r = cli("train", data["b.fasta"], data["b.csv"], "-o", child, "--freeze-backbone", *CHILD)
    assert r.code == 2 and "error: --freeze-backbone goes with --init-from (" in r.err
