"""The units' half of SqlTicketStore (hotline/tickets/units.py): the registry, the unit's desk and
the webhook outbox, on SQLite and PostgreSQL (see conftest.py).

Times are real (now): the notices are claimed against the wall clock like in production.
"""

from __future__ import annotations

import dataclasses
import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from hotline.core.errors import Conflict, InvalidRequest, NotFound
from hotline.tickets import model as m
from hotline.tickets.lifecycle import IllegalTransition
from hotline.tickets.model import Kind
from hotline.tickets.policy import load_policies
from hotline.tickets.records import ActorRole, NewTicket, NoSuchTicket, StaleTicket, TicketActor
from hotline.tickets.store import SqlTicketStore
from hotline.tickets.units import NotYourTicket

POLICIES = load_policies(Path(__file__).resolve().parents[2] / "config" / "policy")
ZIBO = POLICIES["zibo"]
LEAD, HELPER, OTHER = "区住建局", "区城管局", "区水务局"
CALLER, NAME = "13912345678", "张三丰"
AGENT = TicketActor("agent-1001")
HOTLINE = TicketActor("热线中心", ActorRole.SUPERVISOR)
SECRET = "s3cret-of-区住建局-0123456789"


@pytest.fixture
def store(ticket_store_url: str) -> Iterator[SqlTicketStore]:
    opened = SqlTicketStore(ticket_store_url, policies=POLICIES.values())
    for unit in (LEAD, HELPER, OTHER):
        opened.add_unit(unit, f"{unit}（测试）", f"http://127.0.0.1:9/{unit}", SECRET)
    yield opened
    opened.close()


def now() -> datetime:
    return datetime.now(UTC)


def complaint(**changes: Any) -> NewTicket:
    base = NewTicket(
        caller=CALLER,
        kind=Kind.COMPLAINT,
        content=f"小区夜间施工噪音扰民，{NAME}请回电 {CALLER}",
        caller_name=NAME,
        transcript=f"喂，我是{NAME}，电话{CALLER}，我们小区晚上一直在施工",
        place="淄博市张店区华光路88号",
        lead_unit=LEAD,
        assisting_units=(HELPER,),
    )
    return dataclasses.replace(base, **changes)


def assert_private(data: object) -> None:
    text = json.dumps(data, ensure_ascii=False)
    assert CALLER not in text
    assert NAME not in text
    assert "我们小区晚上一直在施工" not in text  # the transcript


class TestRegistry:
    def test_add_get_list(self, store: SqlTicketStore) -> None:
        unit = store.get_unit(LEAD)
        assert unit is not None
        assert (unit.name, unit.title, unit.webhook_url, unit.enabled) == (
            LEAD,
            f"{LEAD}（测试）",
            f"http://127.0.0.1:9/{LEAD}",
            True,
        )
        assert unit.secret == SECRET  # usable to sign
        assert SECRET not in repr(unit)
        assert SECRET not in json.dumps(unit.to_dict(), ensure_ascii=False)
        assert [u.name for u in store.list_units()] == sorted([LEAD, HELPER, OTHER])
        assert store.get_unit("区教育局") is None

    def test_refusals(self, store: SqlTicketStore) -> None:
        with pytest.raises(Conflict):
            store.add_unit(LEAD)
        with pytest.raises(InvalidRequest, match="secret"):
            store.add_unit("区教育局", webhook_url="https://example.cn/hook")
        with pytest.raises(InvalidRequest, match="http"):
            store.add_unit("区教育局", webhook_url="ftp://example.cn/hook", secret=SECRET)
        with pytest.raises(InvalidRequest):
            store.add_unit("  ")
        plain = store.add_unit("区教育局")  # no webhook: reads its notices by the API
        assert plain.webhook_url is None and plain.secret is None
        changed = store.set_unit_webhook("区教育局", "https://example.cn/hook", SECRET)
        assert changed.webhook_url == "https://example.cn/hook"
        with pytest.raises(NotFound):
            store.set_unit_webhook("区卫健委", None, None)

    def test_unit_accounts(self, store: SqlTicketStore) -> None:
        account = store.add_account("zhujian", "密码-long-enough", "unit", unit=LEAD)
        assert (account.role, account.unit, account.agent_id) == ("unit", LEAD, None)
        assert store.verify("zhujian", "密码-long-enough") == account
        with pytest.raises(InvalidRequest, match="unit"):
            store.add_account("x", "密码-long-enough", "unit")
        with pytest.raises(InvalidRequest, match="unit"):
            store.add_account("x", "密码-long-enough", "supervisor", unit=LEAD)
        with pytest.raises(NotFound, match="区卫健委"):
            store.add_account("x", "密码-long-enough", "unit", unit="区卫健委")


