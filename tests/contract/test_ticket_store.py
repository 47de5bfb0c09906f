"""Contract of the TicketStore port, run against every real backend of SqlTicketStore.

TestTicketStoreContract runs once on a SQLite file and once on PostgreSQL (see conftest.py).
The classes after it check what only one backend has: SQLite's WAL and storage format,
PostgreSQL's session time zone, and an unreachable PostgreSQL server.
"""

from __future__ import annotations

import contextlib
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from hotline.core.errors import ConfigError, Conflict, InvalidRequest, Unavailable
from hotline.core.model import Agent, AgentId, CallId, CallRecord, Outcome, WorkerId
from hotline.tickets import schema
from hotline.tickets.database import current_revision, head_revision, make_engine
from hotline.tickets.store import SqlTicketStore
from tests.contract.conftest import PostgresServer
from tests.support import free_port, until

SHANGHAI = ZoneInfo("Asia/Shanghai")
T0 = datetime(2024, 5, 1, 2, 0, 0, 123456, tzinfo=UTC)


def full_record(call_id: str = "call-1") -> CallRecord:
    """A record with every field set, Chinese where people write Chinese."""
    return CallRecord(
        call_id=CallId(call_id),
        caller="13800138000",
        callee="12345",
        worker_id=WorkerId("worker-2"),
        started_at=T0,
        outcome=Outcome.ANSWERED,
        answered_at=T0 + timedelta(seconds=1),
        queued_at=T0 + timedelta(seconds=9, microseconds=500),
        connected_at=T0 + timedelta(seconds=21),
        ended_at=T0 + timedelta(minutes=4, seconds=3),
        agent_id=AgentId("agent-7"),
        dtmf="0#",
        recording_path="/var/lib/hotline/录音/2024-05-01/call-1.wav",
        hangup_by="caller",
        reason="市民反映小区夜间施工噪音扰民，请求城管执法处理",
        related_call_id=CallId("call-0"),
    )


def minimal_record(call_id: str, started_at: datetime, outcome: Outcome = Outcome.ABANDONED_IN_QUEUE) -> CallRecord:
    return CallRecord(
        call_id=CallId(call_id),
        caller="13900000000",
        callee="12345",
        worker_id=WorkerId("worker-1"),
        started_at=started_at,
        outcome=outcome,
    )


@pytest.fixture
def store(ticket_store_url: str) -> Iterator[SqlTicketStore]:
    opened = SqlTicketStore(ticket_store_url)
    yield opened
    opened.close()


def raw_engine(url: str) -> sqlalchemy.Engine:
    """A plain engine on the store's database, for looking behind the store's back."""
    return sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool)


# Runs in a child process: waits for the go file, then opens the store and saves calls.
CHILD = """
import os, sys, time
from datetime import UTC, datetime, timedelta
from hotline.core.model import CallId, CallRecord, Outcome, WorkerId
from hotline.tickets.store import SqlTicketStore

url, name, count, busy, ready, go = sys.argv[1:]
open(ready, "w").close()
while not os.path.exists(go):
    time.sleep(0.002)
store = SqlTicketStore(url, busy_timeout=float(busy))
base = datetime(2024, 6, 1, tzinfo=UTC)
for i in range(int(count)):
    store.save_call(CallRecord(CallId(f"{name}-{i}"), "13700000000", "12345", WorkerId(name),
                               base + timedelta(seconds=i), Outcome.ANSWERED))
store.close()
"""


def start_children(
    tmp_path: Path, url: str, names: list[str], count: int, busy: float = 10.0
) -> list[subprocess.Popen[str]]:
    """Starts one child per name; they begin work at the same moment (all ready, then go)."""
    go = tmp_path / "go"
    procs = []
    for name in names:
        ready = tmp_path / f"ready-{name}"
        args = [sys.executable, "-c", CHILD, url, name, str(count), str(busy), str(ready), str(go)]
        procs.append(subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))

    def all_ready() -> bool:
        if any(proc.poll() is not None for proc in procs):  # one died before starting work
            for proc in procs:
                if proc.poll() is None:
                    proc.kill()
            wait_ok(procs)  # fails, showing why
        return all((tmp_path / f"ready-{name}").exists() for name in names)

    until(all_ready, timeout=60)
    go.touch()
    return procs


