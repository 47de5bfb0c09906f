"""Contract of the repeat/duplicate part (repeats.py), the desk's wrap-up (desk.py) and the
personal-data audit (privacy.py) of SqlTicketStore, on a SQLite file and on PostgreSQL.

Dates and policy as in test_ticket_ledger.py: Zibo's policy, the official 2025 calendar.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy

from hotline.core.errors import Conflict, InvalidRequest, Unavailable
from hotline.core.model import CallId
from hotline.tickets import model as m
from hotline.tickets.desk import action_event
from hotline.tickets.lifecycle import IllegalTransition
from hotline.tickets.policy import load_policies
from hotline.tickets.records import ActorRole, NewTicket, NoSuchTicket, StaleTicket, TicketActor
from hotline.tickets.repeats import Matter, Windows
from hotline.tickets.store import SqlTicketStore
from hotline.tickets.workdays import SHANGHAI

POLICIES = load_policies(Path(__file__).resolve().parents[2] / "config" / "policy")
CALLER, OTHER, THIRD = "13800138000", "13900139000", "13700137000"
AGENT = ("a1", "agent")
HOTLINE = TicketActor("sup", ActorRole.SUPERVISOR)
NOISE = "小区夜间施工噪音扰民，请求处理"
PLACE = "淄博市张店区华光路88号"


def sh(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=SHANGHAI)


T0 = sh("2025-10-13 10:00")


def form(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"kind": "complaint", "content": NOISE, "place": PLACE, "caller_name": "王女士"}
    base.update(changes)
    return base


@pytest.fixture
def store(ticket_store_url: str) -> Iterator[SqlTicketStore]:
    opened = SqlTicketStore(ticket_store_url, policies=[POLICIES["zibo"]])
    yield opened
    opened.close()


def accept(store: SqlTicketStore, call: str, caller: str, at: datetime, **changes: Any) -> dict[str, Any]:
    return store.accept_call(CallId(call), caller, form(**changes), AGENT, at, "zibo", Windows())


class TestWrapUp:
    def test_a_wrap_up_makes_a_ticket_with_the_calls_transcript_once_per_call(self, store: SqlTicketStore) -> None:
        store.save_call_draft(CallId("c1"), "喂，我们小区晚上施工太吵了", {"kind": {"value": "complaint"}}, "whisper")
        first = accept(store, "c1", CALLER, T0, lead_unit="区住建局", assisting_units=["区城管局"])
        ticket = first["ticket"]
        assert first["created"] is True and first["links"] == [] and first["same_matter"] is None
        assert (ticket["stage"], ticket["lead_unit"], ticket["assisting_units"]) == (
            "dispatched", "区住建局", ["区城管局"]
        )  # fmt: skip
        assert ticket["transcript"] == "喂，我们小区晚上施工太吵了"
        assert ticket["consent"] == {"recording": True, "callback": True, "disclose": False}
        assert ticket["owner"] == "a1" and ticket["deadline"] is not None and ticket["light"] == "none"
        assert [(c["call_id"], c["role"]) for c in ticket["calls"]] == [("c1", "intake")]
        again = accept(store, "c1", CALLER, T0 + timedelta(minutes=1), content="完全不同的内容")
        assert again["created"] is False and again["ticket"]["number"] == ticket["number"]
        assert again["ticket"]["content"] == NOISE
        assert store.intake_ticket_number(CallId("c1")) == ticket["number"]

    def test_concurrent_submits_of_one_call_make_one_ticket(self, store: SqlTicketStore) -> None:
        results: list[dict[str, Any]] = []
        threads = [threading.Thread(target=lambda: results.append(accept(store, "c9", CALLER, T0))) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(r["created"] for r in results) == [False, False, False, True]
        assert len({r["ticket"]["number"] for r in results}) == 1

    def test_another_process_filing_the_call_first_wins_whole(
        self, store: SqlTicketStore, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Another control process files the call between this one's check and its creation (the
        check is made to miss once): the database's unique intake index refuses the second
        ticket as a whole, and the submit gets the first ticket."""
        first = accept(store, "c8", CALLER, T0)
        real = store._intake_ticket
        misses = iter([None])
        monkeypatch.setattr(store, "_intake_ticket", lambda call_id: next(misses, None) or real(call_id))
        again = accept(store, "c8", CALLER, T0 + timedelta(seconds=1), content="另一个进程里的提交")
        assert again["created"] is False and again["ticket"]["number"] == first["ticket"]["number"]
        assert len(store.list_ticket_documents({}, 10)) == 1  # the refused ticket left nothing behind
        second = NewTicket(caller=CALLER, kind=m.Kind.COMPLAINT, content=NOISE, call_id=CallId("c8"))
        with pytest.raises(Conflict):
            store.create_ticket(second, TicketActor("a2"), T0 + timedelta(seconds=2), POLICIES["zibo"])
        assert len(store.list_ticket_documents({}, 10)) == 1

    def test_an_answer_closes_it_without_dispatch(self, store: SqlTicketStore) -> None:
        done = accept(store, "c2", CALLER, T0, kind="consultation", content="社保卡补办", answer="带身份证到社保大厅")
        assert done["ticket"]["stage"] == "closed"

    def test_bad_forms_store_nothing(self, store: SqlTicketStore) -> None:
        with pytest.raises(InvalidRequest):
            accept(store, "c3", CALLER, T0, kind="gossip")
        with pytest.raises(NoSuchTicket):
            accept(store, "c3", CALLER, T0, related_ticket="25101399999")
        assert store.intake_ticket_number(CallId("c3")) is None
        assert store.list_ticket_documents({}, 10) == []

    def test_a_repeat_is_linked_and_counts_for_supervision(self, store: SqlTicketStore) -> None:
        first = accept(store, "c1", CALLER, T0)["ticket"]["number"]
        second = accept(store, "c2", CALLER, T0 + timedelta(days=2), content="小区晚上施工太吵")
        assert [(link["number"], link["relation"]) for link in second["links"]] == [(first, "repeat")]
        assert second["same_matter"] == first
        [link] = second["ticket"]["links"]
        assert (link["other"], link["relation"], link["outgoing"]) == (first, "repeat", True)
        assert "同一来电人" in link["reason"]
        earlier = store.get_ticket(first)
        assert earlier is not None and earlier.ticket.reports == 2
        assert earlier.ticket.supervision == ()
        accept(store, "c3", CALLER, T0 + timedelta(days=3))  # the third report: 督办 (repeat_reports: 3)
        earlier = store.get_ticket(first)
        assert earlier is not None and earlier.ticket.reports == 3
        assert earlier.ticket.supervision == (m.SupervisionReason.REPEATED,)

    def test_duplicates_from_other_callers_count_callers(self, store: SqlTicketStore) -> None:
        first = accept(store, "c1", CALLER, T0)["ticket"]["number"]
        dup = accept(store, "c2", OTHER, T0 + timedelta(days=1), content="工地晚上施工", place="张店区华光路88号")
        assert [(link["number"], link["relation"]) for link in dup["links"]] == [(first, "duplicate")]
        accept(store, "c3", THIRD, T0 + timedelta(days=2), place="张店区华光路８８号")
        earlier = store.get_ticket(first)
        assert earlier is not None and earlier.ticket.callers == (CALLER, OTHER, THIRD)
        assert m.SupervisionReason.MANY_CALLERS in earlier.ticket.supervision
        late = accept(store, "c4", "13600136000", T0 + timedelta(days=10))  # past the 7-day window
        assert late["links"] == [] and late["same_matter"] is None

    def test_another_matter_of_the_caller_is_shown_but_not_linked(self, store: SqlTicketStore) -> None:
        first = accept(store, "c1", CALLER, T0)["ticket"]["number"]
        other = accept(store, "c2", CALLER, T0 + timedelta(days=1), kind="consultation", content="社保卡补办", place="")
        assert other["links"] == [] and other["same_matter"] is None
        later = T0 + timedelta(days=2)
        context = store.caller_context(CALLER, {"kind": "help", "content": "路灯坏了", "place": ""}, later, Windows())
        assert [h["number"] for h in context["history"]] == [other["ticket"]["number"], first]
        assert [(c["number"], c["same_matter"]) for c in context["candidates"]] == [
            (other["ticket"]["number"], False),
            (first, False),
        ]

    def test_a_closed_matter_raised_again_is_flagged_and_the_caller_told(self, store: SqlTicketStore) -> None:
        first = accept(
            store, "c1", CALLER, T0, kind="consultation", content="社保卡补办需要什么材料", answer="带身份证"
        )
        assert first["ticket"]["stage"] == "closed"
        later = T0 + timedelta(days=60)
        matter = {"kind": "consultation", "place": "", "content": "社保卡补办要什么材料"}
        context = store.caller_context(CALLER, matter, later, Windows())
        assert context["not_accepted_again"] == [first["ticket"]["number"]]
        assert "不再受理" in context["candidates"][0]["reason"]
        again = accept(store, "c2", CALLER, later, kind="consultation", content="社保卡补办要什么材料", place="")
        assert again["same_matter"] == first["ticket"]["number"]
        closed = store.get_ticket(first["ticket"]["number"])
        assert closed is not None and closed.ticket.state == m.State.CLOSED and closed.ticket.reports == 2
        assert closed.ticket.timeline[-1].note == f"工单 {again['ticket']['number']} 反映同一事项"

    def test_repeat_candidates_read_both_windows(self, store: SqlTicketStore) -> None:
        accept(store, "c1", CALLER, T0)
        accept(store, "c2", OTHER, T0 + timedelta(hours=1), content="工地施工")
        found = store.repeat_candidates(Matter(THIRD, "complaint", PLACE, "噪音"), T0 + timedelta(days=1), Windows())
        assert sorted(c.relation for c in found) == ["duplicate", "duplicate"]
        assert store.tickets_of_kind("help", T0 - timedelta(days=1), 10) == []


