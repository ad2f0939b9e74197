"""Hostile model files: nothing in a model file is ever executed, every manifest field is
checked (types, sizes) before use, and each refusal is one line with exit code 1.

Every command that reads a model file is covered; adding one is one line in COMMANDS.
"""

from __future__ import annotations

import gzip
import json
import os
import pickle
import struct
from pathlib import Path
from typing import Any

import pytest
import torch
import typer
from conftest import AMINO, SIX, SIX_LABELS, random_records, train_tiny

from bioseqnn.bundle import load_bundle, save_bundle
from bioseqnn.cli import app

# How each command is given a model file ({model}), sequences ({fa}) and labels ({csv}).
COMMANDS: dict[str, list[str]] = {
    "predict": ["predict", "{model}", "{fa}", "-o", "out.tsv"],
    "info": ["info", "{model}"],
    "evaluate": ["evaluate", "{model}", "{fa}", "{csv}", "-o", "metrics.json"],
    "explain": ["explain", "{model}", "{fa}", "-o", "attributions.tsv"],
    "config": ["config", "--from", "{model}", "-o", "config.yaml"],
}


def _registered() -> set[str]:
    return set(typer.main.get_command(app).commands)  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
def good_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("hostile-model")
    return train_tiny(d, random_records(12, AMINO, 12, seed=11), ["0", "1"] * 6, "good")


