"""Listeners bind loopback by default; an API other machines reach needs a token; a missing
extra or a bad option is an error message, not a traceback."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from faena.cli.main import cli, module_commands


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.stderr


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    for var in ("FAENA_TOKEN", "FAENA_HOST", "FAENA_METRICS_ADDR", "FAENA_EXPORTER_ADDR"):
        monkeypatch.delenv(var, raising=False)


@pytest.mark.parametrize("command", [["server"], ["up", "x:app"]])
def test_a_non_loopback_api_without_a_token_is_refused(command: list[str]) -> None:
    code, err = invoke(*command, "--host", "0.0.0.0")
    assert code == 2
    assert "--token" in err and "FAENA_TOKEN" in err and "--insecure-no-token" in err


@pytest.mark.parametrize("command", [["server"], ["up", "x:app"], ["demo"]])
def test_without_uvicorn_the_error_names_the_extra(
    command: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "uvicorn", None)  # what an install without [web] has
    code, err = invoke(*command)
    assert code == 1
    assert "pip install 'faena[web]'" in err
    assert "Traceback" not in err


def events(caplog: pytest.LogCaptureFixture) -> list[str]:
    found = [getattr(r, "event", None) for r in caplog.records if r.levelname == "WARNING"]
    caplog.clear()
    return [e for e in found if e]


def test_the_override_only_warns(caplog: pytest.LogCaptureFixture) -> None:
    from faena.cli.options import check_exposure

    with caplog.at_level(logging.WARNING, logger="faena.cli"):
        check_exposure("0.0.0.0", None, insecure=True)
        assert events(caplog) == ["listener.insecure_no_token"]
    check_exposure("10.0.0.5", "t0ken", insecure=False)  # a token: fine
    check_exposure("::1", None, insecure=False)  # loopback: fine
    with pytest.raises(click.UsageError):
        check_exposure("10.0.0.5", None, insecure=False)


def test_metrics_listeners_default_to_loopback_and_warn_elsewhere(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from faena.cli.options import is_loopback, warn_exposed

    defaults = {}
    for module, name, option in [
        ("faena.cli.worker", "worker", "metrics_addr"),
        ("faena.cli.exporter", "exporter", "addr"),
        ("faena.cli.server", "server", "host"),
        ("faena.cli.up", "up", "host"),
        ("faena.cli.autoscale", "autoscale", "metrics_addr"),
    ]:
        command = module_commands(module)[name]
        if isinstance(command, click.Group):
            command = command.commands["celery"]
        [param] = [p for p in command.params if p.name == option]
        defaults[f"{name} {option}"] = param.default
    assert set(defaults.values()) == {"127.0.0.1"}, defaults
    with caplog.at_level(logging.WARNING, logger="faena.cli"):
        warn_exposed("the worker's /metrics", "127.0.0.1", "--metrics-addr")
        assert events(caplog) == []
        warn_exposed("the worker's /metrics", "0.0.0.0", "--metrics-addr")
        assert events(caplog) == ["listener.exposed"]
    assert is_loopback("127.0.0.2") and is_loopback("localhost") and not is_loopback("")


@pytest.mark.parametrize(
    "command",
    [["worker", "x:app"], ["server"], ["up", "x:app"], ["exporter", "celery", "--broker", "x"]],
)
def test_a_bogus_log_level_is_a_usage_error(command: list[str]) -> None:
    code, err = invoke(*command, "--log-level", "bogus")
    assert code == 2
    assert "'bogus' is not one of" in err


def test_a_lower_case_log_level_is_accepted() -> None:
    [param] = [
        p for p in module_commands("faena.cli.server")["server"].params if p.name == "log_level"
    ]
    assert param.type.convert("debug", None, None) == "DEBUG"
