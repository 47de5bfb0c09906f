"""A real 12345 call, end to end: `hotline serve` (embedded Redis, Kamailio, two pjsua2 workers,
control plane), a sipp caller through Kamailio with μ-law speech and DTMF, a baresip softphone
registered to Kamailio as the agent. Audio is checked by correlating signals, not file sizes."""

from __future__ import annotations

import os
import re
import signal
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.audio import best_correlation, read_wav_mono
from tests.e2e.peers import BaresipAgent, run_sipp, start_sipp, write_caller_scenario
from tests.e2e.rtpcapture import RtpCapture, decode_rtp_pcap
from tests.e2e.service import REPO, Service
from tests.support import free_port, until

pytestmark = pytest.mark.e2e

GREETING = REPO / "config" / "prompts" / "zh-CN" / "greeting.wav"
CALLER = "13800138000"


def ts(ticket: dict[str, Any], field: str) -> datetime:
    value = ticket[field]
    assert value, f"{field} missing in {ticket}"
    return datetime.fromisoformat(value)


def call(svc: Service, cwd: Path, name: str, check: bool = True, **scenario: Any) -> tuple[int, Path]:
    """One sipp call to 12345 through Kamailio; returns (sipp exit code, its media port)."""
    cwd.mkdir(parents=True, exist_ok=True)
    path = write_caller_scenario(cwd / f"{name}.xml", **scenario)
    media = free_port(2)
    result = run_sipp(path, ("127.0.0.1", svc.sip_port), free_port(2), media, cwd, timeout_s=90, check=check)
    return result.returncode, media


def agent_for(svc: Service, tmp: Path, clip: Path, user: str = "1001", **kw: Any) -> BaresipAgent:
    """An agent as in real life: the softphone registers first, then the agent logs in (an agent
    logged in without a registered phone is taken out of rotation at the first offer)."""
    agent = BaresipAgent(tmp / f"agent-{user}", user=user, registrar=("127.0.0.1", svc.sip_port), play_wav=clip, **kw)
    agent.start()
    svc.add_agent(user)
    return agent


def test_call_answered_bridged_recorded_ticketed(
    service: Service, tmp_path: Path, caller_speech: Path, caller_clip: Path, agent_clip: Path
) -> None:
    agent = agent_for(service, tmp_path, agent_clip)
    try:
        cwd = tmp_path / "caller"
        cwd.mkdir()
        scenario = write_caller_scenario(
            cwd / "call.xml",
            caller_number=CALLER,
            speech=caller_speech,
            digits="5",
            dtmf_method="rfc4733",
            pre_dtmf_ms=2500,  # hears 2.5 s of the greeting, then skips it with "5"
            talk_ms=7000,
        )
        media = free_port(2)
        with RtpCapture(media, tmp_path / "to-caller.pcap"):
            run_sipp(scenario, ("127.0.0.1", service.sip_port), free_port(2), media, cwd, timeout_s=60)
        ticket = service.ticket(lambda t: t["caller"] == CALLER)
    finally:
        agent.stop()
    print("ticket:", ticket)
    assert ticket["outcome"] == "answered"
    assert ticket["callee"] == "12345"
    assert ticket["agent_id"] == "1001"
    assert ticket["dtmf"] == "5"
    assert ticket["hangup_by"] == "caller"
    assert ticket["worker_id"] in ("w0", "w1")
    assert re.fullmatch(r"\d{8}T\d{6}-[0-9a-f]{8}", ticket["call_id"])
    started, answered = ts(ticket, "started_at"), ts(ticket, "answered_at")
    connected, ended = ts(ticket, "connected_at"), ts(ticket, "ended_at")
    assert started <= answered <= connected <= ended
    assert (answered - started).total_seconds() < 1.0  # answered at once (GB/T 33358: within 15 s)
    assert 6 < (ended - connected).total_seconds() < 15

    recording = Path(ticket["recording_path"])
    assert recording.is_file() and ticket["call_id"] in recording.name
    assert recording.parent.parent.parent.parent == service.data / "recordings"
    left, rate = read_wav_mono(recording, channel=0)
    right, _ = read_wav_mono(recording, channel=1)
    caller_ref, _ = read_wav_mono(caller_clip, rate=rate)
    agent_ref, _ = read_wav_mono(agent_clip, rate=rate)
    caller_in_left = best_correlation(caller_ref, left, rate).score
    agent_in_right = best_correlation(agent_ref, right, rate).score
    agent_in_left = best_correlation(agent_ref, left, rate).score
    # What reached the caller: RTP captured on its way to sipp's media port.
    heard = decode_rtp_pcap(tmp_path / "to-caller.pcap", payload_type=None)
    agent_heard = best_correlation(agent_ref, heard, 8000).score
    greeting_ref, _ = read_wav_mono(GREETING, rate=8000)
    greeting_heard = best_correlation(greeting_ref, heard, 8000).score
    caller_heard_self = best_correlation(caller_ref, heard, 8000).score
    print(
        f"correlations: caller in left {caller_in_left:.3f}, agent in right {agent_in_right:.3f}, "
        f"agent in left {agent_in_left:.3f}; caller heard agent {agent_heard:.3f}, "
        f"greeting {greeting_heard:.3f}, own voice {caller_heard_self:.3f}"
    )
    assert caller_in_left > 0.8
    assert agent_in_right > 0.8
    assert agent_in_left < 0.4  # channels are not mixed
    assert agent_heard > 0.8
    assert greeting_heard > 0.8
    assert caller_heard_self < 0.4  # no echo of the caller back to the caller
    # The agent heard the caller too (baresip's own recording of what it received).
    received = agent.received_wavs()
    assert received, "baresip recorded nothing"
    at_agent, agent_rate = read_wav_mono(received[-1])
    caller_at_agent = best_correlation(read_wav_mono(caller_clip, rate=agent_rate)[0], at_agent, agent_rate).score
    print(f"agent heard the caller: {caller_at_agent:.3f}")
    assert caller_at_agent > 0.8