class _Payload:
    """Unpickling this runs code: it writes the marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (exec, (f"with open({str(self.marker)!r}, 'w') as f: f.write('code ran')",))


class _SystemPayload(_Payload):
    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {self.marker}",))


def _hostile(kind: str, path: Path, marker: Path) -> None:
    if kind == "pickle":
        path.write_bytes(pickle.dumps({"state_dict": _Payload(marker)}))
    elif kind == "pickle-protocol-0":
        path.write_bytes(pickle.dumps(_SystemPayload(marker), protocol=0))
    elif kind == "pickle-gzip":
        path.write_bytes(gzip.compress(pickle.dumps(_Payload(marker))))
    elif kind == "torch-save":
        torch.save({"model": _Payload(marker), "w": torch.zeros(2)}, path)
    elif kind == "safetensors-prefix-then-pickle":
        # A length prefix that points at valid JSON, followed by a pickle stream.
        header = b'{"__metadata__": {"bioseqnn": "x"}}'
        path.write_bytes(struct.pack("<Q", len(header)) + header + pickle.dumps(_Payload(marker)))
    else:  # pragma: no cover
        raise ValueError(kind)


def _load_unsafely(kind: str, path: Path) -> None:
    """What an unsafe loader would do: the control that proves each payload is live."""
    data = path.read_bytes()
    if kind == "torch-save":
        torch.load(path, weights_only=False)
    elif kind == "pickle-gzip":
        pickle.loads(gzip.decompress(data))
    elif kind == "safetensors-prefix-then-pickle":
        pickle.loads(data[8 + struct.unpack("<Q", data[:8])[0] :])
    else:
        pickle.loads(data)


KINDS = [
    "pickle",
    "pickle-protocol-0",
    "pickle-gzip",
    "torch-save",
    "safetensors-prefix-then-pickle",
]


@pytest.mark.parametrize("kind", KINDS)
def test_each_payload_really_executes_when_unpickled(kind: str, tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    _hostile(kind, tmp_path / "evil.bsnn", marker)
    _load_unsafely(kind, tmp_path / "evil.bsnn")
    assert marker.exists()


@pytest.mark.parametrize("command", sorted(COMMANDS))
@pytest.mark.parametrize("kind", KINDS)
def test_code_in_a_model_file_never_runs(
    cli, command: str, kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if command not in _registered():
        pytest.skip(f"no '{command}' command yet")
    monkeypatch.chdir(tmp_path)
    marker = tmp_path / "marker"
    _hostile(kind, tmp_path / "evil.bsnn", marker)
    (tmp_path / "in.fa").write_bytes(SIX)
    (tmp_path / "l.csv").write_bytes(SIX_LABELS)
    before = sorted(p.name for p in tmp_path.iterdir())
    argv = [a.format(model="evil.bsnn", fa="in.fa", csv="l.csv") for a in COMMANDS[command]]
    r = cli(*argv)
    assert r.code == 1
    lines = r.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("bioseqnn: error: evil.bsnn: ")
    assert "not a bioseqnn model" in lines[0]
    assert not marker.exists(), "code stored in the model file ran"
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_yaml_config_cannot_run_code(cli, tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    cfg = tmp_path / "evil.yaml"
    cfg.write_text(f'training: !!python/object/apply:os.system ["touch {marker}"]\n')
    (tmp_path / "s.fa").write_bytes(SIX)
    (tmp_path / "l.csv").write_bytes(SIX_LABELS)
    r = cli(
        "train", tmp_path / "s.fa", tmp_path / "l.csv", "--config", cfg, "-o", tmp_path / "m.bsnn"
    )
    assert r.code == 2
    assert r.err.splitlines() == [
        f"bioseqnn: error: {cfg}: line 1, column 11: not valid YAML: could not determine a "
        "constructor for the "
        "tag 'tag:yaml.org,2002:python/object/apply:os.system'"
    ]
    assert not marker.exists() and not (tmp_path / "m.bsnn").exists()


# --------------------------------------------------------------------------- manifests


def write_exactly(path: Path, model: torch.nn.Module, manifest: dict[str, Any]) -> None:
    """A model file holding exactly ``manifest`` (save_bundle sets the format fields)."""
    from safetensors.torch import save_file

    save_file(
        {k: v.contiguous() for k, v in model.state_dict().items()},
        path,
        metadata={"bioseqnn": json.dumps(manifest)},
    )


def _edit(m: dict[str, Any], path: str, value: Any) -> None:
    *parents, last = path.split(".")
    for key in parents:
        m = m[key]
    if value is _DELETE:
        del m[last]
    else:
        m[last] = value


_DELETE = object()
NAMES = "names (1 to 1000 characters, no control characters)"
MANIFEST_EDITS = [
    ("format_version", "1", "format_version is not an integer"),
    ("format_version", 0, "format_version 0"),
    ("format", "something-else", "not a bioseqnn model"),
    ("alphabet", "klingon", "unknown alphabet"),
    # a value of another type than the field's (these were "unexpected TypeError")
    ("alphabet", ["protein"], "unknown alphabet"),
    ("task.kind", {"binary": 1}, "unknown task kind"),
    ("per_position", "no", "per_position must be true or false"),
    ("training.rc_average", "yes", "training.rc_average has an invalid value"),
    ("training.lr", [0.1], "training.lr has an invalid value"),
    ("training.rc_average", True, "training.rc_average is for DNA/RNA models"),
    ("metrics.members", [1, 2], "metrics.members must list one mapping per member"),
    ("metrics.members", [{"seed": "x"}], "metrics.members[0].seed must be an integer"),
    ("metrics.monitor", 3, "metrics.monitor must be text"),
    ("data.lengths", {"max": float("inf")}, "data.lengths must hold numbers"),
    ("data.note", ["x"], "data.note must be text"),
    ("model.heads", 0, "model: heads must be at least 1"),
    (
        "model.kernel_sizes",
        [9],
        "model: kernel_sizes has 1 entries but channels has 2: give one value per "
        "convolution layer",
    ),
    ("task", _DELETE, "task is missing"),
    ("task.kind", "ranking", "unknown task kind"),
    ("task.classes", "01", f"task.classes must be {NAMES}"),
    ("task.classes", ["only"], "a binary task needs exactly two classes"),
    ("task.classes", ["a", "a"], "task.classes are not unique"),
    ("task.classes", ["x" * 5000, "b"], f"task.classes must be {NAMES}"),
    # control characters in names would break the TSV rows (a TAB) or the terminal
    ("task.classes", ["a\tb", "c"], f"task.classes must be {NAMES}"),
    ("task.targets", ["y\x1b[2J"], f"task.targets must be {NAMES}"),
    ("task.targets", [], "task.targets are missing"),
    ("task.class_weights", [1.0, "heavy"], "task.class_weights must hold finite numbers"),
    ("task.class_weights", [1.0, 2.0, 3.0], "task.class_weights length"),
    ("task.evil", 1, "unknown task fields"),
    ("model", "lstm", "model config is missing"),
    ("model.hidden_size", -8, "model.hidden_size has an invalid value"),
    ("model.hidden_size", True, "model.hidden_size has an invalid value"),
    ("model.bidirectional", "yes", "model.bidirectional has an invalid value"),
    ("model.dropout", 7.5, "model.dropout has an invalid value"),
    ("model.__class__", "x", "unknown model keys ['__class__']"),
    ("encoding", "one-hot", "encoding must be a mapping"),
    ("parameters", "many", "parameters must be an integer"),
    ("data", [1, 2], "data must be a mapping"),
    ("data.lengths", {"min": "short"}, "data.lengths must hold numbers"),
    ("metrics.best", [1], "metrics.best must map names to numbers"),
    ("seed", 1.5, "seed must be an integer"),
    ("created", "x" * 200_000, "a text field is too long"),
    ("data.sources", ["x"] * 200_000, "a field has too many items"),
    ("extra", json.loads("[" * 40 + "]" * 40), "nested too deeply"),
]


@pytest.mark.parametrize("command", ["predict", "info"])
@pytest.mark.parametrize(
    ("field", "value", "message"),
    MANIFEST_EDITS,
    ids=[f"{f}={str(v)[:20]}" for f, v, _ in MANIFEST_EDITS],
)
def test_manifest_fields_are_validated_before_use(
    cli, good_model: Path, tmp_path: Path, command: str, field: str, value: Any, message: str
) -> None:
    bundle = load_bundle(good_model)
    manifest = json.loads(json.dumps(bundle.manifest))
    _edit(manifest, field, value)
    bad = tmp_path / "bad.bsnn"
    write_exactly(bad, bundle.model, manifest)
    fa = tmp_path / "in.fa"
    fa.write_bytes(SIX)
    argv = (
        ["predict", bad, fa, "-o", tmp_path / "out.tsv"] if command == "predict" else ["info", bad]
    )
    r = cli(*argv)
    assert r.code == 1
    assert r.err.splitlines() == [f"bioseqnn: error: {bad}: invalid manifest: {message}"]
    assert not (tmp_path / "out.tsv").exists()


def _with_header(model: Path, edit: Any) -> bytes:
    data = model.read_bytes()
    (size,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + size])
    edit(header)
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + data[8 + size :]


def _first_tensor(h: dict[str, Any]) -> dict[str, Any]:
    return h[next(k for k in h if k != "__metadata__")]


@pytest.mark.parametrize(
    ("name", "make", "message"),
    [
        (
            "huge-length-prefix",
            lambda m: struct.pack("<Q", 2**63) + b"{}",
            "not a bioseqnn model file (no safetensors header)",
        ),
        (
            "deeply-nested-header",
            lambda m: struct.pack("<Q", 350_001) + b"{" + b'"a":{' * 70_000 + b"}" * 70_000,
            "not a bioseqnn model file (unreadable header)",
        ),
        (
            "offsets-not-numbers",
            lambda m: _with_header(m, lambda h: _first_tensor(h).update(data_offsets=["0", "9"])),
            "damaged tensor entry",
        ),
        (
            "offsets-past-the-end",
            lambda m: _with_header(m, lambda h: _first_tensor(h).update(data_offsets=[0, 10**12])),
            "truncated",
        ),
        (
            "negative-shape",
            lambda m: _with_header(m, lambda h: _first_tensor(h).update(shape=[-1, 4])),
            "damaged tensor entry",
        ),
        (
            "manifest-not-text",
            lambda m: _with_header(m, lambda h: h["__metadata__"].update(bioseqnn=5)),
            "no manifest",
        ),
        (
            "manifest-not-json",
            lambda m: _with_header(m, lambda h: h["__metadata__"].update(bioseqnn="{not json")),
            "unreadable manifest",
        ),
        (
            "manifest-number-of-5000-digits",
            lambda m: _with_header(
                m, lambda h: h["__metadata__"].update(bioseqnn='{"seed": ' + "9" * 5000 + "}")
            ),
            "unreadable manifest",
        ),
    ],
)
def test_damaged_headers_are_refused(
    cli, good_model: Path, tmp_path: Path, name: str, make: Any, message: str
) -> None:
    bad = tmp_path / f"{name}.bsnn"
    bad.write_bytes(make(good_model))
    for argv in (["info", bad], ["predict", bad, good_model.with_suffix(".fa")]):
        r = cli(*argv)
        assert r.code == 1, r.err
        lines = r.err.splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"bioseqnn: error: {bad}: ")
        assert message in lines[0]


@pytest.mark.parametrize(
    ("hidden", "message"),
    [
        # terabytes: beyond what bioseqnn builds at all, refused from the settings alone
        (
            1 << 20,
            "invalid manifest: the model (lstm, hidden-size 1048576, layers 1) would hold "
            f"{4 * (1 << 20) * (20 + (1 << 20) + 2) + (1 << 20) + 1:,} weights, more than "
            "bioseqnn builds (4,294,967,296, 16 GiB as float32)",
        ),
        # 17 MB: buildable, but more than the file holds (8 units: 969 weights)
        (
            1024,
            "weights do not fit the manifest (it describes a model of "
            f"{4 * 1024 * (20 + 1024 + 2) + 1024 + 1:,} weights, the file holds 969)",
        ),
    ],
)
def test_a_manifest_cannot_make_predict_allocate_more_than_the_file_holds(
    cli, good_model: Path, tmp_path: Path, hidden: int, message: str
) -> None:
    """The weights the manifest implies are counted from its settings and compared with
    what bioseqnn builds and with the file's before anything is built or allocated."""
    bundle = load_bundle(good_model)
    manifest = json.loads(json.dumps(bundle.manifest))
    manifest["model"]["hidden_size"] = hidden
    manifest["data"].pop("digest", None)
    bad = tmp_path / "big.bsnn"
    write_exactly(bad, bundle.model, manifest)  # save_bundle refuses to write it
    for argv in (["predict", bad, good_model.with_suffix(".fa")], ["info", bad]):
        r = cli(*argv)
        assert r.code == 1
        assert r.err.splitlines() == [f"bioseqnn: error: {bad}: {message}"]


