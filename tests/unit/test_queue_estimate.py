"""Wait estimates and the handle-time average (pure functions of hotline.queue.estimate)."""

from __future__ import annotations

import hypothesis.strategies as st
from hypothesis import given

from hotline.core.model import AgentId, AgentState, CallId
from hotline.core.ports import AgentStatus
from hotline.queue.estimate import estimate_waits, free_at_ms, next_handle_average

NOW = 1_000_000


def agent(n: int, state: AgentState, since: int = NOW, until: int | None = None) -> AgentStatus:
    call = CallId(f"c{n}") if state in (AgentState.RESERVED, AgentState.ON_CALL, AgentState.WRAP_UP) else None
    return AgentStatus(AgentId(f"a{n}"), state, since, call, wrap_up_until_ms=until)


class TestHandleAverage:
    def test_mean_of_the_first_samples_then_exponential(self) -> None:
        average, n = next_handle_average(None, 0, 100_000, 3)
        assert (average, n) == (100_000, 1)
        average, n = next_handle_average(average, n, 200_000, 3)
        assert (average, n) == (150_000, 2)
        average, n = next_handle_average(average, n, 300_000, 3)
        assert (average, n) == (200_000, 3)  # mean of three
        average, n = next_handle_average(average, n, 400_000, 3)
        assert (average, n) == (300_000, 3)  # alpha = 2 / 4: halfway to the new sample
        assert next_handle_average(333, 1, 334, 20) == (334, 2)  # 333.5 rounds half up

    def test_old_samples_fade(self) -> None:
        average, n = 600_000, 20
        for _ in range(60):
            average, n = next_handle_average(average, n, 60_000, 20)
        assert 60_000 <= average < 62_000


class TestEstimates:
    def test_nobody_taking_calls_gives_no_estimate(self) -> None:
        agents = [agent(1, AgentState.PAUSED), agent(2, AgentState.LOGGED_OUT)]
        assert estimate_waits(3, agents, NOW, 60_000, 0) == [None, None, None]
        assert estimate_waits(0, agents, NOW, 60_000, 0) == []

    def test_free_agents_serve_the_first_calls_at_once(self) -> None:
        agents = [agent(1, AgentState.AVAILABLE), agent(2, AgentState.AVAILABLE)]
        assert estimate_waits(5, agents, NOW, 60_000, 0) == [0, 0, 60, 60, 120]

    def test_busy_agents_free_up_by_their_state(self) -> None:
        agents = [
            agent(1, AgentState.ON_CALL, since=NOW - 20_000),  # 40 s left of an average call
            agent(2, AgentState.WRAP_UP, until=NOW + 5_000),
            agent(3, AgentState.RESERVED),  # takes a whole call first
            agent(4, AgentState.PAUSED),
        ]
        assert [free_at_ms(a, NOW, 60_000, 10_000) for a in agents] == [NOW + 50_000, NOW + 5_000, NOW + 70_000, None]
        assert estimate_waits(4, agents, NOW, 60_000, 10_000) == [5, 50, 70, 75]

    def test_a_call_longer_than_average_is_expected_to_end_now(self) -> None:
        long_call = agent(1, AgentState.ON_CALL, since=NOW - 600_000)
        assert estimate_waits(2, [long_call], NOW, 60_000, 0) == [0, 60]

    @given(
        states=st.lists(st.sampled_from(list(AgentState)), max_size=6),
        ago=st.integers(0, 500_000),
        handle=st.integers(0, 600_000),
        wrap=st.integers(0, 60_000),
        count=st.integers(0, 40),
    )
    def test_never_decreases_with_the_position(
        self, states: list[AgentState], ago: int, handle: int, wrap: int, count: int
    ) -> None:
        agents = [agent(n, s, since=NOW - ago, until=NOW + ago // 2) for n, s in enumerate(states)]
        waits = estimate_waits(count, agents, NOW, handle, wrap)
        assert len(waits) == count
        if all(s in (AgentState.PAUSED, AgentState.LOGGED_OUT) for s in states):
            assert waits == [None] * count
            return
        numbers = [w for w in waits if w is not None]
        assert len(numbers) == count
        assert numbers == sorted(numbers)
        assert all(w >= 0 for w in numbers)