def wait_ok(procs: list[subprocess.Popen[str]]) -> None:
    """Waits for every child (closing its pipes) and fails if any of them failed."""
    failures = []
    for proc in procs:
        out, err = proc.communicate(timeout=90)
        if proc.returncode != 0:
            failures.append(f"exit {proc.returncode}:\n{out}\n{err}")
    assert not failures, "child failed:\n" + "\n".join(failures)


class TestTicketStoreContract:
    """The TicketStore port; every test runs on SQLite and on PostgreSQL."""

    # -- call records ---------------------------------------------------------------------

    def test_every_field_round_trips(self, store: SqlTicketStore) -> None:
        record = full_record()
        store.save_call(record)
        assert store.get_call(record.call_id) == record

    def test_none_and_empty_fields_round_trip(self, store: SqlTicketStore) -> None:
        record = minimal_record("call-min", T0)
        store.save_call(record)
        loaded = store.get_call(record.call_id)
        assert loaded == record
        assert loaded is not None
        assert loaded.answered_at is None and loaded.ended_at is None
        assert loaded.agent_id is None and loaded.recording_path is None and loaded.hangup_by is None
        assert loaded.dtmf == "" and loaded.reason == ""

    def test_times_come_back_as_aware_utc_whatever_zone_they_were_given_in(self, store: SqlTicketStore) -> None:
        local_start = datetime(2024, 5, 1, 10, 0, 0, 654321, tzinfo=SHANGHAI)  # = 02:00 UTC
        record = minimal_record("call-tz", local_start)
        store.save_call(record)
        loaded = store.get_call(record.call_id)
        assert loaded is not None
        assert loaded.started_at.tzinfo is UTC
        assert loaded.started_at == datetime(2024, 5, 1, 2, 0, 0, 654321, tzinfo=UTC)
        full = full_record("call-full")
        store.save_call(full)
        again = store.get_call(full.call_id)
        assert again is not None
        for name in ("started_at", "answered_at", "queued_at", "connected_at", "ended_at"):
            value = getattr(again, name)
            assert value.tzinfo is UTC, name
            assert value == getattr(full, name), name

    def test_naive_datetime_is_refused_and_nothing_is_saved(self, store: SqlTicketStore) -> None:
        naive = minimal_record("call-naive", datetime(2024, 5, 1, 10, 0))
        with pytest.raises(InvalidRequest, match="naive"):
            store.save_call(naive)
        assert store.count_calls() == 0

    def test_saving_the_same_record_twice_keeps_one_row(self, store: SqlTicketStore) -> None:
        record = full_record()
        store.save_call(record)
        store.save_call(record)
        assert store.count_calls() == 1
        assert store.list_calls() == [record]

    def test_a_later_save_replaces_every_field(self, store: SqlTicketStore) -> None:
        first = full_record()
        store.save_call(first)
        second = CallRecord(
            call_id=first.call_id,
            caller="13800138001",
            callee="12345-2",
            worker_id=WorkerId("worker-9"),
            started_at=T0 + timedelta(seconds=5),
            outcome=Outcome.FAILED,
            reason="媒体错误",
        )  # agent, recording, hang-up side and times back to None
        store.save_call(second)
        assert store.get_call(first.call_id) == second
        assert store.count_calls() == 1

    def test_get_call_of_an_unknown_id_is_none(self, store: SqlTicketStore) -> None:
        store.save_call(full_record("call-1"))
        assert store.get_call(CallId("call-2")) is None

    def test_list_calls_is_newest_first_by_instant_and_honours_the_limit(self, store: SqlTicketStore) -> None:
        # Given in different zones: ordering by local wall-clock text would put "b" first.
        a = minimal_record("a", datetime(2024, 5, 1, 3, 0, tzinfo=UTC))
        b = minimal_record("b", datetime(2024, 5, 1, 10, 0, tzinfo=SHANGHAI))  # 02:00 UTC
        c = minimal_record("c", datetime(2024, 5, 1, 1, 0, tzinfo=UTC))
        d = minimal_record("d", datetime(2024, 5, 1, 9, 0, tzinfo=SHANGHAI))  # 01:00 UTC, ties with c
        for record in (c, a, d, b):
            store.save_call(record)
        assert [r.call_id for r in store.list_calls()] == ["a", "b", "d", "c"]
        assert [r.call_id for r in store.list_calls(limit=2)] == ["a", "b"]
        assert store.list_calls(limit=0) == []
        with pytest.raises(InvalidRequest):
            store.list_calls(limit=-1)

    def test_calls_with_outcome_and_count(self, store: SqlTicketStore) -> None:
        store.save_call(minimal_record("q1", T0, Outcome.ABANDONED_IN_QUEUE))
        store.save_call(minimal_record("ok", T0 + timedelta(seconds=1), Outcome.ANSWERED))
        store.save_call(minimal_record("q2", T0 + timedelta(seconds=2), Outcome.ABANDONED_IN_QUEUE))
        assert store.count_calls() == 3
        assert [r.call_id for r in store.calls_with_outcome(Outcome.ABANDONED_IN_QUEUE)] == ["q2", "q1"]
        assert [r.call_id for r in store.calls_with_outcome(Outcome.ANSWERED)] == ["ok"]
        assert store.calls_with_outcome(Outcome.REJECTED) == []
        # Changing the outcome moves the call between the lists.
        store.save_call(minimal_record("q1", T0, Outcome.ANSWERED))
        assert [r.call_id for r in store.calls_with_outcome(Outcome.ANSWERED)] == ["ok", "q1"]
        assert store.count_calls() == 3

    # -- agents ---------------------------------------------------------------------------

    def test_agents_round_trip_and_upsert_by_id(self, store: SqlTicketStore, ticket_store_url: str) -> None:
        li = Agent(AgentId("a-li"), "李小红", "1001", "sip:1001@10.0.0.5:5062", skills={"投诉": 3, "language:en": 1})
        wang = Agent(AgentId("a-wang"), "王强", "1002")
        store.add_agent(wang)
        store.add_agent(li)
        assert store.get_agent(li.agent_id) == li
        assert store.get_agent(li.agent_id).skills == {"投诉": 3, "language:en": 1}  # type: ignore[union-attr]
        assert store.list_agents() == [li, wang]  # by agent_id

        engine = raw_engine(ticket_store_url)
        created = sqlalchemy.select(schema.agents.c.created_at).where(schema.agents.c.agent_id == "a-li")
        with engine.connect() as conn:
            created_before = conn.execute(created).scalar_one()
        renamed = Agent(AgentId("a-li"), "李小红（组长）", "1003", None)
        store.add_agent(renamed)
        with engine.connect() as conn:
            assert conn.execute(created).scalar_one() == created_before  # kept on update
        engine.dispose()
        assert store.get_agent(li.agent_id) == renamed
        assert store.list_agents() == [renamed, wang]

    def test_get_agent_of_an_unknown_id_is_none(self, store: SqlTicketStore) -> None:
        assert store.get_agent(AgentId("nobody")) is None
        assert store.list_agents() == []

    def test_an_extension_used_by_another_agent_is_a_conflict(self, store: SqlTicketStore) -> None:
        first = Agent(AgentId("a-1"), "张三", "1001")
        store.add_agent(first)
        store.add_agent(first)  # an agent keeping its own extension is no conflict
        with pytest.raises(Conflict, match=r"1001.*a-1"):
            store.add_agent(Agent(AgentId("a-2"), "李四", "1001"))
        assert store.get_agent(AgentId("a-2")) is None
        second = Agent(AgentId("a-2"), "李四", "1002")
        store.add_agent(second)
        with pytest.raises(Conflict):
            store.add_agent(Agent(AgentId("a-2"), "李四", "1001"))  # moving onto a taken extension
        assert store.list_agents() == [first, second]

    # -- schema and migrations ------------------------------------------------------------

    def test_constructing_twice_migrates_once_and_keeps_data(
        self, store: SqlTicketStore, ticket_store_url: str
    ) -> None:
        store.save_call(full_record())
        second = SqlTicketStore(ticket_store_url)
        try:
            assert second.get_call(CallId("call-1")) == full_record()
            second.save_call(minimal_record("call-2", T0))
            assert store.count_calls() == 2
        finally:
            second.close()
        engine = make_engine(ticket_store_url)
        try:
            assert current_revision(engine) == head_revision() == "0010"
        finally:
            engine.dispose()

    def test_migrations_build_exactly_the_schema_module(self, store: SqlTicketStore, ticket_store_url: str) -> None:
        engine = raw_engine(ticket_store_url)
        try:
            with engine.connect() as conn:
                differences = compare_metadata(MigrationContext.configure(conn), schema.metadata)
        finally:
            engine.dispose()
        assert differences == []

    def test_a_schema_from_a_newer_hotline_is_a_config_error(
        self, store: SqlTicketStore, ticket_store_url: str
    ) -> None:
        store.close()
        engine = raw_engine(ticket_store_url)
        with engine.begin() as conn:
            conn.execute(sqlalchemy.text("UPDATE alembic_version SET version_num = '9999'"))
        engine.dispose()
        with pytest.raises(ConfigError, match="9999"):
            SqlTicketStore(ticket_store_url)

    def test_processes_starting_at_once_migrate_once_and_all_write(self, ticket_store_url: str, tmp_path: Path) -> None:
        names = [f"proc{i}" for i in range(4)]
        wait_ok(start_children(tmp_path, ticket_store_url, names, count=5))
        check = SqlTicketStore(ticket_store_url)
        try:
            assert check.count_calls() == 20
            assert {r.worker_id for r in check.list_calls(limit=100)} == set(names)
        finally:
            check.close()

    def test_a_writer_process_and_a_reader_work_at_once(
        self, store: SqlTicketStore, ticket_store_url: str, tmp_path: Path
    ) -> None:
        procs = start_children(tmp_path, ticket_store_url, ["writer"], count=200)
        seen = []
        while procs[0].poll() is None:
            seen.append(store.count_calls())
            store.list_calls(limit=10)
        wait_ok(procs)
        seen.append(store.count_calls())
        assert len(seen) >= 2  # read while the writer was running
        assert seen == sorted(seen)
        assert seen[-1] == 200

    # -- lifecycle ------------------------------------------------------------------------

    def test_a_closed_store_is_unavailable(self, store: SqlTicketStore) -> None:
        store.close()
        store.close()  # idempotent
        with pytest.raises(Unavailable, match="closed"):
            store.get_call(CallId("call-1"))


