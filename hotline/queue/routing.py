"""Which waiting call goes to which available agent: skills, widening and strategies, sans-IO.

Rules of this module (lua/dispatch.lua carries out the same rules inside Redis; the property
test checks the two against each other, as agent_state.py is checked against the scripts):
- A call needs every skill of its queue and every skill it asked for (enqueue(skills=...)).
  An agent has skills with levels (Agent.skills; 0 or absent: he does not have it).
- How good the agent must be widens with the call's wait (now - arrival, so a callback counts
  from its original arrival): the policy's steps [(after_s, min_level), ...] (after_s from 0,
  increasing; levels not increasing), e.g. [(0, 3), (30, 2), (60, 1), (120, 0)]. The call
  accepts an agent whose level in each needed skill is at least the min level of the last step
  reached; min level 0 accepts any agent of the queue. Default [(0, 1)]: has every needed skill,
  never widened. A call with no needed skill accepts any agent.
- Calls are taken in queue order (priority band, then arrival, then call id); a callback before
  its retry time is passed over. The first call that has an eligible available agent is served:
  a call needing a rare skill does not hold up the calls behind it, and a lower band is served
  only when no call of a higher band has an eligible agent (so never ahead of a higher-band call
  the same agent could take). Within a band the same holds for earlier arrivals.
- Among the eligible agents of that call the strategy picks one; ties go to the longest idle
  (then the smaller agent id):
    longest_idle     the longest idle (the default; before skills, the only one)
    round_robin      the next agent id after the last agent offered a call (in code-point
                     order, wrapping around); the memory is kept in Redis (survives restarts)
    fewest_calls     the fewest calls answered since his login
    least_talk_time  the least talk time since his login (what call_finished accumulated)
    skills_weighted  the highest sum of his levels over the needed skills
- ring_all (every phone rings, the first to answer wins) is not a strategy: it needs several
  live offers of one call, against the rule that a call is offered to one agent at a time
  (see docs/architecture.md).
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

from hotline.core.errors import InvalidRequest

MAX_LEVEL: Final = 100
MAX_SKILL_CHARS: Final = 64
MAX_SKILLS: Final = 32  # per agent or call: the eligibility test runs per (call, agent) in Lua
DEFAULT_STEPS: Final[tuple[tuple[float, int], ...]] = ((0, 1),)


class Strategy(enum.StrEnum):
    LONGEST_IDLE = "longest_idle"
    ROUND_ROBIN = "round_robin"
    FEWEST_CALLS = "fewest_calls"
    LEAST_TALK_TIME = "least_talk_time"
    SKILLS_WEIGHTED = "skills_weighted"


def check_strategy(value: Any) -> Strategy:
    if value == "ring_all":
        raise InvalidRequest(
            "strategy ring_all is not supported: a call is offered to one agent at a time; use "
            "longest_idle with a short ring timeout (a no-answer goes straight to the next agent)"
        )
    try:
        return Strategy(value)
    except ValueError:
        raise InvalidRequest(f"strategy must be one of {[s.value for s in Strategy]}, got {value!r}") from None


def check_skill(name: Any) -> str:
    """A skill name: printable, no whitespace, at most MAX_SKILL_CHARS ("language:en", "投诉")."""
    if (
        not isinstance(name, str)
        or not name
        or len(name) > MAX_SKILL_CHARS
        or any(not ch.isprintable() or ch.isspace() for ch in name)
    ):
        raise InvalidRequest(f"a skill is a printable name without spaces, at most {MAX_SKILL_CHARS} chars: {name!r}")
    return name


def check_skills(names: Iterable[Any]) -> tuple[str, ...]:
    """Required skills: sorted, each once."""
    if isinstance(names, str):
        raise InvalidRequest(f"skills must be a list of names, got the string {names!r}")
    result = tuple(sorted({check_skill(name) for name in names}))
    if len(result) > MAX_SKILLS:
        raise InvalidRequest(f"at most {MAX_SKILLS} skills, got {len(result)}")
    return result


def check_levels(skills: Mapping[Any, Any]) -> dict[str, int]:
    """An agent's skills: name -> level in 0..MAX_LEVEL."""
    if not isinstance(skills, Mapping):
        raise InvalidRequest(f"an agent's skills map names to levels, got {skills!r}")
    if len(skills) > MAX_SKILLS:
        raise InvalidRequest(f"at most {MAX_SKILLS} skills, got {len(skills)}")
    result: dict[str, int] = {}
    for name, level in skills.items():
        if isinstance(level, bool) or not isinstance(level, int) or not 0 <= level <= MAX_LEVEL:
            raise InvalidRequest(f"skill {name!r}: level must be an integer in 0..{MAX_LEVEL}, got {level!r}")
        result[check_skill(name)] = level
    return result


