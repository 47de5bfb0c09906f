"""Kamailio in front of the media workers: real kamailio and sipp processes on 127.0.0.1.

Workers and agents are sipp user agents (tests/sipp/*.xml). Timers are shortened for tests: a
silent worker costs 0.5 s of a call's set-up, probing notices a dead worker within 1.5 s.
"""

from __future__ import annotations

import random
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from hotline.sip.kamailio import (
    KamailioConfigError,
    KamailioProcess,
    KamailioSettings,
    KamailioStartError,
    check_config,
    check_kamailio,
    kamailio_binary,
    options_ping,
    render_config,
    render_dispatcher_list,
)
from tests.support import until

SIPP_DIR = Path(__file__).resolve().parent.parent / "sipp"
FAST_TIMERS = {"ping_interval_s": 1, "fr_timer_ms": 500, "worker_timeout_ms": 500}
HOST = "127.0.0.1"


class Sipp:
    """Runs sipp scenarios from tests/sipp: user agents in the background, callers to completion."""

    def __init__(self, binary: str, workdir: Path) -> None:
        self.binary = binary
        self.workdir = workdir
        self.servers: list[subprocess.Popen[bytes]] = []
        workdir.mkdir(parents=True, exist_ok=True)

    def _args(self, scenario: str, port: int, name: str) -> list[str]:
        return [
            self.binary,
            "-sf", str(SIPP_DIR / scenario),
            "-i", HOST,
            "-p", str(port),
            "-nostdin",
            "-trace_err", "-error_file", str(self.workdir / f"{name}_errors.log"),
            "-trace_logs", "-log_file", str(self.workdir / f"{name}.log"),
        ]  # fmt: skip

    def serve(self, scenario: str, port: int, name: str) -> None:
        """Starts a user agent (worker or agent phone) on ``port``; returns once it answers OPTIONS."""
        proc = subprocess.Popen(
            self._args(scenario, port, name),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd=self.workdir,
        )
        self.servers.append(proc)
        until(lambda: proc.poll() is not None or options_ping(HOST, port, timeout_s=0.2) == 200, timeout=10)
        assert proc.poll() is None, f"sipp {scenario} on port {port} exited with {proc.returncode}"

    def call(
        self,
        scenario: str,
        proxy_port: int,
        service: str,
        name: str,
        calls: int = 1,
        local_port: int | None = None,
        keys: dict[str, str] | None = None,
    ) -> float:
        """Runs ``calls`` calls to completion (all must succeed); returns the seconds they took."""
        (port,) = [local_port] if local_port is not None else sip_ports(1)
        args = [
            *self._args(scenario, port, name),
            f"{HOST}:{proxy_port}",
            "-s", service,
            "-m", str(calls),
            "-r", "50",
            "-recv_timeout", "5000",
            "-timeout", "20s",
            "-timeout_error",
        ]  # fmt: skip
        for key, value in (keys or {}).items():
            args += ["-key", key, value]
        started = time.monotonic()
        result = subprocess.run(
            args, stdin=subprocess.DEVNULL, capture_output=True, timeout=30, cwd=self.workdir, check=False
        )
        elapsed = time.monotonic() - started
        if result.returncode != 0:
            errors = self.workdir / f"{name}_errors.log"
            detail = errors.read_text(errors="replace")[-3000:] if errors.exists() else ""
            pytest.fail(f"sipp {scenario} exited with {result.returncode}:\n{detail}")
        return elapsed

    def log(self, name: str) -> list[str]:
        path = self.workdir / f"{name}.log"
        return path.read_text(errors="replace").splitlines() if path.exists() else []

    def invites(self, name: str) -> int:
        return sum(1 for line in self.log(name) if line.startswith("INVITE "))

    def stop(self) -> None:
        for proc in self.servers:
            proc.terminate()
        for proc in self.servers:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.fixture(scope="module")
def sipp_binary() -> str:
    binary = shutil.which("sipp")
    if binary is None:
        pytest.fail("sipp not installed: apt-get install sip-tester")
    if kamailio_binary() is None:
        pytest.fail("kamailio not installed: apt-get install kamailio")
    return binary


@pytest.fixture
def sipp(sipp_binary: str, tmp_path: Path) -> Iterator[Sipp]:
    runner = Sipp(sipp_binary, tmp_path / "sipp")
    yield runner
    runner.stop()


