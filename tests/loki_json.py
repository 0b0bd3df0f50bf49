"""A small emulation of Loki's log pipeline, enough to prove faena's log lines answer LogQL.

No Loki is reachable here, so the part of a query that depends on our line format is
evaluated with Loki's semantics (grafana/loki ``pkg/logql/log/parser.go``, v3):

``| json`` turns every scalar of the JSON object into a label: strings as they are, numbers as
their JSON text, booleans as ``true``/``false``; nested objects flatten with ``_``; keys are
sanitised to ``[a-zA-Z0-9_]`` (a leading digit gets ``_``); arrays and ``null`` are skipped; a
key that clashes with a stream label becomes ``<key>_extracted``; a line that is not a JSON
object gets ``__error__="JSONParserErr"`` (and then fails any ``k="v"`` filter).

:func:`run` evaluates ``{stream selector} | json | label filters | line filters`` and
``count_over_time(<that> [range])`` over lines that all fall in the range.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

JSON_ERROR = "JSONParserErr"
_MATCHER = re.compile(r'\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"\s*')
_LINE_FILTER = re.compile(r'^(\|=|!=|\|~|!~)\s*"((?:[^"\\]|\\.)*)"$')
_COUNT = re.compile(r"^count_over_time\((.*)\[(\d+[smhd])\]\s*\)$", re.S)


class LogQLError(ValueError):
    pass


def sanitize(key: str) -> str:
    key = re.sub(r"[^a-zA-Z0-9_]", "_", key.strip())
    return "_" + key if key[:1].isdigit() else key


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def json_labels(line: str, stream: Mapping[str, str]) -> dict[str, str]:
    """The labels of ``line`` after ``{stream} | json``."""
    out = dict(stream)
    try:
        obj = json.loads(line, parse_float=str, parse_int=str, parse_constant=_reject_constant)
    except ValueError:
        obj = None
    if not isinstance(obj, dict):
        out["__error__"] = JSON_ERROR
        return out

    def walk(prefix: str, node: dict[str, Any]) -> None:
        for raw, value in node.items():
            key = f"{prefix}_{sanitize(raw)}" if prefix else sanitize(raw)
            if isinstance(value, dict):
                walk(key, value)
                continue
            if value is None or isinstance(value, list):
                continue
            if key in stream:
                key += "_extracted"
            out[key] = ("true" if value else "false") if isinstance(value, bool) else str(value)

    walk("", obj)
    return out


def _unescape(text: str) -> str:
    return str(json.loads(f'"{text}"'))


def _matches(labels: Mapping[str, str], name: str, op: str, want: str) -> bool:
    got = labels.get(name, "")
    if op == "=":
        return got == want
    if op == "!=":
        return got != want
    hit = re.fullmatch(want, got) is not None
    return hit if op == "=~" else not hit


def _split_pipeline(query: str) -> tuple[list[tuple[str, str, str]], list[str]]:
    query = query.strip()
    if not query.startswith("{") or "}" not in query:
        raise LogQLError(f"a log query starts with a stream selector {{...}}: {query!r}")
    selector, rest = query[1:].split("}", 1)
    matchers = []
    for part in filter(None, (p.strip() for p in selector.split(","))):
        m = _MATCHER.fullmatch(part)
        if not m:
            raise LogQLError(f"bad stream matcher {part!r}")
        matchers.append((m.group(1), m.group(2), _unescape(m.group(3))))
    return matchers, _stages(rest)


def _stages(rest: str) -> list[str]:
    """Split the pipeline after the selector at every ``|`` outside quotes."""
    pieces, current, quoted, escaped = [], "", False, False
    for ch in rest:
        if quoted:
            current += ch
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                quoted = False
        elif ch == '"':
            quoted = True
            current += ch
        elif ch == "|":
            pieces.append(current)
            current = ""
        else:
            current += ch
    pieces.append(current)
    head, *tail = (piece.strip() for piece in pieces)
    stages = [head] if head else []  # a leading `!= "x"` line filter has no pipe
    for piece in tail:
        stages.append("|" + piece if piece[:1] in ("=", "~") else "| " + piece)
    return stages


def select(lines: Iterable[str], stream: Mapping[str, str], query: str) -> list[str]:
    """The lines a log query returns (stream selector, ``| json``, filters)."""
    matchers, stages = _split_pipeline(query)
    if not all(_matches(stream, *m) for m in matchers):
        return []
    picked = []
    for line in lines:
        labels: dict[str, str] = dict(stream)
        keep = True
        for stage in stages:
            if stage == "| json":
                labels = json_labels(line, stream)
                continue
            lf = _LINE_FILTER.match(stage)
            if lf:
                op, text = lf.group(1), _unescape(lf.group(2))
                hit = (text in line) if op in ("|=", "!=") else re.search(text, line) is not None
                keep = hit if op in ("|=", "|~") else not hit
            elif stage.startswith("| ") and (m := _MATCHER.fullmatch(stage[2:])):
                if "__error__" in labels and m.group(1) != "__error__":
                    keep = False  # a failed parse fails every other label filter
                else:
                    keep = _matches(labels, m.group(1), m.group(2), _unescape(m.group(3)))
            else:
                raise LogQLError(f"unsupported or invalid stage {stage!r} in {query!r}")
            if not keep:
                break
        if keep:
            picked.append(line)
    return picked


def run(lines: Iterable[str], stream: Mapping[str, str], query: str) -> list[str] | int:
    """A log query -> lines; ``count_over_time(<log query> [range])`` -> count (every line
    is taken to fall inside the range)."""
    m = _COUNT.match(query.strip())
    if m:
        return len(select(lines, stream, m.group(1)))
    if "count_over_time" in query:
        raise LogQLError(
            f"{query!r}: count_over_time wraps a log query with a range, "
            f'e.g. count_over_time({{...}} | json | queue="etl_pool" [1m])'
        )
    return select(lines, stream, query)