def check_steps(steps: Iterable[Any]) -> tuple[tuple[float, int], ...]:
    """Widening steps: ((after_s, min_level), ...), after_s from 0 and increasing, levels in
    0..MAX_LEVEL and not increasing (a waiting call only ever accepts more agents)."""
    result: list[tuple[float, int]] = []
    for step in steps:
        try:
            after_s, level = step
        except (TypeError, ValueError):
            raise InvalidRequest(f"a skill step is (after_s, min_level), got {step!r}") from None
        if isinstance(after_s, bool) or not isinstance(after_s, int | float) or not 0 <= after_s <= 86_400:
            raise InvalidRequest(f"a skill step's after_s must be 0..86400 s, got {after_s!r}")
        if isinstance(level, bool) or not isinstance(level, int) or not 0 <= level <= MAX_LEVEL:
            raise InvalidRequest(f"a skill step's min_level must be an integer in 0..{MAX_LEVEL}, got {level!r}")
        if result and (after_s <= result[-1][0] or level > result[-1][1]):
            raise InvalidRequest(f"skill steps must have increasing after_s and non-increasing levels: {steps!r}")
        result.append((after_s, level))
    if not result or result[0][0] != 0:
        raise InvalidRequest(f"skill steps must start at after_s 0, got {result!r}")
    return tuple(result)


def steps_ms(steps: Sequence[tuple[float, int]]) -> tuple[tuple[int, int], ...]:
    """The steps with after in whole ms, as the Lua scripts get them."""
    return tuple((round(after_s * 1000), level) for after_s, level in steps)


def min_level(steps: Sequence[tuple[int, int]], wait_ms: int) -> int:
    """The level a call that waited wait_ms (ms steps; a negative wait counts as 0) accepts."""
    level = steps[0][1]
    for after_ms, step_level in steps:
        if wait_ms >= after_ms:
            level = step_level
    return level


def eligible(agent_skills: Mapping[str, int], needed: Iterable[str], level: int) -> bool:
    return level <= 0 or all(agent_skills.get(skill, 0) >= level for skill in needed)


@dataclasses.dataclass(frozen=True, slots=True)
class Candidate:
    """An available agent as routing sees him."""

    agent_id: str
    idle_since_ms: int
    skills: Mapping[str, int] = dataclasses.field(default_factory=dict)
    calls_answered: int = 0
    talk_ms: int = 0


@dataclasses.dataclass(frozen=True, slots=True)
class Waiting:
    """A waiting call as routing sees it."""

    call_id: str
    arrival_ms: int
    skills: tuple[str, ...] = ()
    not_before_ms: int = 0


def best_agent(
    agents: Sequence[Candidate],
    needed: Sequence[str],
    level: int,
    strategy: Strategy,
    last_offered: str | None,
) -> Candidate | None:
    """The agent the strategy picks among those eligible (agents: any order)."""
    pool = sorted((a for a in agents if eligible(a.skills, needed, level)), key=lambda a: (a.idle_since_ms, a.agent_id))
    if not pool:
        return None
    match strategy:
        case Strategy.LONGEST_IDLE:
            return pool[0]
        case Strategy.ROUND_ROBIN:
            after = [a for a in pool if last_offered is not None and a.agent_id > last_offered]
            return min(after or pool, key=lambda a: a.agent_id)
        case Strategy.FEWEST_CALLS:
            return min(pool, key=lambda a: a.calls_answered)  # min keeps the first of equals
        case Strategy.LEAST_TALK_TIME:
            return min(pool, key=lambda a: a.talk_ms)
        case Strategy.SKILLS_WEIGHTED:
            return max(pool, key=lambda a: sum(a.skills.get(s, 0) for s in needed))  # max keeps the first


def choose(
    calls: Sequence[Waiting],
    agents: Sequence[Candidate],
    *,
    strategy: Strategy,
    required: Sequence[str],
    steps: Sequence[tuple[int, int]],
    now_ms: int,
    last_offered: str | None = None,
) -> tuple[Waiting, Candidate] | None:
    """The (call, agent) the next offer goes to, or None. `calls` in queue order; `steps` in ms."""
    for call in calls:
        if call.not_before_ms > now_ms:
            continue
        needed = sorted(set(required) | set(call.skills))
        agent = best_agent(agents, needed, min_level(steps, now_ms - call.arrival_ms), strategy, last_offered)
        if agent is not None:
            return call, agent
    return None
