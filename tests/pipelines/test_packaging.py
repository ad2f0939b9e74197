"""The conda recipe (conda/meta.yaml) and the container (Dockerfile): they agree with
pyproject.toml, and their test commands work; the real builds run where conda-build and a
container engine are installed, and are skipped with the reason elsewhere."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import ROOT

import bioseqnn

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")

RECIPE = ROOT / "conda" / "meta.yaml"
DOCKERFILE = ROOT / "Dockerfile"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
CONDA_NAMES = {"torch": "pytorch"}
"""PyPI names that conda-forge spells otherwise."""


def render(selectors: dict[str, Any] | None = None) -> dict[str, Any]:
    """The recipe as conda-build reads it: Jinja filled in (compiler() as conda-build's
    default), lines whose '# [selector]' is false dropped, then YAML."""
    jinja2 = pytest.importorskip("jinja2")
    env = {"py": 312, "win": False, "linux": True, "osx": False, **(selectors or {})}
    lines = []
    for line in RECIPE.read_text().splitlines():
        found = re.search(r"#\s*\[(.+)\]\s*$", line)
        if found and not eval(found.group(1), {}, dict(env)):  # noqa: S307 - our own file
            continue
        lines.append(line)
    text = (
        jinja2.Environment(undefined=jinja2.StrictUndefined)
        .from_string("\n".join(lines))
        .render(compiler=lambda lang: f"{lang}_compiler_stub", PYTHON="python")
    )
    return yaml.safe_load(text)


def requirement(spec: str) -> tuple[str, str]:
    """('name', 'specifier without spaces') of a PyPI or conda requirement."""
    name, version = re.match(r"\s*([A-Za-z0-9_.\-]+)\s*(.*)", spec).groups()  # type: ignore[union-attr]
    return name.lower(), version.replace(" ", "")


def test_recipe_renders_and_agrees_with_pyproject() -> None:
    recipe = render()
    project = PYPROJECT["project"]
    assert recipe["package"] == {"name": project["name"], "version": project["version"]}
    assert project["version"] == bioseqnn.__version__
    # the run dependencies are the package's core dependencies, under conda's names
    wanted = {}
    for spec in project["dependencies"]:
        name, version = requirement(spec)
        wanted[CONDA_NAMES.get(name, name)] = version
    run = dict(requirement(s) for s in recipe["requirements"]["run"])
    python = run.pop("python")
    assert python == ">=" + project["requires-python"].removeprefix(">=")
    assert run == wanted
    # the same console script
    (script,) = recipe["build"]["entry_points"]
    assert script.replace(" ", "") == "bioseqnn=" + project["scripts"]["bioseqnn"]
    # the C kernels: the C compiler, and the build skipped where Python is too old
    assert "c_compiler_stub" in recipe["requirements"]["build"]
    assert render({"py": 39})["build"]["skip"] is True
    assert "skip" not in recipe["build"] and "skip" not in render({"py": 310})["build"]
    # the test files the recipe names are in the recipe's folder
    for name in recipe["test"]["files"]:
        assert (RECIPE.parent / name).is_file(), name


def run_commands(commands: list[str], folder: Path) -> None:
    """Each command in bash, as conda-build's test script runs them, with this
    interpreter's bioseqnn first on PATH; stops at the first failure."""
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "OMP_NUM_THREADS": "1",
    }
    assert shutil.which("bioseqnn", path=env["PATH"]), "the console script is not installed"
    for command in commands:
        p = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", command],
            cwd=folder,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert p.returncode == 0, (command, p.stdout, p.stderr)


@pytest.mark.slow
def test_the_recipe_test_commands_pass(tmp_path: Path) -> None:
    recipe = render()
    for name in recipe["test"]["files"]:
        shutil.copy(RECIPE.parent / name, tmp_path / name)
    commands = recipe["test"]["commands"]
    assert commands[0] == "bioseqnn --version"
    assert any(c.startswith("bioseqnn train ") for c in commands)
    assert any(c.startswith("bioseqnn predict ") for c in commands)
    run_commands(commands, tmp_path)
    assert (tmp_path / "tiny.bsnn").stat().st_size > 0
    rows = (tmp_path / "tiny.tsv").read_text().splitlines()
    fasta = (tmp_path / "tiny.fasta").read_text()
    assert [r.split("\t")[0] for r in rows[1:]] == re.findall(r"^>(\S+)", fasta, re.M)


