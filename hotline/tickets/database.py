"""Engines and migrations of the ticket store: SQLite by default, PostgreSQL for production.

- SQLite: the parent folder of the file is created; every connection gets WAL, a busy timeout
  and foreign keys, so that a writer process (the control plane) and a reader process (the CLI)
  work at once. pysqlite's own transaction handling is switched off and SQLAlchemy emits BEGIN
  itself, so that DDL is transactional and writes can take the write lock up front
  (BEGIN IMMEDIATE: waits on the busy timeout instead of failing on a stale WAL snapshot).
- PostgreSQL: `postgresql://` URLs use psycopg 3; connections have a connect timeout and are
  pinged before use, so a restarted server costs one reconnect rather than an error.
- Migrations (Alembic, in ./migrations) run in one transaction that first takes a lock (SQLite:
  the write lock; PostgreSQL: an advisory lock), so processes starting at once migrate once.

Library exceptions leave this package as hotline.core.errors (see translate_errors).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import Connection, Engine, column, create_engine, event, exc, inspect, make_url, select, table
from sqlalchemy.engine import URL
from sqlalchemy.pool import ConnectionPoolEntry

from hotline.core.errors import ConfigError, Conflict, DomainError, InvalidRequest, Unavailable

logger = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"

# Execution option read by the SQLite "begin" hook: "DEFERRED" (reads) or "IMMEDIATE" (writes).
SQLITE_BEGIN = "hotline_sqlite_begin"

# pg_advisory_xact_lock key of the migration lock (any fixed 63-bit number will do).
_PG_MIGRATION_LOCK = zlib.crc32(b"hotline.tickets.migrations")

_VERSION_TABLE = "alembic_version"  # Alembic's default, where it records the revision


def parse_url(url: str) -> URL:
    """The SQLAlchemy URL of a store URL; `postgresql://` and `postgres://` mean psycopg 3."""
    try:
        parsed = make_url(url)
    except exc.ArgumentError as error:
        raise ConfigError(f"ticket store URL is not a database URL: {error}") from error
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        if parsed.database in (None, "", ":memory:"):
            raise ConfigError(
                "ticket store URL names an in-memory SQLite database; give a file "
                "(sqlite:///var/tickets.db) so that records outlive the process and the CLI can read them"
            )
    elif backend != "postgresql":
        raise ConfigError(f"ticket store supports sqlite and postgresql, not {backend!r}")
    # The store is synchronous and hooks into these two drivers (pysqlite's transactions,
    # libpq's connect timeout); async or other drivers would half work.
    if parsed.get_driver_name() not in ("pysqlite", "psycopg"):
        raise ConfigError(
            f"ticket store URL asks for driver {parsed.drivername!r}; use sqlite:///<file> or postgresql://..."
        )
    return parsed


def make_engine(url: str, *, connect_timeout: float = 5.0, busy_timeout: float = 10.0) -> Engine:
    """An engine for the store URL (see the module docstring for what each backend gets)."""
    parsed = parse_url(url)
    try:
        if parsed.get_backend_name() == "sqlite":
            return _sqlite_engine(parsed, busy_timeout)
        return _postgresql_engine(parsed, connect_timeout)
    except (ImportError, exc.ArgumentError) as error:
        raise ConfigError(
            f"ticket store: no usable driver for {parsed.drivername} ({error}); "
            "PostgreSQL needs psycopg 3: pip install 'psycopg[binary]'"
        ) from error


def _sqlite_engine(url: URL, busy_timeout: float) -> Engine:
    assert url.database is not None
    folder = Path(url.database).parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise Unavailable(f"ticket store: cannot create the folder {folder}: {error}") from error
    # sqlite3's own timeout is the busy timeout for the connect itself (and locks before our pragma).
    engine = create_engine(url, connect_args={"timeout": busy_timeout})
    busy_ms = max(0, round(busy_timeout * 1000))

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
        # SQLAlchemy emits BEGIN itself (below); pysqlite's implicit transactions would delay
        # BEGIN until the first DML and commit before DDL.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {busy_ms}")
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute("PRAGMA synchronous = NORMAL")  # durable in WAL mode up to the last checkpoint
            cursor.execute("PRAGMA foreign_keys = ON")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        mode = connection.get_execution_options().get(SQLITE_BEGIN, "DEFERRED")
        if mode not in ("DEFERRED", "IMMEDIATE"):
            raise ValueError(f"unknown SQLite transaction mode {mode!r}")
        connection.exec_driver_sql(f"BEGIN {mode}")

    return engine


def _postgresql_engine(url: URL, connect_timeout: float) -> Engine:
    connect_args: dict[str, Any] = {}
    if "connect_timeout" not in url.query:
        # libpq's connect_timeout is whole seconds.
        connect_args["connect_timeout"] = max(1, math.ceil(connect_timeout))
    if "application_name" not in url.query:
        connect_args["application_name"] = "hotline"
    return create_engine(url, connect_args=connect_args, pool_pre_ping=True)


@contextlib.contextmanager
def translate_errors(engine: Engine, what: str) -> Iterator[None]:
    """Turns database library exceptions into hotline.core.errors."""
    dbapi_error = getattr(engine.dialect.loaded_dbapi, "Error", exc.DBAPIError)
    try:
        yield
    except DomainError:
        raise
    except exc.IntegrityError as error:
        raise Conflict(f"ticket store: {what}: {_cause(error)}") from error
    except exc.DataError as error:
        raise InvalidRequest(f"ticket store: {what}: {_cause(error)}") from error
    except exc.StatementError as error:
        if isinstance(error.orig, ValueError):  # refused by a column type (naive datetime, ...)
            raise InvalidRequest(f"ticket store: {what}: {error.orig}") from error
        raise Unavailable(f"ticket store: {what} failed: {_cause(error)}") from error
    except (exc.SQLAlchemyError, dbapi_error) as error:
        raise Unavailable(f"ticket store: {what} failed: {_cause(error)}") from error


def _cause(error: BaseException) -> str:
    """One line naming the driver's error, without SQLAlchemy's statement dump."""
    orig = getattr(error, "orig", None) or error
    text = str(orig).strip().splitlines()
    return f"{type(orig).__name__}: {text[0] if text else ''}"


def alembic_config(url: URL | str) -> Config:
    """An Alembic config for the migrations in this package (no alembic.ini on disk)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("path_separator", "os")
    rendered = url.render_as_string(hide_password=False) if isinstance(url, URL) else url
    # The config is a ConfigParser: a literal % (URL-encoded passwords) must be doubled.
    config.set_main_option("sqlalchemy.url", rendered.replace("%", "%%"))
    return config