class TestOutboxWrites:
    def test_dispatch_notifies_lead_and_assisting_units_in_the_same_transaction(self, store: SqlTicketStore) -> None:
        ticket = store.create_ticket(complaint(), AGENT, now(), ZIBO)
        rows = store.outbox()
        assert [(r["unit"], r["kind"], r["payload"]["role"]) for r in rows] == [
            (LEAD, "notice", "lead"),
            (HELPER, "notice", "assist"),
        ]
        assert len({r["event_id"] for r in rows}) == 2
        for row in rows:
            payload = row["payload"]
            assert payload["event_id"] == row["event_id"]
            assert payload["type"] == "ticket.notice"
            assert payload["ticket"]["number"] == ticket.number
            assert payload["ticket"]["place"] == "淄博市张店区华光路88号"
            assert row["status"] == "pending" and row["attempts"] == 0
            assert_private(payload)

    def test_a_refused_change_writes_no_notice(self, store: SqlTicketStore) -> None:
        ticket = store.create_ticket(complaint(), AGENT, now(), ZIBO)
        before = len(store.outbox())
        with pytest.raises(IllegalTransition):
            store.apply(ticket.number, m.ApproveExtension(HOTLINE.name), HOTLINE, now())
        with pytest.raises(StaleTicket):
            store.apply(ticket.number, m.Supervise(HOTLINE.name, "重点"), HOTLINE, now(), expected_version=99)
        assert len(store.outbox()) == before

    def test_the_units_hear_of_their_requests_reminders_supervision_and_losing_a_ticket(
        self, store: SqlTicketStore
    ) -> None:
        n = store.create_ticket(complaint(), AGENT, now(), ZIBO).number
        store.apply(n, m.Acknowledge(LEAD), TicketActor(LEAD, ActorRole.UNIT), now())
        store.apply(n, m.RequestExtension(LEAD, 2, "需现场勘查"), TicketActor(LEAD, ActorRole.UNIT), now())
        store.apply(n, m.RefuseExtension(HOTLINE.name, "理由不充分"), HOTLINE, now())
        store.apply(n, m.Supervise(HOTLINE.name, f"{NAME}多次来电 {CALLER}"), HOTLINE, now())
        store.apply(n, m.RequestReturn(LEAD, "不属本单位职责", OTHER), TicketActor(LEAD, ActorRole.UNIT), now())
        store.apply(n, m.ApproveReturn(HOTLINE.name, "同意回退", OTHER), HOTLINE, now())
        kinds = [(r["unit"], r["kind"], r["payload"]["message"]) for r in store.outbox()]
        assert kinds[2:] == [
            (LEAD, "notice", "延期未获批准：理由不充分"),
            (LEAD, "supervision", "督办：***多次来电 ***"),
            (OTHER, "notice", kinds[4][2]),
            (LEAD, "withdrawn", "工单已不再由贵单位办理：同意回退"),
            (HELPER, "withdrawn", "工单已不再由贵单位办理：同意回退"),
        ]
        assert kinds[4][2].startswith("主办：")
        assert_private([r["payload"] for r in store.outbox()])

    def test_red_light_sends_a_reminder(self, store: SqlTicketStore) -> None:
        start = now() - timedelta(days=40)
        n = store.create_ticket(complaint(assisting_units=()), AGENT, start, ZIBO).number
        store.apply(n, m.Tick(), TicketActor("system", ActorRole.SYSTEM), now())
        kinds = [(r["unit"], r["kind"]) for r in store.outbox()]
        assert (LEAD, "reminder") in kinds
        assert (LEAD, "light") in kinds


