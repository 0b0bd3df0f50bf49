"""The ``--zeebe-*`` options of ``faena server`` and ``faena up``, and running the Zeebe
gateway (:mod:`faena.zeebe`) beside the HTTP server while it serves."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import click

from faena.app import App

F = TypeVar("F", bound=Callable[..., Any])
#: seconds open Zeebe calls (a long poll) get after SIGTERM
ZEEBE_GRACE_SECONDS = 2.0


def zeebe_options(f: F) -> F:
    for option in reversed(
        [
            click.option(
                "--zeebe-port",
                type=click.IntRange(min=0, max=65535),
                default=None,
                envvar="FAENA_ZEEBE_PORT",
                show_envvar=True,
                help="Also serve the Zeebe gateway's job-worker calls (gRPC) on this port "
                "(26500 is Zeebe's); see docs/zeebe.md.",
            ),
            click.option(
                "--zeebe-cert",
                type=click.Path(exists=True, dir_okay=False),
                default=None,
                envvar="FAENA_ZEEBE_CERT",
                show_envvar=True,
                help="PEM certificate (chain) for TLS on the Zeebe port (with --zeebe-key).",
            ),
            click.option(
                "--zeebe-key",
                type=click.Path(exists=True, dir_okay=False),
                default=None,
                envvar="FAENA_ZEEBE_KEY",
                show_envvar=True,
                help="PEM private key for TLS on the Zeebe port.",
            ),
            click.option(
                "--zeebe-max-calls",
                type=click.IntRange(min=1, max=10_000),
                default=64,
                envvar="FAENA_ZEEBE_MAX_CALLS",
                show_envvar=True,
                show_default=True,
                help="Zeebe calls served at once (a waiting long poll is one); more are "
                "answered RESOURCE_EXHAUSTED.",
            ),
        ]
    ):
        f = option(f)
    return f


@contextlib.contextmanager
def zeebe_running(
    app: App, host: str, admin_tokens: tuple[str, ...], opts: dict[str, Any]
) -> Iterator[None]:
    """Serve the Zeebe gateway while the block runs (nothing without ``--zeebe-port``)."""
    port = opts.get("zeebe_port")
    cert, key = opts.get("zeebe_cert"), opts.get("zeebe_key")
    if (cert is None) != (key is None):
        raise click.UsageError("give both --zeebe-cert and --zeebe-key, or neither")
    if port is None:
        if cert is not None:
            raise click.UsageError("--zeebe-cert and --zeebe-key need --zeebe-port")
        yield
        return
    try:
        from faena.web.guard import Access
        from faena.zeebe.serving import ZeebeServer
    except ImportError as exc:
        raise click.ClickException(
            f"--zeebe-port needs the zeebe extra (grpcio, pyzeebe's gateway stubs): "
            f"pip install 'faena[zeebe]' ({exc})"
        ) from exc
    try:
        server = ZeebeServer(
            app.broker,
            host=host,
            port=int(port),
            access=Access(admin_tokens=admin_tokens),
            cert=cert,
            key=key,
            max_calls=int(opts.get("zeebe_max_calls") or 64),
            max_payload_bytes=app.max_payload_bytes,
        )
    except (OSError, RuntimeError) as exc:
        raise click.ClickException(
            f"faena cannot serve the Zeebe gateway on {host}:{port}: {exc}; give "
            f"--zeebe-port a free port"
        ) from exc
    server.start()
    try:
        yield
    finally:
        server.stop(ZEEBE_GRACE_SECONDS)