class TestSqliteSpecifics:
    def test_wal_parent_folder_and_utc_text(self, tmp_path: Path) -> None:
        path = tmp_path / "deep" / "er" / "tickets.db"
        store = SqlTicketStore(f"sqlite:///{path}")
        try:
            assert store.backend == "sqlite"
            store.save_call(minimal_record("c", datetime(2024, 5, 1, 10, 0, 0, 5, tzinfo=SHANGHAI)))
        finally:
            store.close()
        with contextlib.closing(sqlite3.connect(path)) as conn:
            assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
            # Stored as UTC wall time in one fixed format, so text order is time order.
            assert conn.execute("SELECT started_at FROM calls").fetchone() == ("2024-05-01 02:00:00.000005",)

    def test_a_writer_commits_while_a_reader_holds_a_snapshot(self, tmp_path: Path) -> None:
        path = tmp_path / "tickets.db"
        url = f"sqlite:///{path}"
        SqlTicketStore(url).close()
        reader = sqlite3.connect(path, isolation_level=None)
        try:
            reader.execute("BEGIN")
            assert reader.execute("SELECT count(*) FROM calls").fetchone() == (0,)
            # Without WAL the writer's commit would wait for the reader's lock and give up after
            # its (short) busy timeout.
            wait_ok(start_children(tmp_path, url, ["writer"], count=3, busy=0.5))
            assert reader.execute("SELECT count(*) FROM calls").fetchone() == (0,)  # snapshot
            reader.execute("COMMIT")
            assert reader.execute("SELECT count(*) FROM calls").fetchone() == (3,)
        finally:
            reader.close()

    def test_an_in_memory_database_is_refused(self) -> None:
        with pytest.raises(ConfigError, match="in-memory"):
            SqlTicketStore("sqlite://")

    def test_an_unusable_folder_is_unavailable(self, tmp_path: Path) -> None:
        blocker = tmp_path / "file"
        blocker.write_text("not a folder")
        with pytest.raises(Unavailable, match="folder"):
            SqlTicketStore(f"sqlite:///{blocker / 'tickets.db'}")


