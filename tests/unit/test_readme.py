"""The README's Python example runs as written (up to waiting for a worker)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_example_defines_and_enqueues(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    block = re.search(r"```python\n(.*?)```", README.read_text(), re.S)
    assert block is not None
    code = block.group(1)
    assert "job.wait(timeout=60)" in code
    monkeypatch.chdir(tmp_path)  # the example's sqlite:///faena.db lands here
    namespace: dict[str, object] = {"__name__": "readme_example"}
    exec(compile(code.replace("job.wait(timeout=60)", "pass"), "README.md", "exec"), namespace)
    job = namespace["job"]
    app = namespace["app"]
    assert job.refresh().state.value == "queued"  # type: ignore[attr-defined]
    again = namespace["load_table"].enqueue(  # type: ignore[attr-defined]
        "users", "2026-11-27", idempotency_key="users/2026-11-27"
    )
    assert again.id == job.id  # type: ignore[attr-defined]
    assert (tmp_path / "faena.db").exists()
    app.close()  # type: ignore[attr-defined]
