"""The caller's call flow, sans-IO: events in, commands out, time passed in.

Rules of this module (GB/T 33358: no menu tree in front of a person, answer within 15 s):
- The call is answered at once; recording starts as soon as its audio flows, and the flow's
  start node runs. The default flow's start node is the queue: the call is put in the queue at
  once and the greeting with the recording notice plays while the caller already waits (it
  never delays the queue). A city may put other nodes first (hotline.ivr.script).
- Any key skips the greeting; so does speech (a final result) where the queue node says so.
  Every digit is kept for the record.
- While waiting, every announce_interval_s after the greeting, the flow asks the queue for the
  position and estimated wait and announces them, then hold music again.
- An overflow to voicemail (in the queue, the greeting over, not being offered) takes the call
  out of the queue, plays the voicemail prompt, then lets the caller speak for up to max_s
  (the call is recorded all along, and its transcript becomes the ticket draft as for any
  queued call); then "goodbye" and hang-up. It ends as VOICEMAIL, also when he hangs up first.
- A callback key (in the queue, not being offered) confirms, asks the queue to call back and
  hangs up; the queue keeps the entry (no Abandon, also when the caller hangs up first), and an
  offer during the confirmation is refused. A priority key, or an emergency heard, raises the
  call's priority (once per level) and "priority_raised" is played once, after the greeting.
- An offer while the greeting plays dials the agent at once; the legs are bridged when both
  the agent has answered and the greeting has finished (the notice is always heard or skipped
  by the caller, never cut by the system).
- An agent who does not answer within ring_timeout, is busy or fails: the offer is reported
  failed (the queue puts the call back at its original place) and the caller keeps waiting.
- A hang-up is an event, never an error: in every phase it ends in exactly one Finish command
  with the outcome, and an agent leg still ringing or connected is hung up.
- Only one offer at a time: another offer is refused (reported failed, so the queue frees that
  agent); an offer delivered again (the current one, or one already settled) is ignored. The
  exception is a ring_all group (OfferReceived.group): every offer of the current offer's group
  is dialled as it comes, all ring at once under one ring timeout; the first agent to answer
  takes the call and the other legs are hung up at once (the queue releases their agents when
  the answer is reported); one that fails is reported failed and the others keep ringing.
- A connected call sent back to the queue (Requeued: the worker released the agent and queued
  it again at its original arrival time) waits again with hold music and announcements.
- An (phase, event) pair not in the table raises FlowError naming both.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from hotline.core.model import Outcome
from hotline.ivr.numbers import number_prompts
from hotline.ivr.protocol import (
    Abandon,
    AgentAnswered,
    AgentFailed,
    AgentHungUp,
    Answer,
    Bridge,
    CallerHungUp,
    Command,
    DialAgent,
    Dtmf,
    Enqueue,
    Event,
    Finish,
    FlowError,
    FlowSettings,
    HangupAgent,
    HangupCaller,
    Incoming,
    LookupResult,
    LookupTicket,
    MediaReady,
    OfferReceived,
    Overflow,
    Phase,
    Play,
    PlaySequence,
    PositionReport,
    QueryPosition,
    RaisePriority,
    ReportOfferAnswered,
    ReportOfferFailed,
    RequestCallback,
    Requeued,
    SetLanguage,
    SpeechResult,
    StartRecording,
    StopPlay,
    Tick,
)
from hotline.ivr.script import HANGUP_GRACE_S, ScriptNodes
from hotline.ivr.spec import FlowSpec, KeyAction, QueueNode, default_spec

__all__ = [
    "Abandon",
    "AgentAnswered",
    "AgentFailed",
    "AgentHungUp",
    "Answer",
    "Bridge",
    "CallFlow",
    "CallerHungUp",
    "Command",
    "DialAgent",
    "Dtmf",
    "Enqueue",
    "Event",
    "Finish",
    "FlowError",
    "FlowSettings",
    "FlowSpec",
    "HangupAgent",
    "HangupCaller",
    "Incoming",
    "LookupResult",
    "LookupTicket",
    "MediaReady",
    "OfferReceived",
    "Overflow",
    "Phase",
    "Play",
    "PlaySequence",
    "PositionReport",
    "QueryPosition",
    "RaisePriority",
    "ReportOfferAnswered",
    "ReportOfferFailed",
    "RequestCallback",
    "Requeued",
    "SetLanguage",
    "SpeechResult",
    "StartRecording",
    "StopPlay",
    "Tick",
]

_LIVE = (Phase.WAITING, Phase.OFFERING, Phase.AGENT_READY)
_QUEUED = (Phase.WAITING, Phase.OFFERING)  # raising the priority still matters
_RANK = {"flagged": 1, "emergency": 2}


class CallFlow(ScriptNodes):
    """One caller's flow. `handle(event, now)` returns the commands to carry out, in order."""

    def __init__(self, settings: FlowSettings) -> None:
        self.settings = settings
        self.spec = settings.spec or default_spec(settings.greeting_prompt, settings.hold_prompt)
        self.phase = Phase.NEW
        self.greeting_until: float | None = None  # monotonic end of the greeting, while it plays
        self.offer: OfferReceived | None = None
        self.others: dict[str, OfferReceived] = {}  # the rest of a ring_all group, ringing too
        self.ring_until: float | None = None
        self.digits = ""
        self.agent_id: str | None = None  # the agent connected, once connected
        self.settled: set[str] = set()  # offers already reported answered or failed
        self.queue_node: QueueNode | None = None  # once the call has reached the queue
        self.announce_at: float | None = None  # next position announcement
        self.query_pending = False  # QueryPosition sent, its PositionReport not yet here
        self.raised: str | None = None  # the highest priority level asked for
        self.priority_announced = False
        self.notice: tuple[str, ...] = ()  # prompts to play once the greeting is over
        self._init_script()
        self._table: dict[tuple[Phase, type], Callable[[Event, float], list[Command]]] = {
            (Phase.NEW, Incoming): self._on_incoming,
            (Phase.ANSWERING, MediaReady): self._on_media,
            (Phase.ANSWERING, CallerHungUp): self._on_hangup_before_queue,
            (Phase.ANSWERING, Tick): self._nothing,
            (Phase.ANSWERING, Dtmf): self._on_digit,
            (Phase.WAITING, OfferReceived): self._on_offer,
            (Phase.OFFERING, AgentAnswered): self._on_agent_answered,
            (Phase.OFFERING, AgentFailed): self._on_agent_failed,
            (Phase.OFFERING, AgentHungUp): self._on_agent_failed_hangup,
            (Phase.AGENT_READY, AgentFailed): self._on_agent_failed,
            (Phase.AGENT_READY, AgentHungUp): self._on_agent_failed_hangup,
            (Phase.CONNECTED, AgentHungUp): self._on_agent_hangup_connected,
            (Phase.CONNECTED, CallerHungUp): self._on_caller_hangup_connected,
            (Phase.CONNECTED, Dtmf): self._on_digit,
            (Phase.CONNECTED, Tick): self._nothing,
            (Phase.CONNECTED, MediaReady): self._nothing,
            (Phase.CALLBACK, Tick): self._on_timers,
            (Phase.CALLBACK, CallerHungUp): self._on_caller_hangup_callback,
            (Phase.CALLBACK, Dtmf): self._on_digit,
            (Phase.CALLBACK, AgentAnswered): self._on_stale_agent_answer,
            (Phase.VOICEMAIL, Tick): self._on_timers,
            (Phase.VOICEMAIL, CallerHungUp): self._on_caller_hangup_voicemail,
            (Phase.VOICEMAIL, Dtmf): self._on_voicemail_digit,
            (Phase.VOICEMAIL, AgentAnswered): self._on_stale_agent_answer,
        }
        self._table.update(self._script_transitions())
        for phase in _LIVE:
            self._table[(phase, Dtmf)] = self._on_digit
            self._table[(phase, Tick)] = self._on_tick
            self._table[(phase, CallerHungUp)] = self._on_caller_hangup_waiting
            self._table[(phase, MediaReady)] = self._nothing  # re-INVITE: the adapter rewires
            self._table[(phase, SpeechResult)] = self._on_speech
            self._table[(phase, PositionReport)] = self._on_position
            self._table[(phase, LookupResult)] = self._nothing
        for phase in (Phase.OFFERING, Phase.AGENT_READY, Phase.CONNECTED, Phase.CALLBACK, Phase.ENDED):
            # Only one offer at a time: a second one is refused, so the queue frees that agent.
            self._table[(phase, OfferReceived)] = self._refuse_offer
        self._table[(Phase.OFFERING, OfferReceived)] = self._on_group_offer
        for phase in (Phase.NEW, Phase.ANSWERING):
            self._table[(phase, OfferReceived)] = self._refuse_offer
        late = (SpeechResult, PositionReport, LookupResult)
        for ev in (Dtmf, Tick, MediaReady, CallerHungUp, AgentHungUp, AgentFailed, AgentAnswered, *late):
            self._table[(Phase.ENDED, ev)] = self._nothing
        for phase in (Phase.ANSWERING, Phase.CONNECTED):
            for ev in late:
                self._table[(phase, ev)] = self._nothing
        for ev in (MediaReady, AgentFailed, AgentHungUp, *late):
            self._table[(Phase.CALLBACK, ev)] = self._nothing
            self._table[(Phase.VOICEMAIL, ev)] = self._nothing
        self._table[(Phase.VOICEMAIL, OfferReceived)] = self._refuse_offer
        # Late events about an offer that is no longer current (cancelled on timeout, ...).
        for phase in (Phase.WAITING, Phase.AGENT_READY, Phase.CONNECTED):
            self._table.setdefault((phase, AgentFailed), self._nothing)
            self._table.setdefault((phase, AgentAnswered), self._on_stale_agent_answer)
        self._table[(Phase.WAITING, AgentHungUp)] = self._nothing
        # Overflow: acted on while waiting; anywhere else (offered, connected, ended...) too late.
        for phase in Phase:
            self._table[(phase, Overflow)] = self._nothing
        self._table[(Phase.WAITING, Overflow)] = self._on_overflow
        self._table[(Phase.CONNECTED, Requeued)] = self._on_requeued

    # ------------------------------------------------------------ public
    def handle(self, event: Event, now: float) -> list[Command]:
        handler = self._table.get((self.phase, type(event)))
        if handler is None:
            raise FlowError(f"no transition for event {type(event).__name__} in phase {self.phase}")
        return handler(event, now)

    def next_deadline(self) -> float | None:
        if self.phase == Phase.ENDED:
            return None
        timers = (self.greeting_until, self.ring_until, self.prompt_until, self.input_until, self.announce_at)
        deadlines = [d for d in timers if d is not None]
        return min(deadlines) if deadlines else None

    @property
    def greeting_playing(self) -> bool:
        return self.greeting_until is not None

    @property
    def in_queue(self) -> bool:
        """The call has an entry in the queue (to abandon if the call ends without an agent)."""
        return self.phase in _LIVE

    # ------------------------------------------------------------ handlers
    def _on_incoming(self, event: Event, now: float) -> list[Command]:
        self.phase = Phase.ANSWERING
        return [Answer()]

    def _on_media(self, event: Event, now: float) -> list[Command]:
        return [StartRecording(), *self._enter(self.spec.start, now)]

    def _enter_queue(self, node: QueueNode, now: float) -> list[Command]:
        self.queue_node = node
        self.phase = Phase.WAITING
        out: list[Command] = [Enqueue(node.skills, node.queue)]
        if self.pending_priority is not None:
            out += self._raise(self.pending_priority)
            self.pending_priority = None
        if node.greeting:
            self.greeting_until = now + self._seconds(node.greeting)
            return [*out, Play(node.greeting)]
        return out + self._greeting_over(now)

    def _end(self) -> None:
        self.phase = Phase.ENDED
        self.greeting_until = self.prompt_until = self.input_until = self.announce_at = None
        self.then = None
        self.ring_until = None

    def _on_hangup_before_queue(self, event: Event, now: float) -> list[Command]:
        self._end()
        return [Finish(Outcome.ABANDONED_IN_GREETING, "caller")]

    def _on_digit(self, event: Event, now: float) -> list[Command]:
        assert isinstance(event, Dtmf)
        self.digits += event.digit
        node = self.queue_node
        action = node.keys.get(event.digit) if node is not None else None
        if action is KeyAction.CALLBACK and self.phase == Phase.WAITING:
            return self._start_callback(now)
        out: list[Command] = []
        if action is KeyAction.PRIORITY and self.phase in _QUEUED:
            out += self._raise("flagged")
        if self.greeting_playing:
            return out + self._greeting_over(now)
        return out + self._flush_notice(now)

    def _on_speech(self, event: Event, now: float) -> list[Command]:
        assert isinstance(event, SpeechResult)
        node = self.queue_node
        assert node is not None
        out: list[Command] = []
        if event.emergency and node.emergency_priority and self.phase in _QUEUED:
            out += self._raise("emergency")
        if self.greeting_playing and node.speech_skips_greeting and event.final and event.text.strip():
            return out + self._greeting_over(now)
        return out + self._flush_notice(now)

    def _on_tick(self, event: Event, now: float) -> list[Command]:
        out: list[Command] = []
        if self.greeting_until is not None and now >= self.greeting_until:
            out += self._greeting_over(now)
        if self.ring_until is not None and now >= self.ring_until and self.offer is not None:
            for offer in (self.offer, *self.others.values()):
                self.settled.add(offer.offer_id)
                out += [HangupAgent(offer.offer_id), ReportOfferFailed(offer.offer_id, "no-answer", offer.agent_id)]
            self._clear_offer()
            self.phase = Phase.WAITING
        out += self._on_timers(event, now)  # a notice or an announcement has ended
        if self.announce_at is not None and now >= self.announce_at:
            out += self._announce_due(now)
        return out

    def _greeting_over(self, now: float) -> list[Command]:
        self.greeting_until = None
        if self.phase == Phase.AGENT_READY:
            return self._connect()
        node = self.queue_node
        assert node is not None
        if node.announce_interval_s > 0 and self.announce_at is None:
            self.announce_at = now + node.announce_interval_s
        return self._after_notice(now)

    # ------------------------------------------------------------ notices and announcements
    def _raise(self, level: str) -> list[Command]:
        if self.raised is not None and _RANK[self.raised] >= _RANK[level]:
            return []
        self.raised = level
        if not self.priority_announced:
            self.priority_announced = True
            self.notice += ("priority_raised",)
        return [RaisePriority(level)]

    def _flush_notice(self, now: float) -> list[Command]:
        """Plays the pending notice now unless the greeting or another prompt still plays."""
        if not self.notice or self.greeting_playing or self.prompt_until is not None or self.phase not in _QUEUED:
            return []
        return self._after_notice(now)

    def _after_notice(self, now: float) -> list[Command]:
        """A prompt in the queue has ended: the next notice, or hold music again."""
        if self.phase not in _QUEUED:
            return []
        if self.notice:
            prompts, self.notice = self.notice, ()
            return self._play(prompts, now, self._after_notice)
        assert self.queue_node is not None
        return [Play(self.queue_node.hold, loop=True)]

    def _announce_due(self, now: float) -> list[Command]:
        node = self.queue_node
        assert node is not None
        self.announce_at = now + node.announce_interval_s
        if self.phase != Phase.WAITING or self.greeting_playing or self.prompt_until is not None:
            return []  # being offered, or something else plays: the next round
        self.query_pending = True
        return [QueryPosition()]

    def _on_position(self, event: Event, now: float) -> list[Command]:
        assert isinstance(event, PositionReport)
        pending, self.query_pending = self.query_pending, False
        busy = self.greeting_playing or self.prompt_until is not None
        if not pending or self.phase != Phase.WAITING or busy or event.position is None:
            return []
        return self._play(self._announcement(event.position, event.wait_s), now, self._after_notice)

    def _announcement(self, position: int, wait_s: float | None) -> tuple[str, ...]:
        node = self.queue_node
        assert node is not None
        if position <= 1:
            words = ["queue_next"]
        else:
            words = ["queue_position", *number_prompts(position - 1, self.language), "queue_position_unit"]
            if wait_s is not None and wait_s < 60:
                words.append("queue_wait_under_minute")
            elif wait_s is not None:
                words += ["queue_wait", *number_prompts(math.ceil(wait_s / 60), self.language), "unit_minutes"]
        if node.announce_offer:
            words.append(node.announce_offer)
        return tuple(words)

    # ------------------------------------------------------------ callback
    def _start_callback(self, now: float, prompt: str = "callback_confirmed") -> list[Command]:
        self.phase = Phase.CALLBACK
        self.greeting_until = self.announce_at = None
        self.query_pending = False
        self.notice = ()
        self.prompt_until = now + self._seconds(prompt) + HANGUP_GRACE_S  # never cut the last words
        self.then = self._callback_done
        return [StopPlay(), PlaySequence((prompt,)), RequestCallback()]

    def _on_requeued(self, event: Event, now: float) -> list[Command]:
        node = self.queue_node
        if node is None:
            raise FlowError("Requeued for a call that never reached a queue")
        self._clear_offer()
        self.agent_id = None
        self.phase = Phase.WAITING
        if node.announce_interval_s > 0:
            self.announce_at = now + node.announce_interval_s
        return [Play(node.hold, loop=True)]

    def _on_overflow(self, event: Event, now: float) -> list[Command]:
        assert isinstance(event, Overflow)
        if self.greeting_playing or self.offer is not None:
            return []  # the greeting is never cut; an agent being dialled is better than an overflow
        if event.target == "callback":
            return self._start_callback(now, "callback_overflow")
        if event.target == "voicemail":
            return self._start_voicemail(now, event.max_s or self.settings.voicemail_max_s)
        return []

    # ------------------------------------------------------------ voicemail
    def _voicemail_prompt(self) -> str:
        durations, name = self.settings.durations, self.settings.voicemail_prompt
        known = f"{self.language}/{name}" in durations or name in durations
        return name if known else self.settings.voicemail_fallback_prompt

    def _start_voicemail(self, now: float, max_s: float) -> list[Command]:
        self.phase = Phase.VOICEMAIL
        self.greeting_until = self.announce_at = None
        self.query_pending = False
        self.notice = ()
        prompt = self._voicemail_prompt()
        self.prompt_until = now + self._seconds(prompt)

        def record(at: float) -> list[Command]:  # the prompt is over: his message, up to max_s
            self.prompt_until = at + max_s
            self.then = self._voicemail_done
            return []

        self.then = record
        return [StopPlay(), Abandon(), PlaySequence((prompt,))]

    def _voicemail_done(self, now: float) -> list[Command]:
        self.prompt_until = now + self._seconds("goodbye") + HANGUP_GRACE_S
        self.then = self._voicemail_hangup
        return [PlaySequence(("goodbye",))]

    def _voicemail_hangup(self, now: float) -> list[Command]:
        self._end()
        return [HangupCaller(), Finish(Outcome.VOICEMAIL, "system")]

    def _on_voicemail_digit(self, event: Event, now: float) -> list[Command]:
        assert isinstance(event, Dtmf)
        self.digits += event.digit
        if event.digit == "#" and self.then is not None and self.then == self._voicemail_done:
            self.prompt_until = None  # "#" ends the message early
            self.then = None
            return self._voicemail_done(now)
        return []

    def _on_caller_hangup_voicemail(self, event: Event, now: float) -> list[Command]:
        self._end()  # already out of the queue: no Abandon
        return [Finish(Outcome.VOICEMAIL, "caller")]

    def _callback_done(self, now: float) -> list[Command]:
        self._end()
        return [HangupCaller(), Finish(Outcome.CALLBACK_REQUESTED, "system")]

    def _on_caller_hangup_callback(self, event: Event, now: float) -> list[Command]:
        self._end()  # the queue keeps the entry: no Abandon
        return [Finish(Outcome.CALLBACK_REQUESTED, "caller")]

    # ------------------------------------------------------------ offers and agents
    def _on_offer(self, event: Event, now: float) -> list[Command]:
        assert isinstance(event, OfferReceived)
        if event.offer_id in self.settled:
            return []  # delivered again after it was settled: commands are idempotent by id
        self.offer = event
        self.others = {}
        self.ring_until = now + self.settings.ring_timeout_s
        self.phase = Phase.OFFERING
        return [DialAgent(event.offer_id, event.agent_id, event.agent_uri, ring=bool(event.group))]

    def _on_group_offer(self, event: Event, now: float) -> list[Command]:
        """Another offer of the ringing ring_all group rings too; anything else is refused."""
        assert isinstance(event, OfferReceived)
        current = self.offer
        if event.offer_id in self.others or self._is_current(event.offer_id):
            return []  # delivered again: commands are idempotent by id
        if current is None or event.offer_id not in current.group or event.offer_id in self.settled:
            return self._refuse_offer(event, now)  # (a settled one: ignored there)
        self.others[event.offer_id] = event
        return [DialAgent(event.offer_id, event.agent_id, event.agent_uri, ring=True)]

    def _refuse_offer(self, event: Event, now: float) -> list[Command]:
        assert isinstance(event, OfferReceived)
        if self._is_current(event.offer_id) or event.offer_id in self.settled:
            return []  # the same offer delivered twice: commands are idempotent by id
        self.settled.add(event.offer_id)
        return [ReportOfferFailed(event.offer_id, f"call is {self.phase.value}")]

    def _is_current(self, offer_id: str) -> bool:
        return self.offer is not None and self.offer.offer_id == offer_id

    def _on_agent_answered(self, event: Event, now: float) -> list[Command]:
        assert isinstance(event, AgentAnswered)
        out: list[Command] = []
        if event.offer_id in self.others and self.offer is not None:
            # A ring_all group: the first to answer takes the call, the other legs are hung up.
            self.others[self.offer.offer_id] = self.offer
            self.offer = self.others.pop(event.offer_id)
        if not self._is_current(event.offer_id):
            return [HangupAgent(event.offer_id)]
        for other in self.others:
            self.settled.add(other)
            out.append(HangupAgent(other))
        self.others = {}
        self.ring_until = None
        if self.greeting_playing:
            self.phase = Phase.AGENT_READY
            return out
        return out + self._connect()

    def _on_stale_agent_answer(self, event: Event, now: float) -> list[Command]:
        assert isinstance(event, AgentAnswered)
        if self._is_current(event.offer_id):
            return []
        return [HangupAgent(event.offer_id)]

    def _connect(self) -> list[Command]:
        assert self.offer is not None
        self.phase = Phase.CONNECTED
        self.agent_id = self.offer.agent_id
        self.settled.add(self.offer.offer_id)
        self.prompt_until = self.announce_at = None
        self.then = None
        self.notice = ()
        self.query_pending = False
        return [
            StopPlay(),
            Bridge(self.offer.offer_id, self.offer.agent_id),
            ReportOfferAnswered(self.offer.offer_id),
        ]

    def _on_agent_failed(self, event: Event, now: float) -> list[Command]:
        assert isinstance(event, AgentFailed)
        if event.offer_id in self.others and self.phase == Phase.OFFERING:
            other = self.others.pop(event.offer_id)  # one phone of the group: the others ring on
            self.settled.add(event.offer_id)
            return [ReportOfferFailed(event.offer_id, event.reason, other.agent_id)]
        if not self._is_current(event.offer_id):
            return []
        assert self.offer is not None
        agent_id = self.offer.agent_id
        self.settled.add(event.offer_id)
        if self.others and self.phase == Phase.OFFERING:
            self.offer = self.others.pop(next(iter(self.others)))  # another of the group rings on
            return [ReportOfferFailed(event.offer_id, event.reason, agent_id)]
        self._clear_offer()
        self.phase = Phase.WAITING
        return [ReportOfferFailed(event.offer_id, event.reason, agent_id)]

    def _on_agent_failed_hangup(self, event: Event, now: float) -> list[Command]:
        assert isinstance(event, AgentHungUp)
        return self._on_agent_failed(AgentFailed(event.offer_id, "agent-hung-up"), now)

    def _clear_offer(self) -> None:
        self.offer = None
        self.others = {}
        self.ring_until = None

    def _on_caller_hangup_waiting(self, event: Event, now: float) -> list[Command]:
        out: list[Command] = []
        if self.offer is not None:
            out += [HangupAgent(o.offer_id) for o in (self.offer, *self.others.values())]
        outcome = Outcome.ABANDONED_IN_GREETING if self.greeting_playing else Outcome.ABANDONED_IN_QUEUE
        self._clear_offer()
        self._end()
        return [*out, Abandon(), Finish(outcome, "caller")]

    def _on_agent_hangup_connected(self, event: Event, now: float) -> list[Command]:
        assert isinstance(event, AgentHungUp)
        if not self._is_current(event.offer_id):
            return []
        self._end()
        return [HangupCaller(), Finish(Outcome.ANSWERED, "agent")]

    def _on_caller_hangup_connected(self, event: Event, now: float) -> list[Command]:
        assert self.offer is not None
        self._end()
        return [HangupAgent(self.offer.offer_id), Finish(Outcome.ANSWERED, "caller")]
