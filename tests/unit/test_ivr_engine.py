"""IVR flows as data, run by the sans-IO call flow: every node type, timers on a fake clock."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hotline.core.model import Outcome
from hotline.ivr import flow as fl
from hotline.ivr.loader import load_flow
from hotline.ivr.spec import (
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

CONFIG = Path(__file__).resolve().parents[2] / "config" / "ivr"
DEFAULT = load_flow(CONFIG / "default.yaml")
MENU = load_flow(CONFIG / "menu.yaml")
DURATIONS = {
    "greeting": 7.5,
    "hold_music": 30.0,
    "callback_confirmed": 4.0,
    "priority_raised": 2.0,
    "menu_main": 6.0,
    "menu_invalid": 2.0,
    "menu_timeout": 2.0,
    "language_menu": 4.0,
    "lookup_prompt": 4.0,
    "lookup_not_found": 3.0,
    "self_service_ask": 3.0,
    "self_service_no_match": 3.0,
    "goodbye": 2.0,
}  # everything else: DEFAULT_PROMPT_S (3 s)
OFFER = fl.OfferReceived("o1", "1001", "sip:1001@127.0.0.1")


def make(spec: FlowSpec, now: float = 0.0) -> tuple[fl.CallFlow, list[fl.Command]]:
    flow = fl.CallFlow(fl.FlowSettings(greeting_s=7.5, spec=spec, durations=DURATIONS))
    assert flow.handle(fl.Incoming(), now) == [fl.Answer()]
    return flow, flow.handle(fl.MediaReady(), now)


def single(start: str, **nodes: Node) -> FlowSpec:
    return FlowSpec("test", start, {"queue": QueueNode(greeting=None), **nodes})


def run_until(flow: fl.CallFlow, until: float) -> list[fl.Command]:
    """Ticks at every deadline up to `until`, like the worker's timer."""
    out: list[fl.Command] = []
    while (deadline := flow.next_deadline()) is not None and deadline <= until:
        out += flow.handle(fl.Tick(), deadline)
    return out


# ---------------------------------------------------------------- the default flow
def test_default_flow_enqueues_at_media_exactly_as_before() -> None:
    flow, out = make(DEFAULT)
    assert out == [fl.StartRecording(), fl.Enqueue(), fl.Play("greeting")]
    assert flow.phase == fl.Phase.WAITING and flow.next_deadline() == 7.5
    assert flow.handle(fl.Tick(), 7.5) == [fl.Play("hold_music", loop=True)]


def test_the_queue_nodes_skills_go_with_the_call() -> None:
    spec = FlowSpec("en", "english", {"english": QueueNode(greeting=None, skills=("language:en",))})
    _, out = make(spec)
    assert out == [fl.StartRecording(), fl.Enqueue(("language:en",)), fl.Play("hold_music", loop=True)]


def test_announcements_every_interval_after_the_greeting() -> None:
    flow, _ = make(DEFAULT)
    flow.handle(fl.Tick(), 7.5)
    assert flow.next_deadline() == 52.5
    assert flow.handle(fl.Tick(), 52.5) == [fl.QueryPosition()]
    out = flow.handle(fl.PositionReport(4, 200.0), 52.6)
    words = ("queue_position", "num_3", "queue_position_unit", "queue_wait", "num_4", "unit_minutes", "callback_offer")
    assert out == [fl.PlaySequence(words)]
    # 5 prompts of unknown length (3 s) and 2 short numbers: hold music again after their sum.
    assert flow.next_deadline() == pytest.approx(52.6 + 7 * 3.0)
    assert run_until(flow, 74.0) == [fl.Play("hold_music", loop=True)]
    assert flow.next_deadline() == 97.5  # 45 s after the last query
    assert flow.handle(fl.Tick(), 97.5) == [fl.QueryPosition()]
    assert flow.handle(fl.PositionReport(1, 10.0), 97.6) == [fl.PlaySequence(("queue_next", "callback_offer"))]