@pytest.mark.slow
def test_a_million_layer_manifest_is_refused_at_once(good_model: Path, tmp_path: Path) -> None:
    """A 7 kB file whose manifest asks for a million layers (each inside its own range):
    building them, even without memory ('meta'), took minutes and gigabytes."""
    from conftest import run_bioseqnn

    bundle = load_bundle(good_model)
    manifest = json.loads(json.dumps(bundle.manifest))
    manifest["model"]["layers"] = 1_000_000
    bad = tmp_path / "deep.bsnn"
    write_exactly(bad, bundle.model, manifest)
    assert bad.stat().st_size < 10_000
    import time

    from bioseqnn.errors import ModelFileError

    began = time.monotonic()
    with pytest.raises(ModelFileError, match="4,000,002 tensors"):
        load_bundle(bad)
    assert time.monotonic() - began < 10  # it was minutes, and gigabytes
    fa = tmp_path / "in.fa"
    fa.write_bytes(SIX)
    for argv in (["predict", bad, fa, "-o", tmp_path / "out.tsv"], ["info", bad]):
        p = run_bioseqnn(*argv, timeout=120)  # a hang guard: start-up is most of it
        assert p.returncode == 1
        assert p.stderr.decode().splitlines() == [
            f"bioseqnn: error: {bad}: invalid manifest: the model (lstm, hidden-size 8, layers "
            "1000000) would hold 4,000,002 tensors, more than bioseqnn builds (20,000)"
        ]
    assert sorted(x.name for x in tmp_path.iterdir()) == ["deep.bsnn", "in.fa"]


