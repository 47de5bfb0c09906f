"""The Redis ACD under a large centre's load: memory, dispatch rate, enqueue-to-offer latency.

Run from the repository root (not part of CI; about a minute with the defaults):

    .venv/bin/python -m bench.acd                      # results appended to docs/benchmarks.md
    .venv/bin/python -m bench.acd --quick --no-write   # smaller, printed only

A redis-server of its own (AOF on, appendfsync everysec, as `hotline serve` runs it) on a Unix
socket; the product's RedisCallQueue, RedisEventBus and Control (dispatcher) on it:

1. Memory: INFO used_memory before and after enqueueing --waiting calls (as the worker does:
   caller number, worker id, arrival ms), divided by the number of calls.
2. Dispatch decisions per second: --agents agents log in; dispatch_once is called back to back
   while --waiting calls wait (each decision reserves an agent for the head call); then the
   offers are answered and the calls finished (the agents are available again) and it repeats
   for --rounds rounds. Percentiles of one decision's latency (client round trip included).
3. Enqueue-to-offer latency, end to end through the control plane: --waiting calls wait and
   every agent is on a call; the real Control dispatcher loop runs (as `hotline control` does).
   Each sample enqueues an emergency call and at once frees one agent (call_finished); the
   time from the enqueue until CMD_OFFER for that call arrives on its worker's command stream
   (blocking XREAD) is the latency: Lua dispatch, the dispatcher's wake-up (it sleeps on the
   event stream, so the agent.state event of call_finished wakes it) and the stream hop.
   --samples samples, one at a time.

Times are wall clock on a shared 2-core machine: compare runs of the same session.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import redis.asyncio

from hotline.core import events as ev
from hotline.core.model import Agent, AgentId, CallId, Priority, WorkerId
from hotline.core.ports import Offer
from hotline.queue.acd import RedisCallQueue
from hotline.queue.bus import RedisEventBus
from hotline.runtime.control import Control, ControlSettings
from hotline.tickets.store import SqlTicketStore

REPO = Path(__file__).resolve().parent.parent
BENCHMARKS = REPO / "docs" / "benchmarks.md"
HEADING = "## ACD in Redis (`bench/acd.py`)"
WORKER = WorkerId("bench-w1")


def pct(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def ms_summary(values: Sequence[float]) -> str:
    return (
        f"p50 {pct(values, 0.5) * 1000:.2f} ms, p95 {pct(values, 0.95) * 1000:.2f} ms, "
        f"p99 {pct(values, 0.99) * 1000:.2f} ms, max {max(values) * 1000:.2f} ms"
    )


@contextlib.contextmanager
def redis_server(workdir: Path) -> Iterator[str]:
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server is not installed: run `make test` or `make run` first")
    sock = workdir / "redis.sock"
    args = [
        binary, "--port", "0", "--unixsocket", str(sock), "--dir", str(workdir), "--save", "",
        "--appendonly", "yes", "--appendfsync", "everysec", "--logfile", str(workdir / "redis.log"),
    ]  # fmt: skip
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while not sock.exists():
            if time.monotonic() > deadline or proc.poll() is not None:
                raise SystemExit(f"redis-server did not start: {(workdir / 'redis.log').read_text()}")
            time.sleep(0.05)
        yield f"unix://{sock}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


async def used_memory(client: redis.asyncio.Redis) -> int:
    info = await client.info("memory")
    return int(info["used_memory"])


async def fill(queue: RedisCallQueue, n: int, start_ms: int, prefix: str) -> None:
    for i in range(n):
        await queue.enqueue(CallId(f"{prefix}{i:06d}"), WORKER, f"138{i:08d}", start_ms + i)


async def memory_per_call(client: redis.asyncio.Redis, queue: RedisCallQueue, waiting: int) -> float:
    await client.flushall()
    before = await used_memory(client)
    await fill(queue, waiting, 1_000_000, "m")
    after = await used_memory(client)
    return (after - before) / waiting


async def dispatch_rate(
    client: redis.asyncio.Redis, queue: RedisCallQueue, waiting: int, agents: int, rounds: int
) -> tuple[float, list[float]]:
    await client.flushall()
    now = 10_000_000
    for a in range(agents):
        await queue.agent_login(Agent(AgentId(f"a{a:04d}"), f"坐席{a}", f"{1000 + a}"), now)
    await fill(queue, waiting + agents * rounds, now, "d")
    latencies: list[float] = []
    decisions = 0
    busy = 0.0
    for _ in range(rounds):
        offers: list[Offer] = []
        t0 = time.perf_counter()
        while True:
            s = time.perf_counter()
            offer = await queue.dispatch_once(now, 60_000)
            latencies.append(time.perf_counter() - s)
            if offer is None:
                break
            offers.append(offer)
        busy += time.perf_counter() - t0
        decisions += len(offers)
        for offer in offers:
            await queue.offer_answered(offer.offer_id, now)
        now += 1_000
        for offer in offers:
            await queue.call_finished(offer.call_id, now)
        now += 1_000
    return decisions / busy, latencies


async def end_to_end(
    client: redis.asyncio.Redis, url: str, waiting: int, agents: int, samples: int, workdir: Path
) -> list[float]:
    await client.flushall()
    queue = RedisCallQueue(client)
    bus = RedisEventBus(client)
    store = SqlTicketStore(f"sqlite:///{workdir / 'tickets.db'}")
    now = int(time.time() * 1000)
    ids = [AgentId(f"a{a:04d}") for a in range(agents)]
    for a, agent_id in enumerate(ids):
        await queue.agent_login(Agent(agent_id, f"坐席{a}", f"{1000 + a}"), now)
    # Every agent on a call, then the waiting line behind them.
    on_call: list[CallId] = []
    for a in range(agents):
        call_id = CallId(f"busy{a:04d}")
        await queue.enqueue(call_id, WORKER, "13800000000", now - 3_600_000 + a)
        offer = await queue.dispatch_once(now, 60_000)
        assert offer is not None
        await queue.offer_answered(offer.offer_id, now)
        on_call.append(call_id)
    await fill(queue, waiting, now - 1_800_000, "w")
    await bus.heartbeat(WORKER, 3_600_000, {"calls": 0})

    def uri(offer: Offer) -> str:
        return f"sip:{offer.agent_extension}@127.0.0.1"

    control = Control(ControlSettings(consumer="bench"), queue, bus, store, uri)
    reader = redis.asyncio.Redis.from_url(url)
    runner = asyncio.create_task(control._dispatch_loop())
    await asyncio.sleep(0.5)  # the dispatcher has dispatched what it could and sleeps on the stream
    latencies: list[float] = []
    last_id = "0"  # the command stream is empty: read every offer from the start
    try:
        for n in range(samples):
            wanted = f"urgent{n:05d}"
            t0 = time.perf_counter()
            await queue.enqueue(CallId(wanted), WORKER, "13900000000", int(time.time() * 1000), Priority.EMERGENCY)
            await queue.call_finished(on_call[n % len(on_call)], int(time.time() * 1000))
            deadline = t0 + 5
            found = False
            while not found and time.perf_counter() < deadline:
                entries = await bus.read_commands(WORKER, last_id, block_ms=1000)
                for entry_id, kind, data in entries:
                    last_id = entry_id
                    if kind == ev.CMD_OFFER and data.get("call_id") == wanted:
                        latencies.append(time.perf_counter() - t0)
                        offer_id = str(data["offer_id"])
                        await queue.offer_answered(offer_id, int(time.time() * 1000))  # type: ignore[arg-type]
                        on_call[n % len(on_call)] = CallId(wanted)
                        found = True
            if not found:
                raise SystemExit(f"no offer for {wanted} within 5 s: the dispatcher is stuck")
    finally:
        runner.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await runner
        await reader.aclose()
        store.close()
    return latencies


async def run(args: argparse.Namespace) -> str:
    with tempfile.TemporaryDirectory(prefix="bench-acd-") as tmp, redis_server(Path(tmp)) as url:
        client = redis.asyncio.Redis.from_url(str(url))
        queue = RedisCallQueue(client)
        per_call = await memory_per_call(client, queue, args.waiting)
        print(f"memory: {per_call:.0f} bytes per waiting call ({args.waiting} waiting)")
        rate, decision = await dispatch_rate(client, queue, args.waiting, args.agents, args.rounds)
        print(f"dispatch: {rate:.0f} decisions/s; one decision {ms_summary(decision)}")
        e2e = await end_to_end(client, str(url), args.waiting, args.agents, args.samples, Path(tmp))
        print(f"enqueue -> offer (end to end): {ms_summary(e2e)}")
        await client.aclose()
    when = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    command = "python -m bench.acd " + shlex.join(sys.argv[1:])
    host = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    return "\n".join(
        [
            f"### {when}",
            "",
            f"`{command.strip()}` on {host}; redis-server with AOF (everysec) on a Unix socket.",
            "",
            "| measure | result |",
            "|---|---|",
            f"| memory per waiting call ({args.waiting} waiting) | {per_call:.0f} bytes |",
            f"| dispatch decisions per second ({args.waiting} waiting, {args.agents} agents) | {rate:.0f} |",
            f"| one dispatch decision (client round trip) | {ms_summary(decision)} |",
            f"| enqueue → offer on the worker's stream, through the dispatcher ({args.samples} samples) "
            f"| {ms_summary(e2e)} |",
            "",
        ]
    )


def append_section(text: str, path: Path = BENCHMARKS) -> None:
    """Adds a run at the end of this benchmark's section (creating it at the end of the file)."""
    existing = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n"
    lines = existing.splitlines(keepends=True)
    if HEADING + "\n" not in lines:
        intro = f"\n\n{HEADING}\n\nRecorded by `bench/acd.py` (see its docstring).\n\n"
        path.write_text(existing.rstrip("\n") + intro + text, encoding="utf-8")
        return
    start = lines.index(HEADING + "\n")
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
    before, section, after = "".join(lines[:start]), "".join(lines[start:end]), "".join(lines[end:])
    path.write_text(before + section.rstrip("\n") + "\n\n" + text + ("\n" + after if after else ""), encoding="utf-8")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--waiting", type=int, default=10_000)
    parser.add_argument("--agents", type=int, default=1_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--samples", type=int, default=300)
    parser.add_argument("--quick", action="store_true", help="1,000 waiting, 100 agents, 50 samples")
    parser.add_argument("--no-write", action="store_true", help="print only, do not touch docs/benchmarks.md")
    args = parser.parse_args(argv)
    if args.quick:
        args.waiting, args.agents, args.rounds, args.samples = 1_000, 100, 2, 50
    report = asyncio.run(run(args))
    print(report)
    if not args.no_write:
        append_section(report)
        print(f"appended to {BENCHMARKS}")


if __name__ == "__main__":
    main()
