"""`hotline serve`: starts the service's processes, restarts the ones that die, stops them all.

Children are started in order (Redis, Kamailio, workers, control) and stopped in reverse, each
with SIGTERM then SIGKILL. A child that exits while the service runs is restarted with a
growing delay (1 s, 2 s, ... 30 s), reset once it has stayed up for a minute.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

logger = logging.getLogger(__name__)


@dataclasses.dataclass
class Child:
    name: str
    argv: list[str]
    env: dict[str, str] | None = None
    log_path: Path | None = None
    ready: Callable[[], bool] | None = None  # polled after start, up to ready_timeout_s
    ready_timeout_s: float = 20.0
    restart: bool = True
    proc: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    backoff_s: float = 1.0
    restart_at: float | None = None
    restarts: int = 0


class Supervisor:
    def __init__(self) -> None:
        self.children: list[Child] = []
        self._stop = threading.Event()

    def add(self, child: Child) -> None:
        self.children.append(child)

    def start_child(self, child: Child) -> None:
        env = None if child.env is None else {**os.environ, **child.env}
        if child.log_path is None:
            child.proc = subprocess.Popen(
                child.argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, env=env
            )
        else:
            with child.log_path.open("ab") as out:
                child.proc = subprocess.Popen(
                    child.argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env
                )
        child.started_at = time.monotonic()
        child.restart_at = None
        logger.info("started %s (pid %d)", child.name, child.proc.pid)
        if child.ready is not None:
            deadline = time.monotonic() + child.ready_timeout_s
            while not child.ready():
                if child.proc.poll() is not None:
                    raise RuntimeError(
                        f"{child.name} exited with {child.proc.returncode} at start-up (log: {child.log_path})"
                    )
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"{child.name} not ready within {child.ready_timeout_s:.0f}s (log: {child.log_path})"
                    )
                time.sleep(0.1)

    def start_all(self) -> None:
        for child in self.children:
            self.start_child(child)

    def request_stop(self, *_: object) -> None:
        self._stop.set()

    def run(self, poll_s: float = 0.5) -> None:
        """Watches the children until request_stop (SIGTERM/SIGINT), then stops them all."""
        signal.signal(signal.SIGTERM, self.request_stop)
        signal.signal(signal.SIGINT, self.request_stop)
        try:
            while not self._stop.wait(poll_s):
                self.watch_once()
        finally:
            self.stop_all()

    def watch_once(self) -> None:
        now = time.monotonic()
        for child in self.children:
            proc = child.proc
            if proc is not None and proc.poll() is not None:
                logger.error("%s exited with %s", child.name, proc.returncode)
                child.proc = None
                if not child.restart:
                    continue
                if now - child.started_at > 60:
                    child.backoff_s = 1.0
                child.restart_at = now + child.backoff_s
                child.backoff_s = min(child.backoff_s * 2, 30.0)
            if child.proc is None and child.restart_at is not None and now >= child.restart_at:
                child.restarts += 1
                try:
                    self.start_child(child)
                except (OSError, RuntimeError) as exc:
                    logger.error("restarting %s: %s", child.name, exc)
                    child.restart_at = now + child.backoff_s

    def stop_all(self, timeout_s: float = 10.0) -> None:
        for child in reversed(self.children):
            proc = child.proc
            if proc is None or proc.poll() is not None:
                continue
            proc.terminate()
            try:
                proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                logger.warning("%s ignored SIGTERM: killing it", child.name)
                proc.kill()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=timeout_s)
            logger.info("stopped %s", child.name)
            child.proc = None