def test_alphabet_swapped_in_the_manifest_is_refused(cli, good_model: Path, tmp_path: Path) -> None:
    bundle = load_bundle(good_model)
    bad = tmp_path / "dna.bsnn"
    save_bundle(bad, bundle.model, {**bundle.manifest, "alphabet": "dna"})
    r = cli("predict", bad, good_model.with_suffix(".fa"))
    assert r.code == 1
    assert "weights do not fit the manifest" in r.err and "[32, 20]" in r.err


@pytest.mark.slow
def test_a_model_read_from_a_pipe(good_model: Path, tmp_path: Path) -> None:
    """A pipe has no size: the header says how far the weights reach, and a pipe that
    ends before is a truncated model file."""
    from conftest import run_bioseqnn

    fa = tmp_path / "in.fa"
    fa.write_bytes(SIX)
    whole = good_model.read_bytes()
    piped = run_bioseqnn("predict", "/dev/stdin", fa, "--threads", "1", stdin=whole)
    direct = run_bioseqnn("predict", good_model, fa, "--threads", "1")
    assert piped.returncode == 0, piped.stderr
    assert piped.stdout == direct.stdout and len(piped.stdout.splitlines()) == 7
    cut = run_bioseqnn("predict", "/dev/stdin", fa, stdin=whole[: len(whole) - 100])
    assert cut.returncode == 1
    assert cut.stderr.decode().splitlines() == [
        "bioseqnn: error: /dev/stdin: model file is truncated (the weights end early)"
    ]


