"""Property test: random interleavings of queue operations against a real redis-server.

A reference model predicts every result: plain Python for the calls, offers, callbacks and the
handle-time average, the sans-IO agent_state.AgentMachine for every agent and routing.choose
for every dispatch (the specs the Lua scripts mirror), under each strategy with random agent
skills, random call requirements and widening. After every step the Redis state must match it,
every agent.state event the scripts published must be the model's Changed, and the ACD
invariants must hold: no agent holds two offers or calls, no call is offered to two agents, no
entry is lost or duplicated, the waiting calls are ordered by priority and by arrival within a
priority; and after a dispatch that made no offer, no available agent is eligible for a waiting
call whose turn has come. With several queues sharing the agents ("two-queues" configs), calls
go to random queues, a full queue overflows to the other, calls move between them
(move_to_queue), and routing.choose_across is the model: the same invariants hold over all
queues together, and arrival order within a priority holds within each queue. A call on an
agent may be transferred to another (transfer_taken): the model moves it (oncall) from one
agent's machine (CallEnded, transferred) to the other's (TransferTaken), so "no call has two
agents on it" holds across transfers too.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Coroutine
from typing import Any, ClassVar, TypeVar

import hypothesis.strategies as st
import pytest
import redis
import redis.asyncio
from hypothesis import settings
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from hotline.core import events
from hotline.core.errors import Conflict, IllegalTransition
from hotline.core.model import Actor, Agent, AgentId, AgentState, CallId, OfferId, Priority, WorkerId
from hotline.core.ports import QUEUE_FULL
from hotline.queue import agent_state as ag
from hotline.queue import keys, routing
from hotline.queue.acd import AcdPolicy, RedisCallQueue
from hotline.queue.estimate import next_handle_average

T = TypeVar("T")

CALLS = [CallId(f"c{n}") for n in range(5)]
AGENTS = [AgentId(f"a{n}") for n in range(3)]
W = WorkerId("w1")
# Time passing between steps; 0 (where shrinking heads) makes equal timestamps, i.e. ties.
DT = st.integers(0, 9)
# Mostly a live offer, sometimes any offer ever made (stale): calls get answered often enough to
# reach wrap-up and the handle-time average.
LIVE = st.sampled_from([True, True, True, False])
REASONS = st.sampled_from(["小休", "用餐", "培训"])
FAILURES = st.sampled_from(["no-answer", "busy", "not-registered", "no-such-call"])
SAMPLES = 3  # handle-time window, small so the exponential part is reached
SKILLS = ["zh", "en", "complaint"]
AGENT_SKILLS = st.dictionaries(st.sampled_from(SKILLS), st.integers(1, 3), max_size=3)
CALL_SKILLS = st.lists(st.sampled_from(SKILLS[1:]), unique=True, max_size=2).map(lambda s: tuple(sorted(s)))
# What agents ask for themselves (or a supervisor for them).
REQUESTS = st.one_of(
    st.builds(ag.Pause, REASONS, st.sampled_from(list(Actor))),
    st.builds(ag.Resume),
    st.builds(ag.WrapUpDone),
)


@dataclasses.dataclass
class ModelEntry:
    arrival: int
    priority: Priority
    offer: OfferId | None = None  # None while waiting
    skills: tuple[str, ...] = ()
    callback: bool = False
    not_before: int | None = None  # a callback's retry time
    callback_attempts: int = 0
    queue: str = keys.DEFAULT_QUEUE


@dataclasses.dataclass(frozen=True)
class ModelOffer:
    call: CallId
    agent: AgentId
    expires: int


class Model:
    """What the queue must do: calls in plain Python, agents as AgentMachines."""

    def __init__(self, policy: ag.AgentPolicy, acd: AcdPolicy, others: dict[str, AcdPolicy] | None = None) -> None:
        self.policy = policy
        self.acd = acd
        self.acds = {keys.DEFAULT_QUEUE: acd, **(others or {})}
        self.skills: dict[AgentId, dict[str, int]] = {}  # as given at the last login
        self.last_offered: AgentId | None = None
        self.entries: dict[CallId, ModelEntry] = {}
        self.machines: dict[AgentId, ag.AgentMachine] = {}
        self.idle: dict[AgentId, int] = {}  # from JoinIdleLine / LeaveIdleLine
        self.timers: dict[AgentId, int] = {}  # from StartWrapUpTimer / StopWrapUpTimer
        self.offers: dict[OfferId, ModelOffer] = {}
        self.oncall: dict[CallId, AgentId] = {}
        self.published: list[dict[str, Any]] = []  # Changed not yet seen on the stream
        self.handle: tuple[int | None, int] = (None, 0)

    def waiting(self, queue: str | None = None) -> list[CallId]:
        """Waiting calls of `queue` (None: of all queues), in dispatch order."""
        waiting = [c for c, e in self.entries.items() if e.offer is None and queue in (None, e.queue)]
        return sorted(waiting, key=lambda c: (-self.entries[c].priority, self.entries[c].arrival, c))

    def length(self, queue: str) -> int:
        return sum(1 for e in self.entries.values() if e.queue == queue)

    def queue_taking(self, queue: str) -> str | None:
        """The queue an enqueue to `queue` lands in (overflow while full), None: QUEUE_FULL."""
        seen: set[str] = set()
        while True:
            acd = self.acds[queue]
            if acd.max_length is None or self.length(queue) < acd.max_length:
                return queue
            seen.add(queue)
            target = acd.overflow_target.removeprefix("queue:")
            if acd.overflow_target.startswith("queue:") and target not in seen:
                queue = target
            elif acd.overflow_target:
                return queue  # queued all the same, overflow_now
            else:
                return None

    def available(self) -> list[AgentId]:
        return sorted(self.idle, key=lambda a: (self.idle[a], a))

    def routing_calls(self) -> list[routing.Waiting]:
        return [
            routing.Waiting(
                c,
                self.entries[c].arrival,
                self.entries[c].skills,
                self.entries[c].not_before or 0,
                self.entries[c].queue,
                int(self.entries[c].priority),
            )
            for c in self.waiting()
        ]

    def routing_agents(self) -> list[routing.Candidate]:
        result = []
        for agent in self.available():
            machine = self.machines[agent]
            skills = self.skills[agent]
            result.append(routing.Candidate(agent, self.idle[agent], skills, machine.calls_answered, machine.talk_ms))
        return result

    def choose(self, now: int) -> tuple[CallId, AgentId] | None:
        """Where the next offer goes (routing.choose_across, the rules dispatch.lua carries out)."""
        if len(self.acds) == 1:
            picked = routing.choose(
                self.routing_calls(),
                self.routing_agents(),
                strategy=self.acd.strategy,
                required=self.acd.required_skills,
                steps=routing.steps_ms(self.acd.skill_steps),
                now_ms=now,
                last_offered=self.last_offered,
            )
        else:
            rules = {
                name: routing.QueueRules(acd.strategy, acd.required_skills, routing.steps_ms(acd.skill_steps))
                for name, acd in self.acds.items()
            }
            picked = routing.choose_across(
                routing.dispatch_order(self.routing_calls()), self.routing_agents(), rules, now, self.last_offered
            )
        return None if picked is None else (CallId(picked[0].call_id), AgentId(picked[1].agent_id))

    def servable_pairs(self, now: int) -> list[tuple[CallId, AgentId]]:
        """Every (waiting call whose turn has come, available agent eligible for it) pair."""
        pairs = []
        for call in self.waiting():
            entry = self.entries[call]
            if (entry.not_before or 0) > now:
                continue
            acd = self.acds[entry.queue]
            needed = set(acd.required_skills) | set(entry.skills)
            level = routing.min_level(routing.steps_ms(acd.skill_steps), now - entry.arrival)
            pairs += [(call, a) for a in self.idle if routing.eligible(self.skills[a], needed, level)]
        return pairs

    def status(self, agent: AgentId) -> Any:
        """The agent's status as the queue must report it: his machine's, with his skills."""
        return dataclasses.replace(self.machines[agent].status(), skills=self.skills[agent], extension=f"ext-{agent}")

    def apply(self, agent: AgentId, event: ag.Event, now: int) -> None:
        """Feeds the agent's machine and carries out its commands on the model."""
        for command in self.machines[agent].handle(event, now):
            match command:
                case ag.JoinIdleLine(idle_since_ms=since):
                    assert agent not in self.idle
                    self.idle[agent] = since
                case ag.LeaveIdleLine():
                    del self.idle[agent]
                case ag.StartWrapUpTimer(until_ms=until):
                    self.timers[agent] = until
                case ag.StopWrapUpTimer():
                    del self.timers[agent]
                case ag.RequeueCall(call_id=call, offer_id=offer):
                    del self.offers[offer]
                    self.entries[call].offer = None
                case ag.Changed():
                    self.published.append(command.to_dict())

    def tick(self, now: int) -> None:
        """What every script given the time does first: end the wrap-ups due."""
        for agent in sorted((a for a, t in self.timers.items() if t <= now), key=lambda a: (self.timers[a], a)):
            self.apply(agent, ag.Tick(), now)

    def fail(self, offer_id: OfferId, now: int, reason: str, agent_fault: bool) -> None:
        offer = self.offers.pop(offer_id)
        self.entries[offer.call].offer = None
        self.apply(offer.agent, ag.OfferFailed(offer_id, reason, agent_fault), now)


