"""docs/architecture.md stays true to the tree: its layer rules hold, no module imports itself
back at import time, and its module list names every module of ``src/faena`` and no other.

Run as a script, it prints the module list as docs/architecture.md should have it.
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src" / "faena"
DOC = ROOT / "docs" / "architecture.md"

#: what each layer may import at import time (docs/architecture.md, "Layers"); a layer is the
#: first name under ``faena`` (``faena.worker.runtime`` is in ``worker``)
ALLOWED: dict[str, set[str]] = {
    "errors": set(),
    "version": set(),
    "shutdown": set(),
    "core": {"errors"},
    "task": {"core", "errors"},
    "context": {"core"},
    "brokers": {"core", "errors", "version"},
    "defaults": {"core"},  # imports observability.logs lazily, when a default sink is asked
    "schedules": {"brokers", "core", "errors", "task"},
    "app": {"brokers", "core", "defaults", "errors", "schedules", "task"},
    "observability": {"brokers", "core", "errors", "schedules"},
    "worker": {"app", "brokers", "context", "core", "errors", "task", "version"},
    "autoscale": {"brokers", "core", "errors", "observability"},
    # the client runs on the worker runtime (camunda/client/); the server side needs neither
    "camunda": {"app", "brokers", "core", "defaults", "errors", "shutdown", "web.body", "worker"},
    "pipelines": {"app", "core", "errors", "task"},
    # the Zeebe gateway on the broker protocol; its auth is the server's (web.guard's Access)
    "zeebe": {"brokers", "core", "errors", "version", "web.guard"},
    "web": {"app", "camunda", "core", "errors", "observability", "pipelines", "version"},
    "faena": {"app", "context", "core", "errors", "task", "version"},
}
#: composition: may import anything
ANY = {"benchmark", "cli", "demo"}


def modules() -> dict[str, Path]:
    found = {}
    for path in sorted(SRC.rglob("*.py")):
        parts = ("faena", *path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def _is_type_checking(node: ast.If) -> bool:
    return "TYPE_CHECKING" in ast.unparse(node.test)


def imports_at_load(name: str, path: Path, known: set[str]) -> set[str]:
    """The faena modules ``name`` imports when it is loaded (not under TYPE_CHECKING, not
    inside functions), with the packages that importing them runs first."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()

    def visit(body: list[ast.stmt]) -> None:
        for node in body:
            if isinstance(node, ast.If):
                if not _is_type_checking(node):
                    visit(node.body)
                    visit(node.orelse)
            elif isinstance(node, ast.Try):
                visit(node.body)
                for handler in node.handlers:
                    visit(handler.body)
                visit(node.orelse)
                visit(node.finalbody)
            elif isinstance(node, ast.Import):
                found.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*up, *([node.module] if node.module else [])])
                for alias in node.names:
                    full = f"{base}.{alias.name}"
                    found.add(full if full in known else base)

    visit(ast.parse(path.read_text(encoding="utf-8")).body)
    edges: set[str] = set()
    ancestors = {".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 1)}
    for target in found:
        if not target.startswith("faena") or target not in known:
            continue
        parts = target.split(".")
        for i in range(2, len(parts) + 1):  # the packages an import runs, then the module
            step = ".".join(parts[:i])
            if step in known and step != name and step not in ancestors:
                edges.add(step)
    return edges


def graph() -> dict[str, set[str]]:
    mods = modules()
    return {name: imports_at_load(name, path, set(mods)) for name, path in mods.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for start in edges:
        if start in index:
            continue
        work = [(start, iter(sorted(edges[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                group = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.append(member)
                    if member == node:
                        break
                if len(group) > 1:
                    found.append(sorted(group))
    return found


def layer(name: str) -> str:
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else "faena"


def test_no_module_imports_itself_back_at_load() -> None:
    assert cycles(graph()) == []


def test_each_layer_imports_only_what_the_map_allows() -> None:
    wrong = []
    for name, targets in graph().items():
        here = layer(name)
        if here in ANY:
            continue
        assert here in ALLOWED, f"{name}: layer {here!r} is not in docs/architecture.md's table"
        for target in targets:
            there = layer(target)
            allowed = ALLOWED[here]
            inner = ".".join(target.split(".")[1:])  # "web.body", or "web" for its package
            if (
                there == here
                or there in allowed
                or any(a == inner or a.startswith(inner + ".") for a in allowed)
            ):
                continue
            wrong.append(f"{name} imports {target} ({here} -> {there})")
    assert not wrong, "\n".join(wrong)


def _summary(path: Path) -> str:
    doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
    first = " ".join(doc.split("\n\n")[0].split())
    sentence = re.sub(r"`+", "", re.split(r"(?<=\.)\s", first)[0])  # plain text: no doc links
    return sentence if len(sentence) <= 120 else sentence[:117].rsplit(" ", 1)[0] + " ..."


def module_list() -> str:
    lines = []
    for path in modules().values():
        rel = path.relative_to(SRC).as_posix()
        lines.append(f"- `{rel}` — {_summary(path)}")
    return "\n".join(lines)


def test_the_module_list_names_every_module() -> None:
    text = DOC.read_text(encoding="utf-8")
    block = text.split("<!-- modules -->", 1)[1].split("<!-- /modules -->", 1)[0]
    listed = set(re.findall(r"^- `([^`]+\.py)`", block, re.M))
    present = {p.relative_to(SRC).as_posix() for p in modules().values()}
    assert listed - present == set(), "docs/architecture.md lists modules that are gone"
    assert present - listed == set(), (
        "docs/architecture.md does not list these modules: put them in its module list "
        "(python tests/unit/test_architecture.py prints it)"
    )


if __name__ == "__main__":
    sys.stdout.write(module_list() + "\n")


#: past this many lines a module says why in docs/architecture.md
LONG_MODULE_LINES = 400


def test_a_module_over_400_lines_says_why() -> None:
    text = DOC.read_text(encoding="utf-8")
    block = text.split("<!-- long-modules -->", 1)[1].split("<!-- /long-modules -->", 1)[0]
    explained = set(re.findall(r"^- `([^`]+\.py)`: \S", block, re.M))
    sizes = {
        p.relative_to(SRC).as_posix(): len(p.read_text(encoding="utf-8").splitlines())
        for p in modules().values()
    }
    long = {rel for rel, n in sizes.items() if n > LONG_MODULE_LINES}
    unexplained = {rel: sizes[rel] for rel in long - explained}
    assert not unexplained, (
        f"modules over {LONG_MODULE_LINES} lines with no reason in docs/architecture.md "
        f"(section 'Modules over 400 lines'): {unexplained}; split them or say why there"
    )
    short = {rel: sizes.get(rel) for rel in explained - long}
    assert not short, f"listed as over {LONG_MODULE_LINES} lines but are not (remove): {short}"