@pytest.fixture
def start_kamailio(tmp_path: Path, sipp_binary: str) -> Iterator[Callable[..., KamailioProcess]]:
    started: list[KamailioProcess] = []

    def start(workers: list[int], **overrides: int) -> KamailioProcess:
        settings = KamailioSettings(
            runtime_dir=tmp_path / "kamailio",
            listen_port=sip_ports(1)[0],
            workers=tuple((HOST, port) for port in workers),
            **{**FAST_TIMERS, **overrides},
        )
        process = KamailioProcess(settings)
        started.append(process)
        process.start()
        return process

    yield start
    for process in started:
        process.stop()
        assert not process.is_running()


# Ports for SIP peers come from below the kernel's ephemeral range (32768+ by default): a port from
# free_port() is ephemeral and any socket bound to port 0 (sipp's media sockets, an OPTIONS ping,
# another test) can take it between the pick and sipp's bind; a "dead worker" port must stay dead.
_SIP_PORT_RANGE = range(10000, 20000)
_handed_out: set[int] = set()


def _bindable(port: int) -> bool:
    for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
        with socket.socket(socket.AF_INET, kind) as sock:
            try:
                sock.bind((HOST, port))
            except OSError:
                return False
    return True


def sip_ports(count: int) -> list[int]:
    """``count`` distinct ports free for UDP and TCP, never handed out before in this session."""
    ports: list[int] = []
    for _ in range(2000):
        if len(ports) == count:
            break
        port = random.choice(_SIP_PORT_RANGE)
        if port not in _handed_out and _bindable(port):
            _handed_out.add(port)
            ports.append(port)
    assert len(ports) == count, f"no {count} free ports in {_SIP_PORT_RANGE}"
    return ports


# --- configuration -----------------------------------------------------------------------------


def test_config_renders_and_passes_kamailio_check(tmp_path: Path) -> None:
    settings = KamailioSettings(
        runtime_dir=tmp_path,
        workers=((HOST, 5071), (HOST, 5072)),
        listen_port=5099,
        aliases=("hotline.example.gov.cn",),
    )
    config = render_config(settings)
    assert "{{" not in config
    assert "listen=udp:127.0.0.1:5099" in config
    assert 'alias="hotline.example.gov.cn"' in config
    assert 'modparam("dispatcher", "ds_ping_interval", 2)' in config
    assert render_dispatcher_list(settings).splitlines()[1:] == [
        "1 sip:127.0.0.1:5071 0 2 duid=worker1",
        "1 sip:127.0.0.1:5072 0 1 duid=worker2",
    ]
    check_config(settings)  # kamailio -c
    assert settings.config_path.read_text() == config
    assert check_kamailio() == []


def test_invalid_settings_are_all_reported_at_once(tmp_path: Path) -> None:
    with pytest.raises(KamailioConfigError) as caught:
        KamailioSettings(
            runtime_dir=tmp_path,
            workers=((HOST, 0), ("evil;host", 5071)),
            listen_host="localhost",
            fr_timer_ms=0,
        )
    message = str(caught.value)
    assert "listen_host 'localhost' is not an IP address" in message
    assert "worker port 0 is not a port" in message
    assert "worker host 'evil;host'" in message
    assert "fr_timer_ms must be positive" in message


def test_a_config_kamailio_rejects_fails_with_kamailio_s_words(tmp_path: Path) -> None:
    no_modules = tmp_path / "no-modules"
    no_modules.mkdir()
    settings = KamailioSettings(runtime_dir=tmp_path / "run", workers=((HOST, 5071),), module_path=no_modules)
    with pytest.raises(KamailioConfigError, match=r"could not find module <kex>"):
        check_config(settings)
    process = KamailioProcess(settings)
    with pytest.raises(KamailioConfigError, match=r"kamailio rejected .*kamailio\.cfg"):
        process.start()
    assert not process.is_running()
    assert any("apt-get install kamailio" in problem for problem in check_kamailio(no_modules))