class TestDesk:
    def test_a_unit_sees_its_tickets_and_only_them(self, store: SqlTicketStore) -> None:
        mine = store.create_ticket(complaint(), AGENT, now(), ZIBO).number
        other = store.create_ticket(complaint(lead_unit=OTHER, assisting_units=()), AGENT, now(), ZIBO).number
        store.add_unit("区住建局二分局")  # a longer name holding LEAD's: never matches it
        longer = store.create_ticket(
            complaint(lead_unit="区住建局二分局", assisting_units=()), AGENT, now(), ZIBO
        ).number
        assert [t["number"] for t in store.unit_tickets(LEAD)] == [mine]
        assert [(t["number"], t["role"]) for t in store.unit_tickets(HELPER)] == [(mine, "assist")]
        assert [t["number"] for t in store.unit_tickets("区住建局二分局")] == [longer]
        assert store.unit_tickets(LEAD, stage="handling") == []
        assert [t["number"] for t in store.unit_tickets(LEAD, stage="dispatched", light="none")] == [mine]
        with pytest.raises(InvalidRequest):
            store.unit_tickets(LEAD, stage="nonsense")
        view = store.unit_ticket(LEAD, mine)
        assert_private(view)
        assert view["content"] == "小区夜间施工噪音扰民，***请回电 ***"
        for unit, number in ((LEAD, other), (LEAD, "99999999999"), (OTHER, mine)):
            with pytest.raises(NoSuchTicket) as refused:
                store.unit_ticket(unit, number)
            assert refused.value.message == f"没有编号为 {number} 的工单"  # the same whether it exists or not

    def test_actions_follow_the_units_part(self, store: SqlTicketStore) -> None:
        n = store.create_ticket(complaint(), AGENT, now(), ZIBO).number
        with pytest.raises(NotYourTicket):
            store.unit_act(HELPER, "cg", n, "acknowledge", {}, now())
        with pytest.raises(NotYourTicket):
            store.unit_act(LEAD, "zj", n, "assist-reply", {"text": "x"}, now())
        with pytest.raises(NoSuchTicket):
            store.unit_act(OTHER, "sw", n, "acknowledge", {}, now())
        view = store.unit_act(LEAD, "zj", n, "acknowledge", {}, now(), expected_version=1)
        assert (view["stage"], view["version"]) == ("handling", 2)
        assert view["timeline"][-1]["actor"] == LEAD
        with pytest.raises(StaleTicket):
            store.unit_act(LEAD, "zj", n, "progress", {"text": "已派员"}, now(), expected_version=1)
        with pytest.raises(InvalidRequest):
            store.unit_act(LEAD, "zj", n, "progress", {"text": " "}, now())
        with pytest.raises(InvalidRequest):
            store.unit_act(LEAD, "zj", n, "extension", {"working_days": "2", "reason": "x"}, now())
        store.unit_act(HELPER, "cg", n, "assist-reply", {"text": "已配合执法"}, now())
        view = store.unit_act(LEAD, "zj", n, "reply", {"text": "已责令停工"}, now())
        assert view["stage"] == "replied"
        assert store.get_ticket(n) is not None
        rows = store.timeline(n)
        assert (rows[-1].actor, rows[-1].actor_role, rows[-1].recorded_by) == (LEAD, "unit", "zj")


def claim(store: SqlTicketStore, process: str, at: datetime | None = None, lease_s: float = 30.0) -> list[Any]:
    return list(store.claim_outbox(process, at or now(), lease_s))