def test_abandoned_in_queue_and_in_greeting_are_records(service: Service, tmp_path: Path) -> None:
    # No agent is logged in: the caller waits, then gives up.
    call(service, tmp_path / "q", "queue", caller_number="13900000001", digits="5", pre_dtmf_ms=1000, talk_ms=3000)
    queued = service.ticket(lambda t: t["caller"] == "13900000001")
    assert queued["outcome"] == "abandoned_in_queue"
    assert queued["dtmf"] == "5"
    assert queued["agent_id"] is None and queued["connected_at"] is None
    assert queued["hangup_by"] == "caller"
    assert ts(queued, "queued_at") <= ts(queued, "ended_at")
    assert Path(queued["recording_path"]).is_file()
    # Hanging up during the greeting (7.6 s long) without a key.
    call(service, tmp_path / "g", "greeting", caller_number="13900000002", talk_ms=2000)
    early = service.ticket(lambda t: t["caller"] == "13900000002")
    assert early["outcome"] == "abandoned_in_greeting"
    assert early["dtmf"] == ""
    waiting = service.get("/queue")["waiting"]
    assert all(w["call_id"] not in (queued["call_id"], early["call_id"]) for w in waiting), waiting


def test_sip_info_dtmf_and_agent_hangs_up(
    service: Service, tmp_path: Path, caller_speech: Path, agent_clip: Path
) -> None:
    # The agent's softphone plays 2 s of padding after its clip, then hangs up by itself.
    agent = agent_for(service, tmp_path, agent_clip, pad_after_s=2.0)
    try:
        call(
            service,
            tmp_path / "c",
            "info",
            caller_number="13700000003",
            speech=caller_speech,
            speech_loops=-1,
            digits="2#",
            dtmf_method="info",
            pre_speech_ms=0,
            who_hangs_up="callee",
        )
        ticket = service.ticket(lambda t: t["caller"] == "13700000003")
    finally:
        agent.stop()
    assert ticket["outcome"] == "answered"
    assert ticket["hangup_by"] == "agent"
    assert ticket["dtmf"] == "2#"


