"""The demo's report tells how to inspect its database with the faena it was run with."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from faena.demo.report import faena_command


def _executable(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n")
    path.chmod(0o755)
    return path


def test_run_from_a_venv_the_report_names_the_venvs_faena(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    venv_faena = _executable(tmp_path / ".venv" / "bin" / "faena")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.setattr(sys, "argv", [".venv/bin/faena", "demo"])  # as `make demo` runs it
    assert faena_command() == ".venv/bin/faena"
    monkeypatch.setenv("PATH", str(venv_faena.parent))  # the shell finds that one: bare name
    assert faena_command() == "faena"


def test_run_another_way_the_report_names_a_faena_that_exists(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.setattr(sys, "argv", ["/usr/bin/pytest"])
    command = faena_command()
    beside = Path(sys.executable).parent / "faena"
    assert command == (str(beside) if beside.exists() else f"{sys.executable} -m faena.cli.main")
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))  # no faena beside it
    assert faena_command() == f"{tmp_path}/python -m faena.cli.main"
