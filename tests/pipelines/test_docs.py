"""The README: a short pitch whose links lead into docs/ and whose commands are real.

The site itself (docs/, mkdocs.yml) is checked by `mkdocs build --strict` in .ci/run:
broken links and anchors fail there. The pages' own examples are run by the tests of
their topics (test_series, test_variants, test_export, test_training, test_batching,
test_config).
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def commands(text: str) -> list[str]:
    """The indented `bioseqnn ...` command lines of a Markdown text (pipes: their bioseqnn
    part)."""
    found = []
    for line in text.splitlines():
        if line.startswith("    ") and "bioseqnn " in line and not line.lstrip().startswith("#"):
            found.append("bioseqnn " + line.split("bioseqnn ", 1)[1].split(" | ")[0])
    return found


def test_readme_stays_a_pitch_with_links_that_resolve() -> None:
    assert len(README.splitlines()) <= 200
    links = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", README)
    local = [link for link in links if "://" not in link]
    assert len(local) >= 15
    for link in local:
        assert (ROOT / link).exists(), link


@pytest.mark.slow
def test_readme_commands_use_real_options(cli) -> None:
    found = commands(README)
    names = {c.split()[1] for c in found}
    assert names >= {
        "train",
        "predict",
        "evaluate",
        "explain",
        "export",
        "ensemble",
        "generate",
        "info",
        "config",
        "variants",
        "plot-history",
    }
    checked = 0
    for name in sorted(names):
        help_text = cli(name, "--help").out.replace("\n", " ")
        for command in found:
            if command.split()[1] != name:
                continue
            for flag in re.findall(r"(?<= )--[a-z][a-z0-9-]*", command):
                assert flag in help_text, (flag, command)
                checked += 1
    assert checked >= 10


@pytest.mark.slow
def test_readme_quick_start_runs_on_held_out_data(
    tmp_path: Path, cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The quick start as written, with one epoch: it trains on the training split and
    scores the held-out test split, not the training file."""
    quick = README.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    steps = [shlex.split(c) for c in commands(quick)]
    assert [s[1] for s in steps] == ["train", "evaluate", "predict"]
    train, evaluate, predict = steps
    assert "example_data/ncrna_train.fasta" in train
    assert "example_data/ncrna_test.fasta" in evaluate
    assert not set(train) & {"example_data/ncrna_test.fasta", "example_data/ncrna_test.csv"}
    (tmp_path / "example_data").symlink_to(ROOT / "example_data")
    monkeypatch.chdir(tmp_path)
    train[train.index("--epochs") + 1] = "1"
    assert cli(*train[1:], "--quiet").code == 0
    result = cli(*evaluate[1:], "--quiet")
    assert result.code == 0, result.err
    metrics = json.loads((tmp_path / evaluate[evaluate.index("-o") + 1]).read_text())
    assert metrics["records"] == 260 and 0 <= metrics["metrics"]["accuracy"] <= 1
    result = cli(*predict[1 : predict.index(">")], "--quiet")
    assert result.code == 0, result.err
    rows = result.out.splitlines()
    assert len(rows) == 261 and rows[0].startswith("id\tpredicted\tprob_5S_rRNA")
