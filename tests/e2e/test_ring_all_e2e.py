"""ring_all and the agents' device state, end to end: `hotline serve` (Kamailio, one worker,
the control plane), baresip softphones registered at Kamailio, a sipp caller. Three agents are
logged in; 1003's phone never registered, so the control plane's probe finds it unreachable and
his phone is not rung; 1001 and 1002 ring at once; 1002 answers first and talks; 1001's ringing
is cancelled at once, and he is available again (not paused: not his fault)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.e2e.peers import BaresipAgent
from tests.e2e.test_acd_chaos import caller, records_of
from tests.support import until

pytestmark = pytest.mark.e2e

NUMBER = "13800000301"


def test_every_reachable_phone_rings_and_the_first_answer_takes_the_call(
    start_service: Any, tmp_path: Path, agent_clip: Path
) -> None:
    svc = start_service(workers=1, queue={"strategy": "ring_all", "ring_timeout_s": 15})
    registrar = ("127.0.0.1", svc.sip_port)
    late = BaresipAgent(tmp_path / "a1001", user="1001", registrar=registrar, answermode="manual")
    quick = BaresipAgent(tmp_path / "a1002", user="1002", registrar=registrar, play_wav=agent_clip, pad_after_s=1.0)
    late.start()
    quick.start()
    for user in ("1001", "1002", "1003"):
        svc.cli("agents", "add", user)
        assert svc.request("POST", f"/agents/{user}/login")[0] == 200
    a = None
    try:
        devices = lambda: {u: svc.get(f"/agents/{u}")["device"] for u in ("1001", "1002", "1003")}  # noqa: E731
        until(lambda: devices() == {"1001": "registered", "1002": "registered", "1003": "unreachable"}, timeout=20)
        a = caller(svc, tmp_path, NUMBER)
        late.wait_event("CALL_INCOMING", timeout=20)  # his phone rings too
        quick.wait_event("CALL_ESTABLISHED", timeout=20)
        late.wait_event("CALL_CLOSED", timeout=10)  # cancelled as soon as 1002 answered
        # The queue learns of the answer when the call is bridged (after the greeting, which the
        # caller skips with a key): then 1002 is on the call and 1001 gets his earlier state back.
        states = lambda: {u: svc.get(f"/agents/{u}")["state"] for u in ("1001", "1002", "1003")}  # noqa: E731
        until(lambda: states() == {"1001": "available", "1002": "on_call", "1003": "available"}, timeout=15)
        a.wait()
        story = [(r["outcome"], r["agent_id"]) for r in records_of(svc, NUMBER)]
    finally:
        if a is not None:
            a.kill()
        late.stop()
        quick.stop()
    print(f"ring_all: {story}; devices {devices()}")
    assert story == [("answered", "1002")]
