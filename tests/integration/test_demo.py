"""The demo runs end to end (small) and reports the poison job as dead."""

from __future__ import annotations

import re
import shlex
import subprocess

from click.testing import CliRunner

from faena.cli.main import cli


def test_demo_runs_to_its_report() -> None:
    result = CliRunner().invoke(cli, ["demo", "--workers", "2", "--days", "13"])
    assert result.exit_code == 0, result.output
    assert "== faena demo report ==" in result.output
    assert "dead       1" in result.output
    assert "succeeded  389" in result.output
    # the commands it prints run as printed (not a bare `faena` the shell may not find)
    shown = re.search(r"inspect: (.+)$", result.output, re.M)
    kept = re.search(r"database kept for inspection: (.+)$", result.output, re.M)
    assert shown is not None and kept is not None
    for line in (shown.group(1), kept.group(1)):
        done = subprocess.run(shlex.split(line), capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, (line, done.stderr)
        assert "dead" in done.stdout
