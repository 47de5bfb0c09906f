"""Chaos on the ACD, with real processes: the dispatcher killed mid-offer, Redis killed with
callers waiting, a worker killed with callers waiting. Each test prints what happened to every
caller, and checks that each ends up served or as a callback, exactly once, in arrival order."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.e2e.peers import BaresipAgent, start_sipp, write_caller_scenario
from tests.e2e.service import REPO, Service
from tests.support import free_port, free_udp_tcp_port, until

pytestmark = pytest.mark.e2e

SIPP = REPO / "tests" / "sipp"


def caller(svc: Service, tmp: Path, number: str, **scenario: Any) -> Any:
    """A sipp caller who skips the greeting and waits to be served (the agent hangs up)."""
    cwd = tmp / number
    cwd.mkdir(parents=True, exist_ok=True)
    options: dict[str, Any] = {"digits": "5", "who_hangs_up": "callee", "bye_timeout_ms": 120000} | scenario
    path = write_caller_scenario(cwd / "call.xml", caller_number=number, **options)
    return start_sipp(path, ("127.0.0.1", svc.sip_port), free_port(2), free_port(2), cwd, timeout_s=150)


def waiting(svc: Service) -> list[str]:
    return [w["caller"] for w in svc.get("/queue")["waiting"]]


def leader(svc: Service) -> str | None:
    client = redis.Redis.from_url(svc.redis_url)
    try:
        value: Any = client.get("hotline:leader:dispatcher")
    finally:
        client.close()
    return None if value is None else value.decode()


def records_of(svc: Service, number: str) -> list[dict[str, Any]]:
    return [t for t in svc.tickets() if t["caller"] == number]


def test_dispatcher_killed_mid_offer(start_service: Any, tmp_path: Path, agent_clip: Path) -> None:
    """Two control processes: serve's and a standby. While agent 1001's phone rings for caller A
    (he never answers), kill -9 the lease holder. The worker still ends the ring on its own
    (the call goes back to its place, 1001 paused), another process takes the dispatcher lease,
    and when 1002 logs in, A then B are served by him; each has exactly one record."""
    svc = start_service(workers=1, queue={"ring_timeout_s": 4})
    env = svc.env() | {"HOTLINE_REDIS_URL": svc.redis_url, "HOTLINE_HTTP__PORT": str(free_port())}
    log = (tmp_path / "standby.log").open("wb")
    standby = subprocess.Popen(
        [sys.executable, "-m", "hotline", "control"], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT
    )
    registrar = ("127.0.0.1", svc.sip_port)
    ringing = BaresipAgent(tmp_path / "a1001", user="1001", registrar=registrar, answermode="manual")
    answering = BaresipAgent(tmp_path / "a1002", user="1002", registrar=registrar, play_wav=agent_clip, pad_after_s=1.0)
    ringing.start()
    answering.start()
    svc.cli("agents", "add", "1001")
    svc.cli("agents", "add", "1002")
    a = b = None
    try:
        a = caller(svc, tmp_path, "13800000101")
        until(lambda: waiting(svc) == ["13800000101"], timeout=20)
        b = caller(svc, tmp_path, "13800000102")
        until(lambda: len(waiting(svc)) == 2, timeout=20)
        first = until(lambda: leader(svc), timeout=10)
        assert isinstance(first, str)
        assert svc.request("POST", "/agents/1001/login")[0] == 200
        ringing.wait_event("CALL_INCOMING", timeout=15)
        killed = int(first.rsplit("-", 1)[1])
        os.kill(killed, signal.SIGKILL)  # mid-offer: 1001's phone is ringing
        killed_at = time.monotonic()
        second = until(lambda: (h := leader(svc)) is not None and h != first and h, timeout=20)
        took_over = time.monotonic() - killed_at
        until(lambda: svc.get("/agents/1001")["state"] == "paused", timeout=15)
        assert waiting(svc) == ["13800000101", "13800000102"]  # A back at its place
        assert svc.request("POST", "/agents/1002/login")[0] == 200
        a.wait()
        b.wait()
        story = {n: [(r["outcome"], r["agent_id"]) for r in records_of(svc, n)] for n in ("13800000101", "13800000102")}
    finally:
        for proc in (a, b):
            if proc is not None:
                proc.kill()
        standby.kill()
        standby.wait()
        log.close()
        ringing.stop()
        answering.stop()
    print(f"killed dispatcher {first} (pid {killed}); {second} took over after {took_over:.1f} s; {story}")
    assert story == {"13800000101": [("answered", "1002")], "13800000102": [("answered", "1002")]}
    assert took_over < 15


def test_redis_killed_with_callers_waiting(start_service: Any, tmp_path: Path, agent_clip: Path) -> None:
    """Three callers wait, nobody to answer; kill -9 the embedded redis-server (AOF on): the
    supervisor restarts it, the queue comes back in the same order, and an agent who logs in
    afterwards serves all three in arrival order."""
    svc = start_service(workers=1)
    numbers = ["13800000201", "13800000202", "13800000203"]
    agent = BaresipAgent(
        tmp_path / "a1001", user="1001", registrar=("127.0.0.1", svc.sip_port), play_wav=agent_clip, pad_after_s=1.0
    )
    agent.start()
    svc.cli("agents", "add", "1001")
    procs = []
    try:
        for n, number in enumerate(numbers, 1):
            procs.append(caller(svc, tmp_path, number))
            until(lambda n=n: len(waiting(svc)) == n, timeout=20)  # type: ignore[misc]
        time.sleep(1.5)  # AOF appendfsync everysec: what the queue holds is on disk
        pid = svc.redis_pid()
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        until(lambda: svc.redis_pid() not in (None, pid), timeout=20)
        after = until(lambda: waiting(svc) if len(waiting(svc)) == 3 else None, timeout=20)
        assert after == numbers
        assert svc.request("POST", "/agents/1001/login")[0] == 200
        for proc in procs:
            proc.wait()
        story = {n: [(r["outcome"], r["agent_id"], r["connected_at"]) for r in records_of(svc, n)] for n in numbers}
    finally:
        for proc in procs:
            proc.kill()
        agent.stop()
    print("after redis was killed:", story)
    assert all(len(v) == 1 and v[0][:2] == ("answered", "1001") for v in story.values()), story
    connected = [story[n][0][2] for n in numbers]
    assert connected == sorted(connected)  # in arrival order


def test_worker_killed_with_callers_waiting(start_service: Any, tmp_path: Path, agent_clip: Path) -> None:
    """Two workers, three callers waiting; kill -9 the worker that has the first caller. Its
    waiting callers keep their places as callbacks (their numbers are known); the agent who
    logs in is given the first caller's callback (dialled back: the citizen's phone answers),
    and every caller ends up served or called back, exactly once."""
    citizen_port = free_udp_tcp_port()
    svc = start_service(workers=2, callback={"dial_template": f"sip:{{number}}@127.0.0.1:{citizen_port}", "retry_s": 3})
    numbers = ["13800000301", "13800000302", "13800000303"]
    agent = BaresipAgent(
        tmp_path / "a1001", user="1001", registrar=("127.0.0.1", svc.sip_port), play_wav=agent_clip, pad_after_s=1.0
    )
    agent.start()
    svc.cli("agents", "add", "1001")
    procs: dict[str, Any] = {}
    try:
        for n, number in enumerate(numbers, 1):
            procs[number] = caller(svc, tmp_path, number)
            until(lambda n=n: len(waiting(svc)) == n, timeout=20)  # type: ignore[misc]
        entries = svc.get("/queue")["waiting"]
        dead = entries[0]["worker_id"]
        lost = [w["caller"] for w in entries if w["worker_id"] == dead]
        os.kill(svc.worker_pids()[dead], signal.SIGKILL)
        for number in lost:
            procs.pop(number).kill()  # their calls died with the worker
        kept = until(lambda: _callbacks(svc) if len(_callbacks(svc)) == len(lost) else None, timeout=30)
        assert kept == lost
        assert waiting(svc) == numbers  # nobody moved: the callbacks kept their places
        citizen = SIPP / "uas_answer.xml"
        cwd = tmp_path / "citizen"
        with start_sipp(citizen, None, citizen_port, free_port(2), cwd, timeout_s=150, calls=len(lost)) as c:
            assert svc.request("POST", "/agents/1001/login")[0] == 200
            for proc in procs.values():
                proc.wait()
            c.wait()
        until(lambda: svc.get("/queue")["waiting"] == [], timeout=30)
        story = {n: sorted((r["outcome"], r["agent_id"] or "-") for r in records_of(svc, n)) for n in numbers}
    finally:
        for proc in procs.values():
            proc.kill()
        agent.stop()
    print(f"killed worker {dead} with {lost} waiting:", story)
    for number in numbers:
        if number in lost:
            assert story[number] == [("answered", "1001"), ("callback_requested", "-")], story
        else:
            assert story[number] == [("answered", "1001")], story


def _callbacks(svc: Service) -> list[str]:
    return [w["caller"] for w in svc.get("/queue")["waiting"] if w["callback"]]
