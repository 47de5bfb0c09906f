"""SqlTicketStore: the TicketStore and TicketRepository ports over SQLAlchemy Core (SQLite or
PostgreSQL): call records, agents, the speech service's call drafts, 工单 (ledger.py), the
API's accounts (accounts.py), the catalogue of call recordings (recordings_meta.py) and
statistics of the calls (stats.py).

Synchronous, like the ports: the runtime calls it from a worker thread, never on the event loop.
The engine is thread-safe; each method uses one short transaction.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, Insert, RowMapping, Select, Table, func, select
from sqlalchemy.dialects import postgresql, sqlite

from hotline.core.errors import Conflict, InvalidRequest, Unavailable
from hotline.core.model import Agent, AgentId, CallId, CallRecord, Outcome, WorkerId, utcnow
from hotline.tickets import schema
from hotline.tickets.accounts import AccountBook
from hotline.tickets.database import SQLITE_BEGIN, make_engine, translate_errors, upgrade_to_head
from hotline.tickets.desk import TicketDesk
from hotline.tickets.ledger import TicketLedger
from hotline.tickets.model import TicketPolicy, WorkingCalendar
from hotline.tickets.privacy import PersonalDataLog
from hotline.tickets.recordings_meta import RecordingCatalogue
from hotline.tickets.stats import CallStatistics
from hotline.tickets.surveys import SurveyBook
from hotline.tickets.unit_stats import UnitStatistics
from hotline.tickets.units import UnitDesk

if TYPE_CHECKING:
    from hotline.core.ports import TicketRepository, TicketStore

logger = logging.getLogger(__name__)

_CALL_TIMES = ("started_at", "answered_at", "queued_at", "connected_at", "ended_at")


class SqlTicketStore(
    TicketDesk, TicketLedger, AccountBook, CallStatistics, RecordingCatalogue, SurveyBook, UnitStatistics, UnitDesk,
    PersonalDataLog,
):  # fmt: skip
    """Call records, agents, call drafts and tickets in SQL; implements hotline.core.ports'
    TicketStore and TicketRepository.

    `url` is a SQLAlchemy URL: `sqlite:///path/to/tickets.db` (default deployment) or
    `postgresql://user@host/db` (psycopg 3). The schema is migrated to the newest revision on
    construction. Failures of the database surface as hotline.core.errors.Unavailable; a
    duplicate extension as Conflict; bad input (a naive datetime) as InvalidRequest.
    `policies`: the city policies tickets may be under (create_ticket adds its own);
    `calendar`: the working-day calendar (default: workdays.WorkCalendar, China's).
    """

    def __init__(
        self,
        url: str,
        *,
        connect_timeout: float = 5.0,
        busy_timeout: float = 10.0,
        policies: Iterable[TicketPolicy] = (),
        calendar: WorkingCalendar | None = None,
    ) -> None:
        self._policies = {policy.name: policy for policy in policies}
        self._calendar = calendar
        self._engine: Engine = make_engine(url, connect_timeout=connect_timeout, busy_timeout=busy_timeout)
        self._closed = False
        try:
            upgrade_to_head(self._engine)
        except BaseException:
            self._engine.dispose()
            raise

    @property
    def backend(self) -> str:
        """ "sqlite" or "postgresql"."""
        return self._engine.dialect.name

    # -- calls ------------------------------------------------------------------------------

    def save_call(self, record: CallRecord) -> None:
        """Inserts the record, or replaces every field of the row with the same call_id."""
        for name in _CALL_TIMES:
            value = getattr(record, name)
            if value is not None and value.utcoffset() is None:
                raise InvalidRequest(f"call {record.call_id}: {name} is a naive datetime; use aware UTC")
        values = _call_row(record)
        values["updated_at"] = utcnow()
        table = schema.calls
        stmt = self._insert(table).values(values)
        stmt = _on_conflict_update(stmt, "call_id", {k: v for k, v in values.items() if k != "call_id"})
        with self._write(f"saving call {record.call_id}") as conn:
            conn.execute(stmt)

    def get_call(self, call_id: CallId) -> CallRecord | None:
        rows = self._select_calls(select(schema.calls).where(schema.calls.c.call_id == call_id), "get_call")
        return rows[0] if rows else None

    def list_calls(self, limit: int = 100) -> list[CallRecord]:
        """The `limit` most recent calls, newest first (by started_at)."""
        if limit < 0:
            raise InvalidRequest(f"limit must not be negative (got {limit})")
        return self._select_calls(_newest_first(select(schema.calls)).limit(limit), "list_calls")

    def calls_with_outcome(self, outcome: Outcome) -> list[CallRecord]:
        """Every call that ended with `outcome`, newest first."""
        stmt = _newest_first(select(schema.calls).where(schema.calls.c.outcome == outcome.value))
        return self._select_calls(stmt, "calls_with_outcome")

    def count_calls(self) -> int:
        with self._read("count_calls") as conn:
            return int(conn.execute(select(func.count()).select_from(schema.calls)).scalar_one())

    # -- call drafts (the speech service's ticket draft of a live call) ----------------------

    def save_call_draft(self, call_id: CallId, transcript: str, draft: dict[str, Any], engine: str) -> None:
        """Inserts or replaces the draft of the call (the latest one wins)."""
        try:
            text = json.dumps(draft, ensure_ascii=False, sort_keys=True)
        except (TypeError, ValueError) as error:
            raise InvalidRequest(f"call {call_id}: the draft is not JSON: {error}") from error
        values = {"transcript": transcript, "draft": text, "engine": engine, "updated_at": utcnow()}
        stmt = _on_conflict_update(
            self._insert(schema.call_drafts).values(call_id=call_id, **values), "call_id", values
        )
        with self._write(f"saving the draft of call {call_id}") as conn:
            conn.execute(stmt)

    def get_call_draft(self, call_id: CallId) -> dict[str, Any] | None:
        """{"call_id", "transcript", "draft" (the dict saved), "engine", "updated_at" (ISO UTC)}."""
        table = schema.call_drafts
        with self._read(f"reading the draft of call {call_id}") as conn:
            row = conn.execute(select(table).where(table.c.call_id == call_id)).first()
        if row is None:
            return None
        return {
            "call_id": row.call_id,
            "transcript": row.transcript,
            "draft": json.loads(row.draft),
            "engine": row.engine,
            "updated_at": row.updated_at.isoformat(),
        }

    # -- agents -----------------------------------------------------------------------------

    def add_agent(self, agent: Agent) -> None:
        """Inserts or updates the agent by agent_id; Conflict if another agent has the extension."""
        table = schema.agents
        changes = {
            "name": agent.name,
            "extension": agent.extension,
            "sip_uri": agent.sip_uri,
            "skills": json.dumps(dict(agent.skills), ensure_ascii=False, sort_keys=True) if agent.skills else None,
        }
        stmt = self._insert(table).values(agent_id=agent.agent_id, created_at=utcnow(), **changes)
        stmt = _on_conflict_update(stmt, "agent_id", changes)
        try:
            with self._write(f"saving agent {agent.agent_id}") as conn:
                conn.execute(stmt)
        except Conflict as error:
            owner = self._extension_owner(agent.extension)
            if owner is None or owner == agent.agent_id:
                raise
            raise Conflict(
                f"extension {agent.extension} already belongs to agent {owner}; "
                f"cannot give it to agent {agent.agent_id}"
            ) from error.__cause__

    def get_agent(self, agent_id: AgentId) -> Agent | None:
        with self._read("get_agent") as conn:
            row = conn.execute(select(schema.agents).where(schema.agents.c.agent_id == agent_id)).first()
        return None if row is None else _agent(row._mapping)

    def list_agents(self) -> list[Agent]:
        """Every registered agent, ordered by agent_id."""
        with self._read("list_agents") as conn:
            rows = conn.execute(select(schema.agents).order_by(schema.agents.c.agent_id)).all()
        return [_agent(row._mapping) for row in rows]

    # -- lifecycle --------------------------------------------------------------------------

    def close(self) -> None:
        """Closes every pooled connection; the store cannot be used afterwards. Idempotent."""
        if not self._closed:
            self._closed = True
            self._engine.dispose()

    # -- internals --------------------------------------------------------------------------

    def _insert(self, table: Table) -> Insert:
        if self._engine.dialect.name == "postgresql":
            return postgresql.insert(table)
        return sqlite.insert(table)

    def _extension_owner(self, extension: str) -> AgentId | None:
        with self._read("looking up an extension") as conn:
            owner = conn.execute(
                select(schema.agents.c.agent_id).where(schema.agents.c.extension == extension)
            ).scalar_one_or_none()
        return None if owner is None else AgentId(owner)

    def _select_calls(self, stmt: Select[Any], what: str) -> list[CallRecord]:
        with self._read(what) as conn:
            rows = conn.execute(stmt).all()
        return [_call_record(row._mapping) for row in rows]

    @contextlib.contextmanager
    def _read(self, what: str) -> Iterator[Connection]:
        self._check_open()
        with translate_errors(self._engine, what), self._engine.connect() as conn:
            yield conn

    @contextlib.contextmanager
    def _write(self, what: str) -> Iterator[Connection]:
        self._check_open()
        with translate_errors(self._engine, what), self._engine.connect() as conn:
            # SQLite: take the write lock at BEGIN (waits on the busy timeout) rather than on the
            # first write, where WAL mode may fail at once on a stale snapshot.
            conn.execution_options(**{SQLITE_BEGIN: "IMMEDIATE"})
            with conn.begin():
                yield conn

    def _check_open(self) -> None:
        if self._closed:
            raise Unavailable("ticket store is closed")


def _on_conflict_update(stmt: Insert, key: str, changes: Mapping[str, Any]) -> Insert:
    """INSERT ... ON CONFLICT (key) DO UPDATE SET changes (same spelling on both dialects)."""
    assert isinstance(stmt, postgresql.Insert | sqlite.Insert)
    return stmt.on_conflict_do_update(index_elements=[key], set_=dict(changes))


def _newest_first(stmt: Select[Any]) -> Select[Any]:
    # call_id breaks ties so that equal start times still list in a stable order.
    return stmt.order_by(schema.calls.c.started_at.desc(), schema.calls.c.call_id.desc())


def _call_row(record: CallRecord) -> dict[str, Any]:
    return {
        "call_id": record.call_id,
        "caller": record.caller,
        "callee": record.callee,
        "worker_id": record.worker_id,
        "started_at": record.started_at,
        "outcome": record.outcome.value,
        "answered_at": record.answered_at,
        "queued_at": record.queued_at,
        "connected_at": record.connected_at,
        "ended_at": record.ended_at,
        "agent_id": record.agent_id,
        "dtmf": record.dtmf,
        "recording_path": record.recording_path,
        "hangup_by": record.hangup_by,
        "reason": record.reason,
        "related_call_id": record.related_call_id,
    }


def _call_record(row: RowMapping) -> CallRecord:
    return CallRecord(
        call_id=CallId(row["call_id"]),
        caller=row["caller"],
        callee=row["callee"],
        worker_id=WorkerId(row["worker_id"]),
        started_at=row["started_at"],
        outcome=Outcome(row["outcome"]),
        answered_at=row["answered_at"],
        queued_at=row["queued_at"],
        connected_at=row["connected_at"],
        ended_at=row["ended_at"],
        agent_id=None if row["agent_id"] is None else AgentId(row["agent_id"]),
        dtmf=row["dtmf"],
        recording_path=row["recording_path"],
        hangup_by=row["hangup_by"],
        reason=row["reason"],
        related_call_id=None if row["related_call_id"] is None else CallId(row["related_call_id"]),
    )


def _agent(row: RowMapping) -> Agent:
    return Agent(
        agent_id=AgentId(row["agent_id"]),
        name=row["name"],
        extension=row["extension"],
        sip_uri=row["sip_uri"],
        skills={str(k): int(v) for k, v in json.loads(row["skills"]).items()} if row.get("skills") else {},
    )


if TYPE_CHECKING:

    def _implements_the_port(store: SqlTicketStore) -> TicketStore:
        return store  # mypy checks SqlTicketStore against the TicketStore protocol here

    def _implements_the_ticket_port(store: SqlTicketStore) -> TicketRepository:
        return store