class TestListAndActions:
    def test_lists_filter_by_state_stage_light_unit_kind(self, store: SqlTicketStore) -> None:
        a = accept(store, "c1", CALLER, T0, lead_unit="区住建局", assisting_units=["区城管_局"])["ticket"]["number"]
        b = accept(store, "c2", OTHER, T0 + timedelta(hours=1), kind="help", content="路灯坏了", place="人民路")
        b_number = b["ticket"]["number"]
        every = store.list_ticket_documents({}, 10)
        assert [t["number"] for t in every] == [b_number, a]
        assert every[1]["owner"] == "a1" and every[1]["caller"] == CALLER and every[1]["stage"] == "dispatch"

        def numbers(**filters: str) -> list[str]:
            return [t["number"] for t in store.list_ticket_documents(filters, 10)]

        assert numbers(state="accepted") == [b_number]
        assert numbers(stage="dispatch") == [a]
        assert numbers(unit="区城管_局") == [a] == numbers(unit="区住建局")
        assert numbers(unit="区城管%") == []  # LIKE wildcards are text
        assert numbers(kind="help") == [b_number]
        assert numbers(light="none") == [b_number, a]
        assert store.list_ticket_documents({}, 1)[0]["number"] == b_number
        with pytest.raises(InvalidRequest):
            store.list_ticket_documents({"stage": "nope"}, 10)

    def test_actions_map_to_lifecycle_events_with_versions(self, store: SqlTicketStore) -> None:
        number = accept(store, "c1", CALLER, T0)["ticket"]["number"]
        with pytest.raises(StaleTicket):
            store.hotline_action(number, "dispatch", {"lead_unit": "区住建局"}, "sup", T0, 7)
        done = store.hotline_action(number, "dispatch", {"lead_unit": "区住建局"}, "sup", T0, 1)
        assert done["stage"] == "dispatched" and done["version"] == 2
        assert done["timeline"][-1]["actor_role"] == "supervisor"
        with pytest.raises(IllegalTransition):
            store.hotline_action(number, "approve_extension", {}, "sup", T0, 2)
        supervised = store.hotline_action(number, "supervise", {"reason": "领导批示"}, "sup", T0, 2)
        assert supervised["timeline"][-1]["action"] == "supervision_manual"
        with pytest.raises(NoSuchTicket):
            store.hotline_action("25101399999", "supervise", {"reason": "x"}, "sup", T0, 1)

    @pytest.mark.parametrize(
        ("action", "fields", "event"),
        [
            ("dispatch", {"lead_unit": "U", "assisting_units": ["V"]}, m.Dispatch("s", "U", ("V",))),
            ("approve_return", {"reason": "r", "lead_unit": "U"}, m.ApproveReturn("s", "r", "U", ())),
            ("refuse_return", {"reason": "r"}, m.RefuseReturn("s", "r")),
            ("approve_extension", {}, m.ApproveExtension("s", "")),
            ("refuse_extension", {"reason": "r"}, m.RefuseExtension("s", "r")),
            ("reject_reply", {"reason": "r"}, m.RejectReply("s", "r")),
            ("approve_termination", {"reason": "r"}, m.ApproveTermination("s", "r")),
            ("refuse_termination", {"reason": "r"}, m.RefuseTermination("s", "r")),
            ("supervise", {"reason": "r"}, m.Supervise("s", "r")),
            ("reassign_units", {"lead_unit": "U", "reason": "r"}, m.ReassignUnits("s", "U", (), "r")),
            (
                "callback",
                {"process": 1, "result": 3, "demand_reasonable": True},
                m.Callback("s", m.Satisfaction.SATISFIED, m.Satisfaction.UNSATISFIED, True, ""),
            ),
        ],
    )
    def test_every_action_maps_explicitly(self, action: str, fields: dict[str, Any], event: m.Event) -> None:
        assert action_event(action, "s", fields) == event

    @pytest.mark.parametrize(
        ("action", "fields"),
        [("acknowledge", {}), ("dispatch", {}), ("supervise", {"reason": "r", "lead_unit": "U"})],
    )
    def test_unknown_actions_and_fields_are_refused(self, action: str, fields: dict[str, Any]) -> None:
        with pytest.raises(InvalidRequest):
            action_event(action, "s", fields)


