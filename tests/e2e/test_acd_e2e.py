"""The ACD end to end with skills: three callers, two agents with different skills, a
ring-no-answer and a callback (`hotline serve`, sipp callers and citizen, baresip agents)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.e2e.peers import BaresipAgent, start_sipp, write_caller_scenario
from tests.e2e.service import REPO, Service
from tests.support import free_port, free_udp_tcp_port, until

pytestmark = pytest.mark.e2e

SIPP = REPO / "tests" / "sipp"
FLOW = """\
# Mandarin (1) or English (2); English callers need an agent with the skill language:en.
start: choose
nodes:
  choose:
    type: menu
    prompt: language_menu
    options: {"1": zh, "2": en}
    timeout_s: 3
    retries: 0
    on_failure: zh
  zh:
    type: queue
    greeting: null
    keys: {"1": callback, "0": priority}
  en:
    type: queue
    greeting: null
    keys: {"1": callback}
    skills: ["language:en"]
"""
E, M, K = "13900000001", "13900000002", "13900000003"


def test_skills_ring_no_answer_and_callback(start_service: Any, tmp_path: Path, agent_clip: Path) -> None:
    """E (English) arrives first, then M and K (Mandarin); K presses 1 for a callback. Agent
    1001 (no skills, his phone never answers) logs in: E is not his (language:en), M is offered
    to him, rings out, goes back to its place and he is paused "no-answer". Agent 1002
    (language:en) logs in and is given, in turn: E (the skill, the earliest), M (kept its place
    ahead of K), and K's callback (dialled back, agent first)."""
    flows = tmp_path / "ivr"
    flows.mkdir()
    (flows / "skills.yaml").write_text(FLOW)
    citizen_port = free_udp_tcp_port()
    svc = start_service(
        workers=1,
        ivr={"dir": str(flows), "flow": "skills"},
        queue={"ring_timeout_s": 4},
        callback={"dial_template": f"sip:{{number}}@127.0.0.1:{citizen_port}", "retry_s": 5},
    )
    registrar = ("127.0.0.1", svc.sip_port)
    silent = BaresipAgent(tmp_path / "a1001", user="1001", registrar=registrar, answermode="manual")
    english = BaresipAgent(tmp_path / "a1002", user="1002", registrar=registrar, play_wav=agent_clip, pad_after_s=2.0)
    silent.start()
    english.start()
    svc.cli("agents", "add", "1001", "--name", "坐席1001")
    svc.cli("agents", "add", "1002", "--name", "坐席1002", "--skill", "language:en:2")
    callers: dict[str, Any] = {}
    try:
        for number, digits in ((E, "2"), (M, "1"), (K, "11")):
            cwd = tmp_path / number
            cwd.mkdir()
            callee_hangs_up = number != K
            scenario = write_caller_scenario(
                cwd / "call.xml",
                caller_number=number,
                digits=digits,
                dtmf_method="info",  # K's "11": RFC 4733 replayed from one pcap would repeat a timestamp
                pre_dtmf_ms=1200,
                dtmf_gap_ms=2500,
                who_hangs_up="callee",
                bye_timeout_ms=120000 if callee_hangs_up else 30000,
            )
            callers[number] = start_sipp(scenario, registrar, free_port(2), free_port(2), cwd, timeout_s=150)
            expected = len(callers)
            until(lambda: len(svc.get("/queue")["waiting"]) >= expected, timeout=20)  # noqa: B023
        # K asked for a callback and was hung up; he keeps his place behind M.
        callers[K].wait()
        k_first = svc.ticket(lambda t: t["caller"] == K)
        assert k_first["outcome"] == "callback_requested", k_first
        waiting = svc.get("/queue")["waiting"]
        assert [(w["caller"], w["callback"]) for w in waiting] == [(E, False), (M, False), (K, True)], waiting

        # 1001 logs in: E needs English, so M rings at 1001, who does not answer.
        assert svc.request("POST", "/agents/1001/login")[0] == 200
        silent.wait_event("CALL_INCOMING", timeout=15)
        until(lambda: _state(svc, "1001") == ("paused", "no-answer"), timeout=15)
        waiting = until(lambda: _callers_waiting(svc, 3), timeout=10)
        assert isinstance(waiting, list)
        assert [w["caller"] for w in waiting] == [E, M, K], waiting  # M back at its place

        # 1002 logs in and serves E, then M, then K's callback.
        citizen = SIPP / "uas_answer.xml"
        with start_sipp(citizen, None, citizen_port, free_port(2), tmp_path / "citizen", timeout_s=120) as c:
            assert svc.request("POST", "/agents/1002/login")[0] == 200
            callers[E].wait()
            callers[M].wait()
            c.wait()
        e = svc.ticket(lambda t: t["caller"] == E)
        m = svc.ticket(lambda t: t["caller"] == M)
        k_back = svc.ticket(lambda t: t.get("related_call_id") == k_first["call_id"] and t["outcome"] == "answered")
    finally:
        for proc in callers.values():
            proc.kill()
        silent.stop()
        english.stop()
    for who, record in (("E (English)", e), ("M (Mandarin)", m), ("K callback", k_back)):
        print(f"{who}: {record['outcome']} by agent {record['agent_id']}, connected {record['connected_at']}")
    assert (e["outcome"], e["agent_id"]) == ("answered", "1002")
    assert (m["outcome"], m["agent_id"]) == ("answered", "1002")
    assert (k_back["outcome"], k_back["agent_id"], k_back["caller"]) == ("answered", "1002", K)
    assert e["connected_at"] < m["connected_at"] < k_back["connected_at"]  # served in arrival order
    assert svc.get("/queue")["waiting"] == []
    assert len(silent.calls_answered()) == 0
    log = (svc.data / "log" / "queue_log").read_text().splitlines()
    events = [line.split("|")[3:5] for line in log]
    print("queue_log:", *log, sep="\n  ")
    assert ["1001", "RINGNOANSWER"] in events and ["1001", "PAUSE"] in events
    assert events.count(["1002", "CONNECT"]) == 3
    assert ["NONE", "EXITWITHKEY"] in events


def _state(svc: Service, agent: str) -> tuple[str, str]:
    status = svc.get(f"/agents/{agent}")
    return status["state"], status["reason"]


def _callers_waiting(svc: Service, n: int) -> list[dict[str, Any]] | None:
    waiting = list(svc.get("/queue")["waiting"])
    return waiting if len(waiting) == n else None
