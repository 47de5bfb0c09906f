"""The web page's routes (hotline/agent_desktop/web.py) on the real app with sign-in on: public,
the right content types, a strict Content-Security-Policy, only the page's own files."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis.asyncio
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from hotline.agent_desktop.app import make_app
from hotline.agent_desktop.auth import Auth
from hotline.agent_desktop.web import STATIC, STATIC_DIR
from hotline.queue.acd import RedisCallQueue
from hotline.tickets.store import SqlTicketStore

Client = TestClient[web.Request, web.Application]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqlTicketStore]:
    s = SqlTicketStore(f"sqlite:///{tmp_path / 'tickets.db'}")
    yield s
    s.close()


@pytest.fixture
async def api(client: redis.asyncio.Redis, store: SqlTicketStore) -> AsyncIterator[Client]:
    test_client = TestClient(TestServer(make_app(RedisCallQueue(client), store, auth=Auth(store))))
    await test_client.start_server()
    yield test_client
    await test_client.close()


@pytest.mark.parametrize("path", ["/", "/desk"])
async def test_the_root_redirects_to_the_page(api: Client, path: str) -> None:
    response = await api.get(path, allow_redirects=False)
    assert response.status == 302
    assert response.headers["Location"] == "/desk/"


async def test_every_file_is_public_with_its_type_and_the_policy(api: Client) -> None:
    for name, content_type in {"": STATIC["index.html"], **STATIC}.items():
        response = await api.get(f"/desk/{name}")  # no token: the page signs in by itself
        assert response.status == 200, name
        assert response.headers["Content-Type"] == content_type
        assert await response.read() == (STATIC_DIR / (name or "index.html")).read_bytes()
        policy = response.headers["Content-Security-Policy"]
        assert "default-src 'none'" in policy and "script-src 'self'" in policy
        assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
        assert "frame-ancestors 'none'" in policy
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["Referrer-Policy"] == "no-referrer"


async def test_only_the_pages_files_are_served(api: Client) -> None:
    for path in ["/desk/missing.js", "/desk/..%2Fweb.py", "/desk/static/app.js", "/desk/app.js/x"]:
        response = await api.get(path)
        assert response.status == 404, path
        assert (await response.json())["error"] == "not-found"
    # The API itself stays behind sign-in.
    assert (await api.get("/api/v1/me")).status == 401
    assert (await api.get("/deskx")).status == 401


def test_the_page_loads_nothing_from_elsewhere() -> None:
    """No CDN, no inline script or style: everything the page uses is one of its own files."""
    html = (STATIC_DIR / "index.html").read_text(encoding="utf-8")
    assert re.findall(r'(?:src|href)="([^"#]+)"', html) == ["favicon.svg", "app.css", "app.js"]
    assert "<style" not in html and " style=" not in html
    assert not re.search(r"<[^>]+\son\w+=", html)  # no inline event handlers
    assert not re.search(r"<script(?![^>]*\bsrc=)", html)
    for name in ("index.html", "app.js", "app.css"):
        text = (STATIC_DIR / name).read_text(encoding="utf-8")
        assert "http://" not in text.replace("http://www.w3.org/2000/svg", "") and "https://" not in text, name
    assert "innerHTML" not in (STATIC_DIR / "app.js").read_text(encoding="utf-8")
