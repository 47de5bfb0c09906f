"""The 回访 survey call's flow (hotline/ivr/survey.py) and the scheduler's hours (ticket_jobs)."""

from __future__ import annotations

from datetime import UTC, datetime, time

import pytest

from hotline.ivr import survey as sv
from hotline.ivr.flow import FlowError
from hotline.runtime.ticket_jobs import DEFAULT_HOURS, next_allowed, parse_hours
from hotline.tickets.workdays import SHANGHAI

LENGTHS = {"survey_intro": 3.0, "survey_process": 5.0, "survey_result": 5.0, "survey_thanks": 2.0}
LENGTHS |= {"menu_invalid": 2.0, "menu_timeout": 1.5}


def flow(**settings: float) -> sv.SurveyFlow:
    return sv.SurveyFlow(sv.SurveySettings(**settings), lambda name: LENGTHS[name])  # type: ignore[arg-type]


def answered(f: sv.SurveyFlow, now: float = 0.0) -> list[sv.Command]:
    assert f.handle(sv.Start(), now) == [sv.Dial()]
    return f.handle(sv.Answered(), now + 2)


def test_both_keys_then_thanks_and_hang_up() -> None:
    f = flow()
    assert answered(f) == [sv.Play(("survey_intro", "survey_process"))]
    assert f.next_deadline() == pytest.approx(2 + 3 + 5 + 8)
    # pressed after the question ended: no StopPlay, the second question follows
    assert f.handle(sv.Digit("1"), 12.0) == [sv.Play(("survey_result",))]
    # pressed while the second question plays (barge-in): it is stopped
    assert f.handle(sv.Digit("2"), 13.0) == [sv.StopPlay(), sv.Play(("survey_thanks",))]
    assert f.handle(sv.Tick(), 15.9) == []
    done = f.handle(sv.Tick(), 13.0 + 2.0 + sv.HANGUP_GRACE_S)
    assert done == [sv.Hangup(), sv.Finish(sv.SurveyStatus.COMPLETED, 1, 2, "system")]
    assert f.phase == sv.SurveyPhase.ENDED
    assert f.handle(sv.Gone("hangup"), 20.0) == []  # the BYE's own event changes nothing


def test_a_wrong_key_asks_again_and_then_gives_up() -> None:
    f = flow(retries=1)
    answered(f)
    assert f.handle(sv.Digit("7"), 12.0) == [sv.Play(("menu_invalid", "survey_process"))]
    assert f.handle(sv.Digit("9"), 13.0) == [
        sv.StopPlay(),
        sv.Hangup(),
        sv.Finish(sv.SurveyStatus.INCOMPLETE, None, None, "system", "no valid answer (invalid)"),
    ]


def test_silence_asks_again_with_the_timeout_prompt() -> None:
    f = flow(answer_timeout_s=4.0, retries=2)
    answered(f)
    end = 2 + 3 + 5 + 4
    assert f.handle(sv.Tick(), end - 0.01) == []
    assert f.handle(sv.Tick(), end) == [sv.Play(("menu_timeout", "survey_process"))]
    again = end + 1.5 + 5 + 4
    assert f.next_deadline() == pytest.approx(again)
    assert f.handle(sv.Digit("3"), again - 1) == [sv.Play(("survey_result",))]
    assert f.ratings == {"process": 3}


def test_hanging_up_before_the_second_answer_is_incomplete_with_the_first() -> None:
    f = flow()
    answered(f)
    f.handle(sv.Digit("1"), 12.0)
    assert f.handle(sv.Gone("hangup"), 14.0) == [sv.Finish(sv.SurveyStatus.INCOMPLETE, 1, None, "caller", "hangup")]


def test_hanging_up_during_the_thanks_keeps_both_ratings() -> None:
    f = flow()
    answered(f)
    f.handle(sv.Digit("2"), 12.0)
    f.handle(sv.Digit("3"), 20.0)
    assert f.handle(sv.Gone("hangup"), 20.5) == [sv.Finish(sv.SurveyStatus.COMPLETED, 2, 3, "caller", "hangup")]