class TestPostgresSpecifics:
    @pytest.fixture
    def database_url(self, postgres_server: PostgresServer) -> Iterator[str]:
        with postgres_server.fresh_database() as url:
            yield url

    def test_times_are_utc_whatever_the_session_time_zone(self, database_url: str) -> None:
        shanghai_session = f"{database_url}?options=-c%20timezone%3DAsia/Shanghai"
        store = SqlTicketStore(shanghai_session)
        try:
            record = full_record()
            store.save_call(record)
            loaded = store.get_call(record.call_id)
            assert loaded == record
            assert loaded is not None and loaded.started_at.tzinfo is UTC
        finally:
            store.close()
        engine = raw_engine(shanghai_session)
        with engine.connect() as conn:
            assert conn.execute(sqlalchemy.text("SHOW timezone")).scalar_one() == "Asia/Shanghai"
            stored = conn.execute(sqlalchemy.text("SELECT started_at FROM calls")).scalar_one()
        engine.dispose()
        assert stored == T0 and stored.utcoffset() == timedelta(hours=8)  # same instant, shown locally

    def test_plain_postgresql_urls_use_psycopg(self, database_url: str) -> None:
        plain = database_url.replace("postgresql+psycopg://", "postgresql://")
        store = SqlTicketStore(plain)
        try:
            assert store.backend == "postgresql"
            store.save_call(full_record())
            assert store.count_calls() == 1
        finally:
            store.close()

    def test_a_value_too_long_for_its_column_is_invalid(self, database_url: str) -> None:
        store = SqlTicketStore(database_url)
        try:
            with pytest.raises(InvalidRequest):
                store.save_call(minimal_record("x" * 500, T0))
            assert store.count_calls() == 0  # and the store still works after the error
        finally:
            store.close()


