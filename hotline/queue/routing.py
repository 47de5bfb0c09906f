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
- Several queues sharing the agents (choose_across): the calls of all queues are taken in
  dispatch_order (priority, then arrival, then call id, whatever the queue), so an agent who
  serves several queues gets the longest-waiting call he is eligible for; each call is judged
  by its own queue's QueueRules (required skills, steps, strategy).
- Among the eligible agents of that call the strategy picks one; ties go to the longest idle
  (then the smaller agent id):
    longest_idle     the longest idle (the default; before skills, the only one)
    round_robin      the next agent id after the last agent offered a call (in code-point
                     order, wrapping around); the memory is kept in Redis (survives restarts)
    fewest_calls     the fewest calls answered since his login
    least_talk_time  the least talk time since his login (what call_finished accumulated)
    skills_weighted  the highest sum of his levels over the needed skills
    ring_all         every eligible available agent at once (ring_group, longest idle first,
                     at most RING_LIMIT); the first to answer takes the call. A callback entry
                     rings one agent (the longest idle): its worker dials the agent first.
- ring_all's invariant: no call is connected to two agents, and an agent is in at most one
  offer (the group's agents are each RESERVED with their own offer; the first answer releases
  the others in the same script; an offer that fails leaves the others ringing, and the call
  goes back to its place when the last one has failed).
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
    RING_ALL = "ring_all"


RING_LIMIT: Final = 32  # agents rung at once for one call (lua/dispatch.lua)


def check_strategy(value: Any) -> Strategy:
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
    queue: str = ""  # "" = the only queue (choose); a key of choose_across's rules
    priority: int = 0


@dataclasses.dataclass(frozen=True, slots=True)
class QueueRules:
    """How one queue routes: its strategy, required skills and widening steps (in ms)."""

    strategy: Strategy
    required: tuple[str, ...] = ()
    steps: tuple[tuple[int, int], ...] = ((0, 1),)


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
        case Strategy.LONGEST_IDLE | Strategy.RING_ALL:
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


def ring_group(agents: Sequence[Candidate], needed: Sequence[str], level: int) -> list[Candidate]:
    """The agents a ring_all call rings: every eligible one, longest idle first, RING_LIMIT at most."""
    pool = sorted((a for a in agents if eligible(a.skills, needed, level)), key=lambda a: (a.idle_since_ms, a.agent_id))
    return pool[:RING_LIMIT]


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
    rules = QueueRules(strategy, tuple(required), tuple(steps))
    return choose_across([dataclasses.replace(c, queue="") for c in calls], agents, {"": rules}, now_ms, last_offered)


def dispatch_order(calls: Iterable[Waiting]) -> list[Waiting]:
    """Calls of several queues in the order dispatch looks at them: priority (highest first),
    then arrival, then call id, whatever their queue. Within one queue that is its queue order."""
    return sorted(calls, key=lambda c: (-c.priority, c.arrival_ms, c.call_id.encode()))


def choose_across(
    calls: Sequence[Waiting],
    agents: Sequence[Candidate],
    rules: Mapping[str, QueueRules],
    now_ms: int,
    last_offered: str | None = None,
) -> tuple[Waiting, Candidate] | None:
    """The (call, agent) the next offer goes to when several queues share the agents, or None.

    `calls` in dispatch order (dispatch_order): an agent eligible for several queues takes the
    call of the highest priority that has waited longest among them. Each call is judged by
    the rules of its own queue (required skills, widening, strategy)."""
    for call in calls:
        if call.not_before_ms > now_ms:
            continue
        rule = rules[call.queue]
        needed = sorted(set(rule.required) | set(call.skills))
        level = min_level(rule.steps, now_ms - call.arrival_ms)
        agent = best_agent(agents, needed, level, rule.strategy, last_offered)
        if agent is not None:
            return call, agent
    return None