def dockerfile_smoke() -> tuple[list[str], list[str]]:
    """The Dockerfile's smoke test: the files it copies in and its RUN command."""
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    copy = re.search(r"^COPY --chown=\S+ (.+) /tmp/smoke/$", text, re.M)
    run = re.search(r"^RUN (cd /tmp/smoke .*)$", text, re.M)
    assert copy and run, "the Dockerfile lost its smoke test"
    return copy.group(1).split(), [re.sub(r"\s+", " ", run.group(1))]


@pytest.mark.slow
def test_the_container_smoke_test_passes(tmp_path: Path) -> None:
    files, commands = dockerfile_smoke()
    for name in files:
        shutil.copy(ROOT / name, tmp_path / Path(name).name)
    (command,) = commands
    assert "bioseqnn --version" in command and "bioseqnn train" in command
    # the same commands, in a copy of the folder the image uses (the last step deletes it)
    smoke = tmp_path / "smoke"
    smoke.mkdir()
    for name in files:
        shutil.copy(ROOT / name, smoke / Path(name).name)
    run_commands([command.replace("/tmp/smoke", str(smoke))], tmp_path)
    assert not smoke.exists()


def test_the_container_runs_as_a_user_with_bioseqnn_as_entry_point() -> None:
    text = DOCKERFILE.read_text()
    final = text[text.rindex("\nFROM ") :]
    assert re.search(r"^FROM python:\$\{PYTHON_VERSION\}-slim$", final, re.M)
    assert re.search(r"^USER bioseqnn$", final, re.M)
    assert re.search(r'^ENTRYPOINT \["bioseqnn"\]$', final, re.M)
    # the CPU build of the same torch the project pins, and the CUDA variant documented
    assert "ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu" in text
    assert "--build-arg TORCH_INDEX=https://download.pytorch.org/whl/cu" in text
    ignored = (ROOT / ".dockerignore").read_text().splitlines()
    for needed in dockerfile_smoke()[0]:
        assert f"!{needed}" in ignored


def docker_works() -> str | None:
    """Why a container cannot be built here, or None when it can."""
    if shutil.which("docker") is None:
        return "docker is not installed"
    p = subprocess.run(["docker", "info"], capture_output=True, text=True, timeout=60)
    if p.returncode != 0:
        last = (p.stderr.strip().splitlines() or ["docker info failed"])[-1]
        return f"no container engine runs here: {last}"
    return None


@pytest.mark.slow
def test_conda_build_builds_and_tests_the_recipe(tmp_path: Path) -> None:
    """conda-build builds the package and runs the recipe's own tests in a fresh
    environment (needs conda-build and the conda-forge channel)."""
    if shutil.which("conda-build") is None:
        pytest.skip(
            "conda-build is not installed (it is not on PyPI: install it with "
            "conda or mamba from conda-forge)"
        )
    p = subprocess.run(
        ["conda-build", str(RECIPE.parent), "-c", "conda-forge", "--output-folder", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=3600,
    )
    assert p.returncode == 0, p.stdout[-4000:] + p.stderr[-4000:]
    built = list(tmp_path.glob(f"*/bioseqnn-{bioseqnn.__version__}-*"))
    assert built, list(tmp_path.rglob("*"))


@pytest.mark.slow
def test_the_container_builds_and_answers(tmp_path: Path) -> None:
    reason = docker_works()
    if reason:
        pytest.skip(reason)
    tag = "bioseqnn:packaging-test"
    p = subprocess.run(
        ["docker", "build", "-t", tag, str(ROOT)], capture_output=True, text=True, timeout=3600
    )
    assert p.returncode == 0, p.stdout[-4000:] + p.stderr[-4000:]
    try:
        p = subprocess.run(
            ["docker", "run", "--rm", tag, "--version"], capture_output=True, text=True, timeout=300
        )
        assert p.stdout == f"bioseqnn {bioseqnn.__version__}\n", p.stderr
        p = subprocess.run(
            ["docker", "run", "--rm", "--entrypoint", "id", tag, "-u"],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert p.stdout.strip() != "0"  # not root
    finally:
        subprocess.run(["docker", "rmi", "-f", tag], capture_output=True, timeout=300)
