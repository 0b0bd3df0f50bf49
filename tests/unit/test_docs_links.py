"""Every relative link in the README and docs/, and every repo path they or the manifests'
comments name, points at a file or folder that is in the repository."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = sorted([ROOT / "README.md", *(ROOT / "docs").rglob("*.md")])
MANIFESTS = sorted(
    p for p in (ROOT / "deploy").rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file()
)

LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
#: a path inside the repo, as docs write them in backticks or comments: docs/x.md, tests/...
REPO_PATH = re.compile(
    r"(?<![\w./-])((?:docs|deploy|tests|src|bench|examples)/[\w./-]*[\w/])(?![\w(])"
)
CODE_SPAN = re.compile(r"`([^`\n]+)`")
#: files the docs name that a run writes (not in a clone): the simulator's output, the
#: benchmark runs' result files
GENERATED = re.compile(r"(^|/)(sim|out)/|^bench/results/|\.(png|csv|log)$")


def _external(target: str) -> bool:
    return bool(re.match(r"^[a-z][a-z0-9+.-]*:", target)) or target.startswith("#")


def _missing(source: Path, target: str, base: Path) -> str | None:
    path = target.split("#", 1)[0]
    if not path or GENERATED.search(path):
        return None
    if not (base / path).exists():
        return f"{source.relative_to(ROOT)}: {target}"
    return None


def doc_links(doc: Path) -> list[str]:
    text = doc.read_text(encoding="utf-8")
    bad = []
    for target in LINK.findall(text):
        if not _external(target):
            bad.append(_missing(doc, target, doc.parent))
    for span in CODE_SPAN.findall(text):
        for path in REPO_PATH.findall(span):
            bad.append(_missing(doc, path, ROOT))
    return [b for b in bad if b]


def manifest_links(manifest: Path) -> list[str]:
    bad = []
    for line in manifest.read_text(encoding="utf-8").splitlines():
        comment = line.partition("#")[2] if "#" in line else ""
        for path in REPO_PATH.findall(comment):
            bad.append(_missing(manifest, path, ROOT))
    return [b for b in bad if b]


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_and_repo_path_of_a_doc_exists(doc: Path) -> None:
    assert doc_links(doc) == []


@pytest.mark.parametrize("manifest", MANIFESTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_repo_path_in_a_manifests_comments_exists(manifest: Path) -> None:
    assert manifest_links(manifest) == []


def test_the_checker_finds_a_broken_link() -> None:
    doc = ROOT / "docs" / "quickstart.md"
    assert _missing(doc, "no-such-file.md", doc.parent) == "docs/quickstart.md: no-such-file.md"
    assert REPO_PATH.findall("see docs/hpa-spec.md section 11") == ["docs/hpa-spec.md"]
    assert LINK.findall("[a](../b.md#x) [c](https://x.y)") == ["../b.md#x", "https://x.y"]


def test_no_doc_promises_a_web_ui() -> None:
    """faena serves a JSON API, metrics and the Camunda routes: no web UI."""
    promised = [
        f"{doc.relative_to(ROOT)}: ...{doc.read_text()[max(0, m.start() - 40) : m.end()]}"
        for doc in DOCS
        for m in re.finditer(r"\bUI\b", doc.read_text(encoding="utf-8"))
        if not doc.read_text()[: m.start()].endswith("no web ")
    ]
    assert promised == []
