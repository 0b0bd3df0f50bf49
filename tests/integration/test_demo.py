"""The demo runs end to end (small) and reports the poison job as dead."""

from __future__ import annotations

from click.testing import CliRunner

from faena.cli.main import cli


def test_demo_runs_to_its_report() -> None:
    result = CliRunner().invoke(cli, ["demo", "--workers", "2", "--days", "13"])
    assert result.exit_code == 0, result.output
    assert "== faena demo report ==" in result.output
    assert "dead       1" in result.output
    assert "succeeded  389" in result.output