def test_a_short_wait_is_announced_as_under_a_minute_and_an_unknown_position_not_at_all() -> None:
    flow, _ = make(DEFAULT)
    flow.handle(fl.Dtmf("5"), 1.0)
    flow.handle(fl.Tick(), 46.0)
    out = flow.handle(fl.PositionReport(2, 30.0), 46.1)
    assert out == [
        fl.PlaySequence(("queue_position", "num_1", "queue_position_unit", "queue_wait_under_minute", "callback_offer"))
    ]
    run_until(flow, 70.0)
    assert flow.handle(fl.Tick(), 91.0) == [fl.QueryPosition()]
    assert flow.handle(fl.PositionReport(None, None), 91.1) == []
    assert flow.handle(fl.PositionReport(3, 100.0), 92.0) == []  # not asked for: ignored


def test_no_announcement_while_an_agent_is_being_dialled() -> None:
    flow, _ = make(DEFAULT)
    flow.handle(fl.Tick(), 7.5)
    flow.handle(OFFER, 50.0)
    assert flow.handle(fl.Tick(), 52.5) == []
    assert flow.next_deadline() == 70.0  # the ring timeout comes first now


def test_callback_key_confirms_requests_and_hangs_up_without_abandoning() -> None:
    flow, _ = make(DEFAULT)
    out = flow.handle(fl.Dtmf("1"), 2.0)  # during the greeting
    assert out == [fl.StopPlay(), fl.PlaySequence(("callback_confirmed",)), fl.RequestCallback()]
    assert flow.phase == fl.Phase.CALLBACK
    # An offer now is refused, without blaming the agent.
    assert flow.handle(OFFER, 3.0) == [fl.ReportOfferFailed("o1", "call is callback")]
    assert flow.next_deadline() == 7.0  # the confirmation (4 s) and a second's grace
    out = flow.handle(fl.Tick(), 7.0)
    assert out == [fl.HangupCaller(), fl.Finish(Outcome.CALLBACK_REQUESTED, "system")]
    assert flow.handle(fl.CallerHungUp(), 7.1) == []  # our own hang-up's BYE: nothing more
    assert flow.digits == "1"


def test_overflow_to_callback_tells_the_caller_and_keeps_the_entry() -> None:
    flow, _ = make(DEFAULT)
    assert flow.handle(fl.Overflow("callback"), 3.0) == []  # the greeting is never cut
    flow.handle(fl.Tick(), 7.5)  # greeting over, hold music
    assert flow.handle(fl.Overflow("fax"), 60.0) == []  # not a target the flow carries out
    out = flow.handle(fl.Overflow("callback"), 60.0)
    assert out == [fl.StopPlay(), fl.PlaySequence(("callback_overflow",)), fl.RequestCallback()]
    assert flow.handle(fl.Overflow("callback"), 61.0) == []  # sent again before it took effect: once
    deadline = flow.next_deadline()
    assert deadline is not None
    assert flow.handle(fl.Tick(), deadline) == [fl.HangupCaller(), fl.Finish(Outcome.CALLBACK_REQUESTED, "system")]
    offered, _ = make(DEFAULT)
    offered.handle(fl.Tick(), 7.5)
    offered.handle(OFFER, 8.0)
    assert offered.handle(fl.Overflow("callback"), 9.0) == []  # an agent's phone rings: no callback


def test_caller_hanging_up_during_the_callback_confirmation_keeps_the_entry() -> None:
    flow, _ = make(DEFAULT)
    flow.handle(fl.Tick(), 7.5)
    flow.handle(fl.Dtmf("1"), 10.0)
    assert flow.handle(fl.CallerHungUp(), 11.0) == [fl.Finish(Outcome.CALLBACK_REQUESTED, "caller")]


def test_callback_key_is_only_a_skip_while_an_agent_is_ringing() -> None:
    flow, _ = make(DEFAULT)
    flow.handle(OFFER, 1.0)
    assert flow.handle(fl.Dtmf("1"), 2.0) == [fl.Play("hold_music", loop=True)]
    assert flow.phase == fl.Phase.OFFERING


def test_priority_key_raises_once_and_announces_once() -> None:
    flow, _ = make(DEFAULT)
    out = flow.handle(fl.Dtmf("0"), 1.5)  # skips the greeting too
    assert out == [fl.RaisePriority("flagged"), fl.PlaySequence(("priority_raised",))]
    assert flow.handle(fl.Dtmf("0"), 2.0) == []
    assert flow.handle(fl.Tick(), 3.5) == [fl.Play("hold_music", loop=True)]
    assert flow.handle(fl.Dtmf("0"), 4.0) == []