class QueueMachine(RuleBasedStateMachine):
    loop: asyncio.AbstractEventLoop  # one per test, owned (and closed) by the test function
    policy: ag.AgentPolicy
    acd: dict[str, Any]  # the routing part of the queue's AcdPolicy
    others: ClassVar[dict[str, dict[str, Any]]] = {}  # other queues sharing the agents: name -> the same

    def __init__(self, url: str) -> None:
        super().__init__()
        sync = redis.Redis.from_url(url)
        sync.flushdb()
        sync.close()
        self.client = redis.asyncio.Redis.from_url(url)
        acd = AcdPolicy(agent=self.policy, handle_samples=SAMPLES, **self.acd)
        others = {name: AcdPolicy(agent=self.policy, **config) for name, config in self.others.items()}
        self.queue = RedisCallQueue(self.client, policy=acd, queues=others)
        self.model = Model(self.policy, acd, others)
        self.queue_names = list(self.model.acds)
        self.now = 1_000
        self.seen_offers: list[OfferId] = []
        self.callback_offers: list[OfferId] = []  # offers ever made of callback entries
        self.stream_seen = "0-0"

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(coro)

    def pick_offer(self, pick: int, live: bool) -> OfferId:
        """A live offer if asked and there is one, else any offer ever made (maybe stale)."""
        choices = sorted(self.model.offers) if live and self.model.offers else self.seen_offers
        return choices[pick % len(choices)]

    def teardown(self) -> None:
        self.run(self.client.aclose())

    def advance(self, dt: int) -> None:
        """Time passes and a script is given it: due wrap-ups end first (in Redis and model)."""
        self.now += dt
        self.model.tick(self.now)

    @initialize(
        agents=st.lists(st.sampled_from(AGENTS), unique=True, max_size=len(AGENTS)),
        calls=st.lists(st.sampled_from(CALLS), unique=True, max_size=len(CALLS)),
    )
    def busy_start(self, agents: list[AgentId], calls: list[CallId]) -> None:
        """Most runs start with agents at work and callers waiting: busier runs reach more states."""
        for n, agent in enumerate(agents):
            self.login(agent, 1, Actor.AGENT, {"zh": 1 + n % 3, SKILLS[1 + n % 2]: 1})
        for n, call in enumerate(calls):
            self.enqueue(call, 0, Priority.NORMAL, (SKILLS[1 + n % 2],) if n % 3 == 2 else ())

    @rule(step=st.integers(0, 150))
    def tick(self, step: int) -> None:
        self.now += step

    # --- calls ---------------------------------------------------------------------------

    @rule(
        call=st.sampled_from(CALLS),
        offset=st.integers(-30, 30),
        priority=st.sampled_from(list(Priority)),
        skills=CALL_SKILLS,
        pick=st.integers(0, 10),
    )
    def enqueue(self, call: CallId, offset: int, priority: Priority, skills: tuple[str, ...], pick: int = 0) -> None:
        arrival = max(0, self.now + offset)  # late-reported and equal arrivals happen
        queue = self.queue_names[pick % len(self.queue_names)]
        got = self.run(self.queue.enqueue(call, W, "138", arrival, priority, skills, queue=queue))
        m = self.model
        if call in m.oncall or (call in m.entries and m.entries[call].offer is not None):
            assert got == 0
            return
        if call not in m.entries:
            taking = m.queue_taking(queue)
            if taking is None:
                assert got == QUEUE_FULL
                return
            m.entries[call] = ModelEntry(arrival, priority, skills=skills, queue=taking)
        assert got == m.waiting(m.entries[call].queue).index(call) + 1

    @precondition(lambda self: len(self.queue_names) > 1)
    @rule(call=st.sampled_from(CALLS), pick=st.integers(0, 10), dt=DT)
    def move_to_queue(self, call: CallId, pick: int, dt: int) -> None:
        self.advance(dt)
        queue = self.queue_names[pick % len(self.queue_names)]
        got = self.run(self.queue.move_to_queue(call, queue, self.now))
        m = self.model
        entry = m.entries.get(call)
        if entry is None:
            assert got is None
        elif entry.offer is not None or entry.callback:
            assert got == 0
        elif entry.queue == queue:
            assert got == m.waiting(queue).index(call) + 1
        elif m.acds[queue].max_length is not None and m.length(queue) >= m.acds[queue].max_length:
            assert got == QUEUE_FULL
        else:
            entry.queue = queue
            assert got == m.waiting(queue).index(call) + 1

    @rule(call=st.sampled_from(CALLS), level=st.sampled_from(list(Priority)))
    def set_priority(self, call: CallId, level: Priority) -> None:
        got = self.run(self.queue.set_priority(call, level))
        entry = self.model.entries.get(call)
        if entry is None:
            assert got is None
            return
        entry.priority = max(entry.priority, level)
        assert got is entry.priority

    @rule(call=st.sampled_from(CALLS))
    def abandon(self, call: CallId) -> None:
        got = self.run(self.queue.abandon(call))
        m = self.model
        if call in m.entries and m.entries[call].callback:
            assert not got  # its caller hung up on purpose: only its own outcome removes it
            return
        entry = m.entries.pop(call, None)
        assert got == (entry is not None)
        if entry is not None and entry.offer is not None:
            offer = m.offers.pop(entry.offer)
            m.apply(offer.agent, ag.OfferWithdrawn(entry.offer), self.now)

    @rule(call=st.sampled_from(CALLS), dt=DT)
    def request_callback(self, call: CallId, dt: int) -> None:
        self.advance(dt)
        got = self.run(self.queue.request_callback(call, "13800000000", self.now))
        m = self.model
        entry = m.entries.get(call)
        assert got == (entry is not None)
        if entry is None:
            return
        if entry.offer is not None:
            offer = m.offers.pop(entry.offer)
            m.apply(offer.agent, ag.OfferWithdrawn(entry.offer, ag.CALLBACK_REQUESTED), self.now)
            entry.offer = None
        entry.callback = True

    @precondition(lambda self: bool(self.callback_offers))
    @rule(
        pick=st.integers(0, 10_000),
        dt=DT,
        live=LIVE,
        reason=FAILURES,
        retry=st.integers(0, 100),
        max_attempts=st.integers(1, 3),
    )
    def callback_failed(self, pick: int, dt: int, live: bool, reason: str, retry: int, max_attempts: int) -> None:
        """The caller we called back did not answer (the agent was on the line)."""
        self.advance(dt)
        m = self.model
        alive = sorted(o for o in self.callback_offers if o in m.offers)
        choices = alive if live and alive else self.callback_offers
        offer_id = choices[pick % len(choices)]
        got = self.run(self.queue.callback_failed(offer_id, self.now, reason, self.now + retry, max_attempts))
        if offer_id not in m.offers:
            assert got == -1
            return
        offer = m.offers.pop(offer_id)
        m.apply(offer.agent, ag.OfferFailed(offer_id, reason), self.now)
        entry = m.entries[offer.call]
        entry.callback_attempts += 1
        if entry.callback_attempts >= max_attempts:
            del m.entries[offer.call]
            assert got == 0
            return
        entry.offer, entry.not_before = None, self.now + retry
        assert got == entry.callback_attempts

    @precondition(lambda self: any(e.offer for e in self.model.entries.values()))
    @rule(pick=st.integers(0, 10_000))
    def abandon_offered(self, pick: int) -> None:
        offered = sorted(c for c, e in self.model.entries.items() if e.offer)
        self.abandon(offered[pick % len(offered)])

    # --- agents --------------------------------------------------------------------------

    @rule(agent=st.sampled_from(AGENTS), dt=DT, by=st.sampled_from(list(Actor)), skills=AGENT_SKILLS)
    def login(self, agent: AgentId, dt: int, by: Actor, skills: dict[str, int]) -> None:
        self.advance(dt)
        status = self.run(self.queue.agent_login(Agent(agent, agent, f"ext-{agent}", skills=skills), self.now, by))
        m = self.model
        m.machines.setdefault(agent, ag.AgentMachine(agent, m.policy))
        m.skills[agent] = skills  # a login of an agent logged in already changes his skills too
        m.apply(agent, ag.Login(by), self.now)
        assert status == m.status(agent)

    @rule(agent=st.sampled_from(AGENTS), dt=DT, reason=st.sampled_from(["", "下班"]))
    def logout(self, agent: AgentId, dt: int, reason: str) -> None:
        self.advance(dt)
        m = self.model
        machine = m.machines.get(agent)
        if machine is not None and machine.state is AgentState.ON_CALL:
            try:
                self.run(self.queue.agent_logout(agent, self.now, reason=reason))
            except Conflict:
                return
            raise AssertionError("logout of an agent on a call must be a conflict")
        status = self.run(self.queue.agent_logout(agent, self.now, reason=reason))
        if machine is None:
            assert (status.state, status.since_ms) == (AgentState.LOGGED_OUT, 0)
            return
        m.apply(agent, ag.Logout(reason=reason), self.now)
        assert status == m.status(agent)

    def request(self, agent: AgentId, event: ag.Pause | ag.Resume | ag.WrapUpDone) -> None:
        machine = self.model.machines.get(agent)
        match event:
            case ag.Pause(reason=reason, by=by):
                call = self.queue.agent_pause(agent, reason, self.now, by)
            case ag.Resume(by=by):
                call = self.queue.agent_resume(agent, self.now, by)
            case ag.WrapUpDone(by=by):
                call = self.queue.wrap_up_done(agent, self.now, by)
        if machine is None or (machine.state, event.name) not in ag.TRANSITIONS:
            with pytest.raises(IllegalTransition):
                self.run(call)
            return
        status = self.run(call)
        self.model.apply(agent, event, self.now)
        assert status == self.model.status(agent)

    @rule(agent=st.sampled_from(AGENTS), dt=DT, event=REQUESTS)
    def agent_request(self, agent: AgentId, dt: int, event: ag.Pause | ag.Resume | ag.WrapUpDone) -> None:
        self.advance(dt)
        self.request(agent, event)

    # --- offers --------------------------------------------------------------------------

    @rule(lease=st.integers(1, 120), dt=DT)
    def dispatch(self, lease: int, dt: int) -> None:
        self.advance(dt)
        offer = self.run(self.queue.dispatch_once(self.now, lease))
        m = self.model
        expected = m.choose(self.now)
        if expected is None:
            assert offer is None
            # no eligible agent is left idle while a call he can take waits (its turn come)
            assert m.servable_pairs(self.now) == []
            return
        assert offer is not None
        assert (offer.call_id, offer.agent_id) == expected
        entry = m.entries[offer.call_id]
        assert (offer.callback, offer.skills) == (entry.callback, entry.skills)
        assert offer.offer_id not in self.seen_offers
        self.seen_offers.append(offer.offer_id)
        if entry.callback:
            self.callback_offers.append(offer.offer_id)
        m.last_offered = offer.agent_id
        m.offers[offer.offer_id] = ModelOffer(offer.call_id, offer.agent_id, self.now + lease)
        m.entries[offer.call_id].offer = offer.offer_id
        m.apply(offer.agent_id, ag.Offer(offer.call_id, offer.offer_id), self.now)

    @precondition(lambda self: bool(self.seen_offers))
    @rule(pick=st.integers(0, 10_000), dt=DT, live=LIVE)
    def answer(self, pick: int, dt: int, live: bool) -> None:
        self.answer_offer(self.pick_offer(pick, live), dt)

    def answer_offer(self, offer_id: OfferId, dt: int) -> None:
        self.advance(dt)
        got = self.run(self.queue.offer_answered(offer_id, self.now))
        m = self.model
        assert got == (offer_id in m.offers)
        if got:
            offer = m.offers.pop(offer_id)
            del m.entries[offer.call]
            m.oncall[offer.call] = offer.agent
            m.apply(offer.agent, ag.Answered(offer_id), self.now)

    @precondition(lambda self: bool(self.seen_offers))
    @rule(pick=st.integers(0, 10_000), dt=DT, live=LIVE, reason=FAILURES, agent_fault=st.booleans())
    def fail(self, pick: int, dt: int, live: bool, reason: str, agent_fault: bool) -> None:
        self.advance(dt)
        offer_id = self.pick_offer(pick, live)
        got = self.run(self.queue.offer_failed(offer_id, self.now, reason, agent_fault))
        assert got == (offer_id in self.model.offers)
        if got:
            self.model.fail(offer_id, self.now, reason, agent_fault)

    @rule(call=st.sampled_from(CALLS), dt=DT, lost=st.booleans())
    def finish(self, call: CallId, dt: int, lost: bool) -> None:
        self.advance(dt)
        self.run(self.queue.call_finished(call, self.now, lost=lost))
        m = self.model
        agent = m.oncall.pop(call, None)
        if agent is None:
            return
        if not lost:
            m.handle = next_handle_average(*m.handle, self.now - m.machines[agent].since_ms, SAMPLES)
        m.apply(agent, ag.CallEnded(call, lost), self.now)

    @precondition(lambda self: bool(self.model.oncall))
    @rule(pick=st.integers(0, 10_000), dt=DT, lost=st.booleans())
    def finish_answered(self, pick: int, dt: int, lost: bool) -> None:
        answered = sorted(self.model.oncall)
        self.finish(answered[pick % len(answered)], dt, lost)

    @precondition(lambda self: bool(self.model.oncall))
    @rule(
        pick=st.integers(0, 10_000),
        to=st.sampled_from(AGENTS),
        dt=DT,
        how=st.sampled_from(["taken", "released", "ended"]),
        pause=st.booleans(),
    )
    def transfer(self, pick: int, to: AgentId, dt: int, how: str, pause: bool) -> None:
        """A call transferred to an agent (paused for it first, as the API does, or not) is
        taken by him: while its agent still has it, after he was released ("released"), or
        after the call ended ("ended": the target is resumed)."""
        self.advance(dt)
        m = self.model
        answered = sorted(m.oncall)
        call = answered[pick % len(answered)]
        first = m.oncall[call]
        if pause:
            self.request(to, ag.Pause(ag.TRANSFER_PAUSE, Actor.SYSTEM))
        if how != "taken":
            self.finish(call, 0, lost=False)
        got = self.run(self.queue.transfer_taken(call, first, to, self.now, released=how == "released"))
        machine = m.machines.get(to)
        if machine is not None and machine.state is AgentState.ON_CALL and m.oncall.get(call) == to:
            assert got is True  # he has it already
        elif machine is None or machine.state is not AgentState.PAUSED or machine.reason != ag.TRANSFER_PAUSE:
            assert got is False
        elif how == "ended":
            assert got is None
            m.apply(to, ag.Resume(by=Actor.SYSTEM), self.now)
        else:
            assert got is True
            if how == "taken":
                m.handle = next_handle_average(*m.handle, self.now - m.machines[first].since_ms, SAMPLES)
                m.apply(first, ag.CallEnded(call, transferred_to=to), self.now)
            m.oncall[call] = to
            m.apply(to, ag.TransferTaken(call), self.now)

    @precondition(lambda self: self.model.choose(self.now) is not None)
    @rule(dt=DT, talk=st.integers(0, 60))
    def serve_one(self, dt: int, talk: int) -> None:
        """A whole call in one step (offer, answer, hang-up): with swarm testing the three rules
        rarely meet, and wrap-up and the handle-time average are reached through them."""
        self.dispatch(120, dt)
        offer_id = self.seen_offers[-1]
        call = self.model.offers[offer_id].call
        self.answer_offer(offer_id, 0)
        self.finish(call, talk, lost=False)

    @rule(dt=DT)
    def expire(self, dt: int) -> None:
        self.advance(dt)
        expired = self.run(self.queue.expire_offers(self.now))
        m = self.model
        due = sorted(
            (o for o, offer in m.offers.items() if offer.expires <= self.now), key=lambda o: (m.offers[o].expires, o)
        )
        assert [o.offer_id for o in expired] == due
        for offer_id in due:
            m.fail(offer_id, self.now, "lease-expired", False)

    # --- after every step ------------------------------------------------------------------

    @invariant()
    def matches_the_model_and_keeps_the_rules(self) -> None:
        m = self.model
        waiting = self.run(self.queue.waiting())
        offered = self.run(self.queue.offered())
        statuses = {s.agent_id: s for s in self.run(self.queue.agents())}

        # priority first, FIFO by arrival within a priority, positions 1..n in each queue, no
        # duplicates; every call in the queue the model says
        keys_ = [(-w.priority, w.arrival_ms, w.call_id) for w in waiting]
        assert keys_ == sorted(keys_)
        for name in self.queue_names:
            own = [w for w in waiting if w.queue == name]
            assert [w.position for w in own] == list(range(1, len(own) + 1))
            assert [w.call_id for w in own] == m.waiting(name)
        assert [w.call_id for w in waiting] == m.waiting()
        assert [w.priority for w in waiting] == [m.entries[c].priority for c in m.waiting()]
        assert [(w.skills, w.callback, w.retry_at_ms) for w in waiting] == [
            (m.entries[c].skills, m.entries[c].callback, m.entries[c].not_before) for c in m.waiting()
        ]

        # each offered call is held by exactly one RESERVED agent, who holds only it
        offered_to = {w.call_id: w.offered_to for w in offered}
        assert len(offered_to) == len(offered)
        reserved = {s.agent_id: s.call_id for s in statuses.values() if s.state is AgentState.RESERVED}
        assert {call: agent for agent, call in reserved.items()} == offered_to
        assert len(set(reserved.values())) == len(reserved)

        # an agent on a call holds exactly one call, and no call has two agents
        on_call = [s.call_id for s in statuses.values() if s.state is AgentState.ON_CALL]
        assert None not in on_call
        assert len(set(on_call)) == len(on_call)

        # no entry lost or duplicated: every live call is in exactly one place
        places = [w.call_id for w in waiting] + list(offered_to) + on_call
        assert len(places) == len(set(places))
        assert set(places) == set(m.entries) | set(m.oncall)

        # every agent exactly as his machine says (state, since, call, reason, idle line, wrap-up)
        assert set(statuses) == set(m.machines)
        for agent_id, status in statuses.items():
            assert status == m.status(agent_id), agent_id
        assert {a for a, s in statuses.items() if s.state is AgentState.AVAILABLE} == set(m.idle)
        for call in CALLS:
            position = self.run(self.queue.position(call))
            if call in m.entries:
                entry = m.entries[call]
                assert position == (0 if entry.offer else m.waiting(entry.queue).index(call) + 1)
            else:
                assert position is None

        # every change of an agent was published, in order, as the machine's Changed
        assert self.published_since_last_step() == m.published
        m.published.clear()

        average, _ = m.handle
        assert self.run(self.queue.average_handle_ms()) == (average if average is not None else 180_000)

    def published_since_last_step(self) -> list[dict[str, Any]]:
        entries = self.run(self.client.xrange(keys.events(), f"({self.stream_seen}", "+"))
        result = []
        for raw_id, fields in entries:
            self.stream_seen = raw_id.decode()
            kind, data = events.decode({k.decode(): v.decode() for k, v in fields.items()})
            assert kind == events.AGENT_STATE
            result.append(data)
        return result