class TestPersonalDataAudit:
    def test_reads_are_appended_and_read_back_per_ticket_with_its_calls(self, store: SqlTicketStore) -> None:
        number = accept(store, "c1", CALLER, T0)["ticket"]["number"]
        assert store.audit_personal_read("sup", "supervisor", "ticket", [number], ["caller", "caller_name"],
                                         "GET /api/v1/tickets/{number}", "127.0.0.1") == 1  # fmt: skip
        assert store.audit_personal_read("agent1", "agent", "call", ["c1", "c1", "other"], ["caller"], "GET x") == 2
        assert store.audit_personal_read("sup", "supervisor", "call", [], ["caller"], "GET x") == 0
        rows = store.personal_reads("ticket", number)
        assert [(r.who, r.subject_type, r.subject, r.fields) for r in rows] == [
            ("sup", "ticket", number, ("caller", "caller_name")),
            ("agent1", "call", "c1", ("caller",)),
        ]
        assert rows[0].to_dict()["route"] == "GET /api/v1/tickets/{number}" and rows[0].client == "127.0.0.1"
        assert [r.subject for r in store.personal_reads("call", "other")] == ["other"]

    @pytest.mark.parametrize(
        "args",
        [
            ("sup", "supervisor", "unit", ["x"], ["caller"], "GET x"),
            ("sup", "supervisor", "call", ["x"], ["password"], "GET x"),
            ("sup", "supervisor", "call", ["x"], [], "GET x"),
            (" ", "supervisor", "call", ["x"], ["caller"], "GET x"),
        ],
    )
    def test_malformed_rows_are_refused(self, store: SqlTicketStore, args: tuple[Any, ...]) -> None:
        with pytest.raises(InvalidRequest):
            store.audit_personal_read(*args)

    def test_the_audit_is_append_only(self, store: SqlTicketStore, ticket_store_url: str) -> None:
        store.audit_personal_read("sup", "supervisor", "call", ["c1"], ["caller"], "GET x")
        engine = sqlalchemy.create_engine(ticket_store_url, poolclass=sqlalchemy.pool.NullPool)
        try:
            for statement in (
                "UPDATE personal_data_access SET who = 'nobody'",
                "DELETE FROM personal_data_access",
            ):
                with pytest.raises(sqlalchemy.exc.DatabaseError), engine.begin() as conn:
                    conn.execute(sqlalchemy.text(statement))
            if engine.dialect.name == "postgresql":
                with pytest.raises(sqlalchemy.exc.DatabaseError), engine.begin() as conn:
                    conn.execute(sqlalchemy.text("TRUNCATE personal_data_access"))
        finally:
            engine.dispose()
        assert [r.who for r in store.personal_reads("call", "c1")] == ["sup"]

    def test_a_closed_store_writes_no_row(self, store: SqlTicketStore) -> None:
        store.close()
        with pytest.raises(Unavailable):
            store.audit_personal_read("sup", "supervisor", "call", ["c1"], ["caller"], "GET x")
