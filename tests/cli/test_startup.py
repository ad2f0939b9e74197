"""Commands that only describe a model file start without torch (importing it is most of
a second) or numpy (a tenth of info's start-up), and info without PyYAML: info and config
--from. Checked in a fresh interpreter, by whether ``torch``, ``numpy`` and ``yaml`` are in
``sys.modules`` once the
command has run, not by timing (help, --version and the default config:
tests/cli/test_cli.py)."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import fasta, fresh_python, random_records

from bioseqnn.cli import main

PROBE = """
import json, sys
from bioseqnn.cli import main
code = main(sys.argv[1:])
loaded = {m: m in sys.modules for m in ("torch", "numpy", "yaml")}
print("PROBE", json.dumps({"code": code, **loaded}), file=sys.stderr)
"""


def run_probe(tmp_path: Path, *args: str | Path) -> tuple[dict[str, object], str]:
    """The command's exit code, whether torch, numpy and PyYAML were imported, and its
    stdout."""
    done = fresh_python(PROBE, *args)
    lines = [x for x in done.stderr.splitlines() if x.startswith("PROBE ")]
    assert lines, done.stderr
    return json.loads(lines[-1][len("PROBE ") :]), done.stdout


def test_info_reads_the_manifest_without_torch(tmp_path: Path, hemolytic_model: Path) -> None:
    probe, out = run_probe(tmp_path, "info", hemolytic_model)
    assert probe == {"code": 0, "torch": False, "numpy": False, "yaml": False}
    fields = dict(line.split(None, 1) for line in out.splitlines() if " " in line)
    assert fields["task"] == "binary"
    assert fields["architecture"].startswith("lstm, hidden-size 32")

    probe, out = run_probe(tmp_path, "info", "--json", hemolytic_model)
    assert probe == {"code": 0, "torch": False, "numpy": False, "yaml": False}
    manifest = json.loads(out)
    assert manifest["model"]["hidden_size"] == 32
    assert fields["parameters"] == f"{manifest['parameters']:,}"

    probe, out = run_probe(tmp_path, "config", "--from", hemolytic_model)
    assert probe == {"code": 0, "torch": False, "numpy": False, "yaml": True}
    assert "hidden_size: 32" in out


def test_info_of_an_ensemble_without_torch(tmp_path: Path, hemolytic_model: Path) -> None:
    ensemble = tmp_path / "pair.bsnn"
    assert main(["ensemble", str(hemolytic_model), str(hemolytic_model), "-o", str(ensemble)]) == 0
    probe, out = run_probe(tmp_path, "info", ensemble)
    assert probe == {"code": 0, "torch": False, "numpy": False, "yaml": False}
    fields = dict(line.split(None, 1) for line in out.splitlines() if " " in line)
    assert fields["ensemble"] == "2 members, seeds 0, 0"
    assert fields["architecture"].startswith("lstm, hidden-size 32")


def test_a_damaged_model_is_refused_without_torch(tmp_path: Path, hemolytic_model: Path) -> None:
    damaged = tmp_path / "damaged.bsnn"
    damaged.write_bytes(hemolytic_model.read_bytes()[:-100])  # weights cut short
    probe, _ = run_probe(tmp_path, "info", damaged)
    assert probe == {"code": 1, "torch": False, "numpy": False, "yaml": False}  # a model file error


def test_the_probe_sees_torch_when_a_command_uses_it(
    tmp_path: Path, hemolytic_model: Path, examples: Path, monkeypatch
) -> None:
    """The control: predicting through torch does import it, and the probe reports it
    (a small prediction is made without torch unless BIOSEQNN_LIGHT=0:
    tests/unit/test_light.py)."""
    monkeypatch.setenv("BIOSEQNN_LIGHT", "0")
    probe, out = run_probe(tmp_path, "predict", hemolytic_model, examples / "hemolytic.fasta")
    assert probe == {"code": 0, "torch": True, "numpy": True, "yaml": False}
    assert out.startswith("id\t")


def test_training_and_prediction_leave_the_compiler_stack_out(tmp_path: Path) -> None:
    """torch's compiler (torch._dynamo) and its symbolic shapes (sympy) cost 1-2 s of a
    process's start; the default training (a convolution and a bidirectional GRU, its
    directions on two threads) and a prediction run without them. (Batches of 64 x 100
    positions: smaller steps run on one thread, runtime.SMALL_STEP.)"""
    records = random_records(100, "ACGT", 100, seed=3)
    (tmp_path / "s.fa").write_bytes(fasta(records))
    rows = "".join(f"{rid},{i % 2}\n" for i, (rid, _) in enumerate(records))
    (tmp_path / "s.csv").write_text("id,y\n" + rows)
    done = fresh_python(
        "import sys\n"
        "from bioseqnn.cli import main\n"
        "fa, csv, out = sys.argv[1:]\n"
        "codes = [main(['train', fa, csv, '-o', out, '--epochs', '2', '--threads', '2', "
        "'--quiet']), main(['predict', out, fa, '-o', out + '.tsv'])]\n"
        "heavy = [m for m in ('torch._dynamo', 'sympy') if m in sys.modules]\n"
        "print('PROBE', codes, heavy, 'torch' in sys.modules, file=sys.stderr)\n",
        tmp_path / "s.fa",
        tmp_path / "s.csv",
        tmp_path / "m.bsnn",
    )
    assert "PROBE [0, 0] [] True" in done.stderr, done.stderr[-2000:]
    assert len((tmp_path / "m.bsnn.tsv").read_text().splitlines()) == 101
