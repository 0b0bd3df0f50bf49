"""Without httpx (the ``camunda`` extra) the server side works and the client names the extra."""

from __future__ import annotations

import subprocess
import sys
import textwrap

# sys.modules[name] = None is how Python itself marks a module as not importable
WITHOUT_HTTPX = "import sys; sys.modules['httpx'] = None\n"


def run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", WITHOUT_HTTPX + textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_server_side_needs_no_httpx() -> None:
    done = run(
        """
        import faena, faena.camunda
        from faena.camunda import BpmnError, ExternalTask, Subscription
        from faena.web.app import create_app
        create_app(faena.App(broker="memory://"))
        print("ok")
        """
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


def test_the_client_without_httpx_names_the_extra() -> None:
    done = run(
        """
        try:
            from faena.camunda import ExternalTaskClient
        except ImportError as exc:
            print(exc)
        """
    )
    assert done.returncode == 0, done.stderr
    assert "pip install 'faena[camunda]'" in done.stdout
    assert "ExternalTaskClient needs httpx" in done.stdout


def test_an_unknown_name_is_an_attribute_error() -> None:
    done = run(
        """
        import faena.camunda
        try:
            faena.camunda.Nope
        except AttributeError as exc:
            print(exc)
        """
    )
    assert "has no attribute 'Nope'" in done.stdout, done.stderr


def test_the_camunda_routes_import_on_their_own() -> None:
    """``faena.camunda.server.routes`` imported first (before ``faena.web``) loads: it reads bodies
    through ``faena.web.body``, whose package must not import the routes back."""
    done = subprocess.run(
        [sys.executable, "-c", "import faena.camunda.server.routes"], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
