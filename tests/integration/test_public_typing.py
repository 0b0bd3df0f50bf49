"""faena's public API as a type checker sees it: ``tests/typing/api_usage.py`` passes mypy
strict, with every mistake it shows refused (an ignore that is no longer needed fails)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_users_code_type_checks_and_mistakes_are_refused() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", "tests/typing/api_usage.py"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
