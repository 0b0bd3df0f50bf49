"""``faena enqueue --args/--kwargs``: JSON nested past the limit or larger than a payload may be
is refused before it is parsed, on one line, exit code 2, and nothing is enqueued."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from tests.integration.test_cli_enqueue import app_path, invoke, jobs_in

from faena.core.jsonlimits import MAX_JSON_DEPTH
from faena.core.payload import DEFAULT_MAX_PAYLOAD_BYTES

__all__ = ["app_path"]  # the fixture, used by name

DEEP = 10_000


@pytest.mark.parametrize(
    ("option", "text", "words"),
    [
        ("--args", "[" * DEEP + "]" * DEEP, (f"({DEEP} levels)", f"limit of {MAX_JSON_DEPTH}")),
        ("--kwargs", '{"a":' * DEEP + "1" + "}" * DEEP, (f"({DEEP} levels)", "flatten it")),
        ("--kwargs", '{"a": ' + "[" * 65 + "]" * 65 + "}", ("(66 levels)",)),
        (
            "--args",
            '["' + "x" * DEFAULT_MAX_PAYLOAD_BYTES + '"]',
            (f"{DEFAULT_MAX_PAYLOAD_BYTES + 4} bytes", f"limit of {DEFAULT_MAX_PAYLOAD_BYTES}"),
        ),
    ],
)
def test_deep_or_oversize_arguments_are_refused_and_nothing_is_enqueued(
    app_path: str, tmp_path: Path, option: str, text: str, words: tuple[str, ...]
) -> None:
    code, _out, err = invoke("enqueue", "dq.check", "--app", app_path, "--args", '["t"]')
    assert code == 0, err
    other = "--kwargs" if option == "--args" else "--args"
    fill = "{}" if other == "--kwargs" else '["t"]'
    code, out, err = invoke("enqueue", "dq.check", "--app", app_path, option, text, other, fill)
    assert code == 2, err
    assert out == ""
    [line] = err.splitlines()
    assert line.startswith(f"error: {option} ") and "nothing was enqueued" in line, line
    for word in words:
        assert word in line, line
    assert len(jobs_in(tmp_path)) == 1


def test_arguments_just_under_the_limits_are_enqueued(app_path: str, tmp_path: Path) -> None:
    nested = "[" * (MAX_JSON_DEPTH - 1) + "]" * (MAX_JSON_DEPTH - 1)  # 64 levels with the array
    code, _out, err = invoke("enqueue", "dq.check", "--app", app_path, "--args", f'["t", {nested}]')
    assert code == 0, err
    assert len(jobs_in(tmp_path)) == 1


def test_the_size_limit_is_the_apps(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "smallapp.py").write_text(
        "import faena\n"
        "app = faena.App(broker='sqlite:///small.db', max_payload_bytes=2000)\n"
        "@app.task(name='s.t')\n"
        "def t(x):\n    return x\n"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delenv("FAENA_BROKER_URL", raising=False)
    code, _out, err = invoke("enqueue", "s.t", "--app", "smallapp:app", "--args", '["x"]')
    assert code == 0, err
    big = '["' + "x" * 3000 + '"]'
    code, _out, err = invoke("enqueue", "s.t", "--app", "smallapp:app", "--args", big)
    assert code == 2, err
    assert "3004 bytes, over the limit of 2000 bytes" in err and "nothing was enqueued" in err
    code, out, err = invoke("jobs", "list", "--json", "--broker", f"sqlite:///{tmp_path}/small.db")
    assert code == 0, err
    assert len(json.loads(out)) == 1
    sys.modules.pop("smallapp").app.close()