class TestClaims:
    def test_only_the_oldest_pending_notice_of_each_unit(self, store: SqlTicketStore) -> None:
        first = store.create_ticket(complaint(), AGENT, now(), ZIBO).number
        second = store.create_ticket(complaint(), AGENT, now(), ZIBO).number
        got = claim(store, "p1")
        assert [(i.unit, i.ticket_number) for i in got] == [(LEAD, first), (HELPER, first)]
        assert claim(store, "p2") == []  # claimed, and the next ones wait behind them
        lead = got[0]
        status = store.finish_delivery(
            lead.id, "p1", ok=True, status_code=204, error="", seconds=0.01, at=now(), retry_at=None
        )
        assert status == "delivered"
        assert [(i.unit, i.ticket_number) for i in claim(store, "p2")] == [(LEAD, second)]

    def test_a_retry_holds_back_the_units_later_notices(self, store: SqlTicketStore) -> None:
        store.create_ticket(complaint(assisting_units=()), AGENT, now(), ZIBO)
        store.create_ticket(complaint(assisting_units=()), AGENT, now(), ZIBO)
        (item,) = claim(store, "p1")
        later = now() + timedelta(seconds=60)
        assert (
            store.finish_delivery(
                item.id, "p1", ok=False, status_code=500, error="HTTP 500", seconds=0.01, at=now(), retry_at=later
            )
            == "pending"
        )
        assert claim(store, "p1") == []  # not due, and the second waits behind it
        (again,) = claim(store, "p1", at=later + timedelta(seconds=1))
        assert (again.event_id, again.attempts, again.payload) == (item.event_id, 1, item.payload)
        assert (
            store.finish_delivery(
                again.id, "p1", ok=False, status_code=None, error="timeout", seconds=10, at=now(), retry_at=None
            )
            == "failed"
        )
        (next_one,) = claim(store, "p1", at=later + timedelta(seconds=2))
        assert next_one.id != item.id
        rows = {r["event_id"]: r for r in store.outbox()}
        assert (rows[item.event_id]["status"], rows[item.event_id]["attempts"]) == ("failed", 2)
        assert rows[item.event_id]["last_error"] == "timeout"
        assert [(d["attempt"], d["status_code"], d["ok"]) for d in store.deliveries(item.event_id)] == [
            (1, 500, False),
            (2, None, False),
        ]

    def test_a_lapsed_claim_is_taken_over_and_the_late_answer_changes_nothing(self, store: SqlTicketStore) -> None:
        store.create_ticket(complaint(assisting_units=()), AGENT, now(), ZIBO)
        (item,) = claim(store, "p1", lease_s=1)
        assert claim(store, "p2") == []
        (taken,) = claim(store, "p2", at=now() + timedelta(seconds=2))
        assert taken.event_id == item.event_id
        late = store.finish_delivery(
            item.id, "p1", ok=False, status_code=500, error="HTTP 500", seconds=1, at=now(), retry_at=now()
        )
        assert late == "pending"
        assert store.outbox()[0]["claimed_by"] == "p2"  # p1's late answer did not release p2's claim
        done = store.finish_delivery(
            taken.id, "p2", ok=True, status_code=200, error="", seconds=0.1, at=now(), retry_at=None
        )
        assert done == "delivered"
        assert [d["process"] for d in store.deliveries(item.event_id)] == ["p1", "p2"]

    def test_units_without_a_webhook_keep_their_notices(self, store: SqlTicketStore) -> None:
        store.add_unit("区教育局")
        store.create_ticket(complaint(lead_unit="区教育局", assisting_units=()), AGENT, now(), ZIBO)
        assert claim(store, "p1") == []
        assert [n["status"] for n in store.unit_notices("区教育局")] == ["pending"]
        store.set_unit_webhook("区教育局", "http://127.0.0.1:9/edu", SECRET)
        assert [i.unit for i in claim(store, "p1")] == ["区教育局"]

    def test_concurrent_claimers_never_share_a_notice(self, store: SqlTicketStore, ticket_store_url: str) -> None:
        units = [f"单位{i}" for i in range(12)]
        for unit in units:
            store.add_unit(unit, webhook_url="http://127.0.0.1:9/u", secret=SECRET)
            store.create_ticket(complaint(lead_unit=unit, assisting_units=()), AGENT, now(), ZIBO)
        others = [SqlTicketStore(ticket_store_url, policies=POLICIES.values()) for _ in range(4)]
        got: dict[str, list[str]] = {}
        barrier = threading.Barrier(len(others))

        def run(index: int, s: SqlTicketStore) -> None:
            barrier.wait()
            got[f"p{index}"] = [i.event_id for i in s.claim_outbox(f"p{index}", now(), 30)]

        threads = [threading.Thread(target=run, args=(i, s)) for i, s in enumerate(others)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        for s in others:
            s.close()
        claimed = [event for events in got.values() for event in events]
        assert len(claimed) == len(set(claimed)) == len(units)


class TestCli:
    def test_units_and_unit_accounts(
        self, ticket_store_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        from hotline.cli import main

        policies = Path(__file__).resolve().parents[2] / "config" / "policy"
        config = tmp_path / "hotline.yaml"
        config.write_text(
            f"data_dir: {tmp_path / 'var'}\npolicies_dir: {policies}\ntickets_url: '{ticket_store_url}'\n",
            encoding="utf-8",
        )
        monkeypatch.setenv("UNIT_SECRET", SECRET)
        monkeypatch.setenv("UNIT_PASSWORD", "密码-long-enough")
        base = ["--config", str(config)]
        assert main([*base, "units", "add", "区教育局", "--webhook", "https://edu.example.cn/hook",
                     "--secret-env", "UNIT_SECRET"]) == 0  # fmt: skip
        out = capsys.readouterr().out
        assert json.loads(out)["has_secret"] is True
        assert SECRET not in out
        assert main([*base, "units", "add", "区教育局"]) == 1  # taken
        assert main([*base, "units", "add", "区卫健委", "--webhook", "https://x.cn/h", "--secret-env", "NOPE"]) == 1
        capsys.readouterr()
        assert main([*base, "units", "list"]) == 0
        assert capsys.readouterr().out == "区教育局\t区教育局\thttps://edu.example.cn/hook\tenabled\n"
        args = ["accounts", "add", "jiaoyu", "--role", "unit", "--unit", "区教育局", "--password-env", "UNIT_PASSWORD"]
        assert main([*base, *args]) == 0
        assert json.loads(capsys.readouterr().out)["unit"] == "区教育局"
        store = SqlTicketStore(ticket_store_url)
        try:
            unit = store.get_unit("区教育局")
            assert unit is not None and unit.secret == SECRET
        finally:
            store.close()
