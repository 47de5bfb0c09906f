"""A 回访 (satisfaction survey) call, sans-IO: the hotline phones the caller after the unit replied.

Rules of this module (001 第十一条(八): the caller rates the service process and the result):
- The caller's number is dialled; not answered within ring_timeout_s, busy or unreachable: the
  attempt ends as not reached (Finish with status no-answer / busy / unreachable), and the
  scheduler decides whether another attempt follows.
- Answered: the intro and the first question are played; each question takes one key, 1 满意,
  2 基本满意, 3 不满意, or a spoken answer (`rating_from_text` on what the speech service heard
  since the question was asked: it sends the whole transcript each time).
  A key pressed while a prompt plays answers the question at once (barge-in). Any other key, or
  nothing within answer_timeout_s after the question ended (prompt lengths are known, so the
  end is computed, not reported), replays the question after
  "invalid" / "timeout"; after `retries` replays the call ends as incomplete.
- Both answered: the thanks prompt plays, then the call is hung up (HANGUP_GRACE_S after it).
  The caller hanging up at any moment ends the attempt: completed once both answers are in,
  incomplete (with what was answered) before that.
- Every path ends in exactly one Finish; a (phase, event) pair not in the table raises
  FlowError naming both. Time is passed in (`now`, seconds, monotonic).
"""

from __future__ import annotations

import dataclasses
import enum
import re
from collections.abc import Callable

from hotline.ivr.flow import FlowError

HANGUP_GRACE_S = 1.0  # after the last prompt, so that its end reaches the caller before the BYE

INTRO_PROMPT = "survey_intro"
QUESTIONS = (("process", "survey_process"), ("result", "survey_result"))
INVALID_PROMPT = "menu_invalid"
TIMEOUT_PROMPT = "menu_timeout"
THANKS_PROMPT = "survey_thanks"


class SurveyPhase(enum.StrEnum):
    NEW = "new"
    RINGING = "ringing"
    ASKING = "asking"
    THANKING = "thanking"
    ENDED = "ended"


class SurveyStatus(enum.StrEnum):
    COMPLETED = "completed"  # both ratings given
    INCOMPLETE = "incomplete"  # answered, but not both ratings (hung up, no valid key)
    NO_ANSWER = "no-answer"
    BUSY = "busy"
    UNREACHABLE = "unreachable"

    @property
    def reached(self) -> bool:
        return self in (SurveyStatus.COMPLETED, SurveyStatus.INCOMPLETE)


# ---------------------------------------------------------------- events
@dataclasses.dataclass(frozen=True, slots=True)
class Start:
    pass


@dataclasses.dataclass(frozen=True, slots=True)
class Answered:
    pass


@dataclasses.dataclass(frozen=True, slots=True)
class Gone:
    """The caller's leg failed (before answering: busy, no-answer, unreachable) or ended."""

    reason: str


@dataclasses.dataclass(frozen=True, slots=True)
class Digit:
    digit: str


@dataclasses.dataclass(frozen=True, slots=True)
class Spoken:
    """What the speech service heard the caller say during the question."""

    text: str


@dataclasses.dataclass(frozen=True, slots=True)
class Tick:
    pass


Event = Start | Answered | Gone | Digit | Spoken | Tick


# ---------------------------------------------------------------- commands
@dataclasses.dataclass(frozen=True, slots=True)
class Dial:
    pass


@dataclasses.dataclass(frozen=True, slots=True)
class Play:
    prompts: tuple[str, ...]  # played one after another (their lengths come from prompt_seconds)


@dataclasses.dataclass(frozen=True, slots=True)
class StopPlay:
    pass


@dataclasses.dataclass(frozen=True, slots=True)
class Hangup:
    pass


@dataclasses.dataclass(frozen=True, slots=True)
class Finish:
    status: SurveyStatus
    process: int | None  # 1 满意, 2 基本满意, 3 不满意; None: not given
    result: int | None
    hangup_by: str
    reason: str = ""


Command = Dial | Play | StopPlay | Hangup | Finish


