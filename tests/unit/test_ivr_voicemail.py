"""Overflow to voicemail in the caller's flow (sans-IO): out of the queue, the prompt (or its
fallback before `make prompts` rendered it), the message for at most max_s ("#" ends it), then
goodbye and hang-up; a VOICEMAIL outcome however it ends; never during the greeting or an offer."""

from __future__ import annotations

from hotline.core.model import Outcome
from hotline.ivr import flow as fl

GREETING = 7.5
OFFER = fl.OfferReceived("o1", "1001", "sip:1001@127.0.0.1:5060")


def waiting(**settings: object) -> fl.CallFlow:
    flow = fl.CallFlow(fl.FlowSettings(greeting_s=GREETING, **settings))  # type: ignore[arg-type]
    flow.handle(fl.Incoming(), 0.0)
    flow.handle(fl.MediaReady(), 0.0)
    assert flow.handle(fl.Overflow("voicemail"), 3.0) == []  # the greeting is never cut
    flow.handle(fl.Tick(), GREETING)
    return flow


def test_the_caller_leaves_a_message_then_hears_goodbye() -> None:
    flow = waiting(durations={"voicemail": 4.0, "goodbye": 2.0}, voicemail_max_s=60.0)
    out = flow.handle(fl.Overflow("voicemail"), 30.0)
    assert out == [fl.StopPlay(), fl.Abandon(), fl.PlaySequence(("voicemail",))]
    assert flow.phase == fl.Phase.VOICEMAIL and not flow.in_queue
    assert flow.handle(fl.Overflow("voicemail"), 31.0) == []  # sent again before it took effect
    assert flow.handle(OFFER, 32.0) == [fl.ReportOfferFailed("o1", "call is voicemail")]
    assert flow.next_deadline() == 34.0
    assert flow.handle(fl.Tick(), 34.0) == []  # the prompt is over: his message
    assert flow.next_deadline() == 94.0
    assert flow.handle(fl.Tick(), 94.0) == [fl.PlaySequence(("goodbye",))]
    deadline = flow.next_deadline()
    assert deadline is not None and deadline >= 96.0
    assert flow.handle(fl.Tick(), deadline) == [fl.HangupCaller(), fl.Finish(Outcome.VOICEMAIL, "system")]


def test_the_control_planes_max_s_wins_and_hash_ends_the_message() -> None:
    flow = waiting(durations={"zh-CN/voicemail": 4.0})
    flow.handle(fl.Overflow("voicemail", max_s=20.0), 30.0)
    assert flow.handle(fl.Dtmf("#"), 32.0) == []  # during the prompt: kept, nothing else
    flow.handle(fl.Tick(), 34.0)
    assert flow.next_deadline() == 54.0
    assert flow.handle(fl.Dtmf("#"), 40.0) == [fl.PlaySequence(("goodbye",))]
    assert flow.digits.endswith("##")


def test_without_the_rendered_prompt_the_fallback_plays() -> None:
    flow = waiting()  # no durations: "voicemail" is not in the library yet
    out = flow.handle(fl.Overflow("voicemail"), 30.0)
    assert out[-1] == fl.PlaySequence(("self_service_ask",))


def test_hanging_up_during_the_message_is_a_voicemail_without_abandon() -> None:
    flow = waiting(durations={"voicemail": 4.0})
    flow.handle(fl.Overflow("voicemail"), 30.0)
    flow.handle(fl.Tick(), 34.0)
    assert flow.handle(fl.CallerHungUp(), 50.0) == [fl.Finish(Outcome.VOICEMAIL, "caller")]
    assert flow.phase == fl.Phase.ENDED and flow.next_deadline() is None


def test_an_agent_being_dialled_is_better_than_voicemail() -> None:
    flow = waiting()
    flow.handle(OFFER, 20.0)
    assert flow.handle(fl.Overflow("voicemail"), 21.0) == []
    assert flow.phase == fl.Phase.OFFERING
