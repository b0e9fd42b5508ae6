"""The README's commands taken literally: `python3 benchmark.py ...` in a shell where the
project's venv is not activated, i.e. under a Python that lacks dnnbench's dependencies."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # each test runs benchmark.py in a new interpreter

ROOT = Path(__file__).resolve().parents[2]


def _bare_pythons() -> list[list[str]]:
    """Interpreters without the dependencies: this one without site-packages (``-S``, works
    everywhere), and the system's python3 where it lacks pydantic (as on Debian)."""
    found = [[sys.executable, "-S"]]
    system = shutil.which("python3", path="/usr/bin:/bin")
    if system and subprocess.run([system, "-c", "import pydantic"], capture_output=True).returncode != 0:
        found.append([system])
    return found


def _project(tmp_path: Path, venv: bool) -> Path:
    """benchmark.py and the package in a fresh folder; with ``venv``, .venv is the venv running
    the tests (which has every dependency), linked as in a git worktree."""
    shutil.copy(ROOT / "benchmark.py", tmp_path / "benchmark.py")
    (tmp_path / "dnnbench").symlink_to(ROOT / "dnnbench")
    (tmp_path / "config").symlink_to(ROOT / "config")
    if venv:
        assert sys.prefix != sys.base_prefix, "the tests run in a venv (make test)"
        (tmp_path / ".venv").symlink_to(sys.prefix)
    return tmp_path


def _run(python: list[str], project: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "DNNBENCH_VENV_REEXEC")}
    return subprocess.run([*python, "benchmark.py", *args], cwd=project, capture_output=True, text=True,
                          timeout=120, env=env)


@pytest.mark.parametrize("python", _bare_pythons(), ids=lambda p: " ".join(p))
def test_runs_itself_under_the_project_venv(tmp_path, python):
    project = _project(tmp_path, venv=True)
    p = _run(python, project, "validate", "--config", "config/quickstart.yaml")
    assert p.returncode == 0, p.stderr
    assert "config/quickstart.yaml: valid" in p.stderr and "Traceback" not in p.stderr
    assert "name: quickstart" in p.stdout


@pytest.mark.parametrize("python", _bare_pythons(), ids=lambda p: " ".join(p))
def test_without_a_venv_one_line_says_to_run_make_setup(tmp_path, python):
    project = _project(tmp_path, venv=False)
    p = _run(python, project, "--help")
    assert p.returncode == 1 and p.stdout == ""
    assert p.stderr.count("\n") == 1 and "make setup" in p.stderr and "pydantic" in p.stderr
    assert "Traceback" not in p.stderr


def test_a_venv_that_lacks_them_too_does_not_loop(tmp_path):
    """The venv's python is itself bare: one line, exit 1, never an endless re-run."""
    project = _project(tmp_path, venv=False)
    (project / ".venv" / "bin").mkdir(parents=True)
    wrapper = project / ".venv" / "bin" / "python"
    wrapper.write_text(f"#!/bin/sh\nexec {sys.executable} -S \"$@\"\n")
    wrapper.chmod(0o755)
    p = _run([sys.executable, "-S"], project, "--help")
    assert p.returncode == 1 and "make setup" in p.stderr and "Traceback" not in p.stderr
