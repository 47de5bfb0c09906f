"""Webhook delivery of the units' notices (hotline/tickets/webhooks.py) to a real aiohttp receiver
on 127.0.0.1, from a real SQLite ticket store: retries, signatures, order, claims, alerts, and the
control plane running it on the leader only."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from hotline.runtime.control import Control, ControlSettings
from hotline.tickets import model as m
from hotline.tickets.model import Kind
from hotline.tickets.policy import load_policies
from hotline.tickets.records import ActorRole, NewTicket, TicketActor
from hotline.tickets.store import SqlTicketStore
from hotline.tickets.webhooks import (
    EVENT_ID_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    RetryPolicy,
    WebhookDelivery,
    verify_signature,
)
from tests.support import free_port, until_async

POLICIES = load_policies(Path(__file__).resolve().parents[2] / "config" / "policy")
LEAD, HELPER = "区住建局", "区城管局"
SECRET = "whsec-区住建局-0123456789"
CALLER, NAME = "13912345678", "张三丰"
FAST = RetryPolicy(max_attempts=4, base_s=0.05, cap_s=0.2, timeout_s=0.5, lease_s=5)


@dataclass
class Receiver:
    """A unit's webhook endpoint. `plan` answers the first requests in turn: an HTTP status, or
    "hang" (answers too late for the sender's timeout); later requests get 200."""

    plan: list[int | str] = field(default_factory=list)
    requests: list[tuple[dict[str, str], bytes, int | str]] = field(default_factory=list)
    accepted: dict[str, bytes] = field(default_factory=dict)  # event id -> body, deduplicated
    url: str = ""

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        answer = self.plan.pop(0) if self.plan else 200
        self.requests.append((dict(request.headers), body, answer))
        if answer == "hang":
            await asyncio.sleep(5)
            return web.Response(status=200)
        assert isinstance(answer, int)
        if 200 <= answer < 300:
            self.accepted.setdefault(request.headers[EVENT_ID_HEADER], body)
        return web.Response(status=answer, text="ok" if answer < 300 else "no")


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    rx = Receiver()
    app = web.Application()
    app.router.add_post("/hook", rx.handle)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    rx.url = f"http://127.0.0.1:{port}/hook"
    yield rx
    await runner.cleanup()


@pytest.fixture
def store(tmp_path: Path, receiver: Receiver) -> Iterator[SqlTicketStore]:
    s = SqlTicketStore(f"sqlite:///{tmp_path / 'tickets.db'}", policies=POLICIES.values())
    s.add_unit(LEAD, webhook_url=receiver.url, secret=SECRET)
    s.add_unit(HELPER, webhook_url=receiver.url, secret=SECRET)
    yield s
    s.close()


def new_ticket(store: SqlTicketStore, assisting: tuple[str, ...] = ()) -> str:
    new = NewTicket(
        caller=CALLER,
        kind=Kind.COMPLAINT,
        content=f"夜间施工噪音扰民，{NAME} 请回电 {CALLER}",
        caller_name=NAME,
        transcript=f"我是{NAME}，电话{CALLER}",
        place="华光路88号",
        lead_unit=LEAD,
        assisting_units=assisting,
    )
    return store.create_ticket(new, TicketActor("agent-1001"), datetime.now(UTC), POLICIES["zibo"]).number


async def settled(store: SqlTicketStore) -> bool:
    rows = await asyncio.to_thread(store.outbox)
    return bool(rows) and all(r["status"] != "pending" for r in rows)


async def running(delivery: WebhookDelivery) -> asyncio.Task[None]:
    return asyncio.create_task(delivery.run(interval_s=0.02))


async def stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def test_500_then_a_timeout_then_delivered_once_signed_and_in_order(
    store: SqlTicketStore, receiver: Receiver
) -> None:
    receiver.plan = [500, "hang"]
    number = new_ticket(store)
    store.apply(
        number, m.Supervise("热线中心", "重点督办"), TicketActor("热线中心", ActorRole.SUPERVISOR), datetime.now(UTC)
    )
    first, second = (r["event_id"] for r in store.outbox())
    delivery = WebhookDelivery(store, "control-a", FAST, draw=lambda: 0.0)
    task = await running(delivery)
    try:
        await until_async(lambda: settled(store), timeout=20)
    finally:
        await stop(task)
    answers = [(headers[EVENT_ID_HEADER], answer) for headers, _, answer in receiver.requests]
    assert answers == [(first, 500), (first, "hang"), (first, 200), (second, 200)]  # the second waited
    bodies = {body for headers, body, _ in receiver.requests if headers[EVENT_ID_HEADER] == first}
    assert len(bodies) == 1  # the same bytes every time
    for headers, body, _ in receiver.requests:
        assert verify_signature(SECRET, headers[TIMESTAMP_HEADER], body, headers[SIGNATURE_HEADER], tolerance_s=60)
        assert headers["Content-Type"].startswith("application/json")
        text = body.decode()
        assert CALLER not in text and NAME not in text
    assert list(receiver.accepted) == [first, second]  # exactly one logical delivery each
    payload = json.loads(receiver.accepted[first])
    assert (payload["event_id"], payload["type"], payload["unit"], payload["ticket"]["number"]) == (
        first, "ticket.notice", LEAD, number,
    )  # fmt: skip
    rows = {r["event_id"]: r for r in store.outbox()}
    assert (rows[first]["status"], rows[first]["attempts"]) == ("delivered", 3)
    attempts = store.deliveries(first)
    assert [(a["attempt"], a["status_code"], a["ok"]) for a in attempts] == [
        (1, 500, False),
        (2, None, False),
        (3, 200, True),
    ]
    assert "timeout" in attempts[1]["error"]
    assert delivery.delivered == 2


async def test_given_up_after_the_last_attempt_with_an_alert(store: SqlTicketStore, receiver: Receiver) -> None:
    receiver.plan = [503] * 10
    new_ticket(store)
    alerts: list[dict[str, Any]] = []

    async def alert(data: dict[str, Any]) -> None:
        alerts.append(data)

    delivery = WebhookDelivery(store, "control-a", FAST, on_alert=alert, draw=lambda: 0.0)
    task = await running(delivery)
    try:
        await until_async(lambda: settled(store), timeout=20)
    finally:
        await stop(task)
    (row,) = store.outbox()
    assert (row["status"], row["attempts"], row["last_error"]) == ("failed", 4, "HTTP 503")
    assert len(receiver.requests) == 4
    assert alerts == [
        {
            "alert": "webhook-failed",
            "unit": LEAD,
            "event_id": row["event_id"],
            "attempts": 4,
            "error": "HTTP 503",
            "by": "control-a",
        }
    ]
    assert receiver.accepted == {}


async def test_two_deliverers_never_send_a_notice_twice(
    store: SqlTicketStore, receiver: Receiver, tmp_path: Path
) -> None:
    for _ in range(5):
        new_ticket(store, assisting=(HELPER,))
    other = SqlTicketStore(f"sqlite:///{tmp_path / 'tickets.db'}", policies=POLICIES.values())
    tasks = [
        await running(WebhookDelivery(store, "control-a", FAST)),
        await running(WebhookDelivery(other, "control-b", FAST)),
    ]
    try:
        await until_async(lambda: settled(store), timeout=30)
    finally:
        for task in tasks:
            await stop(task)
        other.close()
    sent = [headers[EVENT_ID_HEADER] for headers, _, _ in receiver.requests]
    assert len(sent) == len(set(sent)) == 10
    per_unit: dict[str, list[int]] = {}
    for _, body, _ in receiver.requests:
        payload = json.loads(body)
        per_unit.setdefault(payload["unit"], []).append(int(payload["ticket"]["number"]))
    assert all(numbers == sorted(numbers) for numbers in per_unit.values())  # each unit's in order


async def test_the_control_plane_delivers_on_the_leader_only(store: SqlTicketStore, receiver: Receiver) -> None:
    new_ticket(store)
    delivery = WebhookDelivery(store, "control-a", FAST)
    control = Control(
        ControlSettings(),
        None,
        None,
        store,
        lambda offer: "",
        lease=object(),
        webhooks=delivery,  # type: ignore[arg-type]
    )
    assert not control.is_leader
    assert await control.webhook_step() is False
    assert receiver.requests == []
    control.is_leader = True
    assert await control.webhook_step() is True
    assert [r["status"] for r in store.outbox()] == ["delivered"]
    await delivery.close()
