"""Fuzzing the model-file loader: random manifests, with every field set to values inside
and beyond its range and to values of other types, or deleted, on a good model's weights.

Whatever the manifest holds, 'info' and 'predict' either work or stop with one clean line
(exit 1, the file named, never "unexpected"), within a time and a memory bound, and
nothing but the model's own rows is written. The fields are every one a model file
written by bioseqnn holds, plus those of ensembles and numeric series models.
"""

from __future__ import annotations

import json
import resource
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import AMINO, SIX, random_records, train_tiny
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bioseqnn.bundle import load_bundle
from bioseqnn.models.base import ModelConfig

SECONDS = 20.0
"""The most one example may take (both commands): a model larger than bioseqnn builds
took minutes."""
MEGABYTES = 1000
"""The most the process may grow over the whole run (a million-layer manifest grew by
gigabytes)."""


@pytest.fixture(scope="module")
def good(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], dict[str, Any]]:
    """A good model's manifest and weights."""
    d = tmp_path_factory.mktemp("fuzz-model")
    path = train_tiny(d, random_records(12, AMINO, 12, seed=21), ["0", "1"] * 6, "good")
    bundle = load_bundle(path)
    weights = {k: v.contiguous() for k, v in bundle.model.state_dict().items()}
    return json.loads(json.dumps(bundle.manifest)), weights


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every place in a manifest: each key of each mapping and the first items of lists."""
    out = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, item in value.items():
            out += _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for i, item in enumerate(value[:2]):
            out += _paths(item, (*prefix, i))
    return out


# Fields a single sequence model does not hold, so that their ranges are tried too.
EXTRA = [
    ("ensemble",),
    ("member_models",),
    ("input",),
    ("input", "channels"),
    ("input", "mean"),
    ("input", "std"),
    ("input", "kind"),
    ("input", "id_column"),
    ("per_position",),
    ("metrics", "members"),
    ("data", "note"),
]

TEXT = st.text(st.characters(codec="utf-8"), max_size=30) | st.sampled_from(
    [
        "",
        "\x1b]0;pwned\x07",
        "\x1b[2J",
        "a\tb",
        "a\nb",
        "lstm",
        "protein",
        "dna",
        "binary",
        "regression",
        "language-model",
        "per-position",
        "series",
        "attention",
        "x" * 2000,
    ]
)
NUMBER = (
    st.integers(-(2**70), 2**70)
    | st.sampled_from([0, 1, 2, 3, -1, 2**20, 2**20 + 1, 2**31, 2**63, 10**400])
    | st.sampled_from(
        # (no float strategy: torch flushes denormals process-wide, which hypothesis refuses)
        [
            0.0,
            0.5,
            -0.5,
            0.999,
            1.0,
            1.5,
            1e-3,
            3.5e38,
            1e39,
            1e308,
            -1e308,
            float("inf"),
            float("-inf"),
            float("nan"),
        ]
    )
)
SCALAR = st.none() | st.booleans() | NUMBER | TEXT
# model settings inside their accepted range (0 to 2^20): what a range check lets through
IN_RANGE = (
    st.integers(0, 2**20)
    | st.lists(st.integers(0, 2**20), max_size=4)
    | st.sampled_from(sorted(ModelConfig.__dataclass_fields__))
)
VALUE = st.recursive(
    SCALAR | IN_RANGE,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
    max_leaves=12,
)
DELETE = object()


def _set(m: dict[str, Any], path: tuple[Any, ...], value: Any) -> None:
    *parents, last = path
    for key in parents:
        if isinstance(m, dict):
            m = m.setdefault(key, {})
        elif isinstance(m, list) and isinstance(key, int) and key < len(m):
            m = m[key]
        else:
            return
    if isinstance(m, dict):
        if value is DELETE:
            m.pop(last, None)
        else:
            m[last] = value
    elif isinstance(m, list) and isinstance(last, int) and last < len(m):
        if value is DELETE:
            del m[last]
        else:
            m[last] = value


@st.composite
def edits(draw: Any, paths: list[tuple[Any, ...]]) -> list[tuple[tuple[Any, ...], Any]]:
    n = draw(st.integers(1, 3))
    return [(draw(st.sampled_from(paths)), draw(VALUE | st.just(DELETE))) for _ in range(n)]


FUZZ = settings(
    max_examples=200,
    deadline=None,
    derandomize=True,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)


@FUZZ
@given(data=st.data())
@pytest.mark.slow
def test_any_manifest_gives_a_result_or_one_clean_line(
    cli, good: tuple[dict[str, Any], dict[str, Any]], tmp_path: Path, data: Any
) -> None:
    from safetensors.torch import save_file

    manifest, weights = good
    start_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    m = json.loads(json.dumps(manifest))
    for path, value in data.draw(edits(_paths(manifest) + EXTRA)):
        _set(m, path, value)
    model = tmp_path / "fuzzed.bsnn"
    save_file(weights, model, metadata={"bioseqnn": json.dumps(m)})
    fa = tmp_path / "in.fa"
    fa.write_bytes(SIX)
    out = tmp_path / "out.tsv"
    out.unlink(missing_ok=True)
    began = time.monotonic()
    for argv in (["info", model], ["predict", model, fa, "-o", out, "--threads", "1"]):
        r = cli(*argv)
        lines = r.err.splitlines()
        if r.code == 0:
            assert not any(line.startswith("bioseqnn: error") for line in lines)
            continue
        assert r.code == 1, r.err
        assert len(lines) == 1, r.err
        assert lines[0].startswith(f"bioseqnn: error: {model}: "), r.err
        assert "unexpected" not in lines[0] and "Traceback" not in r.err
        assert r.out == ""
    assert time.monotonic() - began < SECONDS
    grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - start_rss) / 1024
    assert grown < MEGABYTES
    assert sorted(p.name for p in tmp_path.iterdir()) in (
        ["fuzzed.bsnn", "in.fa"],
        ["fuzzed.bsnn", "in.fa", "out.tsv"],
    )
