"""``faena --help`` lists every command without importing the command modules (start-up time:
bench/startup.py, docs/benchmarks.md)."""

from __future__ import annotations


def test_faena_help_imports_no_command_module() -> None:
    import subprocess
    import sys

    code = (
        "import sys; from faena.cli.main import cli, COMMAND_MODULES\n"
        "try:\n    cli.main(['--help'], standalone_mode=False)\nexcept SystemExit:\n    pass\n"
        "print([m for m in COMMAND_MODULES if m in sys.modules])"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"
    assert "worker" in done.stdout and "pipelines" in done.stdout  # the listing is there