def test_emergency_speech_raises_to_emergency_after_flagged_and_speech_skips_the_greeting() -> None:
    flow, _ = make(DEFAULT)
    assert flow.handle(fl.SpeechResult("我想问", final=False), 1.0) == []  # partial: greeting goes on
    out = flow.handle(fl.SpeechResult("家里着火了", emergency=True), 2.0)
    assert out == [fl.RaisePriority("emergency"), fl.PlaySequence(("priority_raised",))]
    run_until(flow, 4.0)
    assert flow.handle(fl.Dtmf("0"), 5.0) == []  # flagged is below emergency: nothing


def test_priority_raised_plays_after_the_greeting_when_the_greeting_goes_on() -> None:
    spec = FlowSpec("t", "q", {"q": QueueNode(speech_skips_greeting=False, emergency_priority=True)})
    flow, _ = make(spec)
    assert flow.handle(fl.SpeechResult("救命", emergency=True), 1.0) == [fl.RaisePriority("emergency")]
    assert flow.handle(fl.Tick(), 7.5) == [fl.PlaySequence(("priority_raised",))]
    assert flow.handle(fl.Tick(), 9.5) == [fl.Play("hold_music", loop=True)]


def test_offer_during_an_announcement_connects_with_stop() -> None:
    flow, _ = make(DEFAULT)
    flow.handle(fl.Tick(), 7.5)
    flow.handle(fl.Tick(), 52.5)
    flow.handle(fl.PositionReport(1, 5.0), 52.5)
    flow.handle(OFFER, 53.0)
    assert flow.handle(fl.AgentAnswered("o1"), 54.0) == [
        fl.StopPlay(),
        fl.Bridge("o1", "1001"),
        fl.ReportOfferAnswered("o1"),
    ]
    assert flow.next_deadline() is None


# ---------------------------------------------------------------- menu
MENU_SPEC = single(
    "main",
    main=MenuNode(prompt="menu_main", options={"1": "queue", "2": "bye"}, timeout_s=5, retries=1),
    bye=HangupNode(),
)


def test_menu_option_goes_to_its_node() -> None:
    flow, out = make(MENU_SPEC)
    assert out == [fl.StartRecording(), fl.PlaySequence(("menu_main",))]
    assert flow.phase == fl.Phase.MENU
    out = flow.handle(fl.Dtmf("1"), 1.0)  # barge-in
    assert out == [fl.StopPlay(), fl.Enqueue(), fl.Play("hold_music", loop=True)]
    assert flow.in_queue


def test_menu_invalid_key_then_timeout_then_failure_goes_to_the_queue() -> None:
    flow, _ = make(MENU_SPEC)
    assert flow.handle(fl.Tick(), 6.0) == []  # prompt over: now the caller has 5 s
    assert flow.next_deadline() == 11.0
    out = flow.handle(fl.Dtmf("9"), 8.0)
    assert out == [fl.PlaySequence(("menu_invalid", "menu_main"))]
    assert run_until(flow, 16.0) == []  # replayed (8 s), waiting for a key until 21
    out = run_until(flow, 21.0)
    assert out == [fl.PlaySequence(("menu_timeout",))]  # retries used: leaves for the queue
    assert run_until(flow, 23.0) == [fl.Enqueue(), fl.Play("hold_music", loop=True)]


def test_menu_without_barge_in_ignores_keys_while_the_prompt_plays() -> None:
    spec = single("m", m=MenuNode(prompt="menu_main", options={"1": "queue"}, barge_in=False))
    flow, _ = make(spec)
    assert flow.handle(fl.Dtmf("1"), 1.0) == []
    flow.handle(fl.Tick(), 6.0)
    assert flow.handle(fl.Dtmf("1"), 7.0)[0] == fl.Enqueue()
    assert flow.digits == "11"


def test_hangup_node_plays_goodbye_then_ends_self_served() -> None:
    flow, _ = make(MENU_SPEC)
    assert flow.handle(fl.Dtmf("2"), 1.0) == [fl.StopPlay(), fl.PlaySequence(("goodbye",))]
    assert flow.handle(fl.Tick(), 3.0) == []  # goodbye (2 s) played; a second's grace so it is heard whole
    assert flow.handle(fl.Tick(), 4.0) == [fl.HangupCaller(), fl.Finish(Outcome.SELF_SERVED, "system")]
    assert flow.phase == fl.Phase.ENDED and flow.next_deadline() is None