def test_a_port_in_use_is_a_clear_start_error(tmp_path: Path, sipp_binary: str) -> None:
    (port,) = sip_ports(1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as squatter:
        squatter.bind((HOST, port))
        settings = KamailioSettings(runtime_dir=tmp_path, workers=((HOST, 5071),), listen_port=port)
        process = KamailioProcess(settings)
        with pytest.raises(KamailioStartError, match=r"exited .*\n.*Address already in use"):
            process.start()
    assert not process.is_running()


# --- registrar and dispatcher ------------------------------------------------------------------


def test_an_agent_registers(start_kamailio: Callable[..., KamailioProcess], sipp: Sipp) -> None:
    kamailio = start_kamailio(sip_ports(1))
    (contact_port,) = sip_ports(1)
    sipp.call(
        "uac_register.xml",
        kamailio.settings.listen_port,
        "1001",
        "register",
        keys={"contact_port": str(contact_port)},
    )
    (line,) = [line for line in sipp.log("register") if line.startswith("REGISTERED")]
    assert f"<sip:1001@127.0.0.1:{contact_port}>" in line
    assert "expires=" in line


def test_calls_are_spread_over_two_workers(start_kamailio: Callable[..., KamailioProcess], sipp: Sipp) -> None:
    first, second = sip_ports(2)
    sipp.serve("uas_answer.xml", first, "worker1")
    sipp.serve("uas_answer.xml", second, "worker2")
    kamailio = start_kamailio([first, second])
    sipp.call("uac_invite.xml", kamailio.settings.listen_port, "12345", "caller", calls=6)
    # Round robin over two active workers.
    until(lambda: (sipp.invites("worker1"), sipp.invites("worker2")) == (3, 3), timeout=5)


def test_a_full_worker_s_503_sends_the_call_to_the_next(
    start_kamailio: Callable[..., KamailioProcess], sipp: Sipp
) -> None:
    full, free = sip_ports(2)
    sipp.serve("uas_busy.xml", full, "full")
    sipp.serve("uas_answer.xml", free, "free")
    kamailio = start_kamailio([full, free])
    sipp.call("uac_invite.xml", kamailio.settings.listen_port, "12345", "caller", calls=4)
    until(lambda: sipp.invites("free") == 4, timeout=5)
    assert sipp.invites("full") == 2  # every other call tried it first
    assert f"worker sip:{HOST}:{full} answered 503, trying the next one" in kamailio.log_text()
    # A full worker still answers OPTIONS: it stays active.
    assert f"worker down: sip:{HOST}:{full}" not in kamailio.log_text()


def test_a_dead_worker_costs_one_timeout_then_probing_keeps_it_out_and_brings_it_back(
    start_kamailio: Callable[..., KamailioProcess], sipp: Sipp
) -> None:
    dead, alive = sip_ports(2)
    sipp.serve("uas_answer.xml", alive, "alive")
    kamailio = start_kamailio([dead, alive])
    port = kamailio.settings.listen_port

    # Before any probe: the first call tries the dead worker, waits worker_timeout_ms, moves on.
    first = sipp.call("uac_invite.xml", port, "12345", "caller1")
    assert 0.45 <= first < 2.0, first
    log = kamailio.log_text()
    assert f"worker sip:{HOST}:{dead} silent for 500 ms, marking it inactive" in log
    assert f"worker down: sip:{HOST}:{dead}" in log

    # Marked inactive: later calls go straight to the live worker.
    later = sipp.call("uac_invite.xml", port, "12345", "caller2", calls=4)
    assert later < 1.0, later
    until(lambda: sipp.invites("alive") == 5, timeout=5)

    # The worker comes back: the next probe marks it active and calls reach it again.
    sipp.serve("uas_answer.xml", dead, "revived")
    until(lambda: f"worker up: sip:{HOST}:{dead}" in kamailio.log_text(), timeout=5)
    sipp.call("uac_invite.xml", port, "12345", "caller3", calls=4)
    until(lambda: sipp.invites("revived") == 2, timeout=5)


def test_with_every_worker_dead_callers_get_503(start_kamailio: Callable[..., KamailioProcess], sipp: Sipp) -> None:
    kamailio = start_kamailio(sip_ports(2))
    port = kamailio.settings.listen_port
    # Not yet probed: each worker is tried once (worker_timeout_ms each), then 503.
    first = sipp.call("uac_invite_rejected.xml", port, "12345", "caller1")
    assert 0.9 <= first < 3.0, first
    # Both now inactive: 503 at once.
    second = sipp.call("uac_invite_rejected.xml", port, "12345", "caller2")
    assert second < 0.5, second
    assert [line.split()[:2] for line in sipp.log("caller1") + sipp.log("caller2")] == [
        ["REJECTED", "503"],
        ["REJECTED", "503"],
    ]
    assert "no active worker for 12345" in kamailio.log_text()


def test_a_caller_s_cancel_reaches_the_ringing_worker_and_is_not_failed_over(
    start_kamailio: Callable[..., KamailioProcess], sipp: Sipp
) -> None:
    ringing, other = sip_ports(2)
    sipp.serve("uas_ring.xml", ringing, "ringing")
    sipp.serve("uas_answer.xml", other, "other")
    kamailio = start_kamailio([ringing, other])  # round robin starts with the first
    sipp.call("uac_cancel.xml", kamailio.settings.listen_port, "12345", "caller")
    assert sipp.log("caller")[0].startswith("TERMINATED")
    until(lambda: any(line.startswith("CANCEL") for line in sipp.log("ringing")), timeout=5)
    # The 487 that follows a CANCEL ends the call: no other worker is tried.
    assert sipp.invites("other") == 0


# --- worker to agent ---------------------------------------------------------------------------


def test_a_worker_reaches_a_registered_agent_and_gets_404_for_an_unregistered_one(
    start_kamailio: Callable[..., KamailioProcess], sipp: Sipp
) -> None:
    worker, agent, other = sip_ports(3)
    sipp.serve("uas_answer.xml", agent, "agent")
    kamailio = start_kamailio([worker])
    port = kamailio.settings.listen_port
    sipp.call("uac_register.xml", port, "1001", "register", keys={"contact_port": str(agent)})
    # Nothing answers the probes on the worker's port (sipp runs there only while it calls): a worker
    # is recognised by its address whatever its probing state.
    until(lambda: f"worker down: sip:{HOST}:{worker}" in kamailio.log_text(), timeout=5)

    sipp.call("uac_invite.xml", port, "1001", "worker_call", local_port=worker)
    until(lambda: sipp.invites("agent") == 1, timeout=5)
    assert f"worker {HOST}:{worker} INVITE to agent 1001 at sip:1001@{HOST}:{agent}" in kamailio.log_text()

    sipp.call("uac_invite_rejected.xml", port, "1002", "unregistered", local_port=worker)
    assert sipp.log("unregistered")[0].startswith("REJECTED 404")

    # The same INVITE from any other address is an incoming call: it goes to the (dead) workers.
    sipp.call("uac_invite_rejected.xml", port, "1001", "not_a_worker", local_port=other)
    assert sipp.log("not_a_worker")[0].startswith("REJECTED 503")
    assert sipp.invites("agent") == 1


# --- robustness --------------------------------------------------------------------------------


def _request(first_line: str, *headers: str, body: str = "") -> bytes:
    base = [
        "Via: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bK-malformed-{n}",
        "From: <sip:fuzz@127.0.0.1>;tag=f{n}",
        "To: <sip:12345@127.0.0.1>",
        "Call-ID: malformed-{n}@127.0.0.1",
        "CSeq: 1 INVITE",
        "Max-Forwards: 70",
    ]
    names = {header.split(":", 1)[0].lower() for header in headers}
    kept = [line for line in base if line.split(":", 1)[0].lower() not in names]
    return ("\r\n".join([first_line, *kept, *headers]) + "\r\n\r\n" + body).encode("utf-8", "surrogateescape")


MALFORMED: list[bytes] = [
    b"\x00\x01\x02\xff\xfe garbage",
    b"\r\n\r\n",
    b"INVITE sip:12345@127.0.0.1 SIP/2.0\r\n\r\n",
    b"INVITE\r\n\r\n",
    b"SIP/2.0 200 OK\r\nVia: nonsense\r\n\r\n",
    _request("INVITE sip:12345@127.0.0.1 SIP/2.0", "CSeq: abc INVITE"),
    _request("INVITE sip:12345@127.0.0.1 SIP/2.0", "CSeq: 1 BYE"),
    _request("INVITE sip:12345@127.0.0.1 SIP/2.0", "Content-Length: 5000", body="v=0"),
    _request("INVITE sip:12345@127.0.0.1 SIP/2.0", "Max-Forwards: 0"),
    _request("INVITE sip:12345@127.0.0.1 SIP/2.0", "Via: SIP/2.0/UDP ;;;;branch="),
    _request("INVITE <<not a uri>> SIP/2.0"),
    _request("OPTIONS sip:12345@127.0.0.1 SIP/7.0"),
    _request("REGISTER sip:127.0.0.1 SIP/2.0", "Contact: <sip:\xff\xfe@[::1"),
    _request("BYE sip:12345@127.0.0.1 SIP/2.0", "X-Long: " + "a" * 60000),
]


def test_malformed_sip_does_not_kill_kamailio(start_kamailio: Callable[..., KamailioProcess]) -> None:
    kamailio = start_kamailio(sip_ports(1))
    target = (HOST, kamailio.settings.listen_port)
    replies: list[bytes] = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((HOST, 0))
        for n, packet in enumerate(MALFORMED):
            sock.sendto(packet.replace(b"{n}", str(n).encode()), target)
        sock.settimeout(0.3)
        for _ in range(100):  # bounded: replies (and retransmissions) until 0.3 s of silence
            try:
                replies.append(sock.recv(65535))
            except TimeoutError:
                break
    statuses = {match.group(1).decode() for reply in replies if (match := re.match(rb"SIP/2\.0 (\d{3})", reply))}
    assert "483" in statuses  # Max-Forwards: 0
    assert "400" in statuses  # sanity: bad CSeq and friends
    assert kamailio.is_running()
    assert options_ping(HOST, kamailio.settings.listen_port) == 200
