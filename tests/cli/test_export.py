"""bioseqnn export: ONNX and TorchScript for every architecture, checked against PyTorch.

Model files are untrained models (seeded weights) written by the real bundle code; the
exports are then run on their own -- onnxruntime or torch.jit.load, encoded from the
sidecar's table alone -- and compared with 'bioseqnn predict' on real sequences.
"""

from __future__ import annotations

import csv
import io
import json
import re
import sys
import warnings
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from bioseqnn.bundle import save_bundle
from bioseqnn.io.sniff import read_sequences
from bioseqnn.models.base import Ensemble, ModelConfig, SequenceModel, config_dict
from bioseqnn.tasks import TaskSpec

onnxruntime = pytest.importorskip("onnxruntime")

EXAMPLES = Path(__file__).resolve().parents[2] / "example_data"

# architecture (settings) x task x alphabet: every family, every task kind, every alphabet
CASES: dict[str, tuple[dict[str, Any], TaskSpec, str, str]] = {
    "rnn": (
        dict(arch="rnn", hidden_size=8),
        TaskSpec("binary", ["hemolytic"], classes=["0", "1"]),
        "protein",
        "hemolytic.fasta",
    ),
    "lstm": (
        dict(arch="lstm", hidden_size=8, pooling="attention"),
        TaskSpec("regression", ["log2_expression"], target_mean=[7.5], target_std=[1.5]),
        "dna",
        "promoters.fasta",
    ),
    "gru-bidirectional": (
        dict(arch="gru", hidden_size=8, layers=2, bidirectional=True),
        TaskSpec("multiclass", ["family"], classes=["5S_rRNA", "tRNA", "miRNA"]),
        "rna",
        "ncrna_test.fasta",
    ),
    "cnn": (
        dict(arch="cnn", channels=[8, 8], kernel_sizes=[7, 3], pool_sizes=[3, 1]),
        TaskSpec("multilabel", ["a", "b"]),
        "dna",
        "promoters.fasta",
    ),
    "cnn-lstm": (
        dict(
            arch="cnn-lstm",
            channels=[8],
            kernel_sizes=[5],
            dilations=[1],
            pool_sizes=[4],
            hidden_size=8,
        ),
        TaskSpec("regression", ["x", "y"], target_mean=[1.0, -2.0], target_std=[0.5, 3.0]),
        "dna",
        "promoters.fasta",
    ),
    "cnn-gru": (
        dict(
            arch="cnn-gru",
            channels=[8],
            kernel_sizes=[5],
            dilations=[1],
            pool_sizes=[1],
            hidden_size=8,
        ),
        TaskSpec("binary", ["hemolytic"], classes=["no", "yes"]),
        "protein",
        "hemolytic.fasta",
    ),
    "ensemble": (
        dict(arch="gru", hidden_size=8, bidirectional=True, members=3),
        TaskSpec("multiclass", ["family"], classes=["5S_rRNA", "tRNA", "miRNA"]),
        "rna",
        "ncrna_test.fasta",
    ),
    # an ensemble of three different networks (model files of other architectures combined)
    "mixed-ensemble": (
        dict(
            members=[
                dict(arch="cnn", channels=[8], kernel_sizes=[5], dilations=[1], pool_sizes=[1]),
                dict(arch="gru", hidden_size=8, bidirectional=True),
                dict(arch="transformer", d_model=16, heads=2, ff_size=32, layers=1),
            ]
        ),
        TaskSpec("binary", ["hemolytic"], classes=["no", "yes"]),
        "protein",
        "hemolytic.fasta",
    ),
    "transformer": (
        dict(arch="transformer", d_model=16, heads=2, ff_size=32, layers=2),
        TaskSpec("binary", ["hemolytic"], classes=["no", "yes"]),
        "protein",
        "hemolytic.fasta",
    ),
}


def write_model(path: Path, name: str) -> Path:
    settings, task, alphabet, _ = CASES[name]
    torch.manual_seed(7)
    settings = dict(settings)
    members = settings.pop("members", 1)
    configs = (
        [ModelConfig(**m) for m in members]
        if isinstance(members, list)
        else [ModelConfig(**settings)] * members
    )
    config = configs[0]
    models = [SequenceModel(c, {"protein": 20}.get(alphabet, 4), task.n_outputs) for c in configs]
    model: SequenceModel | Ensemble = Ensemble(models, task.kind) if len(models) > 1 else models[0]
    with torch.no_grad():  # batch norm statistics as after training, not the identity
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm1d):
                assert module.running_mean is not None and module.running_var is not None
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
    save_bundle(
        path, model, {"alphabet": alphabet, "task": task.to_dict(), "model": config_dict(config)}
    )
    return path


@pytest.fixture(scope="module")
def model_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("export_models")
    return {name: write_model(folder / f"{name}.bsnn", name) for name in CASES}