# 满意 with its qualifier. The recogniser (faster-whisper base on 8 kHz calls) often hears 满意 as
# 买意 or 蛮意 (measured on tests/data/speech: "这个结果我不买意"), so the rating reads the
# word by its sound: 满/蛮/买/曼/慢 + 意/义/易, after 基本 (2) or 不/不太 (3) or alone (1).
_SATISFACTION = re.compile(r"(基本|不太|不)?[满蛮买曼慢][意义易]")
_DIGIT_WORDS = {"一": 1, "1": 1, "幺": 1, "二": 2, "2": 2, "三": 3, "3": 3}


def _after(before: str, text: str) -> str:
    """What `text` adds to `before` (a recogniser may revise earlier words: then what follows
    their common beginning)."""
    common = 0
    for a, b in zip(before, text, strict=False):
        if a != b:
            break
        common += 1
    return text[common:]


def rating_from_text(text: str) -> int | None:
    """A spoken answer as a rating: "不满意" 3, "基本满意" 2, "满意" 1 (and the recogniser's
    near-sounds of 满意, see _SATISFACTION), or 一/二/三 said alone ("按一" too); None if it is
    none of these or says two different things."""
    t = re.sub(r"[\s，。！？,.!?、：:]", "", text)
    found = {2 if q == "基本" else 3 if q else 1 for q in (m.group(1) for m in _SATISFACTION.finditer(t))}
    if not found:
        word = t.removeprefix("按")
        if word in _DIGIT_WORDS:
            found.add(_DIGIT_WORDS[word])
    return found.pop() if len(found) == 1 else None


@dataclasses.dataclass(frozen=True, slots=True)
class SurveySettings:
    ring_timeout_s: float = 30.0
    answer_timeout_s: float = 8.0  # after the question ended
    retries: int = 2  # replays of a question after an invalid key or silence


