"""Every upstream case of ``hpa-cases-sample.json`` replays to exactly its expected values."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import need

from faena.autoscale.conformance import replay

_HERE = Path(__file__).parent
_REPO_COPY = _HERE / "data" / "hpa-cases-sample.json"
_SHARED_COPY = _HERE.parents[2].parent / "shared" / "docs" / "hpa-cases-sample.json"


def _load_cases() -> list[dict[str, Any]]:
    path = _REPO_COPY if _REPO_COPY.exists() else _SHARED_COPY
    cases: list[dict[str, Any]] = json.loads(path.read_text(encoding="utf-8"))
    return cases


CASES = _load_cases()


def test_sample_has_every_kind() -> None:
    assert len(CASES) >= 55
    assert {c["kind"] for c in CASES} == {"calc", "behavior", "controller"}
    names = [c["name"] for c in CASES]
    assert len(names) == len(set(names)), "case names must be unique to serve as test ids"


def test_repo_copy_matches_shared_copy_when_present() -> None:
    need(_SHARED_COPY.exists(), f"{_SHARED_COPY} is not beside the repository (CI puts it there)")
    assert json.loads(_REPO_COPY.read_text(encoding="utf-8")) == json.loads(
        _SHARED_COPY.read_text(encoding="utf-8")
    )


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_upstream_case(case: dict[str, Any]) -> None:
    assert replay(case) == case["expected"]


def test_replay_reports_a_wrong_expectation() -> None:
    case = json.loads(json.dumps(CASES[0]))
    case["expected"] = {"error_contains": "something upstream never says"}
    assert replay(case) != case["expected"]
