"""Node.js clients for the tests: a copy of a directory with its npm dependencies installed,
once per machine, under a file lock (two xdist processes installing into one directory at
once break each other's ``node_modules``: npm's ENOTEMPTY)."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from filelock import FileLock
from tests.conftest import need


def npm_installed(source: Path, name: str, marker: str, what: str) -> Path:
    """``source`` copied to ``$TMPDIR/name`` with ``npm install`` run there unless
    ``node_modules/marker`` (a package.json) exists; skips (fails under CI) without Node."""
    need(
        shutil.which("node") is not None and shutil.which("npm") is not None,
        "Node.js and npm are not installed",
    )
    home = Path(tempfile.gettempdir()) / name
    with FileLock(str(home) + ".lock", timeout=900):
        shutil.copytree(
            source, home, dirs_exist_ok=True, ignore=shutil.ignore_patterns("node_modules")
        )
        if not (home / "node_modules" / marker).exists():
            npm = subprocess.run(
                ["npm", "install", "--no-audit", "--no-fund"],
                cwd=home,
                capture_output=True,
                text=True,
            )
            need(npm.returncode == 0, f"npm install of {what} failed: {npm.stderr[-500:]}")
    return home
