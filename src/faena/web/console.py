"""The web console: ``/`` (``index.html``) and ``/static/...``, files inside the package.

Plain HTML, CSS and JavaScript written for faena (no third-party front-end code, no CDN): the
page calls ``/api/v1`` with the token the user pastes in (``Authorization: Bearer``), so the
files themselves hold no data and are served without a token. Only the files present in
``faena/web/static`` at start are served (no path from the request reaches the file system);
each answer carries its content type, an ``ETag`` (``304`` on ``If-None-Match``),
``Cache-Control: no-cache`` (revalidate, so an upgrade is seen at once) and a
``Content-Security-Policy`` that admits only this origin's scripts, styles and API.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib import resources

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

STATIC_PREFIX = "/static"
_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
}
_SECURITY = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; "
    "img-src 'self' data:; connect-src 'self'; form-action 'self'; base-uri 'none'; "
    "frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}


@dataclass(frozen=True, slots=True)
class Asset:
    body: bytes
    media_type: str
    etag: str


def load_assets() -> dict[str, Asset]:
    """Every file of ``faena/web/static`` with a known type, by its name."""
    out: dict[str, Asset] = {}
    folder = resources.files("faena.web") / "static"
    for entry in folder.iterdir():
        suffix = "." + entry.name.rpartition(".")[2]
        if entry.is_file() and suffix in _TYPES:
            data = entry.read_bytes()
            tag = '"' + hashlib.sha256(data).hexdigest()[:32] + '"'
            out[entry.name] = Asset(data, _TYPES[suffix], tag)
    return out


def _answer(request: Request, asset: Asset) -> Response:
    headers = {"ETag": asset.etag, "Cache-Control": "no-cache", **_SECURITY}
    if asset.etag in request.headers.get("if-none-match", ""):
        return Response(status_code=304, headers=headers)
    body = b"" if request.method == "HEAD" else asset.body
    response = Response(body, media_type=asset.media_type, headers=headers)
    if request.method == "HEAD":
        response.headers["content-length"] = str(len(asset.body))
    return response


def routes() -> list[Route]:
    """``/`` and ``/static/{name}``; an unknown name is a JSON ``404``."""
    assets = load_assets()
    if "index.html" not in assets:
        raise RuntimeError(
            "the web console's index.html is missing from faena/web/static: reinstall faena "
            "(package-data must include **/*.html, **/*.js and **/*.css)"
        )

    async def index(request: Request) -> Response:
        return _answer(request, assets["index.html"])

    async def static(request: Request) -> Response:
        name = request.path_params["name"]
        asset = assets.get(name)
        if asset is None:
            return JSONResponse(
                {
                    "error": "not_found",
                    "message": f"no console file {name!r} under {STATIC_PREFIX}/; the console "
                    f"serves: {', '.join(sorted(assets))}",
                },
                status_code=404,
            )
        return _answer(request, asset)

    return [
        Route("/", index, methods=["GET", "HEAD"]),
        Route(STATIC_PREFIX + "/{name}", static, methods=["GET", "HEAD"]),
    ]