WRAP = ag.AgentPolicy(wrap_up_ms=20, pause_on_agent_failure=True)
NO_WRAP = ag.AgentPolicy(wrap_up_ms=0, pause_on_agent_failure=False)
# (agent policy, routing part of the AcdPolicy, examples): each strategy, with and without
# queue skills and widening (steps in s: time moves by ms here, so they are a few ms apart).
CONFIGS: dict[str, tuple[ag.AgentPolicy, dict[str, Any], int]] = {
    "longest-idle-wrap-up-and-autopause": (WRAP, {}, 100),
    "longest-idle-skills-max-length-no-wrap-up": (
        NO_WRAP,
        {"required_skills": ("zh",), "skill_steps": ((0, 2), (0.04, 1), (0.1, 0)), "max_length": 4},
        100,
    ),
    "round-robin": (WRAP, {"strategy": "round_robin", "skill_steps": ((0, 3), (0.05, 1))}, 50),
    "fewest-calls": (
        NO_WRAP,
        {"strategy": "fewest_calls", "required_skills": ("zh",), "skill_steps": ((0, 1), (0.12, 0))},
        50,
    ),
    "least-talk-time": (WRAP, {"strategy": "least_talk_time"}, 50),
    "skills-weighted": (
        NO_WRAP,
        {
            "strategy": "skills_weighted",
            "required_skills": ("zh",),
            "skill_steps": ((0, 3), (0.03, 2), (0.06, 1), (0.1, 0)),
        },
        50,
    ),
}
# Several queues sharing the agents: (agent policy, first queue, the others, examples). The
# first overflows into "en" when full, "en" into the first (a cycle: both full is QUEUE_FULL).
MULTI: dict[str, tuple[ag.AgentPolicy, dict[str, Any], dict[str, dict[str, Any]], int]] = {
    "two-queues-longest-idle-and-skills": (
        WRAP,
        {"max_length": 2, "overflow_target": "queue:en"},
        {
            "en": {
                "required_skills": ("en",),
                "skill_steps": ((0, 2), (0.05, 1)),
                "max_length": 3,
                "overflow_target": "queue:default",
            }
        },
        100,
    ),
    "two-queues-round-robin-and-fewest-calls": (
        NO_WRAP,
        {"strategy": "round_robin", "required_skills": ("zh",), "max_length": 3, "overflow_target": "callback"},
        {
            "complaint": {
                "strategy": "fewest_calls",
                "required_skills": ("complaint",),
                "skill_steps": ((0, 1), (0.08, 0)),
            }
        },
        60,
    ),
}


