"""The nodes a flow may put before the queue, sans-IO: menu, lookup, self-service, language, play, hang-up.

Rules of this module (the queue part and the table are in hotline.ivr.flow):
- Prompts are timed by their known durations (pjsua2 does not report reliably when a file
  ends): a prompt plays until `prompt_until`, then its continuation (`then`) runs.
- A menu replays its prompt after a timeout or an invalid key, `retries` times, then goes to
  its on_failure node; with barge-in a key stops the prompt at once, without it keys are
  ignored while the prompt plays. Every menu, lookup and self-service node that does not name
  an on_failure node falls back to the flow's queue node: a caller is never stranded.
- A lookup collects digits until the terminator, max_digits or a timeout with min_digits,
  asks for the ticket's status and reads it back; "*" starts over.
- Self-service waits for a final speech result; a knowledge-base match scoring at least the
  threshold plays its answer (`kb_<topic>_<id>`), anything else plays no-match and queues.
- An emergency heard in any script node goes straight to the queue node (when that node
  raises emergencies), the priority raised as it enqueues.
- The caller hanging up ends the call with one Finish: SELF_SERVED once an answer or a ticket
  status was played, else ABANDONED_IN_GREETING (never queued).
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Callable

from hotline.core.model import Outcome
from hotline.ivr.numbers import digit_prompts
from hotline.ivr.protocol import (
    AgentAnswered,
    AgentFailed,
    AgentHungUp,
    CallerHungUp,
    Command,
    Dtmf,
    Event,
    Finish,
    FlowError,
    FlowSettings,
    HangupCaller,
    LookupResult,
    LookupTicket,
    MediaReady,
    OfferReceived,
    Phase,
    PlaySequence,
    PositionReport,
    SetLanguage,
    SpeechResult,
    StopPlay,
    Tick,
)
from hotline.ivr.spec import (
    TICKET_STATUSES,
    FlowSpec,
    HangupNode,
    LanguageNode,
    LookupNode,
    MenuNode,
    Node,
    PlayNode,
    QueueNode,
    SelfServiceNode,
)

DEFAULT_PROMPT_S = 3.0  # a prompt whose length is not known
HANGUP_GRACE_S = 1.0  # after the last prompt, before hanging up: it reaches the caller with a delay
LOOKUP_WAIT_S = 10.0  # the ticket store's answer; later is "not found"
SCRIPT_PHASES = (Phase.MENU, Phase.LOOKUP, Phase.SELF_SERVICE, Phase.PROMPT)

Handler = Callable[[Event, float], list[Command]]
Then = Callable[[float], list[Command]]


class Step(enum.StrEnum):
    PROMPT = "prompt"  # the node's prompt plays
    INPUT = "input"  # waiting for a key or speech
    WAIT = "wait"  # waiting for the ticket store
    LEAVING = "leaving"  # a closing prompt plays, then another node


class ScriptNodes:
    """State and handlers of the script nodes; CallFlow is the rest (queue, agents, table)."""

    settings: FlowSettings
    spec: FlowSpec
    phase: Phase
    digits: str

    def _init_script(self) -> None:
        self.language = self.settings.language
        self.node_name = ""
        self.step = Step.PROMPT
        self.attempts = 0  # failed tries at the current node
        self.entered = ""  # digits typed at a lookup node
        self.lookup_pending: str | None = None
        self.served = False  # an answer or a ticket status was played
        self.prompt_until: float | None = None  # monotonic end of the prompt playing
        self.then: Then | None = None  # what happens when it has ended
        self.input_until: float | None = None  # no key or speech by then: timeout
        self.pending_priority: str | None = None  # raised as the call is enqueued

    # ------------------------------------------------------------ hooks for CallFlow
    def _enter_queue(self, node: QueueNode, now: float) -> list[Command]:
        raise NotImplementedError

    def _end(self) -> None:
        raise NotImplementedError

    def _refuse_offer(self, event: Event, now: float) -> list[Command]:
        raise NotImplementedError

    def _on_stale_agent_answer(self, event: Event, now: float) -> list[Command]:
        raise NotImplementedError

    def _nothing(self, event: Event, now: float) -> list[Command]:
        return []

    def _script_transitions(self) -> dict[tuple[Phase, type], Handler]:
        table: dict[tuple[Phase, type], Handler] = {}
        for phase in SCRIPT_PHASES:
            table[(phase, Tick)] = self._on_timers
            table[(phase, CallerHungUp)] = self._on_hangup_in_script
            table[(phase, SpeechResult)] = self._on_script_speech
            table[(phase, OfferReceived)] = self._refuse_offer  # not queued yet: nobody may offer
            table[(phase, AgentAnswered)] = self._on_stale_agent_answer
            for ignored in (MediaReady, AgentFailed, AgentHungUp, PositionReport, LookupResult):
                table[(phase, ignored)] = self._nothing
        table[(Phase.MENU, Dtmf)] = self._on_menu_digit
        table[(Phase.LOOKUP, Dtmf)] = self._on_lookup_digit
        table[(Phase.LOOKUP, LookupResult)] = self._on_lookup_result
        table[(Phase.SELF_SERVICE, Dtmf)] = self._on_other_digit
        table[(Phase.PROMPT, Dtmf)] = self._on_other_digit
        return table

    # ------------------------------------------------------------ prompts and timers
    def _seconds(self, *prompts: str) -> float:
        durations = self.settings.durations
        total = 0.0
        for name in prompts:
            value = durations.get(f"{self.language}/{name}", durations.get(name))
            if value is None:
                greeting = name == self.settings.greeting_prompt
                value = self.settings.greeting_s if greeting else DEFAULT_PROMPT_S
            total += value
        return total

    def _play(self, prompts: tuple[str, ...], now: float, then: Then, tail_s: float = 0.0) -> list[Command]:
        self.prompt_until = now + self._seconds(*prompts) + tail_s
        self.then = then
        return [PlaySequence(prompts)]

    def _stop_prompt(self) -> list[Command]:
        if self.prompt_until is None:
            return []
        self.prompt_until = None
        self.then = None
        return [StopPlay()]

    def _on_timers(self, event: Event, now: float) -> list[Command]:
        out: list[Command] = []
        if self.prompt_until is not None and now >= self.prompt_until:
            then = self.then
            self.prompt_until = None
            self.then = None
            if then is not None:
                out += then(now)
        if self.phase in SCRIPT_PHASES and self.input_until is not None and now >= self.input_until:
            self.input_until = None
            out += self._on_input_timeout(now)
        return out

    def _await_input(self, now: float) -> list[Command]:
        node = self._node()
        assert isinstance(node, MenuNode | LookupNode | SelfServiceNode)
        self.step = Step.INPUT
        self.input_until = now + node.timeout_s
        return []

    # ------------------------------------------------------------ moving between nodes
    def _node(self) -> Node:
        return self.spec.nodes[self.node_name]

    def _target(self, name: str) -> str:
        target = name or self.spec.fallback
        if target is None:
            raise FlowError(f"flow {self.spec.name!r}: node {self.node_name!r} has no on_failure and no queue node")
        return target

    def _enter(self, name: str, now: float, hops: int = 0) -> list[Command]:
        node = self.spec.nodes.get(name)
        if node is None:
            raise FlowError(f"flow {self.spec.name!r} has no node {name!r}")
        if hops > len(self.spec.nodes):
            raise FlowError(f"flow {self.spec.name!r} loops at node {name!r} without playing anything")
        self.node_name = name
        self.attempts = 0
        self.entered = ""
        self.lookup_pending = None
        self.prompt_until = self.input_until = None
        self.then = None
        self.step = Step.PROMPT
        if isinstance(node, QueueNode):
            return self._enter_queue(node, now)
        if isinstance(node, LanguageNode):
            self.language = node.language
            return [SetLanguage(node.language), *self._enter(node.next, now, hops + 1)]
        if isinstance(node, MenuNode):
            self.phase = Phase.MENU
            return self._play((node.prompt,), now, self._await_input)
        if isinstance(node, LookupNode):
            self.phase = Phase.LOOKUP
            return self._play((node.prompt,), now, self._await_input)
        if isinstance(node, SelfServiceNode):
            self.phase = Phase.SELF_SERVICE
            return self._play((node.prompt,), now, self._await_input)
        self.phase = Phase.PROMPT
        if isinstance(node, PlayNode):
            return self._play((node.prompt,), now, functools.partial(self._enter, node.next))
        self.step = Step.LEAVING
        if node.prompt:
            # The last words are never cut: the caller hears them through the network's delay.
            return self._play((node.prompt,), now, functools.partial(self._hang_up, node), HANGUP_GRACE_S)
        return self._hang_up(node, now)

    def _leave(self, prompts: tuple[str, ...], target: str, now: float) -> list[Command]:
        self.step = Step.LEAVING
        self.input_until = None
        return self._play(prompts, now, functools.partial(self._enter, target))

    def _hang_up(self, node: HangupNode, now: float) -> list[Command]:
        self._end()
        return [HangupCaller(), Finish(node.outcome, "system")]

    def _on_hangup_in_script(self, event: Event, now: float) -> list[Command]:
        outcome = Outcome.SELF_SERVED if self.served else Outcome.ABANDONED_IN_GREETING
        node = self._node()
        if isinstance(node, HangupNode) and self.step == Step.LEAVING:
            outcome = node.outcome  # the goodbye was playing
        self._end()
        return [Finish(outcome, "caller")]

    def _on_input_timeout(self, now: float) -> list[Command]:
        node = self._node()
        if isinstance(node, MenuNode):
            return self._menu_failure(node, node.timeout_prompt, now)
        if isinstance(node, LookupNode):
            if self.step == Step.WAIT:
                return self._lookup_failure(node, node.not_found_prompt, now)
            if len(self.entered) >= node.min_digits:
                return self._submit(now)
            return self._lookup_failure(node, node.timeout_prompt, now)
        if isinstance(node, SelfServiceNode):
            return self._leave((node.no_match_prompt,), self._target(node.on_failure), now)
        return []

    # ------------------------------------------------------------ menu
    def _on_menu_digit(self, event: Event, now: float) -> list[Command]:
        assert isinstance(event, Dtmf)
        self.digits += event.digit
        node = self._node()
        assert isinstance(node, MenuNode)
        out: list[Command] = []
        if self.step == Step.PROMPT:
            if not node.barge_in:
                return []
            out = self._stop_prompt()
        elif self.step != Step.INPUT:
            return []
        self.input_until = None
        target = node.options.get(event.digit)
        if target is not None:
            return out + self._enter(target, now)
        return out + self._menu_failure(node, node.invalid_prompt, now)

    def _menu_failure(self, node: MenuNode, prompt: str, now: float) -> list[Command]:
        self.attempts += 1
        if self.attempts > node.retries:
            return self._leave((prompt,), self._target(node.on_failure), now)
        self.step = Step.PROMPT
        return self._play((prompt, node.prompt), now, self._await_input)

    # ------------------------------------------------------------ lookup
    def _on_lookup_digit(self, event: Event, now: float) -> list[Command]:
        assert isinstance(event, Dtmf)
        self.digits += event.digit
        node = self._node()
        assert isinstance(node, LookupNode)
        if self.step not in (Step.PROMPT, Step.INPUT):
            return []
        out = self._stop_prompt()  # typing while the prompt plays: the caller knows what to do
        self.step = Step.INPUT
        if event.digit == node.terminator:
            if len(self.entered) >= node.min_digits:
                return out + self._submit(now)
            return out + self._lookup_failure(node, node.invalid_prompt, now)
        if event.digit in "0123456789":
            self.entered += event.digit
            if len(self.entered) >= node.max_digits:
                return out + self._submit(now)
        else:
            self.entered = ""  # "*": start over
        self.input_until = now + node.timeout_s
        return out

    def _submit(self, now: float) -> list[Command]:
        self.step = Step.WAIT
        self.lookup_pending = self.entered
        self.input_until = now + LOOKUP_WAIT_S
        return [LookupTicket(self.entered)]

    def _on_lookup_result(self, event: Event, now: float) -> list[Command]:
        assert isinstance(event, LookupResult)
        node = self._node()
        assert isinstance(node, LookupNode)
        if self.step != Step.WAIT or event.number != self.lookup_pending:
            return []  # late or not ours
        self.lookup_pending = None
        self.input_until = None
        if event.status is None:
            return self._lookup_failure(node, node.not_found_prompt, now)
        self.served = True
        prompts = ("lookup_result", *digit_prompts(event.number, self.language))
        if event.status in TICKET_STATUSES:
            prompts += ("lookup_status_is", f"status_{event.status}")
        return self._leave(prompts, node.next, now)

    def _lookup_failure(self, node: LookupNode, prompt: str, now: float) -> list[Command]:
        self.attempts += 1
        self.entered = ""
        self.lookup_pending = None
        if self.attempts > node.retries:
            return self._leave((prompt,), self._target(node.on_failure), now)
        self.step = Step.PROMPT
        return self._play((prompt, node.prompt), now, self._await_input)

    # ------------------------------------------------------------ self-service, play, speech
    def _on_other_digit(self, event: Event, now: float) -> list[Command]:
        assert isinstance(event, Dtmf)
        self.digits += event.digit
        return self._skip_play(now)

    def _skip_play(self, now: float) -> list[Command]:
        node = self._node()
        if isinstance(node, PlayNode) and node.barge_in and self.step == Step.PROMPT:
            return [*self._stop_prompt(), *self._enter(node.next, now)]
        return []

    def _on_script_speech(self, event: Event, now: float) -> list[Command]:
        assert isinstance(event, SpeechResult)
        if event.emergency:
            fallback = self.spec.fallback
            queue = self.spec.nodes[fallback] if fallback else None
            if isinstance(queue, QueueNode) and queue.emergency_priority and fallback:
                self.pending_priority = "emergency"
                return [*self._stop_prompt(), *self._enter(fallback, now)]
        if not event.final or not event.text.strip():
            return []
        node = self._node()
        if not isinstance(node, SelfServiceNode):
            return self._skip_play(now)
        if self.step not in (Step.PROMPT, Step.INPUT):
            return []
        out = self._stop_prompt()
        self.input_until = None
        answer = self._kb_answer(event, node.threshold)
        if answer is not None:
            self.served = True
            return out + self._leave((answer,), node.next, now)
        return out + self._leave((node.no_match_prompt,), self._target(node.on_failure), now)

    def _kb_answer(self, event: SpeechResult, threshold: float) -> str | None:
        """The prompt of the best match scoring at least threshold (and having audio)."""
        known = self.settings.kb_prompts
        for topic, entry_id, score in event.kb:
            if score < threshold:
                return None  # best first: the rest score lower
            if known is None:
                return f"kb_{topic}_{entry_id}"
            if entry_id in known:
                return known[entry_id]
        return None