# ---------------------------------------------------------------- lookup
LOOKUP_SPEC = single(
    "status",
    status=LookupNode(next="bye", min_digits=4, max_digits=8, timeout_s=5, retries=1),
    bye=HangupNode(prompt=None),
)


def test_lookup_reads_the_status_back_then_goes_on() -> None:
    flow, out = make(LOOKUP_SPEC)
    assert out[-1] == fl.PlaySequence(("lookup_prompt",))
    assert flow.handle(fl.Dtmf("1"), 1.0) == [fl.StopPlay()]
    for d in "234":
        assert flow.handle(fl.Dtmf(d), 2.0) == []
    assert flow.handle(fl.Dtmf("#"), 3.0) == [fl.LookupTicket("1234")]
    assert flow.handle(fl.LookupResult("9999", "closed"), 3.1) == []  # not ours
    out = flow.handle(fl.LookupResult("1234", "handling"), 3.2)
    seq = ("lookup_result", "digit_1", "digit_2", "digit_3", "digit_4", "lookup_status_is", "status_handling")
    assert out == [fl.PlaySequence(seq)]
    assert run_until(flow, 30.0) == [fl.HangupCaller(), fl.Finish(Outcome.SELF_SERVED, "system")]


def test_lookup_max_digits_submits_and_not_found_retries_then_queues() -> None:
    flow, _ = make(LOOKUP_SPEC)
    for d in "12345678":
        out = flow.handle(fl.Dtmf(d), 1.0)
    assert out == [fl.LookupTicket("12345678")]
    assert flow.handle(fl.LookupResult("12345678", None), 1.5) == [
        fl.PlaySequence(("lookup_not_found", "lookup_prompt"))
    ]
    flow.handle(fl.Dtmf("1"), 2.0)
    assert flow.handle(fl.Dtmf("#"), 2.5) == [fl.PlaySequence(("menu_invalid",))]  # too short, no retry left
    assert run_until(flow, 10.0) == [fl.Enqueue(), fl.Play("hold_music", loop=True)]


def test_lookup_timeout_with_enough_digits_submits_and_no_answer_is_not_found() -> None:
    flow, _ = make(LOOKUP_SPEC)
    for d in "12345":
        flow.handle(fl.Dtmf(d), 1.0)
    assert flow.handle(fl.Tick(), 6.0) == [fl.LookupTicket("12345")]
    assert flow.handle(fl.Tick(), 16.0) == [fl.PlaySequence(("lookup_not_found", "lookup_prompt"))]
    flow.handle(fl.Dtmf("*"), 17.0)  # starts over
    assert flow.entered == ""


def test_hangup_after_a_status_was_played_is_self_served() -> None:
    flow, _ = make(LOOKUP_SPEC)
    for d in "1234#":
        flow.handle(fl.Dtmf(d), 1.0)
    flow.handle(fl.LookupResult("1234", "closed"), 2.0)
    assert flow.handle(fl.CallerHungUp(), 3.0) == [fl.Finish(Outcome.SELF_SERVED, "caller")]


# ---------------------------------------------------------------- self-service, language, play
SELF_SPEC = single(
    "ask",
    ask=SelfServiceNode(next="more", timeout_s=10, threshold=0.6),
    more=MenuNode(prompt="self_service_more", options={"0": "queue"}, retries=0, on_failure="bye"),
    bye=HangupNode(),
)


def test_self_service_plays_the_matched_answer() -> None:
    flow, out = make(SELF_SPEC)
    assert out[-1] == fl.PlaySequence(("self_service_ask",))
    assert flow.handle(fl.SpeechResult("公积金", final=False), 1.0) == []
    assert flow.handle(fl.Tick(), 3.0) == []  # the question asked: listening
    out = flow.handle(fl.SpeechResult("公积金怎么提取", kb=(("housing", "fund_withdraw", 0.8),)), 4.0)
    assert out == [fl.PlaySequence(("kb_housing_fund_withdraw",))]
    assert run_until(flow, 7.0) == [fl.PlaySequence(("self_service_more",))]
    assert flow.handle(fl.CallerHungUp(), 8.0) == [fl.Finish(Outcome.SELF_SERVED, "caller")]


