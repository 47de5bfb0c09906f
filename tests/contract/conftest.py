"""Real databases for the contract tests: a SQLite file and a PostgreSQL server.

PostgreSQL, in this order:
1. HOTLINE_TEST_POSTGRES_URL, if set (it must work; the value "throwaway" forces step 3);
2. the local server at postgresql+psycopg://postgres@127.0.0.1:5432/test, if it answers;
3. a throwaway cluster of our own (Debian's initdb + pg_ctl, on a free port, in a temp dir, as
   the 'postgres' or 'nobody' user when running as root, since PostgreSQL refuses to run as root).
If none works the tests fail, saying how to install PostgreSQL. They never skip.
Every test gets a database of its own (UTF-8, C collation), dropped afterwards.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from sqlalchemy import URL, make_url

from tests.support import free_port

ENV_URL = "HOTLINE_TEST_POSTGRES_URL"
DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
INSTALL_HINT = (
    "PostgreSQL is needed by the ticket store contract tests. Install it with "
    "`sudo apt-get install -y postgresql` (Debian/Ubuntu: the tests start a throwaway cluster "
    f"with its initdb/pg_ctl), or point {ENV_URL} at a server where the user may CREATE DATABASE "
    "(e.g. postgresql+psycopg://postgres@127.0.0.1:5432/postgres)."
)


class PostgresServer:
    """A PostgreSQL server the tests may create databases on."""

    def __init__(self, url: URL) -> None:
        self.url = url

    def database_url(self, database: str) -> str:
        return self.url.set(database=database).render_as_string(hide_password=False)

    @contextlib.contextmanager
    def fresh_database(self) -> Iterator[str]:
        """A new empty database for one test; its SQLAlchemy URL. Dropped afterwards."""
        name = f"hotline_test_{uuid.uuid4().hex[:12]}"
        with _admin(self.url) as conn:
            conn.execute(
                sql.SQL("CREATE DATABASE {} TEMPLATE template0 ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C'").format(
                    sql.Identifier(name)
                )
            )
        try:
            yield self.database_url(name)
        finally:
            with _admin(self.url) as conn:
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def _libpq(url: URL) -> str:
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


@contextlib.contextmanager
def _admin(url: URL) -> Iterator[psycopg.Connection[tuple[object, ...]]]:
    with psycopg.connect(_libpq(url), autocommit=True, connect_timeout=5) as conn:
        yield conn


def _answers(url: URL) -> str | None:
    """None if the server accepts us, else why not."""
    try:
        with _admin(url) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as error:
        return f"{type(error).__name__}: {str(error).strip()}"
    return None


class ThrowawayCluster:
    """initdb + pg_ctl in a temp dir on a free port; stopped and deleted at the end."""

    def __init__(self) -> None:
        initdbs = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=_version_key)
        initdb = initdbs[-1] if initdbs else shutil.which("initdb")
        if initdb is None:
            pytest.fail(f"no PostgreSQL server reachable and no initdb found. {INSTALL_HINT}")
        self.bindir = Path(initdb).parent
        self.port = free_port()
        self.workdir = Path(tempfile.mkdtemp(prefix="hotline-pg-"))  # in /tmp: reachable by the run-as user
        self.datadir = self.workdir / "data"
        self.prefix: list[str] = []
        if os.geteuid() == 0:
            self.prefix = self._run_as_prefix()

    def _run_as_prefix(self) -> list[str]:
        runuser = shutil.which("runuser")
        if runuser is None:
            pytest.fail(f"running as root without `runuser` to start PostgreSQL as another user. {INSTALL_HINT}")
        for user in ("postgres", "nobody"):
            try:
                entry = pwd.getpwnam(user)
            except KeyError:
                continue
            os.chown(self.workdir, entry.pw_uid, entry.pw_gid)
            return [runuser, "-u", user, "--"]
        pytest.fail(f"running as root and neither a 'postgres' nor a 'nobody' user exists. {INSTALL_HINT}")

    def _run(self, *args: str) -> None:
        result = subprocess.run([*self.prefix, *args], capture_output=True, text=True, timeout=120)
        if result.returncode != 0:
            log = self.workdir / "postgres.log"
            server_log = log.read_text(errors="replace") if log.exists() else ""
            pytest.fail(
                f"{' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}\n"
                f"{server_log}\n{INSTALL_HINT}"
            )

    def start(self) -> URL:
        self._run(
            str(self.bindir / "initdb"), "-D", str(self.datadir), "-U", "postgres", "-A", "trust",
            "-E", "UTF8", "--no-locale", "--no-sync",
        )  # fmt: skip
        options = f"-p {self.port} -k {self.workdir} -c listen_addresses=127.0.0.1 -F"
        self._run(
            str(self.bindir / "pg_ctl"), "-D", str(self.datadir), "-l", str(self.workdir / "postgres.log"),
            "-o", options, "-w", "-t", "60", "start",
        )  # fmt: skip
        return make_url(f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres")

    def stop(self) -> None:
        with contextlib.suppress(subprocess.SubprocessError):
            subprocess.run(
                [*self.prefix, str(self.bindir / "pg_ctl"), "-D", str(self.datadir), "-m", "fast", "-w", "stop"],
                capture_output=True,
                timeout=60,
            )
        shutil.rmtree(self.workdir, ignore_errors=True)


def _version_key(path: str) -> tuple[int, ...]:
    version = Path(path).parent.parent.name
    return tuple(int(part) for part in version.split(".") if part.isdigit())


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    wanted = os.environ.get(ENV_URL, "").strip()
    if wanted and wanted != "throwaway":
        url = make_url(wanted)
        problem = _answers(url)
        if problem is not None:
            pytest.fail(f"{ENV_URL}={url!r} does not answer: {problem}. {INSTALL_HINT}")
        yield PostgresServer(url)
        return
    if not wanted:
        url = make_url(DEFAULT_URL)
        if _answers(url) is None:
            yield PostgresServer(url)
            return
    cluster = ThrowawayCluster()
    try:
        url = cluster.start()
        problem = _answers(url)
        if problem is not None:
            pytest.fail(f"the throwaway PostgreSQL cluster does not answer: {problem}. {INSTALL_HINT}")
        yield PostgresServer(url)
    finally:
        cluster.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def ticket_store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A URL of an empty database on each real backend of the ticket store."""
    if request.param == "sqlite":
        # A folder that does not exist yet: the store must create it.
        yield f"sqlite:///{tmp_path / 'var' / 'tickets.db'}"
        return
    server: PostgresServer = request.getfixturevalue("postgres_server")
    with server.fresh_database() as url:
        yield url
