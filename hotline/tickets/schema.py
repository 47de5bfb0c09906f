"""The ticket store's tables (SQLAlchemy Core): call records, agents, 工单 (tickets), call drafts.

`calls` is the record of one call, written once when the call ends and replaced if the same
call is saved again. A 工单 is a table of its own (`tickets`) that points at calls through
`ticket_calls`; a call record is never reshaped into a ticket. `ticket_events` is the ticket's
timeline, append-only: the store only ever inserts into it, and triggers in the migration refuse
UPDATE and DELETE on both backends. `call_drafts` holds the speech service's latest ticket draft
of a live call (transcript so far and the fields it guessed), one row per call, replaced.
`accounts` are the agent desktop's users: argon2 password hash, role, the agent an agent account
is tied to (accounts.py). `recordings` is the catalogue of call recordings (where, how big, how
long, checksum, legal hold, when purged), `recording_access` the append-only audit of every
playback and download, `recording_holds` the append-only log of legal holds set and released,
`recording_gaps` the spans a recording paused or lost (recordings_meta.py).
`personal_data_access` is the append-only audit of every read of a caller's unmasked number or
name (privacy.py).

This module describes the *current* schema. The migrations in `migrations/versions/` are what
build it in a database and spell every column out themselves; a contract test checks that the two
agree. Change both together.

Times are timezone-aware UTC datetimes in Python. PostgreSQL stores them as `timestamptz`; SQLite
stores naive UTC text in one fixed format, so that text order is time order (`ORDER BY
started_at` is correct on both).
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)
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
NUMBER_LENGTH = 16  # ticket numbers: yyMMdd + a daily sequence of 5 (rarely more) digits
CODE_LENGTH = 32  # enum values: kind, stage, light, role, relation, channel


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
    # A callback's record: the call whose caller asked to be called back (added in 0002).
    Column("related_call_id", String(ID_LENGTH), nullable=True),
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
    Column("skills", Text(), nullable=True),  # JSON {skill: level} (added in 0003)
    UniqueConstraint("extension"),
)

tickets = Table(
    "tickets",
    metadata,
    # yyMMdd (Asia/Shanghai day of acceptance) + daily sequence: digits only, so that a caller can
    # key it in on the phone and hear it read back digit by digit.
    Column("number", String(NUMBER_LENGTH), primary_key=True),
    Column("caller", String(PARTY_LENGTH), nullable=False),
    Column("caller_name", String(PARTY_LENGTH), nullable=True),
    # What the caller agreed to (001 第十七条: nothing personal leaves without consent).
    Column("consent_recording", Boolean(), nullable=False),
    Column("consent_callback", Boolean(), nullable=False),
    Column("consent_disclose", Boolean(), nullable=False),
    Column("channel", String(CODE_LENGTH), nullable=False),
    Column("kind", String(CODE_LENGTH), nullable=False),
    Column("content", Text(), nullable=False),
    Column("transcript", Text(), nullable=False),
    Column("place", Text(), nullable=False),
    Column("lead_unit", String(PARTY_LENGTH), nullable=True),
    Column("assisting_units", Text(), nullable=False),  # JSON list of unit names
    Column("emergency", Boolean(), nullable=False),
    Column("provincial", Boolean(), nullable=False),
    # The columns from here to next_alarm_at are copies of the lifecycle state (in `lifecycle`,
    # the source of truth), kept for queries: the stage, the light and the current clocks.
    Column("stage", String(CODE_LENGTH), nullable=False),
    Column("light", String(CODE_LENGTH), nullable=False),
    Column("due_at", UTCDateTime(), nullable=True),
    Column("yellow_at", UTCDateTime(), nullable=True),
    Column("red_at", UTCDateTime(), nullable=True),
    Column("next_alarm_at", UTCDateTime(), nullable=True),  # when a Tick would change something
    Column("policy", String(64), nullable=False),
    Column("lifecycle", Text(), nullable=False),  # JSON: the lifecycle's Ticket without its timeline
    Column("legal_hold", Boolean(), nullable=False),  # recordings of a held ticket are never purged
    Column("version", Integer(), nullable=False),  # optimistic concurrency: +1 on every change
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    Index(None, "caller"),
    Index(None, "created_at"),
    Index(None, "next_alarm_at"),
)

# The last sequence number given out per day (yyMMdd): numbering without races on both backends.
ticket_counters = Table(
    "ticket_counters",
    metadata,
    Column("day", String(6), primary_key=True),
    Column("last", Integer(), nullable=False),
)

ticket_calls = Table(
    "ticket_calls",
    metadata,
    Column("ticket_number", String(NUMBER_LENGTH), ForeignKey("tickets.number"), primary_key=True),
    # No foreign key to calls: a ticket is linked to its call while the call is still live, and
    # the call record is only written when it ends.
    Column("call_id", String(ID_LENGTH), primary_key=True),
    Column("role", String(CODE_LENGTH), nullable=False),  # intake, callback, survey, ...
    Column("linked_at", UTCDateTime(), nullable=False),
    Index(None, "call_id"),
    # A call is the intake of one ticket at most, whichever process files it (migration 0010).
    Index(
        "uq_ticket_calls_intake",
        "call_id",
        unique=True,
        sqlite_where=text("role = 'intake'"),
        postgresql_where=text("role = 'intake'"),
    ),
)

ticket_links = Table(
    "ticket_links",
    metadata,
    Column("ticket_number", String(NUMBER_LENGTH), ForeignKey("tickets.number"), primary_key=True),
    Column("other_number", String(NUMBER_LENGTH), ForeignKey("tickets.number"), primary_key=True),
    Column("relation", String(CODE_LENGTH), primary_key=True),  # related, repeat, duplicate
    Column("reason", Text(), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Index(None, "other_number"),
)

ticket_events = Table(
    "ticket_events",
    metadata,
    Column("ticket_number", String(NUMBER_LENGTH), ForeignKey("tickets.number"), primary_key=True),
    Column("seq", Integer(), primary_key=True, autoincrement=False),  # 1, 2, ... per ticket
    Column("at", UTCDateTime(), nullable=False),
    Column("actor", String(PARTY_LENGTH), nullable=False),
    Column("actor_role", String(CODE_LENGTH), nullable=False),
    Column("stage", String(CODE_LENGTH), nullable=False),  # the timeline stage (受理, 转办, ...)
    Column("action", String(64), nullable=False),
    # The lifecycle state before and after the step that wrote the row (from: NULL when opened).
    Column("from_state", String(CODE_LENGTH), nullable=True),
    Column("to_state", String(CODE_LENGTH), nullable=False),
    Column("reason", Text(), nullable=False),
    Column("data", Text(), nullable=False),  # JSON list of [key, value] pairs, in order
    Column("recorded_by", String(PARTY_LENGTH), nullable=False),  # the account that applied the event
)

call_drafts = Table(
    "call_drafts",
    metadata,
    Column("call_id", String(ID_LENGTH), primary_key=True),
    Column("transcript", Text(), nullable=False),
    Column("draft", Text(), nullable=False),  # JSON object
    Column("engine", String(64), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
)

accounts = Table(
    "accounts",
    metadata,
    Column("username", String(64), primary_key=True),
    Column("password_hash", String(PARTY_LENGTH), nullable=False),  # argon2id, PHC string format
    Column("role", String(CODE_LENGTH), nullable=False),  # agent, supervisor, admin
    # No foreign key to agents (like calls.agent_id): add_account checks the agent exists.
    Column("agent_id", String(ID_LENGTH), nullable=True),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("disabled", Boolean(), nullable=False),
    # A unit account's unit (units.name; added in 0006). No foreign key, like agent_id.
    Column("unit", String(PARTY_LENGTH), nullable=True),
    Index(None, "agent_id"),
)

recordings = Table(
    "recordings",
    metadata,
    # One recording per call; no foreign key to calls (like ticket_calls): the catalogue entry may
    # be written by another process than the one saving the call record.
    Column("call_id", String(ID_LENGTH), primary_key=True),
    Column("path", Text(), nullable=False),
    Column("format", String(CODE_LENGTH), nullable=False),  # wav, flac, opus
    Column("bytes", BigInteger(), nullable=False),
    Column("seconds", Float(), nullable=False),
    Column("sha256", String(64), nullable=False),  # hex, of the file as written at call end
    Column("created_at", UTCDateTime(), nullable=False),  # when the call (and recording) started
    # The kind of request the call was about, if known when it was registered; the kinds of the
    # tickets the call is linked to count as well (the longest retention wins).
    Column("kind", String(CODE_LENGTH), nullable=True),
    Column("legal_hold", Boolean(), nullable=False),  # a held recording is never purged
    Column("purged_at", UTCDateTime(), nullable=True),  # the file was deleted; the row stays
    Index(None, "created_at"),
)

# Append-only (triggers refuse UPDATE and DELETE): who played or downloaded which recording, when, why.
recording_access = Table(
    "recording_access",
    metadata,
    Column("id", Integer(), primary_key=True),
    Column("call_id", String(ID_LENGTH), ForeignKey("recordings.call_id"), nullable=False),
    Column("who", String(PARTY_LENGTH), nullable=False),  # the account's username
    Column("role", String(CODE_LENGTH), nullable=False),
    Column("at", UTCDateTime(), nullable=False),
    Column("action", String(CODE_LENGTH), nullable=False),  # play, download
    Column("why", Text(), nullable=False),  # never empty
    Column("client", String(PARTY_LENGTH), nullable=False),  # the client's address ("" if unknown)
    Index(None, "call_id"),
)

# Gaps in a call's recording: spans paused by the agent for sensitive data (silence in the file),
# or lost to a full recordings volume (the recording cut short, or none at all: start 0).
# Offsets are ms from the recording's first sample; end_ms NULL: to the end of the call. One row
# per (call, start); no foreign key to recordings: a call without a recording has its gap too.
recording_gaps = Table(
    "recording_gaps",
    metadata,
    Column("id", Integer(), primary_key=True),
    Column("call_id", String(ID_LENGTH), nullable=False),
    Column("start_ms", BigInteger(), nullable=False),
    Column("end_ms", BigInteger(), nullable=True),
    Column("reason", String(CODE_LENGTH), nullable=False),  # paused, disk-low, not-recorded
    Column("by", String(PARTY_LENGTH), nullable=False),  # who paused (the account or agent), or system
    Column("created_at", UTCDateTime(), nullable=False),  # when the call started
    UniqueConstraint("call_id", "start_ms"),
)

# Append-only (triggers refuse UPDATE and DELETE): legal holds set and released, on a call's
# recording or on a ticket (whose linked calls' recordings it then protects).
recording_holds = Table(
    "recording_holds",
    metadata,
    Column("id", Integer(), primary_key=True),
    Column("target", String(ID_LENGTH), nullable=False),  # a call id or a ticket number
    Column("scope", String(CODE_LENGTH), nullable=False),  # call, ticket
    Column("hold", Boolean(), nullable=False),  # true: held; false: released
    Column("who", String(PARTY_LENGTH), nullable=False),
    Column("why", Text(), nullable=False),
    Column("at", UTCDateTime(), nullable=False),
    Index(None, "target"),
)

# 承办单位: the units tickets are dispatched to, by the name tickets carry as lead/assisting unit,
# with the webhook their notices are POSTed to and its HMAC secret (units.py, 0006).
units = Table(
    "units",
    metadata,
    Column("name", String(PARTY_LENGTH), primary_key=True),
    Column("title", String(PARTY_LENGTH), nullable=False),
    Column("webhook_url", Text(), nullable=True),  # None: the unit reads its notices by the API only
    Column("secret", String(PARTY_LENGTH), nullable=True),  # the HMAC-SHA256 key the webhook is signed with
    Column("enabled", Boolean(), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
)

# What the lifecycle tells a unit (转办, 催办, 督办, answers to its requests), written in the same
# transaction as the ticket change; delivered to the unit's webhook in id order per unit.
unit_outbox = Table(
    "unit_outbox",
    metadata,
    Column("id", Integer(), primary_key=True),
    Column("event_id", String(64), nullable=False),  # the X-Hotline-Event-Id of every attempt
    Column("unit", String(PARTY_LENGTH), nullable=False),
    Column("ticket_number", String(NUMBER_LENGTH), ForeignKey("tickets.number"), nullable=False),
    Column("kind", String(CODE_LENGTH), nullable=False),  # notice, reminder, supervision, light, withdrawn
    Column("payload", Text(), nullable=False),  # the JSON body POSTed, never a caller's identity
    Column("created_at", UTCDateTime(), nullable=False),
    Column("status", String(CODE_LENGTH), nullable=False),  # pending, delivered, failed
    Column("attempts", Integer(), nullable=False),
    Column("next_attempt_at", UTCDateTime(), nullable=False),
    Column("claimed_by", String(ID_LENGTH), nullable=True),  # the delivering process, while claimed
    Column("claimed_until", UTCDateTime(), nullable=True),
    Column("delivered_at", UTCDateTime(), nullable=True),
    Column("last_error", Text(), nullable=True),
    UniqueConstraint("event_id"),
    Index(None, "unit"),
    Index(None, "status"),
)

# Every delivery attempt of an outbox row: when, the HTTP status or the error.
unit_deliveries = Table(
    "unit_deliveries",
    metadata,
    Column("id", Integer(), primary_key=True),
    Column("outbox_id", Integer(), ForeignKey("unit_outbox.id"), nullable=False),
    Column("attempt", Integer(), nullable=False),  # 1, 2, ...
    Column("at", UTCDateTime(), nullable=False),
    Column("process", String(ID_LENGTH), nullable=False),  # the delivering process
    Column("status_code", Integer(), nullable=True),  # None: no HTTP answer (timeout, refused)
    Column("ok", Boolean(), nullable=False),
    Column("error", Text(), nullable=False),
    Column("seconds", Float(), nullable=False),
    Index(None, "outbox_id"),
)

# The 回访 of a replied ticket (surveys.py): one row per round (each reply of the unit opens one),
# with its attempts, the ratings and the outcome. Changed in place as the round goes on; each
# attempt's call is a call record linked to the ticket (ticket_calls, role survey).
surveys = Table(
    "surveys",
    metadata,
    Column("id", Integer(), primary_key=True),
    Column("ticket_number", String(NUMBER_LENGTH), ForeignKey("tickets.number"), nullable=False),
    Column("round", Integer(), nullable=False),  # 1, 2, ... per ticket
    # pending, calling, completed, review (不满意: 重办 proposed to a supervisor), unreachable,
    # no_consent, cancelled (the ticket left 反馈 before the survey)
    Column("status", String(CODE_LENGTH), nullable=False),
    Column("attempts", Integer(), nullable=False),
    Column("next_attempt_at", UTCDateTime(), nullable=True),
    Column("claimed_until", UTCDateTime(), nullable=True),  # a calling attempt's lease
    Column("last_call_id", String(ID_LENGTH), nullable=True),
    Column("last_outcome", String(CODE_LENGTH), nullable=False),  # the last attempt's status ("" before)
    Column("process", Integer(), nullable=True),  # 1 满意, 2 基本满意, 3 不满意
    Column("result", Integer(), nullable=True),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    UniqueConstraint("ticket_number", "round"),
    Index(None, "status", "next_attempt_at"),
)

# Append-only (triggers refuse UPDATE and DELETE; 0007): every read that showed a caller's unmasked
# number or name, one row per ticket or call read (privacy.py).
personal_data_access = Table(
    "personal_data_access",
    metadata,
    Column("id", Integer(), primary_key=True),
    Column("at", UTCDateTime(), nullable=False),
    Column("who", String(PARTY_LENGTH), nullable=False),  # the account's username
    Column("role", String(CODE_LENGTH), nullable=False),
    Column("subject_type", String(CODE_LENGTH), nullable=False),  # ticket, call
    Column("subject", String(ID_LENGTH), nullable=False),  # the ticket number or the call id
    Column("fields", String(PARTY_LENGTH), nullable=False),  # comma-separated: caller, caller_name
    Column("route", String(PARTY_LENGTH), nullable=False),  # e.g. GET /api/v1/tickets/{number}
    Column("client", String(PARTY_LENGTH), nullable=False),  # the client's address ("" if unknown)
    Index(None, "subject"),
)