def test_self_service_low_score_or_silence_goes_to_the_queue() -> None:
    flow, _ = make(SELF_SPEC)
    out = flow.handle(fl.SpeechResult("嗯", kb=(("x", "y", 0.3),)), 1.0)
    assert out == [fl.StopPlay(), fl.PlaySequence(("self_service_no_match",))]
    assert run_until(flow, 10.0) == [fl.Enqueue(), fl.Play("hold_music", loop=True)]
    flow2, _ = make(SELF_SPEC)
    assert run_until(flow2, 13.0) == [fl.PlaySequence(("self_service_no_match",))]


def test_emergency_in_a_script_node_goes_to_the_queue_raised() -> None:
    spec = FlowSpec(
        "t",
        "ask",
        {"ask": SelfServiceNode(next="q"), "q": QueueNode(greeting=None, emergency_priority=True)},
    )
    flow, _ = make(spec)
    out = flow.handle(fl.SpeechResult("着火了", emergency=True), 1.0)
    assert out == [
        fl.StopPlay(),
        fl.Enqueue(),
        fl.RaisePriority("emergency"),
        fl.PlaySequence(("priority_raised",)),
    ]


def test_language_node_sets_the_language_and_goes_on_at_once() -> None:
    spec = single("en", en=LanguageNode(language="en", next="hello"), hello=PlayNode(prompt="greeting", next="queue"))
    flow, out = make(spec)
    assert out == [fl.StartRecording(), fl.SetLanguage("en"), fl.PlaySequence(("greeting",))]
    assert flow.language == "en"
    assert flow.handle(fl.Dtmf("1"), 1.0) == []  # no barge-in
    assert flow.handle(fl.Tick(), 7.5) == [fl.Enqueue(), fl.Play("hold_music", loop=True)]


def test_play_node_with_barge_in_is_skipped_by_a_key() -> None:
    flow, _ = make(MENU)
    assert flow.phase == fl.Phase.PROMPT
    out = flow.handle(fl.Dtmf("5"), 1.0)
    assert out == [fl.StopPlay(), fl.PlaySequence(("language_menu",))]


def test_durations_per_language_are_preferred() -> None:
    spec = single("en", en=LanguageNode(language="en", next="hello"), hello=PlayNode(prompt="goodbye", next="queue"))
    flow = fl.CallFlow(fl.FlowSettings(greeting_s=7.5, spec=spec, durations={"goodbye": 2.0, "en/goodbye": 1.0}))
    flow.handle(fl.Incoming(), 0)
    flow.handle(fl.MediaReady(), 0)
    assert flow.next_deadline() == 1.0


def test_the_menu_flow_end_to_end_to_the_queue() -> None:
    flow, _ = make(MENU)
    flow.handle(fl.Tick(), 7.5)  # welcome over: language menu
    assert flow.handle(fl.Dtmf("1"), 8.0) == [
        fl.StopPlay(),
        fl.SetLanguage("zh-CN"),
        fl.PlaySequence(("menu_main",)),
    ]
    out = flow.handle(fl.Dtmf("1"), 9.0)
    assert out == [fl.StopPlay(), fl.Enqueue(), fl.Play("hold_music", loop=True)]
    assert flow.handle(fl.CallerHungUp(), 20.0) == [fl.Abandon(), fl.Finish(Outcome.ABANDONED_IN_QUEUE, "caller")]


# ---------------------------------------------------------------- hang-ups and the table
@pytest.mark.parametrize(
    ("spec", "keys", "outcome"),
    [
        (MENU_SPEC, "", Outcome.ABANDONED_IN_GREETING),
        (LOOKUP_SPEC, "12", Outcome.ABANDONED_IN_GREETING),
        (SELF_SPEC, "", Outcome.ABANDONED_IN_GREETING),
        (MENU, "", Outcome.ABANDONED_IN_GREETING),
        (MENU_SPEC, "2", Outcome.SELF_SERVED),  # during the goodbye
    ],
)
def test_hangup_in_every_script_node_ends_once(spec: FlowSpec, keys: str, outcome: Outcome) -> None:
    flow, _ = make(spec)
    for key in keys:
        flow.handle(fl.Dtmf(key), 1.0)
    assert flow.handle(fl.CallerHungUp(), 2.0) == [fl.Finish(outcome, "caller")]
    assert flow.handle(fl.CallerHungUp(), 3.0) == []
    assert flow.next_deadline() is None


