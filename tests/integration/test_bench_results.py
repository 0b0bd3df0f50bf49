"""The repo keeps only the benchmark runs that docs/benchmarks.md and docs/reliability.md cite,
and every one they cite."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

from tests.conftest import need

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "bench" / "results"
# a run is cited by its file name: results/all-20261128T214459Z.jsonl, or bare when several
# runs are named in one parenthesis
RUN = re.compile(r"\b((?:[a-z]+-)+\d{8}T\d{4,6}Z\.jsonl)\b")


#: the pages that cite runs kept in bench/results/
CITING = ("benchmarks.md", "reliability.md")


def cited_runs() -> set[str]:
    pages = [ROOT / "docs" / name for name in CITING]
    return {run for p in pages if p.exists() for run in RUN.findall(p.read_text("utf-8"))}


def _tracked() -> set[str] | None:
    """The run files git tracks (None outside a git checkout)."""
    git = shutil.which("git")
    if git is None or not (ROOT / ".git").exists():
        return None
    listed = subprocess.run(
        [git, "ls-files", "bench/results"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    return {Path(p).name for p in listed}


def test_every_cited_run_is_in_the_repo() -> None:
    cited = cited_runs()
    assert cited, "docs/benchmarks.md cites no run: the pattern no longer matches its names"
    assert any(n.startswith("chaos-") for n in cited), "docs/reliability.md cites no chaos run"
    tracked = _tracked()  # a run on disk but untracked would be missing from a fresh clone
    missing = sorted(
        name
        for name in cited
        if not (RESULTS / name).is_file() or (tracked is not None and name not in tracked)
    )
    assert not missing, (
        f"docs/benchmarks.md or docs/reliability.md cite runs that the repo lacks: {missing}; "
        "git add -f them (bench/results/ is ignored)"
    )


def test_the_repo_keeps_only_the_cited_runs() -> None:
    tracked = _tracked()
    need(tracked is not None, "not a git checkout: cannot tell tracked files from raw output")
    assert tracked is not None
    extra = sorted(name for name in tracked if name not in cited_runs())
    assert not extra, (
        f"bench/results/ tracks runs no page of {CITING} cites: {extra}; "
        "`git rm --cached` them (raw output stays local, see .gitignore)"
    )
