"""The queue as callers meet it, end to end (`hotline serve`, sipp callers through Kamailio)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.e2e.peers import start_sipp, write_caller_scenario
from tests.e2e.service import Service
from tests.support import free_port, until

pytestmark = pytest.mark.e2e


def test_pressing_0_while_waiting_raises_the_call_keeping_its_arrival(service: Service, tmp_path: Path) -> None:
    """No agent is logged in. Caller A arrives first and waits; caller B arrives later and
    presses 0 (RFC 4733): B is moved ahead of A, flagged, with its own arrival time."""
    a_dir, b_dir = tmp_path / "a", tmp_path / "b"
    a_dir.mkdir()
    b_dir.mkdir()
    first = write_caller_scenario(a_dir / "a.xml", caller_number="13300000001", talk_ms=30000)
    with start_sipp(first, ("127.0.0.1", service.sip_port), free_port(2), free_port(2), a_dir, timeout_s=60) as a:
        until(lambda: _waiting(service, 1), timeout=15)
        second = write_caller_scenario(
            b_dir / "b.xml", caller_number="13300000002", digits="0", pre_dtmf_ms=1500, talk_ms=20000
        )
        with start_sipp(second, ("127.0.0.1", service.sip_port), free_port(2), free_port(2), b_dir, timeout_s=60) as b:
            waiting = until(lambda: _flagged_first(service), timeout=15)
            assert isinstance(waiting, list)
            assert [(w["caller"], w["position"], w["priority"]) for w in waiting] == [
                ("13300000002", 1, "flagged"),
                ("13300000001", 2, "normal"),
            ]
            assert waiting[0]["arrival_ms"] > waiting[1]["arrival_ms"]  # raised, not re-queued as new
            b.kill()
        a.kill()


def _waiting(svc: Service, n: int) -> list[dict[str, Any]] | None:
    waiting = list(svc.get("/queue")["waiting"])
    return waiting if len(waiting) == n else None


def _flagged_first(svc: Service) -> list[dict[str, Any]] | None:
    waiting = _waiting(svc, 2)
    return waiting if waiting and waiting[0]["priority"] == "flagged" else None
