"""The ticket store's tables (SQLAlchemy Core): the call record and the agent registry.

`calls` is the record of one call, written once when the call ends and replaced if the same
call is saved again. The 工单 (ticket) with its lifecycle, timeline events and units comes later
as tables of its own that point at `calls.call_id`; a call record is never reshaped into a ticket.

This module describes the *current* schema. The migrations in `migrations/versions/` are what
build it in a database and spell every column out themselves; a contract test checks that the two
agree. Change both together.

Times are timezone-aware UTC datetimes in Python. PostgreSQL stores them as `timestamptz`; SQLite
stores naive UTC text in one fixed format, so that text order is time order (`ORDER BY
started_at` is correct on both).
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Column, DateTime, Dialect, Index, MetaData, String, Table, Text, UniqueConstraint
from sqlalchemy.types import TypeDecorator

# Deterministic constraint names: Alembic needs names to alter or drop constraints later
# (and SQLite's batch mode needs them to rebuild a table).
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_name)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)

ID_LENGTH = 128  # call ids, agent ids, worker ids
PARTY_LENGTH = 255  # caller / callee numbers or SIP URIs, agent names, SIP URIs


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every backend.

    Naive datetimes are refused: in a Chinese deployment a naive value is usually local time
    (UTC+8), and storing it as UTC would shift it by eight hours without anyone noticing.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value!r}: the ticket store keeps timezone-aware times")
        utc = value.astimezone(UTC)
        if dialect.name == "sqlite":
            # SQLite has no time zone type: store UTC wall time in SQLAlchemy's fixed text format.
            return utc.replace(tzinfo=None)
        return utc

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        # PostgreSQL returns timestamptz in the session's time zone.
        return value.astimezone(UTC)


calls = Table(
    "calls",
    metadata,
    Column("call_id", String(ID_LENGTH), primary_key=True),
    Column("caller", String(PARTY_LENGTH), nullable=False),
    Column("callee", String(PARTY_LENGTH), nullable=False),
    Column("worker_id", String(ID_LENGTH), nullable=False),
    Column("started_at", UTCDateTime(), nullable=False),
    # Outcome values as text, without a CHECK constraint: new outcomes (callback, ...) must not
    # need a table rebuild on SQLite. The store converts with core.model.Outcome.
    Column("outcome", String(32), nullable=False),
    Column("answered_at", UTCDateTime(), nullable=True),
    Column("queued_at", UTCDateTime(), nullable=True),
    Column("connected_at", UTCDateTime(), nullable=True),
    Column("ended_at", UTCDateTime(), nullable=True),
    # No foreign key to agents: a record must be kept even for an agent not (or no longer) in
    # the registry, e.g. one configured only in hotline.yaml.
    Column("agent_id", String(ID_LENGTH), nullable=True),
    Column("dtmf", Text(), nullable=False),
    Column("recording_path", Text(), nullable=True),
    Column("hangup_by", String(16), nullable=True),
    Column("reason", Text(), nullable=False),
    # When the store last wrote this row (not part of CallRecord): lets exports and the future
    # ticket sync ask "what changed since".
    Column("updated_at", UTCDateTime(), nullable=False),
    Index(None, "started_at"),
    # Caller history on the agent's screen pop ("has this number called before?").
    Index(None, "caller"),
)

agents = Table(
    "agents",
    metadata,
    Column("agent_id", String(ID_LENGTH), primary_key=True),
    Column("name", String(PARTY_LENGTH), nullable=False),
    Column("extension", String(64), nullable=False),
    Column("sip_uri", String(PARTY_LENGTH), nullable=True),
    Column("created_at", UTCDateTime(), nullable=False),
    UniqueConstraint("extension"),
)