class TestUnreachablePostgres:
    def test_a_closed_port_is_unavailable_quickly(self) -> None:
        port = free_port()  # nothing listens there
        began = time.monotonic()
        with pytest.raises(Unavailable) as caught:
            SqlTicketStore(f"postgresql://postgres@127.0.0.1:{port}/test", connect_timeout=2)
        assert time.monotonic() - began < 5
        assert not isinstance(caught.value, sqlalchemy.exc.SQLAlchemyError)
        assert isinstance(caught.value.__cause__, sqlalchemy.exc.OperationalError)

    def test_a_server_that_never_answers_times_out_as_unavailable(self) -> None:
        # Accepts TCP connections (kernel backlog) but never speaks: only the connect timeout ends the wait.
        with socket.socket() as silent:
            silent.bind(("127.0.0.1", 0))
            silent.listen(8)
            port = silent.getsockname()[1]
            began = time.monotonic()
            with pytest.raises(Unavailable, match="ticket store"):
                SqlTicketStore(f"postgresql://postgres@127.0.0.1:{port}/test", connect_timeout=2)
            elapsed = time.monotonic() - began
        assert 1.5 < elapsed < 10


class TestUrls:
    @pytest.mark.parametrize(
        ("url", "message"),
        [
            ("not a url", "not a database URL"),
            ("mysql://root@127.0.0.1/hotline", "sqlite and postgresql"),
            ("postgresql+asyncpg://postgres@127.0.0.1/test", "driver"),
            ("sqlite+aiosqlite:///var/tickets.db", "driver"),
            ("sqlite:///:memory:", "in-memory"),
        ],
    )
    def test_unusable_urls_are_config_errors(self, url: str, message: str) -> None:
        with pytest.raises(ConfigError, match=message):
            SqlTicketStore(url)