@functools.cache
def head_revision() -> str:
    """The newest migration this version of hotline knows."""
    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    head = script.get_current_head()
    assert head is not None, "the ticket store has no migrations"
    return head


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at (None: never migrated)."""
    with translate_errors(engine, "reading the schema revision"), engine.connect() as conn:
        return _stored_revision(conn)


def _stored_revision(conn: Connection) -> str | None:
    # Read directly rather than through Alembic's MigrationContext, which logs at INFO each time.
    if not inspect(conn).has_table(_VERSION_TABLE):
        return None
    return conn.execute(select(column("version_num")).select_from(table(_VERSION_TABLE))).scalar()


def upgrade_to_head(engine: Engine) -> None:
    """Brings the schema to the newest migration; a no-op when it is there already.

    Safe when several processes call it at once: migrating happens in a transaction that first
    takes a lock, so the others wait, then find the schema at head and do nothing.
    """
    head = head_revision()
    if current_revision(engine) == head:  # the usual case: no lock, no Alembic run
        return
    with translate_errors(engine, "migrating the schema"), engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            conn.execution_options(**{SQLITE_BEGIN: "IMMEDIATE"})
        with conn.begin():
            if engine.dialect.name == "postgresql":
                conn.exec_driver_sql("SET LOCAL lock_timeout = '60s'")
                conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_PG_MIGRATION_LOCK})")
            before = _stored_revision(conn)
            if before == head:  # another process migrated while we waited for the lock
                return
            config = alembic_config(engine.url)
            config.attributes["connection"] = conn
            try:
                command.upgrade(config, "head")
            except CommandError as error:
                raise ConfigError(
                    f"ticket store schema is at revision {before!r}, which this version of hotline "
                    f"does not know ({error}); was the database migrated by a newer hotline?"
                ) from error
            after = _stored_revision(conn)
    logger.info("ticket store schema migrated from %s to %s", before, after)