@pytest.mark.parametrize(
    ("reason", "status"),
    [
        ("busy", sv.SurveyStatus.BUSY),
        ("no-answer", sv.SurveyStatus.NO_ANSWER),
        ("failed-503", sv.SurveyStatus.UNREACHABLE),
    ],
)
def test_not_reached(reason: str, status: sv.SurveyStatus) -> None:
    f = flow()
    f.handle(sv.Start(), 0.0)
    assert f.handle(sv.Gone(reason), 3.0) == [sv.Finish(status, None, None, "caller", reason)]
    assert not status.reached


def test_ringing_too_long_is_no_answer() -> None:
    f = flow(ring_timeout_s=10.0)
    f.handle(sv.Start(), 0.0)
    assert f.handle(sv.Digit("1"), 1.0) == []  # early media keys mean nothing
    assert f.handle(sv.Tick(), 10.0) == [
        sv.Hangup(),
        sv.Finish(sv.SurveyStatus.NO_ANSWER, None, None, "system", "no-answer"),
    ]


def test_spoken_answers() -> None:
    f = flow()
    answered(f)
    assert f.handle(sv.Spoken("嗯"), 11.0) == []  # not an answer: keep waiting
    assert f.handle(sv.Spoken("基本满意吧"), 12.0) == [sv.Play(("survey_result",))]
    f.handle(sv.Spoken("不满意"), 13.0)
    assert f.ratings == {"process": 2, "result": 3}


@pytest.mark.parametrize(
    ("text", "rating"),
    [
        ("满意", 1),
        ("非常满意。", 1),
        ("基本满意", 2),
        ("不满意", 3),
        ("不太满意", 3),
        ("三", 3),
        ("按1", 1),
        ("这个结果我不买意。", 3),  # how the recogniser hears 不满意 on our clips
        ("对半理过程,我很满意。", 1),
        ("满意，不满意", None),  # says two things
        ("我再想想", None),
        ("", None),
    ],
)
def test_rating_from_text(text: str, rating: int | None) -> None:
    assert sv.rating_from_text(text) == rating


def test_an_event_the_phase_does_not_take_names_both() -> None:
    f = flow()
    with pytest.raises(FlowError, match=r"Digit.*new"):
        f.handle(sv.Digit("1"), 0.0)


def sh(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=SHANGHAI)


@pytest.mark.parametrize(
    ("now", "allowed"),
    [
        ("2025-10-09 10:30", "2025-10-09 10:30"),  # inside the morning
        ("2025-10-09 08:59", "2025-10-09 09:00"),
        ("2025-10-09 12:00", "2025-10-09 14:00"),  # the window's end is outside it
        ("2025-10-09 19:59", "2025-10-09 19:59"),
        ("2025-10-09 20:00", "2025-10-10 09:00"),
        ("2025-10-09 23:30", "2025-10-10 09:00"),
    ],
)
def test_next_allowed_in_shanghai_time(now: str, allowed: str) -> None:
    got = next_allowed(sh(now).astimezone(UTC), DEFAULT_HOURS)
    assert got == sh(allowed)
    assert got.tzinfo == UTC


def test_parse_hours() -> None:
    assert parse_hours(["14:00-20:00", "09:00-12:00"]) == ((time(9), time(12)), (time(14), time(20)))
    for bad in (["9-12:00"], ["12:00-09:00"], ["0900"], []):
        with pytest.raises(ValueError, match="survey hours"):
            parse_hours(bad)


def test_spoken_answers_count_only_what_was_said_after_the_question() -> None:
    """The speech service sends the whole transcript each time: "满意" said for the first
    question must not answer the second, and a revision of earlier words is tolerated."""
    f = flow()
    answered(f)
    assert f.handle(sv.Spoken("满"), 11.0) == []
    assert f.handle(sv.Spoken("满意"), 12.0) == [sv.Play(("survey_result",))]
    assert f.handle(sv.Spoken("满意"), 13.0) == []  # the same words again: no answer yet
    assert f.handle(sv.Spoken("满意。不满意"), 19.0) == [sv.Play(("survey_thanks",))]
    assert f.ratings == {"process": 1, "result": 3}