@pytest.fixture(scope="module")
def sample_fastas(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Ten real records of each example FASTA (lengths differ within each)."""
    folder = tmp_path_factory.mktemp("export_seqs")
    out = {}
    for fasta in {case[3] for case in CASES.values()}:
        records = list(islice(read_sequences(EXAMPLES / fasta), 10))
        path = folder / fasta
        path.write_text("".join(f">{r.id}\n{r.seq.decode()}\n" for r in records))
        out[fasta] = path
    return out


def reported_diff(err: str) -> float:
    match = re.search(r"max abs diff (\S+)$", err.strip())
    assert match, err
    return float(match.group(1))


def encode(seqs: list[str], sidecar: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """One-hot batch from the sidecar's table alone (what a user of the export does)."""
    table = sidecar["encoding"]
    width = max(map(len, seqs))
    x = np.zeros((len(seqs), width, len(sidecar["channels"])), dtype=np.float32)
    for i, s in enumerate(seqs):
        for j, c in enumerate(s.upper()):
            x[i, j] = table[c]
    return x, np.array([len(s) for s in seqs], dtype=np.int64)


def run_export(path: Path, x: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    if path.suffix == ".onnx":
        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        assert [i.name for i in session.get_inputs()] == ["onehot", "lengths"]
        return session.run(["outputs"], {"onehot": x, "lengths": lengths})[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torch.jit is deprecated
        loaded = torch.jit.load(str(path))
    with torch.no_grad():
        return loaded(torch.from_numpy(x), torch.from_numpy(lengths)).numpy()


@pytest.mark.parametrize("suffix", [".onnx", ".pt"])
@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.slow
def test_export_runs_alone_and_matches_predict(
    cli,
    model_files: dict[str, Path],
    sample_fastas: dict[str, Path],
    tmp_path: Path,
    name: str,
    suffix: str,
) -> None:
    model = model_files[name]
    out = tmp_path / f"model{suffix}"
    result = cli("export", model, "-o", out)
    assert result.code == 0, result.err
    assert result.out == ""
    assert "parity on 12 sequence(s) of 1-150 positions" in result.err
    assert reported_diff(result.err) < 1e-4
    sidecar = json.loads((tmp_path / f"model{suffix}.json").read_text())
    assert sidecar["parity"]["max_abs_diff"] < 1e-4
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"model{suffix}", f"model{suffix}.json"]

    # the export on its own, on real records, all in one padded batch and in pairs
    fasta = sample_fastas[CASES[name][3]]
    records = list(read_sequences(fasta))
    seqs = [r.seq.decode() for r in records]
    x, lengths = encode(seqs, sidecar)
    got = run_export(out, x, lengths)
    pairs = np.concatenate(
        [run_export(out, *encode(seqs[i : i + 2], sidecar)) for i in range(0, len(seqs), 2)]
    )
    np.testing.assert_allclose(pairs, got, rtol=0, atol=1e-5)

    pred = cli("predict", model, fasta, "--device", "cpu")
    assert pred.code == 0, pred.err
    rows = list(csv.reader(io.StringIO(pred.out), delimiter="\t"))
    header, rows = rows[0], rows[1:]
    assert [r[0] for r in rows] == [r.id for r in records]
    numeric = [c for c in header if c not in ("id", "predicted")]
    assert sidecar["outputs"][0]["columns"] == numeric
    expected = np.array(
        [[float(v) for v, c in zip(r, header, strict=True) if c in numeric] for r in rows]
    )
    assert got.shape == expected.shape == (len(records), len(numeric))
    # predict prints 6 significant digits
    np.testing.assert_allclose(got, expected, rtol=2e-5, atol=2e-6)


@pytest.mark.slow
def test_parity_failure_exits_1_and_leaves_no_file(
    cli, model_files: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "model.onnx"
    ok = cli("export", model_files["transformer"], "-o", out, "--tolerance", "1e-4")
    diff = reported_diff(ok.err)
    assert ok.code == 0 and 0 < diff < 1e-4  # attention written out differs in the last bits
    out.unlink()
    (tmp_path / "model.onnx.json").unlink()
    tight = diff / 10
    result = cli("export", model_files["transformer"], "-o", out, "--tolerance", str(tight))
    assert result.code == 1
    assert re.fullmatch(
        r"bioseqnn: error: \S+transformer\.bsnn: the ONNX export of this transformer model "
        r"differs from PyTorch by \S+ \(tolerance \S+\) on record 'random_\d+_len\d+' of "
        r"12 random protein sequences; nothing written\n",
        result.err,
    ), result.err
    assert list(tmp_path.iterdir()) == []


def test_check_sequences_from_a_file(
    cli, model_files: dict[str, Path], sample_fastas: dict[str, Path], tmp_path: Path
) -> None:
    fasta = sample_fastas["promoters.fasta"]
    out = tmp_path / "m.pt"
    result = cli("export", model_files["cnn-lstm"], "-o", out, "--check", fasta)
    assert result.code == 0, result.err
    lengths = [len(r.seq) for r in read_sequences(fasta)]
    assert (
        f"parity on 10 sequence(s) of {min(lengths)}-{max(lengths)} positions ({fasta})"
    ) in result.err
    sidecar = json.loads((tmp_path / "m.pt.json").read_text())
    assert sidecar["parity"]["source"] == str(fasta)
    # the sidecar travels inside the TorchScript file too
    extra = {"bioseqnn.json": ""}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.load(str(out), _extra_files=extra)
    assert json.loads(extra["bioseqnn.json"]) == sidecar


def test_check_sequences_must_fit_the_model(
    cli, model_files: dict[str, Path], tmp_path: Path
) -> None:
    bad = tmp_path / "bad.fasta"
    bad.write_text(">ok\nACGT\n>broken\nACXGT\n")
    result = cli("export", model_files["lstm"], "-o", tmp_path / "m.onnx", "--check", bad)
    assert result.code == 1
    assert "record 'broken': invalid dna symbol 'X' at position 3" in result.err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.fasta"]


@pytest.mark.parametrize("output", ["model.tflite", "model", "-"])
def test_the_suffix_names_the_format(
    cli, model_files: dict[str, Path], tmp_path: Path, output: str
) -> None:
    target = output if output == "-" else str(tmp_path / output)
    result = cli("export", model_files["rnn"], "-o", target)
    assert result.code == 2
    assert result.err == (
        f"bioseqnn: error: cannot tell the export format from {target!r}: "
        "name the output NAME.onnx (ONNX) or NAME.pt (TorchScript)\n"
    )


def test_onnx_without_onnxruntime_names_the_extra(
    cli, model_files: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as if not installed
    result = cli("export", model_files["rnn"], "-o", tmp_path / "m.onnx")
    assert result.code == 2
    assert result.err == (
        "bioseqnn: error: ONNX export needs the onnx and onnxruntime "
        "packages (onnxruntime is not installed): "
        "pip install 'bioseqnn[export]'\n"
    )
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("settings", "suffix"),
    [
        (dict(arch="gru", hidden_size=8, bidirectional=True), ".onnx"),
        (dict(arch="transformer", d_model=16, heads=2, ff_size=32), ".pt"),
        (dict(arch="cnn", channels=[8], kernel_sizes=[5], dilations=[1], pool_sizes=[1]), ".onnx"),
    ],
)
def test_per_position_models_export_a_row_per_position(
    cli, tmp_path: Path, settings: dict[str, Any], suffix: str
) -> None:
    from bioseqnn.bundle import load_bundle
    from bioseqnn.models.inputs import OneHot

    torch.manual_seed(3)
    config = ModelConfig(**settings)
    task = TaskSpec("per-position", ["ss3"], classes=["C", "E", "H"])
    model = SequenceModel(config, 20, task.n_outputs, per_position=True)
    path = tmp_path / "ss.bsnn"
    save_bundle(
        path,
        model,
        {
            "alphabet": "protein",
            "task": task.to_dict(),
            "model": config_dict(config),
            "per_position": True,
        },
    )
    out = tmp_path / f"ss{suffix}"
    result = cli("export", path, "-o", out)
    assert result.code == 0, result.err
    assert reported_diff(result.err) < 1e-4
    sidecar = json.loads((tmp_path / f"ss{suffix}.json").read_text())
    assert sidecar["outputs"][0]["shape"] == ["batch", "length", 3]
    assert sidecar["outputs"][0]["columns"] == ["prob_C", "prob_E", "prob_H"]

    # real proteins in one padded batch: each row's real positions as PyTorch gives them alone
    seqs = [r.seq.decode() for r in islice(read_sequences(EXAMPLES / "ss_test.fasta"), 6)]
    x, lengths = encode(seqs, sidecar)
    got = run_export(out, x, lengths)
    assert got.shape == (len(seqs), max(lengths), 3)
    bundle = load_bundle(path)
    onehot = OneHot(bundle.alphabet)
    table = bundle.alphabet.byte_table()
    for i, s in enumerate(seqs):
        codes = torch.from_numpy(table[np.frombuffer(s.encode(), np.uint8)])
        with torch.no_grad():
            logits = bundle.model(onehot(codes[None]), torch.tensor([len(s)]))
        want = torch.softmax(logits, dim=-1)[0].numpy()
        np.testing.assert_allclose(got[i, : len(s)], want, rtol=0, atol=1e-5)


def test_docs_export_examples_run(
    cli,
    model_files: dict[str, Path],
    sample_fastas: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    page = Path(__file__).resolve().parents[2] / "docs" / "guide" / "evaluate-explain-export.md"
    section = page.read_text(encoding="utf-8").split("\n## Export\n", 1)[1].split("\n## ", 1)[0]
    commands = [
        line.split("#")[0].split()[1:]
        for line in section.splitlines()
        if line.startswith("    bioseqnn export")
    ]
    assert len(commands) == 2
    monkeypatch.chdir(tmp_path)
    (tmp_path / "model.bsnn").write_bytes(model_files["gru-bidirectional"].read_bytes())
    (tmp_path / "some.fasta").write_bytes(sample_fastas["ncrna_test.fasta"].read_bytes())
    for args in commands:
        result = cli(*args)
        assert result.code == 0, (args, result.err)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "model.bsnn",
        "model.onnx",
        "model.onnx.json",
        "model.pt",
        "model.pt.json",
        "some.fasta",
    ]
