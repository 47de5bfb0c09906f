"""Call controls of a connected call, carried out by the caller's media worker: hold, mute,
transfer (blind or attended), a three-way conference, DTMF to the caller, hang-up, and a
supervisor's listen, whisper and barge.

Rules of this module:
- Commands arrive as `call-control` on the worker's command stream (the API has checked who
  may ask) and act only on a call whose flow is CONNECTED with an agent leg; anything else is
  refused. Every command's outcome is published as `call.control` (done / failed, why).
- Who hears whom is computed from this module's state alone (`_desired`) and applied to the
  endpoint's links as a difference, under the call's lock: repeating a command changes nothing.
- Hold: the caller hears the prompt library's `hold_music` (looped), the agent hears nothing.
  The music also goes into the recording's agent channel (what the caller heard from the
  hotline), so the file runs on without a break. Mute: the agent's audio no longer reaches the
  caller (nor a conference party); it is still recorded and still heard by a supervisor.
- Transfer: the caller is held (music) and the target is dialled (an agent's phone, or a number
  through the dial template). Blind: when the target answers, caller and target are bridged
  and the first agent's leg is released. Attended: the first agent talks with the target
  (consult) until `transfer-complete` (bridge caller and target, release the agent) or
  `transfer-cancel` (hang up the target, back to the caller). A target that fails (busy,
  rejected, no answer within ring_timeout) or hangs up during the consult puts the caller back
  with the first agent in both modes: the first agent stays on the call until the target
  answers, so nobody is left with music. The first agent hanging up while a transfer is
  under way hands the call to the target (as a desk phone does); if the target then fails, the
  caller is hung up and the record says so.
- Transfer to the queue: the agent (and any supervisor) leaves at once, the call is queued
  again with its original arrival time and the priority it had reached (before callers who came
  later), and the flow gets Requeued (WAITING again: hold music, offers as usual). The next
  agent's leg is bridged by the flow and these controls start over for him (his links).
- The CallFlow stays CONNECTED through everything else and never learns of it: its agent leg is
  swapped under it when a transfer completes (same offer id, so the new party's hang-up ends the
  call as the first agent's would have).
- A target agent was paused by the API with the reason events.TRANSFER_PAUSE (so the
  dispatcher offers him nothing else while his phone rings). When he takes the call (blind: his
  leg confirmed and bridged; attended: transfer-complete) the queue is told in one step
  (queue.transfer_taken): he is on the call as if he had answered an offer of it, and the agent
  who had it goes to wrap-up with the reason events.TRANSFERRED + the target. The call's end is
  then his (queue.call_finished: wrap-up, talk time), and he may transfer it on the same way.
  A first agent released otherwise (his leg ended while the target rang, a transfer to a number
  or to the queue) goes to wrap-up at once (queue.call_finished, idempotent). A target who fails
  or is cancelled is resumed; so is one the queue did not put on the call, when the call ends.
- The call record: agent_id is the last agent who had the call; `reason` carries one note per
  transfer ("transferred a1 -> agent:a2 (blind)", "transfer to number:12315 failed: busy").
- Conference: the number is dialled; caller, agent and that party all hear each other, and the
  party goes into the recording's agent channel.
- Monitor: the supervisor's phone is dialled. listen: caller and agent are sent to him; whisper:
  also him to the agent only; barge: him to everyone. Asking again with another mode relinks
  the same leg. A whisper is never recorded; a barge goes into the recording's agent channel.
- Every leg dialled here is hung up when the call ends.
- Reject (events.CMD_REJECT, not a call-control: the call is not connected yet): the agent
  declines the call ringing at his phone. His ringing leg is hung up (as if his phone declined
  it); when it has ended the flow reports the offer failed, the worker tells the queue it was
  declined (hotline.queue.acd offer_failed declined=True): the caller keeps his place and is
  offered to the next agent, the agent is paused with events.REJECT_PAUSE, and his phone is not
  counted as failing. Nothing ringing at his phone: refused (published as failed).
- Answer from the desk (events.CMD_ANSWER, not a call-control either): the agent answers the
  call ringing at his phone from the page, for phones that answer by themselves when asked
  (Call-Info answer-after=0, Alert-Info info=alert-autoanswer, RFC 5373 Answer-Mode: Auto:
  Yealink, Grandstream, Polycom, Linphone, MicroSIP ...; baresip 1.0 does not). His ringing leg
  is forgotten first and then hung up (a CANCEL): its end reaches neither the flow nor the queue.
  His phone is dialled again at once with those headers, and the new leg takes the old one's
  place under the same offer (the agent leg, or the ring_all group's leg), so the flow, which
  never learns of the swap, sees its agent answer as usual. The offer's ring timeout keeps
  running; a new leg that fails (or cannot be dialled) is the offer failing. A phone that took
  the old leg at that very instant is hung up (a BYE) and rung again. Nothing ringing at his
  phone: refused (published as failed). The outcome is published as `call.control` ("answer").
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import re
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from hotline.core import events as ev
from hotline.core.errors import Unavailable
from hotline.core.model import Actor, AgentId, CallId, Priority
from hotline.ivr import flow as fl
from hotline.runtime.legs import epoch_ms, failure_reason, leg_file
from hotline.sip.events import DtmfReceived, LegState, LegStateChanged, MediaReady, SipEvent

if TYPE_CHECKING:
    from hotline.runtime.worker import CallSession, Sip, Worker

logger = logging.getLogger(__name__)

DTMF_DIGITS = re.compile(ev.DTMF_DIGITS)
DIALABLE = re.compile(ev.DIALABLE)
Link = tuple[str, str]


@runtime_checkable
class ControlSip(Protocol):
    """What call controls need of hotline.sip.endpoint.SipEndpoint beyond the worker's Sip."""

    async def relink(self, add: frozenset[Link] = frozenset(), remove: frozenset[Link] = frozenset()) -> None: ...
    async def play_hold(self, leg_id: str, wav_path: str, recorder_path: str | None = None) -> None: ...
    async def stop_play(self, leg_id: str) -> None: ...
    async def send_dtmf(self, leg_id: str, digits: str) -> None: ...
    async def dial(self, uri: str, leg_id: str, headers: dict[str, str] | None = None) -> None: ...
    async def hangup(self, leg_id: str, code: int = 603) -> None: ...
    async def record(self, leg_id: str, wav_path: str) -> None: ...
    async def stop_record(self, wav_path: str) -> None: ...
    async def keep_recorder(self, leg_id: str, wav_path: str) -> bool: ...
    async def mute_record(self, wav_path: str, muted: bool) -> None: ...


