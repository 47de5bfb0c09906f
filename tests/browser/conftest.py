"""Browser tests of the agent desktop page: Debian's Chromium (headless) driven by Playwright
against the real API app (real redis-server, real SQLite store) on 127.0.0.1.

Playwright never downloads a browser here: it launches /usr/bin/chromium from the `chromium`
Debian package (`make test` installs it). A missing Chromium fails the tests with the command
that installs it; nothing is skipped. Screenshots go to var/test-artifacts/browser/ and are
listed at the end of the run.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio
from playwright.async_api import Browser, Page, async_playwright

from hotline.core.model import Agent, AgentId
from hotline.tickets.store import SqlTicketStore
from tests.browser.desk import PASSWORD, SAVED, Desk, Shots
from tests.support import require_tool


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if SAVED:
        terminalreporter.write_sep("-", f"browser screenshots ({len(SAVED)})")
        for path in SAVED:
            terminalreporter.write_line(str(path))


@pytest.fixture(scope="session")
def chromium() -> str:
    require_tool("chromium", "apt-get install chromium")
    # Playwright is told exactly which browser to run: the Debian package's launcher script.
    path = Path("/usr/bin/chromium")
    if not path.exists():
        raise RuntimeError("/usr/bin/chromium is missing: apt-get install chromium (or run `make test`)")
    return str(path)


@pytest.fixture(scope="module")
def accounts_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("desk") / "tickets.db"
    store = SqlTicketStore(f"sqlite:///{path}")
    store.add_agent(Agent(AgentId("a1"), "张伟", "1001"))
    store.add_agent(Agent(AgentId("a2"), "李娜", "1002"))
    store.add_account("agent1", PASSWORD, "agent", AgentId("a1"))
    store.add_account("agent2", PASSWORD, "agent", AgentId("a2"))
    store.add_account("sup", PASSWORD, "supervisor")
    store.close()
    return path


@pytest.fixture
def store(accounts_db: Path, tmp_path: Path) -> Iterator[SqlTicketStore]:
    path = tmp_path / "tickets.db"
    path.write_bytes(accounts_db.read_bytes())
    s = SqlTicketStore(f"sqlite:///{path}")
    yield s
    s.close()


@pytest.fixture
async def desk(client: redis.asyncio.Redis, store: SqlTicketStore) -> AsyncIterator[Desk]:
    server = Desk(client, store)
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def browser(chromium: str) -> AsyncIterator[Browser]:
    async with async_playwright() as pw:
        launched = await pw.chromium.launch(executable_path=chromium)
        yield launched
        await launched.close()


@pytest.fixture
async def page(browser: Browser, request: pytest.FixtureRequest) -> AsyncIterator[Page]:
    """A page that fails the test on any script error or Content-Security-Policy violation."""
    context = await browser.new_context(locale="zh-CN", viewport={"width": 1280, "height": 900})
    new_page = await context.new_page()
    problems: list[str] = []
    new_page.on("pageerror", lambda exc: problems.append(f"script error: {exc}"))
    new_page.on(
        "console",
        lambda msg: problems.append(f"console: {msg.text}") if "Content Security Policy" in msg.text else None,
    )
    yield new_page
    await context.close()
    assert problems == []


@pytest.fixture
def shots(request: pytest.FixtureRequest) -> Shots:
    return Shots(request.node.name)