class SurveyFlow:
    """One survey attempt. `handle(event, now)` returns the commands to carry out, in order."""

    def __init__(self, settings: SurveySettings, prompt_seconds: Callable[[str], float]) -> None:
        self.settings = settings
        self.prompt_seconds = prompt_seconds
        self.phase = SurveyPhase.NEW
        self.deadline: float | None = None
        self.question = 0
        self.replays = 0
        self.ratings: dict[str, int] = {}
        self.prompt_end = 0.0  # when the prompts being played end
        self.heard = ""  # the caller's words so far (the speech service sends all of them each time)
        self.heard_before = ""  # ... when the current question was asked: only what follows answers it
        self._table: dict[tuple[SurveyPhase, type], Callable[[Event, float], list[Command]]] = {
            (SurveyPhase.NEW, Start): self._on_start,
            (SurveyPhase.RINGING, Answered): self._on_answered,
            (SurveyPhase.RINGING, Gone): self._on_not_reached,
            (SurveyPhase.RINGING, Tick): self._on_ring_tick,
            (SurveyPhase.RINGING, Digit): self._nothing,
            (SurveyPhase.RINGING, Spoken): self._nothing,
            (SurveyPhase.ASKING, Digit): self._on_digit,
            (SurveyPhase.ASKING, Spoken): self._on_spoken,
            (SurveyPhase.ASKING, Tick): self._on_answer_tick,
            (SurveyPhase.ASKING, Gone): self._on_hung_up,
            (SurveyPhase.THANKING, Tick): self._on_thanks_tick,
            (SurveyPhase.THANKING, Gone): self._on_hung_up,
            (SurveyPhase.THANKING, Digit): self._nothing,
            (SurveyPhase.THANKING, Spoken): self._nothing,
        }
        for event in (Answered, Gone, Digit, Spoken, Tick):
            self._table[(SurveyPhase.ENDED, event)] = self._nothing

    def handle(self, event: Event, now: float) -> list[Command]:
        handler = self._table.get((self.phase, type(event)))
        if handler is None:
            raise FlowError(f"no transition for event {type(event).__name__} in survey phase {self.phase}")
        return handler(event, now)

    def next_deadline(self) -> float | None:
        return self.deadline

    # ------------------------------------------------------------ helpers
    def _nothing(self, event: Event, now: float) -> list[Command]:
        return []

    def _end(self, status: SurveyStatus, hangup_by: str, reason: str = "") -> Finish:
        self.phase = SurveyPhase.ENDED
        self.deadline = None
        return Finish(status, self.ratings.get("process"), self.ratings.get("result"), hangup_by, reason)

    def _ask(self, now: float, before: tuple[str, ...] = ()) -> list[Command]:
        """Plays `before` then the current question; the answer timer starts when it ends."""
        self.phase = SurveyPhase.ASKING
        self.heard_before = self.heard
        prompts = (*before, QUESTIONS[self.question][1])
        self.prompt_end = now + sum(self.prompt_seconds(p) for p in prompts)
        self.deadline = self.prompt_end + self.settings.answer_timeout_s
        return [Play(prompts)]

    def _answer(self, value: int, now: float) -> list[Command]:
        name = QUESTIONS[self.question][0]
        self.ratings[name] = value
        self.question += 1
        self.replays = 0
        stop: list[Command] = [StopPlay()] if now < self.prompt_end else []
        if self.question < len(QUESTIONS):
            return [*stop, *self._ask(now)]
        self.phase = SurveyPhase.THANKING
        self.prompt_end = now + self.prompt_seconds(THANKS_PROMPT)
        self.deadline = self.prompt_end + HANGUP_GRACE_S
        return [*stop, Play((THANKS_PROMPT,))]

    def _replay(self, now: float, why: str) -> list[Command]:
        if self.replays >= self.settings.retries:
            return [StopPlay(), Hangup(), self._end(SurveyStatus.INCOMPLETE, "system", f"no valid answer ({why})")]
        self.replays += 1
        stop: list[Command] = [StopPlay()] if now < self.prompt_end else []
        return [*stop, *self._ask(now, (INVALID_PROMPT if why == "invalid" else TIMEOUT_PROMPT,))]

    # ------------------------------------------------------------ handlers
    def _on_start(self, event: Event, now: float) -> list[Command]:
        self.phase = SurveyPhase.RINGING
        self.deadline = now + self.settings.ring_timeout_s
        return [Dial()]

    def _on_answered(self, event: Event, now: float) -> list[Command]:
        return self._ask(now, (INTRO_PROMPT,))

    def _on_not_reached(self, event: Event, now: float) -> list[Command]:
        assert isinstance(event, Gone)
        status = {"busy": SurveyStatus.BUSY, "no-answer": SurveyStatus.NO_ANSWER}.get(
            event.reason, SurveyStatus.UNREACHABLE
        )
        return [self._end(status, "caller", event.reason)]

    def _on_ring_tick(self, event: Event, now: float) -> list[Command]:
        if self.deadline is None or now < self.deadline:
            return []
        return [Hangup(), self._end(SurveyStatus.NO_ANSWER, "system", "no-answer")]

    def _on_digit(self, event: Event, now: float) -> list[Command]:
        assert isinstance(event, Digit)
        if event.digit in ("1", "2", "3"):
            return self._answer(int(event.digit), now)
        return self._replay(now, "invalid")

    def _on_spoken(self, event: Event, now: float) -> list[Command]:
        assert isinstance(event, Spoken)
        self.heard = event.text
        value = rating_from_text(_after(self.heard_before, event.text))
        return [] if value is None else self._answer(value, now)

    def _on_answer_tick(self, event: Event, now: float) -> list[Command]:
        if self.deadline is None or now < self.deadline:
            return []
        return self._replay(now, "timeout")

    def _on_thanks_tick(self, event: Event, now: float) -> list[Command]:
        if self.deadline is None or now < self.deadline:
            return []
        return [Hangup(), self._end(SurveyStatus.COMPLETED, "system")]

    def _on_hung_up(self, event: Event, now: float) -> list[Command]:
        done = len(self.ratings) == len(QUESTIONS)
        return [self._end(SurveyStatus.COMPLETED if done else SurveyStatus.INCOMPLETE, "caller", "hangup")]