def test_asterisk_pjsip_trunk_invite(service: Service, tmp_path: Path, caller_speech: Path, agent_clip: Path) -> None:
    """What Asterisk 20+ PJSIP sends to a trunk: 100rel, timer, replaces, Session-Expires, PCMU/PCMA/101."""
    agent = agent_for(service, tmp_path, agent_clip)
    try:
        code, _ = call(
            service,
            tmp_path / "ast",
            "asterisk",
            caller_number="02512345678",
            asterisk_style=True,
            prack=False,  # pjsua2 never sends reliable provisionals (see caller_scenario)
            speech=caller_speech,
            digits="0",
            talk_ms=4000,
        )
        assert code == 0
        ticket = service.ticket(lambda t: t["caller"] == "02512345678")
    finally:
        agent.stop()
    messages = "\n".join(p.read_text(errors="replace") for p in (tmp_path / "ast").glob("*messages*.log"))
    assert "Supported: 100rel, timer, replaces" in messages
    assert ticket["outcome"] == "answered" and ticket["agent_id"] == "1001"
    assert ticket["dtmf"] == "0"


def test_worker_killed_mid_call(service: Service, tmp_path: Path, caller_speech: Path, agent_clip: Path) -> None:
    """SIGKILL a worker with a live call: new calls go to the other worker, and the killed
    worker's call is closed in the ticket store as failed once detected."""
    agent = agent_for(service, tmp_path, agent_clip)
    cwd = tmp_path / "live"
    cwd.mkdir()
    scenario = write_caller_scenario(
        cwd / "long.xml", caller_number="13600000004", speech=caller_speech, speech_loops=-1, digits="5", talk_ms=60000
    )
    try:
        with start_sipp(scenario, ("127.0.0.1", service.sip_port), free_port(2), free_port(2), cwd, timeout_s=90):
            until(lambda: agent.calls_answered(), timeout=20)
            # Bridged, not only answered by the agent's phone (a caller still in the greeting
            # when his worker dies has not been served: he keeps his place as a callback).
            until(lambda: service.get("/agents/1001")["state"] == "on_call", timeout=10)
            live = until(lambda: _live_call(service), timeout=10)
            assert isinstance(live, tuple)
            worker, call_id = live
            # The speech-recognition tap named in call.queued grows while the caller talks.
            tap = Path(until(lambda: _tap_of(service, call_id), timeout=10))  # type: ignore[arg-type]
            size = until(lambda: tap.exists() and tap.stat().st_size, timeout=5)
            until(lambda: tap.stat().st_size > int(size) + 8000, timeout=5)  # > 0.5 s more audio
            pid = service.worker_pids()[worker]
            os.kill(pid, signal.SIGKILL)
            killed_at = time.monotonic()
            # A new call right away: Kamailio fails over to the other worker.
            call(service, tmp_path / "next", "next", check=False, caller_number="13600000005", talk_ms=2000)
            nxt = service.ticket(lambda t: t["caller"] == "13600000005")
            assert nxt["worker_id"] != worker
            # Served by the other worker: abandoned in the greeting, or answered by the agent
            # if the dead call's agent was already freed.
            assert nxt["outcome"] in ("abandoned_in_greeting", "answered"), nxt
            failed = service.ticket(lambda t: t["call_id"] == call_id, timeout=30)
            print(
                f"killed {worker} (pid {pid}); call {call_id} closed as {failed['outcome']} "
                f"after {time.monotonic() - killed_at:.1f}s; next call on {nxt['worker_id']}"
            )
            assert failed["outcome"] == "failed"
            assert failed["reason"] == "worker died"
    finally:
        agent.stop()
    # The agent is free again (not stuck "on call" with a dead worker's call).
    status = service.get("/agents/1001")
    assert status["state"] == "available", status


