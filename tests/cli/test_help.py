"""Every command's --help: its options in groups (Inputs, Run, Output and the command's
own), each value named by what goes there (FILE, N, NAME, a|b|c), none by Typer's type
(<str>, <int range>)."""

from __future__ import annotations

import re
from typing import Any

import pytest
import typer
from conftest import fresh_python

from bioseqnn.cli import app

PANELS = {
    "train": ["Arguments", "Inputs", "Model", "Training", "Fine-tuning", "Run", "Output"],
    "predict": ["Arguments", "Inputs", "Prediction", "Run", "Output"],
    "variants": ["Arguments", "Inputs", "Prediction", "Run", "Output"],
    "info": ["Arguments", "Run", "Output"],
    "ensemble": ["Arguments", "Run", "Output"],
    "tune": ["Arguments", "Inputs", "Training", "Search", "Run", "Output"],
    "evaluate": ["Arguments", "Inputs", "Run", "Output"],
    "explain": ["Arguments", "Inputs", "Method", "Run", "Output"],
    "motifs": ["Arguments", "Inputs", "Method", "Clustering", "Run", "Output"],
    "insert": ["Arguments", "Inputs", "Method", "Run", "Output"],
    "ism-map": ["Arguments", "Inputs", "Method", "Run", "Output"],
    "export": ["Arguments", "Inputs", "Parity check", "Run", "Output"],
    "generate": ["Arguments", "Sampling", "Run", "Output"],
    "version": ["Output"],
    "plot-history": ["Arguments", "Run", "Output"],
    "config": ["Inputs", "Run", "Output"],
}
"""Each command's --help groups, in order; "Options" (--help alone) follows them."""

SHARED = {
    "--on-invalid": "Inputs",
    "--genome": "Inputs",
    "--id-column": "Inputs",
    "--batch-size": "Run",
    "--seed": "Run",
    "--device": "Run",
    "--threads": "Run",
    "--quiet": "Run",
    "--debug": "Run",
    "--output": "Output",
    "--format": "Output",
    "--dpi": "Output",
}
"""Options that several commands take, and their group in each."""

TYPER_METAVARS = re.compile(r"<(str|int|float|bool|path|list\[|[\w-]+(\|[\w-]+)+>)")
"""What Typer writes where no metavar is given: <str>, <int range>, <float>, <list[str]>,
<path>, and choices as <a|b|c> (train's form, and every command's now, is a|b|c)."""


def commands() -> dict[str, Any]:
    return dict(getattr(typer.main.get_command(app), "commands", {}))


def sections(text: str) -> dict[str, str]:
    """A help text's groups: heading -> its lines (the usage and description left out)."""
    found: dict[str, str] = {}
    heading = None
    for line in text.splitlines():
        if re.fullmatch(r"[A-Z][A-Za-z -]*:", line):
            heading = line[:-1]
            found[heading] = ""
        elif heading is not None:
            found[heading] += line + "\n"
    return found


def test_every_command_is_listed() -> None:
    assert sorted(PANELS) == sorted(commands())


@pytest.mark.parametrize("command", sorted(PANELS))
def test_help_groups_the_options_and_names_their_values(cli, command: str) -> None:
    r = cli(command, "--help")
    assert r.code == 0, r.err
    usage = r.out.splitlines()[0]
    assert usage.startswith(f"Usage: bioseqnn {command} [OPTIONS]")
    assert TYPER_METAVARS.search(r.out) is None, TYPER_METAVARS.findall(r.out)
    groups = sections(r.out)
    assert list(groups) == [*PANELS[command], "Options"]
    # every option is in a group of its own: the last holds --help alone
    assert groups["Options"].split()[0] == "--help"
    assert groups["Options"].count("--") == 1
    # the options that several commands share are in the same group in each
    for flag, group in SHARED.items():
        if (command, flag) == ("train", "--batch-size"):
            continue  # a training setting there
        entry = re.compile(rf"^  (-\w, )?{flag}\b", re.MULTILINE)
        assert [name for name, lines in groups.items() if entry.search(lines)] in ([], [group])


@pytest.mark.parametrize("command", sorted(PANELS))
def test_every_value_is_named_by_a_metavar(command: str) -> None:
    """Each argument, and each option that takes a value, says what goes there: FILE,
    MODEL, N, NAME, DIR, a|b|c... (upper case, or the choices)."""
    for param in commands()[command].params:
        if getattr(param, "is_flag", False) or param.name == "help":
            continue
        metavar = param.metavar
        assert metavar, (command, param.name)
        # a word in capitals (FILE, N, NAME_mqc.json, [URI]) or the choices (tsv|fasta)
        assert "|" in metavar or metavar != metavar.lower(), (command, param.name, metavar)


def test_arguments_are_named_as_messages_name_them(cli) -> None:
    """An argument's metavar is what its errors and the usage line say: MODEL, SEQUENCES."""
    r = cli("predict", "--help")
    assert r.out.splitlines()[0] == "Usage: bioseqnn predict [OPTIONS] {MODEL} [SEQUENCES]..."
    arguments = sections(r.out)["Arguments"].split()
    assert arguments[0] == "MODEL" and "SEQUENCES..." in arguments
    r = cli("evaluate")
    assert r.code == 2
    assert "Missing argument 'MODEL'" in r.err


def test_every_help_leaves_torch_and_numpy_unloaded() -> None:
    """All the commands' --help in one fresh interpreter: none imports torch or numpy."""
    p = fresh_python(
        "import sys\n"
        "from bioseqnn.cli import main\n"
        f"codes = [main([c, '--help']) for c in {sorted(PANELS)!r}]\n"
        "heavy = sorted(m for m in ('torch', 'numpy') if m in sys.modules)\n"
        "print('PROBE', set(codes), heavy, file=sys.stderr)\n"
    )
    assert [x for x in p.stderr.splitlines() if x.startswith("PROBE")] == ["PROBE {0} []"]
