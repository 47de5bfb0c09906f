"""Test support: free ports, real redis-server processes, polling."""

from __future__ import annotations

import asyncio
import contextlib
import random
import shutil
import socket
import subprocess
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

_rng = random.Random()


def require_tool(name: str, install: str) -> str:
    """The path of executable `name`. A missing one fails the test loudly with the command that
    installs it (`make test` installs every tool the tests use): never a silent skip."""
    found = shutil.which(name)
    if found is None:
        raise RuntimeError(f"{name} is not installed: {install} (or run `make test`, which installs it)")
    return found


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    """A port free on 127.0.0.1 for TCP (default) or UDP.

    Picked in 10000-29999, below Linux's ephemeral range (32768+): a port from bind(0) is an
    ephemeral one, which any other socket bound to port 0 (an RTP port, a client) may take
    before the program we hand it to binds it. A UDP port is even and the three above it are
    free too: given to sipp as its media port, sipp binds audio RTP/RTCP there and video
    RTP/RTCP at +2 and +3 (one of those taken fails the call: "Unable to bind video RTP
    socket")."""
    span = 4 if kind == socket.SOCK_DGRAM else 1
    for _ in range(200):
        port = _rng.randrange(10000, 30000 - span)
        port -= port % span if span > 1 else 0
        with contextlib.ExitStack() as held:
            try:
                for offset in range(span):
                    sock = held.enter_context(socket.socket(socket.AF_INET, kind))
                    sock.bind(("127.0.0.1", port + offset))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port in 10000-29999")


def free_udp_tcp_port() -> int:
    """A port free for both UDP and TCP (SIP listens on both)."""
    for _ in range(50):
        port = free_port(socket.SOCK_DGRAM)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            try:
                tcp.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port
    raise RuntimeError("no free UDP+TCP port")


def until(predicate: Callable[[], object], timeout: float = 10.0, interval: float = 0.05) -> object:
    """Polls predicate until it returns something truthy; fails the test on timeout."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s (last value {last!r})")


async def until_async(
    predicate: Callable[[], Awaitable[object]], timeout: float = 10.0, interval: float = 0.05
) -> object:
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        last = await predicate()
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s (last value {last!r})")


class RedisServer:
    """A real redis-server on a free port in its own directory."""

    def __init__(self, workdir: Path, appendonly: bool = False) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server not installed: run `make test` (it installs it)")
        self.binary = binary
        self.workdir = workdir
        self.appendonly = appendonly
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        args = [
            self.binary,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", str(self.workdir),
            "--save", "",
            "--appendonly", "yes" if self.appendonly else "no",
            "--logfile", str(self.workdir / "redis.log"),
        ]  # fmt: skip
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        until(self._ping, timeout=10)

    def _ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self, kill: bool = False) -> None:
        if self.proc is None:
            return
        if kill:
            self.proc.kill()
        else:
            self.proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=10)
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None


@contextlib.contextmanager
def redis_server(workdir: Path, appendonly: bool = False) -> Iterator[RedisServer]:
    server = RedisServer(workdir, appendonly=appendonly)
    server.start()
    try:
        yield server
    finally:
        server.stop()


# ../shared beside the checkout (CI clones the repo with shared/ beside it).
SHARED_DIR = Path(__file__).resolve().parent.parent.parent / "shared"
MANDARIN_DIR = SHARED_DIR / "audio" / "mandarin"


def mandarin_clip(name: str) -> Path:
    """A real Mandarin clip from ../shared/audio/mandarin; fails loudly if shared/ is missing."""
    path = MANDARIN_DIR / f"{name}.wav"
    if not path.exists():
        raise AssertionError(f"{path} missing: the tests need ../shared beside the checkout")
    return path