def _tap_of(svc: Service, call_id: str) -> str | None:
    import asyncio

    import redis.asyncio

    from hotline.core import events as ev
    from hotline.queue import keys

    async def read() -> str | None:
        client = redis.asyncio.Redis.from_url(svc.redis_url, decode_responses=True)
        try:
            for _, fields in await client.xrange(keys.events()):
                kind, data = ev.decode(fields)
                if kind == ev.CALL_QUEUED and data["call_id"] == call_id:
                    return str(data["tap"])
            return None
        finally:
            await client.aclose()

    return asyncio.run(read())


def _live_call(svc: Service) -> tuple[str, str] | None:
    import asyncio

    import redis.asyncio

    from hotline.queue.bus import RedisEventBus

    async def read() -> tuple[str, str] | None:
        client = redis.asyncio.Redis.from_url(svc.redis_url)
        try:
            bus = RedisEventBus(client)
            for worker in sorted(await bus.known_workers()):
                calls = await bus.tracked_calls(worker)
                for call_id in calls:
                    return str(worker), str(call_id)
            return None
        finally:
            await client.aclose()

    return asyncio.run(read())


def test_twenty_concurrent_calls_two_workers(
    service: Service, tmp_path: Path, caller_speech: Path, caller_clip: Path
) -> None:
    cwd = tmp_path / "load"
    cwd.mkdir()
    scenario = write_caller_scenario(
        cwd / "load.xml", caller_number="1550000", speech=caller_speech, digits="5", pre_dtmf_ms=1000, talk_ms=7000
    )
    run_sipp(
        scenario, ("127.0.0.1", service.sip_port), free_port(2), free_port(2), cwd,
        timeout_s=120, calls=20, rate=20, concurrent=20,
    )  # fmt: skip
    tickets = until(lambda: _n_tickets(service, 20), timeout=30)
    assert isinstance(tickets, list)
    assert {t["outcome"] for t in tickets} == {"abandoned_in_queue"}
    per_worker = {w: sum(t["worker_id"] == w for t in tickets) for w in ("w0", "w1")}
    print("calls per worker:", per_worker)
    assert per_worker["w0"] >= 5 and per_worker["w1"] >= 5
    ref, _ = read_wav_mono(caller_clip, rate=8000)
    scores = []
    for t in tickets:
        left, rate = read_wav_mono(Path(t["recording_path"]), channel=0)
        scores.append(best_correlation(ref, left, rate).score)
    print(f"caller speech in each recording: min {min(scores):.3f}")
    assert min(scores) > 0.8


def _n_tickets(svc: Service, n: int) -> list[dict[str, Any]] | None:
    tickets = [t for t in svc.tickets() if t["caller"].startswith("1550000")]
    return tickets if len(tickets) >= n else None


def test_redis_killed_mid_call_loses_nothing(
    service: Service, tmp_path: Path, caller_speech: Path, agent_clip: Path
) -> None:
    """SIGKILL the embedded redis-server while a caller talks to an agent: the supervisor
    restarts it (AOF on), the call goes on, and it still ends as a ticket."""
    agent = agent_for(service, tmp_path, agent_clip)
    cwd = tmp_path / "redis"
    cwd.mkdir()
    scenario = write_caller_scenario(
        cwd / "call.xml", caller_number="13500000006", speech=caller_speech, speech_loops=-1, digits="5", talk_ms=12000
    )
    try:
        with start_sipp(scenario, ("127.0.0.1", service.sip_port), free_port(2), free_port(2), cwd, timeout_s=90) as sp:
            until(lambda: agent.calls_answered(), timeout=20)
            pid = service.redis_pid()
            os.kill(pid, signal.SIGKILL)
            until(lambda: service.redis_pid() not in (None, pid), timeout=20)
            result = sp.wait()
            assert result.returncode == 0
        ticket = service.ticket(lambda t: t["caller"] == "13500000006", timeout=40)
    finally:
        agent.stop()
    assert ticket["outcome"] == "answered", ticket
    assert ticket["agent_id"] == "1001"
    assert Path(ticket["recording_path"]).is_file()
    # The service is whole again: a new call is queued and ticketed.
    call(service, tmp_path / "after", "after", caller_number="13500000007", talk_ms=1500)
    assert service.ticket(lambda t: t["caller"] == "13500000007")["outcome"] == "abandoned_in_greeting"


