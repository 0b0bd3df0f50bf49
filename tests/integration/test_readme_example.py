"""The README's Python example runs as written (up to waiting for a worker)."""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), re.S)


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The README's ``myproject/jobs.py`` (its first block), importable, in the cwd."""
    jobs = python_blocks()[0]
    assert jobs.startswith("# myproject/jobs.py")
    (tmp_path / "myproject").mkdir()
    (tmp_path / "myproject" / "__init__.py").write_text("")
    (tmp_path / "myproject" / "jobs.py").write_text(jobs)
    monkeypatch.chdir(tmp_path)  # the example's sqlite:///faena.db lands here
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    for name in [m for m in sys.modules if m == "myproject" or m.startswith("myproject.")]:
        del sys.modules[name]


def test_readme_example_defines_and_enqueues(project: Path) -> None:
    code = python_blocks()[1]
    assert "job.wait(timeout=60)" in code
    namespace: dict[str, object] = {"__name__": "readme_example"}
    exec(compile(code.replace("job.wait(timeout=60)", "pass"), "README.md", "exec"), namespace)
    job = namespace["job"]
    assert job.refresh().state.value == "queued"  # type: ignore[attr-defined]
    again = namespace["load_table"].enqueue_with(  # type: ignore[attr-defined]
        ["users", "2026-11-27"], idempotency_key="users/2026-11-27"
    )
    assert again.id == job.id  # type: ignore[attr-defined]
    assert (project / "faena.db").exists()
    assert job.job.task == "myproject.jobs.load_table"  # type: ignore[attr-defined]
    namespace["load_table"].app.close()  # type: ignore[attr-defined]