# Passing takes seconds; a failure is shrunk for minutes (each step is a dozen Redis round
# trips), which the default per-test timeout would cut off before the counterexample is printed.
@pytest.mark.timeout(900)
@pytest.mark.parametrize("config", list(CONFIGS.values()), ids=list(CONFIGS))
def test_random_interleavings_keep_the_queue_consistent(
    redis_url: str, config: tuple[ag.AgentPolicy, dict[str, Any], int]
) -> None:
    class OnThisServer(QueueMachine):
        def __init__(self) -> None:
            super().__init__(redis_url)

    OnThisServer.policy, OnThisServer.acd, examples = config
    OnThisServer.loop = asyncio.new_event_loop()
    try:
        run_state_machine_as_test(
            OnThisServer,
            settings=settings(max_examples=examples, stateful_step_count=50, deadline=None),
        )
    finally:
        OnThisServer.loop.close()


@pytest.mark.timeout(900)
@pytest.mark.parametrize("config", list(MULTI.values()), ids=list(MULTI))
def test_random_interleavings_over_several_queues_keep_them_consistent(
    redis_url: str, config: tuple[ag.AgentPolicy, dict[str, Any], dict[str, dict[str, Any]], int]
) -> None:
    class OnThisServer(QueueMachine):
        def __init__(self) -> None:
            super().__init__(redis_url)

    OnThisServer.policy, OnThisServer.acd, OnThisServer.others, examples = config
    OnThisServer.loop = asyncio.new_event_loop()
    try:
        run_state_machine_as_test(
            OnThisServer,
            settings=settings(max_examples=examples, stateful_step_count=50, deadline=None),
        )
    finally:
        OnThisServer.loop.close()