def test_no_answer_puts_the_call_back_at_its_original_place(
    start_service: Any, tmp_path: Path, caller_speech: Path, agent_clip: Path
) -> None:
    """Caller A (first) is offered to agent 1001, whose phone rings but nobody answers: after the
    ring timeout the worker cancels the ringing leg, 1001 is taken out of rotation, and A is back
    at the head of the queue, ahead of caller B who came later. Agent 1002 then gets A first."""
    svc = start_service(queue={"ring_timeout_s": 3})
    silent = agent_for(svc, tmp_path, agent_clip, user="1001", answermode="manual")
    try:
        a = start_sipp(
            write_caller_scenario(tmp_path / "a.xml", caller_number="13100000001", digits="5", talk_ms=40000),
            ("127.0.0.1", svc.sip_port), free_port(2), free_port(2), _mk(tmp_path / "a"), timeout_s=90,
        )  # fmt: skip
        with a:
            silent.wait_event("CALL_INCOMING", timeout=15)
            b = start_sipp(
                write_caller_scenario(tmp_path / "b.xml", caller_number="13100000002", digits="5", talk_ms=40000),
                ("127.0.0.1", svc.sip_port), free_port(2), free_port(2), _mk(tmp_path / "b"), timeout_s=90,
            )  # fmt: skip
            with b:
                # No answer: the ringing leg is cancelled and 1001 leaves rotation, paused.
                until(lambda: _paused_for_no_answer(svc.get("/agents/1001")), timeout=15)
                silent.wait_event("CALL_CLOSED", timeout=10)  # the worker cancelled the ringing leg
                waiting = until(lambda: _two_waiting(svc), timeout=15)
                assert [w["caller"] for w in waiting] == ["13100000001", "13100000002"], waiting
                answering = agent_for(svc, tmp_path, agent_clip, user="1002")
                try:
                    until(lambda: answering.calls_answered(), timeout=20)
                    time.sleep(1)
                    connected = [w["caller"] for w in svc.get("/queue")["waiting"]]
                    assert connected == ["13100000002"]  # A was taken first; B still waits
                finally:
                    answering.stop()
                a.kill()
                b.kill()
    finally:
        silent.stop()


def _paused_for_no_answer(agent: dict[str, Any]) -> bool:
    return (agent["state"], agent["reason"]) == ("paused", "no-answer")


def _mk(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def _two_waiting(svc: Service) -> list[dict[str, Any]] | None:
    waiting = list(svc.get("/queue")["waiting"])
    return waiting if len(waiting) == 2 else None


def test_embedded_dev_mode_without_kamailio(
    start_service: Any, tmp_path: Path, caller_speech: Path, caller_clip: Path, agent_clip: Path
) -> None:
    """kamailio.enabled: false: one worker listens on the public SIP port and agents are dialled
    at the URI configured for them (here the softphone's own address, no registrar)."""
    svc = start_service(workers=1, kamailio=False)
    agent = BaresipAgent(tmp_path / "agent", user="1001", registrar=None, play_wav=agent_clip)
    agent.start()
    try:
        svc.cli("agents", "add", "1001", "--name", "坐席", "--sip-uri", agent.direct_uri)
        status, body = svc.request("POST", "/agents/1001/login")
        assert status == 200, body
        call(svc, tmp_path / "dev", "dev", caller_number="13200000001", speech=caller_speech, digits="5", talk_ms=6000)
        ticket = svc.ticket(lambda t: t["caller"] == "13200000001")
    finally:
        agent.stop()
    assert ticket["outcome"] == "answered" and ticket["agent_id"] == "1001" and ticket["worker_id"] == "w0"
    left, rate = read_wav_mono(Path(ticket["recording_path"]), channel=0)
    right, _ = read_wav_mono(Path(ticket["recording_path"]), channel=1)
    assert best_correlation(read_wav_mono(caller_clip, rate=rate)[0], left, rate).score > 0.8
    assert best_correlation(read_wav_mono(agent_clip, rate=rate)[0], right, rate).score > 0.8
