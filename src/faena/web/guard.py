"""What stands in front of the ``/api/v1`` routes: tokens, cross-site requests, body size.

In this order, each refusal a ``problem+json`` answer (:mod:`faena.web.problems`):

1. a token in the query string (``?token=``, ``?access_token=``): ``400``, whatever else the
   request holds: URLs end up in logs, proxies and browser history; send the header;
2. with tokens configured, ``Authorization: Bearer <token>``: no token or a wrong one is
   ``401``; a read-only token on a mutating method (anything but GET/HEAD/OPTIONS) is
   ``403``. Tokens are compared in constant time (:func:`hmac.compare_digest`);
3. with no token configured, reads are open (the CLI serves that only on a loopback
   ``--host`` unless told ``--insecure-no-token``) and mutating methods are ``403`` unless the
   server was started with ``no_auth`` (``faena server --no-auth``);
4. a mutating request a browser sent from another site (``Sec-Fetch-Site`` other than
   ``same-origin``/``none``, or an ``Origin`` whose host is not the ``Host``): ``403``;
5. a body past the limit: ``413``; malformed JSON: ``400`` (read by :mod:`faena.web.body`).

Refusals 1-4 are logged as ``api.refused`` (method, path, status; never a header or the query
string).
"""

from __future__ import annotations

import hmac
import logging
from dataclasses import dataclass
from enum import StrEnum
from urllib.parse import parse_qsl, urlsplit

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from faena.web import body
from faena.web.problems import problem

_log = logging.getLogger("faena.server.api")
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
#: query parameters that look like a credential: refused, never read
QUERY_TOKEN_NAMES = frozenset({"token", "access_token", "api_key", "apikey", "auth"})
_SAME_SITE = frozenset({"same-origin", "none"})
_DEFAULT_PORTS = {"http": "80", "https": "443"}


class Role(StrEnum):
    ADMIN = "admin"
    READ = "read"


@dataclass(frozen=True, slots=True)
class Access:
    """The tokens a server accepts. ``no_auth`` opens the mutating routes when no token is
    configured at all (with a token configured, tokens decide)."""

    admin_tokens: tuple[str, ...] = ()
    read_tokens: tuple[str, ...] = ()
    no_auth: bool = False

    @property
    def configured(self) -> bool:
        return bool(self.admin_tokens or self.read_tokens)

    def role(self, header: bytes) -> Role | None:
        """The role ``Authorization`` grants, every token compared (no early exit)."""
        scheme, _, value = header.partition(b" ")
        if scheme.lower() != b"bearer":
            return None
        given = value.strip()
        admin = [hmac.compare_digest(given, t.encode()) for t in self.admin_tokens]
        read = [hmac.compare_digest(given, t.encode()) for t in self.read_tokens]
        if any(admin):
            return Role.ADMIN
        return Role.READ if any(read) else None


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope.get("headers") or []:
        if key.lower() == name:
            return bytes(value)
    return None


def _authority(scheme: str, netloc: str) -> str:
    """``host[:port]`` in lower case, without the scheme's default port."""
    netloc = netloc.lower()
    host, sep, port = netloc.rpartition(":")
    if not sep or "]" in port:  # no port (an IPv6 literal's colons are inside [])
        return netloc
    return host if port == _DEFAULT_PORTS.get(scheme) else netloc


def cross_site(scope: Scope) -> str | None:
    """Why a request is a cross-site browser request, or ``None``."""
    fetch_site = _header(scope, b"sec-fetch-site")
    if fetch_site is not None and fetch_site.decode("latin-1").lower() not in _SAME_SITE:
        return f"Sec-Fetch-Site is {fetch_site.decode('latin-1')!r}"
    origin = _header(scope, b"origin")
    if origin is None:
        return None
    text = origin.decode("latin-1")
    parts = urlsplit(text)
    host = (_header(scope, b"host") or b"").decode("latin-1")
    scheme = parts.scheme or str(scope.get("scheme", "http"))
    if text == "null" or _authority(scheme, parts.netloc) != _authority(scheme, host):
        return f"Origin {text!r} is not this server (Host {host!r})"
    return None