@pytest.mark.slow
def test_info_escapes_control_characters_and_shortens_long_values(
    cli, good_model: Path, tmp_path: Path
) -> None:
    """A manifest's text reaches a terminal only escaped (an escape sequence there would
    clear the screen or set the window title) and shortened; --json keeps every byte."""
    bundle = load_bundle(good_model)
    manifest = json.loads(json.dumps(bundle.manifest))
    manifest["created"] = "\x1b]0;pwned\x07\x1b[2J\u202eevil"
    manifest["device"] = "[/] [bold]markup[/bold]"
    manifest["data"]["sources"] = ["s" * 100_000] * 500  # a 50 MB manifest
    bad = tmp_path / "loud.bsnn"
    write_exactly(bad, bundle.model, manifest)
    assert bad.stat().st_size > 50_000_000
    r = cli("info", bad)
    assert r.code == 0, r.err
    assert "\x1b" not in r.out and "\x07" not in r.out and "\u202e" not in r.out
    created = next(line for line in r.out.splitlines() if line.startswith("created"))
    assert created.split(None, 1)[1] == (
        "\\x1b]0;pwned\\x07\\x1b[2J\\u202eevil on [/] [bold]markup[/bold]"
    )
    trained = next(line for line in r.out.splitlines() if line.startswith("trained on"))
    data = manifest["data"]
    whole_value = (
        f"{', '.join(data['sources'])}: {data['train_records']} training + "
        f"{data['val_records']} validation records"
    )
    assert trained.split(None, 2)[2] == (
        f"{whole_value[:300]}... ({len(whole_value) - 300:,} more characters; --json shows all)"
    )
    assert max(map(len, r.out.splitlines())) < 400 and len(r.out) < 10_000
    whole = cli("info", bad, "--json")
    assert whole.code == 0 and len(whole.out) > 50_000_000
    assert json.loads(whole.out)["created"] == manifest["created"]
    assert "\x1b" not in whole.out  # JSON escapes it


def test_info_on_a_terminal_takes_no_markup_from_the_manifest(
    good_model: Path, tmp_path: Path
) -> None:
    """rich reads '[...]' in a string as markup: '[/]' in a manifest stopped 'info' with a
    MarkupError on a terminal."""
    from bioseqnn.cli import info_table, shown

    rich_console = pytest.importorskip("rich.console")
    console = rich_console.Console(record=True, width=200)
    console.print(info_table([("device", shown("[/] [bold]x[/bold] \x1b[2J"))]))
    assert console.export_text().split() == ["device", "[/]", "[bold]x[/bold]", "\\x1b[2J"]


def test_a_manifest_that_loading_refuses_is_never_written(good_model: Path, tmp_path: Path) -> None:
    from bioseqnn.errors import DataError

    bundle = load_bundle(good_model)
    manifest = json.loads(json.dumps(bundle.manifest))
    manifest["task"]["targets"] = [""]
    out = tmp_path / "unloadable.bsnn"
    with pytest.raises(DataError) as info:
        save_bundle(out, bundle.model, manifest)
    assert str(info.value) == (
        f"{out}: invalid manifest: task.targets must be names (1 to 1000 characters, no "
        "control characters); the model file was not written"
    )
    assert list(tmp_path.iterdir()) == []


def test_a_weight_that_is_not_finite_is_refused(cli, good_model: Path, tmp_path: Path) -> None:
    """A NaN weight predicted NaN probabilities, and a class, with exit 0."""
    bundle = load_bundle(good_model)
    manifest = json.loads(json.dumps(bundle.manifest))
    manifest["data"].pop("digest", None)
    key = next(iter(bundle.model.state_dict()))
    with torch.no_grad():
        bundle.model.state_dict()[key].view(-1)[0] = float("nan")
    bad = tmp_path / "nan.bsnn"
    write_exactly(bad, bundle.model, manifest)
    r = cli("predict", bad, good_model.with_suffix(".fa"), "-o", tmp_path / "out.tsv")
    assert r.code == 1 and r.out == ""
    assert r.err.splitlines() == [
        f"bioseqnn: error: {bad}: weight {key!r} holds NaN or infinite values"
    ]
    assert not (tmp_path / "out.tsv").exists()


def test_config_from_a_manifest_with_a_setting_train_refuses(
    cli, good_model: Path, tmp_path: Path
) -> None:
    """training.epochs edited to -5: 'config --from' said "config key 'training.epochs'
    must be at least 1", exit 2, without naming the file; a damaged model file is exit 1
    naming it, as in every other command."""
    bundle = load_bundle(good_model)
    bad = tmp_path / "edited.bsnn"
    manifest = {**bundle.manifest, "training": {**bundle.manifest["training"], "epochs": -5}}
    write_exactly(bad, bundle.model, manifest)
    r = cli("config", "--from", bad)
    assert (r.code, r.out) == (1, "")
    assert r.err == (
        f"bioseqnn: error: {bad}: invalid manifest: config key 'training.epochs' must be at "
        "least 1\n"
    )
