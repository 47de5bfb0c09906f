"""The agent desktop's web page (坐席工作台 and 班长监控): static files served beside the API.

Rules of this module:
- The page is three committed files in static/ (HTML, one script, one style sheet; no build step,
  nothing fetched from elsewhere). Only the files in STATIC are served, from memory, read once
  when the routes are added: there is no directory listing and no path from the request ever
  reaches the file system.
- `/` and `/desk` redirect to `/desk/`. These routes are outside /api/v1, carry no data and are
  public (auth.PUBLIC_PATHS, auth.PUBLIC_PREFIXES); the page signs in through POST /api/v1/login
  and sends the token itself, so nothing here reads a session.
- Every file goes out with a strict Content-Security-Policy: scripts, styles, images and
  connections (fetch and the WebSocket) from this origin only, no inline script or style, no
  framing, no form posts. `nosniff`, no referrer, and `no-cache` so that an upgrade shows at once.
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

PAGE_PREFIX = "/desk"
STATIC_DIR = Path(__file__).with_name("static")
STATIC = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "app.css": "text/css; charset=utf-8",
    "favicon.svg": "image/svg+xml",
}
CSP = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        "connect-src 'self'",  # 'self' covers ws:// and wss:// to this host (CSP level 3)
        "base-uri 'none'",
        "form-action 'none'",  # the forms are sent by the script as JSON, never posted
        "frame-ancestors 'none'",
    ]
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-cache",
}

_FILES = web.AppKey[dict[str, bytes]]("desk_files")


async def _to_page(request: web.Request) -> web.StreamResponse:
    raise web.HTTPFound(f"{PAGE_PREFIX}/")


async def _static(request: web.Request) -> web.Response:
    name = request.match_info.get("name") or "index.html"
    body = request.app[_FILES].get(name)
    if body is None:
        raise web.HTTPNotFound(reason="no such file in the desk page")
    return web.Response(body=body, headers={"Content-Type": STATIC[name], **HEADERS})


def add_routes(app: web.Application) -> None:
    """Adds the page's routes (`/`, `/desk`, `/desk/`, `/desk/{name}`) to the application."""
    app[_FILES] = {name: (STATIC_DIR / name).read_bytes() for name in STATIC}
    app.router.add_get("/", _to_page)
    app.router.add_get(PAGE_PREFIX, _to_page)
    app.router.add_get(f"{PAGE_PREFIX}/", _static)
    app.router.add_get(f"{PAGE_PREFIX}/{{name}}", _static)
