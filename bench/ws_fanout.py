"""The live events WebSocket under fan-out: 1,000 supervisors' desks on one control process.

Run from the repository root (not part of CI; 127.0.0.1 only; about a minute with the defaults):

    .venv/bin/python -m bench.ws_fanout                          # N=1000, 10 for reference
    .venv/bin/python -m bench.ws_fanout --clients 200 --events 100

What it does, in one session:
1. Starts a redis-server of its own (Unix socket) and the agent desktop app as `hotline control`
   serves it (make_app with LiveHub on the real RedisEventBus, sessions in Redis: RedisSessions)
   in a child process of its own, on 127.0.0.1, so the app's CPU is measured apart from the
   clients' (utime + stime of that process from /proc, over the publishing phase).
2. Signs in once through POST /login as a supervisor; the other clients' sessions are made
   straight in the shared Redis (RedisSessions, as another control process would), since 1,000
   argon2 sign-ins would only measure argon2.
3. For each run (the reference with --reference clients in one client process first, then
   --clients spread over --procs client processes, since one Python process cannot read 10,000
   frames a second and would measure itself): connects the clients (?token=), waits for each
   one's hello and for a warm-up event to reach all of them, then publishes --events `alert`
   events to the events stream at --rate per second from this process (a synchronous Redis
   client, apart from the clients' loops). Each event carries its publish time (wall clock); a
   client's latency is its receive time minus that. Clients parse every message (as a desk does).
4. Prints p50/p95/p99/max latency, messages/s delivered (from the first publish to the last
   receipt), the app's and the client processes' CPU (% of one core) and the clients kicked as
   too slow (close code 4008), for each run, and the ratio of the two.

The clients share the machine with the app (2 cores here): their own CPU is in the latency.
The process fd limit is raised to its hard limit (the app needs one per client, and so do we).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import platform
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import aiohttp
import redis
import redis.asyncio

from hotline.agent_desktop.auth import Principal, principal_from_json, principal_json
from hotline.core import events
from hotline.core.model import AgentId
from hotline.queue import keys
from hotline.queue.sessions import RedisSessions

API = "/api/v1"
PASSWORD = "bench-password-long-enough"
SUPERVISOR = "sup"
MAX_CLIENTS = 5000
MAX_EVENTS = 5000
TIMEOUT_S = 120.0  # any phase of a run


def raise_fd_limit(needed: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        soft = hard
    if soft < needed:
        raise SystemExit(f"the fd limit is {soft}, {needed} needed: raise the hard limit (ulimit -Hn)")


def pct(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def redis_server(workdir: Path) -> Iterator[str]:
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server is not installed: run `make test` or `make run` first")
    sock = workdir / "redis.sock"
    args = [binary, "--port", "0", "--unixsocket", str(sock), "--save", "", "--appendonly", "no",
            "--dir", str(workdir), "--logfile", str(workdir / "redis.log")]  # fmt: skip
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"unix://{sock}"
        deadline = time.monotonic() + 10
        while True:
            try:
                redis.Redis.from_url(url).ping()
                break
            except redis.exceptions.ConnectionError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise SystemExit("redis-server did not start") from None
                time.sleep(0.05)
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


# --- the app, in a child process ------------------------------------------------------------


def serve(port: int, redis_url: str, db: str) -> None:
    """The child: the app as `hotline control` wires its API (LiveHub, RedisSessions)."""
    from aiohttp import web

    from hotline.agent_desktop.app import make_app
    from hotline.agent_desktop.auth import Auth
    from hotline.agent_desktop.live import LiveHub
    from hotline.queue.acd import RedisCallQueue
    from hotline.queue.bus import RedisEventBus
    from hotline.tickets.store import SqlTicketStore

    async def main() -> None:
        client = redis.asyncio.Redis.from_url(redis_url)
        store = SqlTicketStore(db)
        bus = RedisEventBus(client)
        app = make_app(
            RedisCallQueue(client),
            store,
            auth=Auth(store, RedisSessions(client, principal_json, principal_from_json)),
            live=LiveHub(bus),
        )
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        try:
            await asyncio.Event().wait()  # until the parent terminates us
        finally:
            await runner.cleanup()
            await client.aclose()
            store.close()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())


@contextlib.contextmanager
def app_process(port: int, redis_url: str, db: str) -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen([sys.executable, "-m", "bench.ws_fanout", "--serve", str(port), redis_url, db])
    try:
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
                break
            if time.monotonic() > deadline or proc.poll() is not None:
                raise SystemExit("the app did not start")
            time.sleep(0.1)
        yield proc
    finally:
        proc.terminate()
        proc.wait(30)


# --- the clients ----------------------------------------------------------------------------


@dataclass
class Run:
    clients: int
    procs: int
    latencies_ms: list[float] = field(default_factory=list)
    received: int = 0
    kicked: int = 0
    deliver_s: float = 0.0
    app_cpu_s: float = 0.0
    clients_cpu_s: float = 0.0

    def report(self) -> dict[str, Any]:
        lat = self.latencies_ms
        return {
            "clients": self.clients,
            "client_processes": self.procs,
            "messages": self.received,
            "p50_ms": round(statistics.median(lat), 2),
            "p95_ms": round(pct(lat, 0.95), 2),
            "p99_ms": round(pct(lat, 0.99), 2),
            "max_ms": round(max(lat), 2),
            "messages_per_s": round(self.received / self.deliver_s),
            "app_cpu_pct": round(100 * self.app_cpu_s / self.deliver_s, 1),
            "clients_cpu_pct": round(100 * self.clients_cpu_s / self.deliver_s, 1),
            "kicked": self.kicked,
        }


@dataclass
class Listened:
    latencies_ms: list[float] = field(default_factory=list)
    kicked: int = 0
    last_receive: float = 0.0


async def _listen(ws: aiohttp.ClientWebSocketResponse, out: Listened, expected: int, warm: asyncio.Event) -> None:
    got = 0
    async for msg in ws:
        if msg.type is not aiohttp.WSMsgType.TEXT:
            break
        now = time.time()
        message = json.loads(msg.data)
        data = message.get("data", {})
        if message.get("type") != events.ALERT or data.get("alert") != "bench":
            continue
        if data["seq"] < 0:
            warm.set()
            continue
        out.latencies_ms.append((now - data["sent"]) * 1000)
        out.last_receive = max(out.last_receive, now)
        got += 1
        if got == expected:
            return
    if ws.close_code == 4008:
        out.kicked += 1


async def _clients(base: str, tokens: list[str], events_n: int, pipe: Connection) -> None:
    """One client process: connect, report "connected", "warm" (every client saw a warm-up
    event), then the run's samples and this process's CPU seconds over the run."""
    out = Listened()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
        sockets: list[aiohttp.ClientWebSocketResponse] = []
        for batch in range(0, len(tokens), 100):  # the server's listen backlog is finite
            opened = await asyncio.gather(
                *(http.ws_connect(f"{base}{API}/ws?token={t}", heartbeat=None) for t in tokens[batch : batch + 100])
            )
            for ws in opened:
                hello = await ws.receive_json(timeout=30)
                assert hello["type"] == "hello", hello
            sockets.extend(opened)
        warm = [asyncio.Event() for _ in sockets]
        listeners = [asyncio.create_task(_listen(ws, out, events_n, w)) for ws, w in zip(sockets, warm, strict=True)]
        pipe.send("connected")
        await asyncio.wait_for(asyncio.gather(*(w.wait() for w in warm)), TIMEOUT_S)
        cpu0 = time.process_time()
        pipe.send("warm")
        _, pending = await asyncio.wait(listeners, timeout=TIMEOUT_S + events_n)
        cpu = time.process_time() - cpu0
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)
    pipe.send((out.latencies_ms, out.kicked, out.last_receive, cpu))


def client_process(base: str, tokens: list[str], events_n: int, pipe: Connection) -> None:
    raise_fd_limit(len(tokens) + 100)
    asyncio.run(_clients(base, tokens, events_n, pipe))


def _publisher(redis_url: str, count: int, rate: float, seq0: int = 0) -> None:
    """Publishes `count` events at `rate` per second, each with its wall-clock publish time."""
    client = redis.Redis.from_url(redis_url)
    stream = keys.events()
    start = time.monotonic()
    for i in range(count):
        delay = start + i / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        data = {"alert": "bench", "details": "", "seq": seq0 + i, "sent": time.time()}
        client.xadd(stream, events.encode(events.ALERT, data))  # type: ignore[arg-type]
    client.close()


def _expect(pipes: list[Connection], what: str, redis_url: str | None = None) -> None:
    """Waits for `what` from every client process; while waiting, publishes a warm-up event a
    second if redis_url is given."""
    waiting = set(range(len(pipes)))
    deadline = time.monotonic() + TIMEOUT_S
    while waiting:
        if time.monotonic() > deadline:
            raise SystemExit(f"client processes did not report {what!r} in time")
        if redis_url is not None:
            _publisher(redis_url, 1, 1.0, -1)
        for i in list(waiting):
            if pipes[i].poll(1.0 / len(pipes)):
                got = pipes[i].recv()
                assert got == what, got
                waiting.discard(i)


def one_run(base: str, redis_url: str, tokens: list[str], events_n: int, rate: float, app_pid: int, procs: int) -> Run:
    run = Run(len(tokens), procs)
    ctx = multiprocessing.get_context("spawn")
    pipes, workers = [], []
    for i in range(procs):
        mine, theirs = ctx.Pipe()
        worker = ctx.Process(target=client_process, args=(base, tokens[i::procs], events_n, theirs), daemon=True)
        worker.start()
        pipes.append(mine)
        workers.append(worker)
    try:
        _expect(pipes, "connected")
        _expect(pipes, "warm", redis_url)  # the reader is running and every desk is live
        cpu0, start = cpu_seconds(app_pid), time.time()
        _publisher(redis_url, events_n, rate)
        last = start
        for pipe in pipes:
            if not pipe.poll(TIMEOUT_S + events_n / rate):
                raise SystemExit("a client process did not report its samples")
            latencies, kicked, last_receive, cpu = pipe.recv()
            run.latencies_ms += latencies
            run.kicked += kicked
            run.clients_cpu_s += cpu
            last = max(last, last_receive)
        run.app_cpu_s = cpu_seconds(app_pid) - cpu0
        run.received = len(run.latencies_ms)
        run.deliver_s = last - start
    finally:
        for worker in workers:
            worker.join(30)
            if worker.is_alive():
                worker.terminate()
    return run


async def _tokens(base: str, redis_url: str, n: int) -> list[str]:
    async with aiohttp.ClientSession() as http:
        signed = await http.post(f"{base}{API}/login", json={"username": SUPERVISOR, "password": PASSWORD})
        assert signed.status == 200, await signed.text()
        first = str((await signed.json())["token"])
    client = redis.asyncio.Redis.from_url(redis_url)
    sessions = RedisSessions(client, principal_json, principal_from_json)
    who = Principal(SUPERVISOR, "supervisor", None)
    tokens = [first] + [await sessions.create(who, 3600) for _ in range(n - 1)]
    await client.aclose()
    return tokens


def bench(args: argparse.Namespace, redis_url: str, db: str) -> list[Run]:
    port = free_port()
    with app_process(port, redis_url, db) as proc:
        base = f"http://127.0.0.1:{port}"
        tokens = asyncio.run(_tokens(base, redis_url, args.clients))
        runs = []
        for n, procs in ((args.reference, 1), (args.clients, args.procs)):
            runs.append(one_run(base, redis_url, tokens[:n], args.events, args.rate, proc.pid, procs))
            print(json.dumps(runs[-1].report()), flush=True)
        return runs


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--reference", type=int, default=10, help="clients of the reference run")
    parser.add_argument("--events", type=int, default=200, help="events published per run")
    parser.add_argument("--rate", type=float, default=10.0, help="events per second")
    parser.add_argument("--procs", type=int, default=2, help="client processes of the big run")
    parser.add_argument("--serve", nargs=3, metavar=("PORT", "REDIS_URL", "DB"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        raise_fd_limit(MAX_CLIENTS + 100)
        serve(int(args.serve[0]), args.serve[1], args.serve[2])
        return
    if not (
        1 <= args.reference <= args.clients <= MAX_CLIENTS
        and 1 <= args.events <= MAX_EVENTS
        and args.rate > 0
        and 1 <= args.procs <= 8
    ):
        parser.error(
            f"need 1 <= reference <= clients <= {MAX_CLIENTS}, 1 <= events <= {MAX_EVENTS}, rate > 0, procs 1-8"
        )
    raise_fd_limit(args.clients + 100)
    from hotline.core.model import Agent
    from hotline.tickets.store import SqlTicketStore

    with tempfile.TemporaryDirectory(prefix="ws-fanout-") as tmp, redis_server(Path(tmp)) as redis_url:
        db = f"sqlite:///{tmp}/tickets.db"
        store = SqlTicketStore(db)
        store.add_agent(Agent(AgentId("a1"), "张伟", "1001"))
        store.add_account(SUPERVISOR, PASSWORD, "supervisor")
        store.close()
        print(f"{platform.node()}: {os.cpu_count()} cores, Python {platform.python_version()}", flush=True)
        reference, loaded = bench(args, redis_url, db)
    ref, big = reference.report(), loaded.report()
    print(
        f"{big['clients']} vs {ref['clients']} clients: p50 x{big['p50_ms'] / ref['p50_ms']:.1f}, "
        f"p99 x{big['p99_ms'] / ref['p99_ms']:.1f}, app CPU x{big['app_cpu_pct'] / max(ref['app_cpu_pct'], 0.1):.1f}"
    )


if __name__ == "__main__":
    main()
