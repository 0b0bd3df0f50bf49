"""``faena server``'s token flags: a token from a file or the environment, never both."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from tests.integration.test_camunda_support import http, running_server

from faena.cli.server import server, token_from


def test_a_token_comes_from_its_file_or_its_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FAENA_ADMIN_TOKEN", raising=False)
    assert token_from("admin", None, "FAENA_ADMIN_TOKEN") is None
    path = tmp_path / "admin"
    path.write_text("s3cret\n")
    assert token_from("admin", str(path), "FAENA_ADMIN_TOKEN") == "s3cret"
    monkeypatch.setenv("FAENA_ADMIN_TOKEN", " from-env ")
    assert token_from("admin", None, "FAENA_ADMIN_TOKEN") == "from-env"


@pytest.mark.parametrize(
    ("content", "env", "says"),
    [
        ("s3cret", "other", "not both"),
        ("  \n", None, "is empty"),
    ],
)
def test_server_refuses_two_tokens_of_a_kind_or_an_empty_file(
    tmp_path: Path, content: str, env: str | None, says: str
) -> None:
    path = tmp_path / "read"
    path.write_text(content)
    environ = {"FAENA_READ_TOKEN": env} if env else {}
    result = CliRunner().invoke(
        server, ["--broker", "memory://", "--read-token-file", str(path)], env=environ
    )
    assert result.exit_code == 2, result.output
    assert says in result.output and "read" in result.output


def test_a_served_api_takes_the_tokens_from_their_files(tmp_path: Path) -> None:
    (tmp_path / "admin").write_text("adm1n-s3cret\n")
    (tmp_path / "read").write_text("r3ad-s3cret\n")
    broker = f"sqlite:///{tmp_path / 'cli.db'}"
    files = ["--admin-token-file", "admin", "--read-token-file", "read"]
    with running_server(broker, tmp_path, *files) as served:
        admin = {"Authorization": "Bearer adm1n-s3cret"}
        reader = {"Authorization": "Bearer r3ad-s3cret"}
        status, headers, body = http(
            "POST", f"{served.url}/api/v1/jobs", {"task": "t.cli", "args": [1]}, headers=admin
        )
        assert status == 201, body
        job = json.loads(body)
        assert headers["location"] == f"/api/v1/jobs/{job['id']}"
        status, _, body = http("GET", f"{served.url}/api/v1/jobs/{job['id']}", headers=reader)
        assert (status, json.loads(body)["task"]) == (200, "t.cli")
        status, headers, _ = http(
            "POST", f"{served.url}/api/v1/jobs/{job['id']}/cancel", raw=b"", headers=reader
        )
        assert (status, headers["content-type"]) == (403, "application/problem+json")
        assert http("GET", f"{served.url}/api/v1/jobs")[0] == 401
    assert "s3cret" not in served.log.read_text()