def test_offer_to_a_call_still_in_a_menu_is_refused() -> None:
    flow, _ = make(MENU_SPEC)
    assert flow.handle(OFFER, 1.0) == [fl.ReportOfferFailed("o1", "call is menu")]


def test_unknown_pair_names_event_and_phase() -> None:
    flow, _ = make(MENU_SPEC)
    with pytest.raises(fl.FlowError, match=r"Incoming.*menu"):
        flow.handle(fl.Incoming(), 1.0)


def test_a_missing_node_is_a_flow_error() -> None:
    with pytest.raises(fl.FlowError, match="no node 'nowhere'"):
        make(FlowSpec("t", "nowhere", {}))


# ---------------------------------------------------------------- property
EVENTS = st.sampled_from(
    [
        fl.Dtmf("0"),
        fl.Dtmf("1"),
        fl.Dtmf("2"),
        fl.Dtmf("3"),
        fl.Dtmf("9"),
        fl.Dtmf("#"),
        fl.Dtmf("*"),
        fl.Tick(),
        fl.MediaReady(),
        fl.SpeechResult("公积金", kb=(("housing", "fund", 0.9),)),
        fl.SpeechResult("嗯", final=False),
        fl.SpeechResult("着火了", emergency=True),
        fl.SpeechResult("别的", kb=(("x", "y", 0.1),)),
        fl.PositionReport(3, 120.0),
        fl.PositionReport(None, None),
        fl.LookupResult("123456", "handling"),
        fl.LookupResult("123456", None),
        fl.OfferReceived("o1", "a1", "sip:a1@h"),
        fl.OfferReceived("o2", "a2", "sip:a2@h"),
        fl.AgentAnswered("o1"),
        fl.AgentFailed("o1", "busy"),
        fl.AgentHungUp("o1"),
        fl.AgentAnswered("o2"),
    ]
)


@settings(max_examples=400, deadline=None)
@given(st.sampled_from([DEFAULT, MENU]), st.lists(st.tuples(EVENTS, st.floats(0, 20)), max_size=40))
def test_any_events_on_the_shipped_flows_end_in_exactly_one_finish(
    spec: FlowSpec, steps: list[tuple[fl.Event, float]]
) -> None:
    """No FlowError whatever comes; timers never stay due; a caller hang-up ends it once;
    a requested callback never abandons the queue entry."""
    flow, commands = make(spec)
    now = 0.0
    for event, dt in steps:
        now += dt
        commands += run_until(flow, now)
        commands += flow.handle(event, now)
        commands += flow.handle(fl.Tick(), now)
        deadline = flow.next_deadline()
        assert deadline is None or deadline > now  # the worker's timer would spin otherwise
    commands += flow.handle(fl.CallerHungUp(), now + 1)
    finishes = [c for c in commands if isinstance(c, fl.Finish)]
    assert len(finishes) == 1
    assert flow.phase == fl.Phase.ENDED and flow.next_deadline() is None
    if finishes[0].outcome == Outcome.CALLBACK_REQUESTED:
        assert fl.Abandon() not in commands and fl.RequestCallback() in commands
    if fl.Enqueue() in commands and finishes[0].outcome != Outcome.ANSWERED:
        assert (fl.Abandon() in commands) != (finishes[0].outcome == Outcome.CALLBACK_REQUESTED)
    assert commands.count(fl.Enqueue()) <= 1
    assert len([c for c in commands if isinstance(c, fl.RaisePriority)]) <= 2


def test_self_service_plays_the_answer_named_by_kb_prompts_and_skips_entries_without_audio() -> None:
    settings = fl.FlowSettings(greeting_s=7.5, spec=SELF_SPEC, durations=DURATIONS, kb_prompts={"b": "kb_shebao_b"})
    flow = fl.CallFlow(settings)
    flow.handle(fl.Incoming(), 0)
    flow.handle(fl.MediaReady(), 0)
    flow.handle(fl.Tick(), 3.0)
    out = flow.handle(fl.SpeechResult("社保卡丢了", kb=(("社保", "a", 0.9), ("社保", "b", 0.7), ("x", "c", 0.2))), 4.0)
    assert out == [fl.PlaySequence(("kb_shebao_b",))]