class ControlRefused(Exception):
    """The command cannot be carried out on this call now (published as failed)."""


@dataclasses.dataclass
class _Party:
    """A leg this module dialled: a transfer target, a conference party or a supervisor."""

    leg: str
    role: str  # "target", "conference", "monitor"
    label: str  # "agent:a2", "number:12315", the supervisor's uri
    mode: str = ""  # transfer: blind/attended; monitor: listen/whisper/barge
    agent_id: str | None = None  # a target agent (paused by the API until the call ends)
    by: str = ""
    answered: bool = False
    timer: asyncio.TimerHandle | None = None


@dataclasses.dataclass
class _State:
    """One call's controls."""

    links: frozenset[Link]  # what is applied at the endpoint
    base_leg: str  # the agent leg those links were computed for
    music: bool = False  # hold music playing to the caller
    held: bool = False
    muted: bool = False
    transfer: _Party | None = None
    parties: dict[str, _Party] = dataclasses.field(default_factory=dict)  # leg -> conference/monitor
    notes: list[str] = dataclasses.field(default_factory=list)
    final_agent: str | None = None
    resume_agents: set[str] = dataclasses.field(default_factory=set)
    agent_released: bool = False  # the first agent's wrap-up has started
    requeued_from: str | None = None  # the agent who sent the call back to the queue