class ApiGuard:
    """ASGI middleware around the ``/api/v1`` app; see the module doc."""

    def __init__(self, app: ASGIApp, access: Access, max_body_bytes: int) -> None:
        self.app = app
        self.access = access
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refusal = self._refusal(scope)
        if refusal is not None:
            _log.warning(
                f"api.refused {scope.get('method')} {scope.get('path')} {refusal.status_code}",
                extra={
                    "event": "api.refused",
                    "method": scope.get("method", ""),
                    "path": scope.get("path", ""),
                    "status": refusal.status_code,
                },
            )
            await refusal(scope, receive, send)
            return
        if scope.get("method", "GET") in READ_METHODS:
            await self.app(scope, receive, send)
            return
        try:
            raw = await body.read_body(Request(scope, receive), self.max_body_bytes)
            body.parse_json(raw)
        except body.BodyError as exc:
            code = "body_too_large" if exc.status == 413 else "invalid_body"
            await problem(exc.status, code, exc.message)(scope, receive, send)
            return
        await self.app(scope, _replay(raw, receive), send)

    def _refusal(self, scope: Scope) -> Response | None:
        pairs = parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
        named = sorted({k for k, _ in pairs if k.lower() in QUERY_TOKEN_NAMES})
        if named:
            return problem(
                400,
                "token_in_query",
                f"the query string holds {', '.join(named)}: faena never reads a token from "
                f"the URL (it ends up in logs and browser history); remove it and send "
                f"'Authorization: Bearer <token>'",
            )
        method = str(scope.get("method", "GET"))
        mutating = method not in READ_METHODS
        if self.access.configured:
            role = self.access.role(_header(scope, b"authorization") or b"")
            if role is None:
                return problem(
                    401,
                    "unauthorized",
                    "send 'Authorization: Bearer <token>' with the admin or read token the "
                    "server was started with (FAENA_ADMIN_TOKEN, FAENA_READ_TOKEN, FAENA_TOKEN)",
                    headers={"WWW-Authenticate": 'Bearer realm="faena"'},
                )
            if mutating and role is not Role.ADMIN:
                return problem(
                    403,
                    "forbidden",
                    f"the read-only token may only GET; {method} needs the admin token",
                )
        elif mutating and not self.access.no_auth:
            return problem(
                403,
                "forbidden",
                f"{method} changes jobs, and this server has no admin token: start it with "
                f"--admin-token-file PATH (or FAENA_ADMIN_TOKEN), or with --no-auth if only "
                f"trusted clients can reach it",
            )
        why = cross_site(scope) if mutating else None
        if why is not None:
            return problem(
                403,
                "cross_site",
                f"{method} refused: a browser sent it from another site ({why}); call the API "
                f"from the same origin or from a non-browser client",
            )
        return None


class CrossSiteGuard:
    """In front of the Camunda routes (``/engine-rest``): a mutating request a browser sent
    from another site is ``403`` in Camunda's error shape, whatever its credentials (a browser
    replays cached HTTP basic credentials on a cross-site form post)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        method = str(scope.get("method", "GET"))
        why = cross_site(scope) if scope["type"] == "http" and method not in READ_METHODS else None
        if why is None:
            await self.app(scope, receive, send)
            return
        _log.warning(
            f"api.refused {method} {scope.get('path')} 403",
            extra={"event": "api.refused", "method": method, "path": scope.get("path", "")},
        )
        deny = JSONResponse(
            {
                "type": "AuthorizationException",
                "message": f"{method} refused: a browser sent it from another site ({why}); "
                f"call the engine API from the same origin or from a non-browser client",
            },
            status_code=403,
        )
        await deny(scope, receive, send)


def _replay(raw: bytes, receive: Receive) -> Receive:
    """The body already read, then the client's own messages (its disconnect)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": raw, "more_body": False}
        return await receive()

    return replay
