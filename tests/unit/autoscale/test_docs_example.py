"""The Python example of docs/autoscaling.md runs and its assertion holds."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).parents[3]


def test_autoscaling_doc_example_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    text = (REPO / "docs" / "autoscaling.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL)
    assert blocks, "docs/autoscaling.md lost its Python example"
    monkeypatch.chdir(REPO)
    for block in blocks:
        exec(compile(block, "docs/autoscaling.md", "exec"), {})