class CallControls:
    """The call controls of one worker's calls (see the module's rules)."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self.states: dict[CallId, _State] = {}
        self.legs: dict[str, CallSession] = {}  # legs dialled or released here -> their call
        self._seq = 0

    # ------------------------------------------------------------ entry points
    def command(self, session: CallSession | None, data: dict[str, Any]) -> None:
        """A `call-control` command for a call of this worker (None: no such call, any more)."""
        if session is None:
            self.worker.spawn(self._no_call(data), f"control-{data.get('call_id')}")
            return
        self.worker.spawn(self._run(session, data), f"control-{session.call_id}")

    def on_sip_event(self, event: SipEvent) -> bool:
        """Claims events of the legs this module owns (and the agent leg's end during a
        transfer); False: not ours, the worker handles it."""
        if not isinstance(event, LegStateChanged | MediaReady | DtmfReceived):
            return False
        session = self.legs.get(event.leg_id)
        if session is not None:
            if isinstance(event, LegStateChanged):
                self.worker.spawn(self._party_state(session, event), f"control-leg-{event.leg_id}")
            return True
        session = self.worker.by_leg.get(event.leg_id)
        if session is None or event.leg_id != session.agent_leg or not isinstance(event, LegStateChanged):
            return False
        state = self.states.get(session.call_id)
        if state is None or state.transfer is None or event.state != LegState.DISCONNECTED:
            return False
        # The first agent hung up while a transfer is under way: the call goes to the target.
        self.worker.by_leg.pop(event.leg_id, None)
        session.agent_leg = None
        self.worker.spawn(self._agent_left_during_transfer(session, event.leg_id), f"control-{session.call_id}")
        return True

    def finished(self, session: CallSession) -> tuple[str | None, str]:
        """The call ends: (the last agent if a transfer changed it, the transfer notes). Hangs
        up every leg dialled here and resumes paused target agents."""
        state = self.states.pop(session.call_id, None)
        if state is None:
            return None, ""
        parties = list(state.parties.values()) + ([state.transfer] if state.transfer is not None else [])
        sip = self.worker.sip
        for party in parties:
            if party.timer is not None:
                party.timer.cancel()
            if sip is not None:
                self.worker.spawn(sip.hangup(party.leg, 200), f"control-end-{party.leg}")
        agents = set(state.resume_agents)
        if state.transfer is not None and state.transfer.agent_id:
            agents.add(state.transfer.agent_id)
        for agent in sorted(agents):
            self.worker.spawn(self._resume(agent), f"control-resume-{agent}")
        last = state.final_agent or (None if session.flow.agent_id else state.requeued_from)
        return last, "; ".join(state.notes)

    # ------------------------------------------------------------ commands
    async def _no_call(self, data: dict[str, Any]) -> None:
        """The call ended before its command arrived: refused, and a target agent resumed."""
        action, call_id = str(data.get("action") or ""), CallId(str(data.get("call_id") or ""))
        if action == "transfer" and data.get("agent_id"):
            await self._resume(str(data["agent_id"]))
        await self._publish(call_id, action, "failed", "no such call on this worker", str(data.get("by") or ""))

    async def _run(self, s: CallSession, data: dict[str, Any]) -> None:
        action = str(data.get("action") or "")
        detail = ""
        try:
            async with s.lock:
                detail = await self._act(s, action, data)
            status = "done"
        except ControlRefused as exc:
            status, detail = "failed", str(exc)
            logger.warning("call %s: %s refused: %s", s.call_id, action, exc)
        except Exception as exc:  # a failed pj call: reported, the call goes on
            status, detail = "failed", f"{type(exc).__name__}: {exc}"
            logger.exception("call %s: %s failed", s.call_id, action)
        if status == "failed" and action == "transfer" and data.get("agent_id"):
            await self._resume(str(data["agent_id"]))  # the API paused him for this transfer
        await self._publish(s.call_id, action, status, detail, str(data.get("by") or ""))

    async def _act(self, s: CallSession, action: str, data: dict[str, Any]) -> str:
        sip = self.worker.sip
        if not isinstance(sip, ControlSip):
            raise ControlRefused("this worker's SIP endpoint has no call controls")
        if s.finished or s.flow.phase != fl.Phase.CONNECTED:
            raise ControlRefused(f"call is {s.flow.phase.value}, not connected")
        if s.agent_leg is None:
            raise ControlRefused("call has no agent leg")
        bridged = frozenset({(s.caller_leg, s.agent_leg), (s.agent_leg, s.caller_leg)})  # the flow's Bridge
        state = self.states.get(s.call_id)
        if state is None:
            state = self.states[s.call_id] = _State(bridged, s.agent_leg)
            if s.recording is not None:  # the agent channel outlives the agents that come and go
                await sip.keep_recorder(s.caller_leg, str(leg_file(s.recording, "agent")))
        elif state.base_leg != s.agent_leg:  # back from the queue, the flow bridged a new agent
            state.links, state.base_leg, state.agent_released = bridged, s.agent_leg, False
            state.held = state.muted = False
        by = str(data.get("by") or "")
        if action == "hold":
            state.held = bool(data.get("held"))
        elif action == "mute":
            state.muted = bool(data.get("muted"))
        elif action == "dtmf":
            digits = str(data.get("digits") or "")
            if not DTMF_DIGITS.match(digits):
                raise ControlRefused(f"digits {digits!r} cannot be sent")
            await sip.send_dtmf(s.caller_leg, digits)
            return digits
        elif action == "hangup":
            state.notes.append(f"hung up from the desk by {by}")
            await sip.hangup(s.agent_leg, 200)  # the flow ends the call as an agent's hang-up
            return ""
        elif action == "transfer":
            return await self._start_transfer(sip, s, state, data, by)
        elif action == "transfer-complete":
            target = state.transfer
            if target is None or target.mode != "attended" or not target.answered:
                raise ControlRefused("no answered consult to complete")
            await self._complete(sip, s, state)
            return target.label
        elif action == "transfer-cancel":
            target = state.transfer
            if target is None:
                raise ControlRefused("no transfer under way")
            await self._transfer_over(sip, s, state, "cancelled", hangup=True)
            return target.label
        elif action == "conference":
            uri, label = self._target_uri(data)
            party = self._new_party(s, "conference", label, by=by)
            await self._dial(sip, s, party, uri)
            state.parties[party.leg] = party
            return party.leg
        elif action == "monitor":
            return await self._monitor(sip, s, state, data, by)
        else:
            raise ControlRefused(f"unknown action {action!r}")
        await self._apply(sip, s, state)
        return ""

    async def _start_transfer(
        self, sip: ControlSip, s: CallSession, state: _State, data: dict[str, Any], by: str
    ) -> str:
        if state.transfer is not None:
            raise ControlRefused(f"a transfer to {state.transfer.label} is under way")
        if data.get("queue"):
            return await self._requeue(sip, s, state)
        mode = str(data.get("mode") or "blind")
        if mode not in ev.TRANSFER_MODES:
            raise ControlRefused(f"unknown transfer mode {mode!r}")
        uri, label = self._target_uri(data)
        agent_id = str(data["agent_id"]) if data.get("agent_id") else None
        party = self._new_party(s, "target", label, mode=mode, agent_id=agent_id, by=by)
        state.transfer = party
        await self._apply(sip, s, state)  # the caller hears music from now on
        try:
            await self._dial(sip, s, party, uri)
        except Exception:
            state.transfer = None
            await self._apply(sip, s, state)
            raise
        return party.leg

    async def _requeue(self, sip: ControlSip, s: CallSession, state: _State) -> str:
        """Back into the queue at the call's original arrival time and priority: the agent and
        any supervisor leave, the flow waits again (hold music, announcements)."""
        node = s.flow.queue_node
        if node is None or s.queued_at is None:
            raise ControlRefused("this call never waited in a queue")
        if any(p.role == "conference" for p in state.parties.values()):
            raise ControlRefused("end the three-way call first")
        old, before = s.agent_leg, state.final_agent or s.flow.agent_id
        assert old is not None
        for party in list(state.parties.values()):  # supervisors listened to that agent
            await sip.hangup(party.leg, 200)
            del state.parties[party.leg]
        s.agent_leg, state.held, state.muted = None, False, False
        await self._apply(sip, s, state)
        self.worker.by_leg.pop(old, None)
        self.legs[old] = s
        await sip.hangup(old, 200)
        await self._release_first_agent(s, state)  # wrap-up; also frees the call for enqueue
        current = before or ""
        if current in state.resume_agents:  # a transferred-to agent (paused by the API) is free again
            state.resume_agents.discard(current)
            await self._resume(current)
        state.final_agent, state.requeued_from = None, before
        state.notes.append(f"transferred {before or '?'} -> queue")
        self.worker._feed(s, fl.Requeued())  # hold music, whatever the queue says below
        level = Priority[s.flow.raised.upper()] if s.flow.raised else Priority.NORMAL
        arrival = int(s.queued_at.timestamp() * 1000)
        try:
            position = await self.worker.queue.enqueue(
                s.call_id, self.worker.settings.worker_id, s.incoming.caller, arrival, level, node.skills, node.queue
            )
        except Unavailable as exc:
            position = 0
            logger.error("call %s: the queue is away: %s", s.call_id, exc)
        if position <= 0:
            logger.error("call %s: not queued again (%d): it waits for nothing", s.call_id, position)
            state.notes.append("requeue failed")
            raise ControlRefused(f"the queue did not take the call ({position})")
        logger.info("call %s: back in the queue at %d (arrived %s)", s.call_id, position, s.queued_at)
        return str(position)

    async def _monitor(self, sip: ControlSip, s: CallSession, state: _State, data: dict[str, Any], by: str) -> str:
        mode = str(data.get("mode") or "")
        uri = str(data.get("uri") or "")
        if mode not in ev.MONITOR_MODES:
            raise ControlRefused(f"unknown monitor mode {mode!r}")
        if not uri.startswith(("sip:", "sips:")):
            raise ControlRefused(f"not a SIP URI: {uri!r}")
        for party in state.parties.values():
            if party.role == "monitor" and party.label == uri:
                party.mode = mode  # the same supervisor changes mode: relink his leg
                await self._apply(sip, s, state)
                await self._record_party(sip, s, party)
                return party.leg
        party = self._new_party(s, "monitor", uri, mode=mode, by=by)
        await self._dial(sip, s, party, uri)
        state.parties[party.leg] = party
        return party.leg

    def _target_uri(self, data: dict[str, Any]) -> tuple[str, str]:
        """(the URI to dial, the label for notes) of a transfer or conference target."""
        if data.get("agent_id"):
            agent = str(data["agent_id"])
            uri = str(data.get("uri") or "")
            if not uri:
                extension = str(data.get("extension") or "")
                if not DIALABLE.match(extension):
                    raise ControlRefused(f"agent {agent} has neither a SIP URI nor a dialable extension")
                uri = self._dial_template().format(number=extension)
            return uri, f"agent:{agent}"
        number = str(data.get("number") or "")
        if number.startswith(("sip:", "sips:")):
            return number, f"number:{number}"
        if not DIALABLE.match(number):
            raise ControlRefused(f"number {number!r} cannot be dialled")
        return self._dial_template().format(number=number), f"number:{number}"

    def _dial_template(self) -> str:
        callback = self.worker.settings.callback
        if callback is None or not callback.dial_template:
            raise ControlRefused("this worker has no dial template (callback.dial_template)")
        return callback.dial_template

    def _new_party(self, s: CallSession, role: str, label: str, **kw: Any) -> _Party:
        self._seq += 1
        return _Party(leg=f"{role[:3]}-{s.call_id}-{self._seq}", role=role, label=label, **kw)

    async def _dial(self, sip: ControlSip, s: CallSession, party: _Party, uri: str) -> None:
        """Dials the party's leg; unanswered after ring_timeout_s, it is hung up."""
        self.legs[party.leg] = s
        try:
            await sip.dial(uri, party.leg, {"X-Hotline-Call-Id": s.call_id})
        except Exception:
            self.legs.pop(party.leg, None)
            raise
        loop = asyncio.get_running_loop()
        party.timer = loop.call_later(self.worker.settings.ring_timeout_s, self._ring_timeout, s, party)

    # ------------------------------------------------------------ media
    def _desired(self, s: CallSession, state: _State) -> tuple[frozenset[Link], bool]:
        """Who hears whom now, and whether the caller hears hold music (the module's rules)."""
        caller, agent = s.caller_leg, s.agent_leg
        links: set[Link] = set()
        music = state.held or state.transfer is not None
        if agent is not None and not music:
            links.add((caller, agent))
            if not state.muted:
                links.add((agent, caller))
        target = state.transfer
        if agent is not None and target is not None and target.answered and target.mode == "attended":
            links |= {(agent, target.leg), (target.leg, agent)}
        answered = [p for p in state.parties.values() if p.answered]
        conference = [p.leg for p in answered if p.role == "conference"]
        for leg in conference:
            if not music:
                links |= {(caller, leg), (leg, caller)}
            if agent is not None:
                links.add((leg, agent))
                if not state.muted:
                    links.add((agent, leg))
        for party in answered:
            if party.role != "monitor":
                continue
            sources = [caller, *conference] + ([agent] if agent is not None else [])
            links |= {(src, party.leg) for src in sources}
            if party.mode in ("whisper", "barge") and agent is not None:
                links.add((party.leg, agent))
            if party.mode == "barge":
                links |= {(party.leg, caller)} | {(party.leg, leg) for leg in conference}
        return frozenset(links), music

    async def _apply(self, sip: ControlSip, s: CallSession, state: _State) -> None:
        links, music = self._desired(s, state)
        add, remove = links - state.links, state.links - links
        if add or remove:
            await sip.relink(add, remove)
            state.links = links
        if music and not state.music:
            path = self.worker._prompt_file(("hold_music",), s.language)
            if path is None:
                logger.error("call %s: no hold_music prompt: the caller hears silence", s.call_id)
            else:
                agent_file = str(leg_file(s.recording, "agent")) if s.recording is not None else None
                await sip.play_hold(s.caller_leg, path, agent_file)
            state.music = True
        elif not music and state.music:
            await sip.stop_play(s.caller_leg)
            state.music = False

    async def _record_party(self, sip: ControlSip, s: CallSession, party: _Party) -> None:
        """A conference party, a barging supervisor or a new agent: into the agent channel."""
        if not party.answered or s.recording is None or s.rec is None:
            return
        if party.role == "monitor" and party.mode != "barge":
            return  # listen and whisper are never recorded (a change back leaves what was)
        await s.rec.add_leg(sip, party.leg, leg_file(s.recording, "agent"))

    # ------------------------------------------------------------ legs dialled here
    async def _party_state(self, s: CallSession, event: LegStateChanged) -> None:
        sip = self.worker.sip
        async with s.lock:
            state = self.states.get(s.call_id)
            if event.state == LegState.DISCONNECTED:
                self.legs.pop(event.leg_id, None)
            if state is None or s.finished or not isinstance(sip, ControlSip):
                return
            target = state.transfer
            if target is not None and target.leg == event.leg_id:
                if event.state == LegState.CONFIRMED:
                    target.answered = True
                    if target.timer is not None:
                        target.timer.cancel()
                    if target.mode == "blind" or s.agent_leg is None:
                        await self._complete(sip, s, state)
                    else:
                        await self._apply(sip, s, state)  # consult: agent and target talk
                    await self._publish(s.call_id, "transfer-answered", "done", target.label, target.by)
                elif event.state == LegState.DISCONNECTED:
                    reason = "hung up" if target.answered else failure_reason(event.status_code)
                    await self._transfer_over(sip, s, state, reason, hangup=False)
                return
            party = state.parties.get(event.leg_id)
            if party is None:
                return  # a released first agent's leg ending
            if event.state == LegState.CONFIRMED:
                party.answered = True
                if party.timer is not None:
                    party.timer.cancel()
                await self._apply(sip, s, state)
                await self._record_party(sip, s, party)
                await self._publish(s.call_id, f"{party.role}-answered", "done", party.label, party.by)
            elif event.state == LegState.DISCONNECTED:
                del state.parties[event.leg_id]
                await self._apply(sip, s, state)
                if not party.answered:
                    why = failure_reason(event.status_code)
                    await self._publish(s.call_id, party.role, "failed", f"{party.label}: {why}", party.by)

    def _ring_timeout(self, s: CallSession, party: _Party) -> None:
        party.timer = None
        sip = self.worker.sip
        if not party.answered and sip is not None:
            self.worker.spawn(sip.hangup(party.leg, 487), f"control-timeout-{party.leg}")

    async def _complete(self, sip: ControlSip, s: CallSession, state: _State) -> None:
        """The target takes the call: bridged with the caller, the first agent released."""
        target = state.transfer
        assert target is not None
        state.transfer = None
        old, before = s.agent_leg, s.flow.agent_id if state.final_agent is None else state.final_agent
        self.legs.pop(target.leg, None)
        s.agent_leg = state.base_leg = target.leg  # the flow's agent leg from now on (same offer id)
        s.agent_answered = True
        self.worker.by_leg[target.leg] = s
        await self._record_party(sip, s, dataclasses.replace(target, role="agent"))  # the agent channel goes on
        await self._apply(sip, s, state)  # caller and target talk at once; the old leg's links go
        if old is not None:
            self.worker.by_leg.pop(old, None)
            self.legs[old] = s  # its end is claimed here, not the flow's AgentHungUp
            await sip.hangup(old, 200)
        if target.agent_id:
            await self._hand_over(s, state, before, target.agent_id)
            state.final_agent = target.agent_id
        else:
            await self._release_first_agent(s, state)
        state.notes.append(f"transferred {before or '?'} -> {target.label} ({target.mode})")
        await self._retrack(s, state)
        logger.info("call %s: transferred to %s (%s)", s.call_id, target.label, target.mode)

    async def _transfer_over(self, sip: ControlSip, s: CallSession, state: _State, reason: str, hangup: bool) -> None:
        """The transfer failed or was cancelled: back to the first agent (or, gone, the end)."""
        target = state.transfer
        assert target is not None
        state.transfer = None
        if target.timer is not None:
            target.timer.cancel()
        state.notes.append(
            f"transfer to {target.label} {'cancelled' if reason == 'cancelled' else 'failed: ' + reason}"
        )
        if hangup:
            await sip.hangup(target.leg, 487 if not target.answered else 200)
        if target.agent_id:
            self.worker.spawn(self._resume(target.agent_id), f"control-resume-{target.agent_id}")
        if s.agent_leg is None:
            logger.warning(
                "call %s: transfer to %s %s and its agent has left: call ended", s.call_id, target.label, reason
            )
            await sip.hangup(s.caller_leg, 200)
            return
        await self._apply(sip, s, state)
        if reason != "cancelled":
            await self._publish(s.call_id, "transfer", "failed", f"{target.label}: {reason}", target.by)

    async def _agent_left_during_transfer(self, s: CallSession, old_leg: str) -> None:
        sip = self.worker.sip
        async with s.lock:
            state = self.states.get(s.call_id)
            if s.finished or not isinstance(sip, ControlSip):
                return
            if state is None or state.transfer is None:  # the transfer ended meanwhile: so does the call
                logger.info("call %s: agent leg %s gone after its transfer ended", s.call_id, old_leg)
                await sip.hangup(s.caller_leg, 200)
                return
            await self._release_first_agent(s, state)
            if state.transfer.answered:
                await self._complete(sip, s, state)
            else:
                await self._apply(sip, s, state)

    async def _release_first_agent(self, s: CallSession, state: _State) -> None:
        if state.agent_released:
            return
        state.agent_released = True
        try:
            await self.worker.queue.call_finished(s.call_id, epoch_ms())
        except Unavailable as exc:
            logger.warning("call %s: first agent not released to wrap-up: %s", s.call_id, exc)

    async def _hand_over(self, s: CallSession, state: _State, before: str | None, agent_id: str) -> None:
        """The target agent takes the call in the queue (transfer_taken: on the call as if he
        had answered an offer of it; the agent who had it goes to wrap-up, unless released
        already). If the queue does not take it, the old way: the first agent wraps up, the
        target stays paused until the call ends."""
        released, state.agent_released = state.agent_released, True
        try:
            taken = await self.worker.queue.transfer_taken(
                s.call_id, AgentId(before) if before else None, AgentId(agent_id), epoch_ms(), released=released
            )
        except Unavailable as exc:
            logger.warning("call %s: agent %s not put on the call in the queue: %s", s.call_id, agent_id, exc)
            taken = False
        if taken:
            state.agent_released = False  # the new agent's own end (call end, next transfer) is to come
            return
        logger.warning("call %s: the queue did not give the call to agent %s (%s)", s.call_id, agent_id, taken)
        if not released:
            state.agent_released = False
            await self._release_first_agent(s, state)
        if taken is False:
            state.resume_agents.add(agent_id)  # resumed when the call ends (None: resumed already)

    async def _resume(self, agent_id: str) -> None:
        with contextlib.suppress(Exception):
            await self.worker.queue.agent_resume(AgentId(agent_id), epoch_ms(), by=Actor.SYSTEM)

    async def _retrack(self, s: CallSession, state: _State) -> None:
        """The live-call registry names the call's agent now (the API's ownership check)."""
        info = {
            "call_id": s.call_id,
            "caller": s.incoming.caller,
            "callee": s.incoming.callee,
            "started_at": s.started_at.isoformat(),
            "worker_id": self.worker.settings.worker_id,
            "agent_id": state.final_agent or "",
        }
        with contextlib.suppress(Unavailable):
            await self.worker.bus.track_call(self.worker.settings.worker_id, s.call_id, info)

    # ------------------------------------------------------------ declining an offer
    def reject(self, session: CallSession | None, data: dict[str, Any]) -> None:
        """A `reject` command (see the module's rules); None: no such call on this worker."""
        self.worker.spawn(self._reject(session, data), f"reject-{data.get('call_id')}")

    async def _reject(self, s: CallSession | None, data: dict[str, Any]) -> None:
        agent_id, by = str(data.get("agent_id") or ""), str(data.get("by") or "")
        if s is None:
            call_id = CallId(str(data.get("call_id") or ""))
            await self._publish(call_id, "reject", "failed", "no such call on this worker", by)
            return
        sip = self.worker.sip
        async with s.lock:  # after the DialAgent that made his leg, if it is under way
            offers = {
                o.offer_id
                for o in (s.flow.offer, *s.flow.others.values())
                if o is not None and o.agent_id == agent_id and s.flow.phase == fl.Phase.OFFERING
            }
            legs = [leg for leg, offer in s.ringing.items() if offer in offers]
            if s.agent_leg is not None and s.agent_leg_offer in offers and not s.agent_answered:
                legs.append(s.agent_leg)
            if not legs or sip is None:
                status, detail = "failed", f"no call ringing at agent {agent_id}'s phone"
            else:
                s.declined |= offers  # reported to the queue as declined once the leg has ended
                for leg in legs:
                    await sip.hangup(leg, 603)
                status, detail = "done", f"agent:{agent_id}"
        logger.info("call %s: agent %s declined the offer (%s: %s)", s.call_id, agent_id, status, detail)
        await self._publish(s.call_id, "reject", status, detail, by)

    # ------------------------------------------------------------ answering an offer from the desk
    def answer(self, session: CallSession | None, data: dict[str, Any]) -> None:
        """An `answer` command (see the module's rules); None: no such call on this worker."""
        self.worker.spawn(self._answer(session, data), f"answer-{data.get('call_id')}")

    async def _answer(self, s: CallSession | None, data: dict[str, Any]) -> None:
        agent_id, by = str(data.get("agent_id") or ""), str(data.get("by") or "")
        if s is None:
            call_id = CallId(str(data.get("call_id") or ""))
            await self._publish(call_id, "answer", "failed", "no such call on this worker", by)
            return
        sip = self.worker.sip
        async with s.lock:  # after the DialAgent that made his leg, if it is under way
            offers = {
                o.offer_id: o
                for o in (s.flow.offer, *s.flow.others.values())
                if o is not None and o.agent_id == agent_id and s.flow.phase == fl.Phase.OFFERING
            }
            legs = [(leg, offer) for leg, offer in s.ringing.items() if offer in offers]
            if s.agent_leg is not None and s.agent_leg_offer in offers and not s.agent_answered:
                legs.append((s.agent_leg, s.agent_leg_offer))
            if not legs or sip is None:
                status, detail = "failed", f"no call ringing at agent {agent_id}'s phone"
            else:
                failures = [await self._redial(s, sip, leg, offers[offer]) for leg, offer in legs]
                failed = [f for f in failures if f]
                status = "failed" if failed else "done"
                detail = "; ".join(failed) if failed else f"agent:{agent_id}"
        logger.info("call %s: agent %s answers from the desk (%s: %s)", s.call_id, agent_id, status, detail)
        await self._publish(s.call_id, "answer", status, detail, by)

    async def _redial(self, s: CallSession, sip: Sip, old: str, offer: fl.OfferReceived) -> str:
        """Swaps a ringing leg for one asking the phone to answer; "" or why dialling failed."""
        worker = self.worker
        worker.by_leg.pop(old, None)  # its end (487) is nobody's business now
        group = s.ringing.pop(old, None) is not None
        s.agent_legs += 1
        leg = f"out-{s.call_id}-{s.agent_legs}"
        if group:
            s.ringing[leg] = offer.offer_id
        else:
            s.agent_leg = leg
        worker.by_leg[leg] = s
        await sip.hangup(old, 487)
        headers = {"X-Hotline-Call-Id": s.call_id, **auto_answer_headers(worker.settings.sip_host)}
        try:
            await sip.dial(offer.agent_uri, leg, headers)
        except Exception as exc:
            logger.warning("call %s: dialling %s to answer failed: %s", s.call_id, offer.agent_uri, exc)
            worker.by_leg.pop(leg, None)
            if group:
                s.ringing.pop(leg, None)
            else:
                s.agent_leg = None
            worker._feed(s, fl.AgentFailed(offer.offer_id, "unreachable"))
            return f"cannot dial {offer.agent_uri}"
        return ""

    async def _publish(self, call_id: CallId, action: str, status: str, detail: str, by: str) -> None:
        data = {"call_id": call_id, "action": action, "status": status, "detail": detail, "by": by}
        with contextlib.suppress(Unavailable):
            await self.worker.bus.publish(ev.CALL_CONTROL, data)


def auto_answer_headers(host: str) -> dict[str, str]:
    """The headers asking a phone to answer an INVITE at once (Call-Info answer-after=0 as
    Yealink, Grandstream, Polycom, Linphone and MicroSIP read it; Alert-Info for older firmware;
    Answer-Mode, RFC 5373)."""
    return {
        "Call-Info": f"<sip:{host}>;answer-after=0",
        "Alert-Info": "<http://127.0.0.1>;info=alert-autoanswer",
        "Answer-Mode": "Auto",
    }
