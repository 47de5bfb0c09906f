"""What the worker's calls and its outbound attempts (callbacks, surveys) do alike: the per-leg
recording files and their stereo merge, the reason a failed leg gives, the queue's clock, and
driving an attempt's sans-IO flow (FlowDriver)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from hotline.recordings.stereo import merge_stereo

logger = logging.getLogger(__name__)


class Recorders(Protocol):
    async def stop_record(self, wav_path: str) -> None: ...


def epoch_ms() -> int:
    """Wall-clock ms: the time the queue's scripts are given."""
    return int(time.time() * 1000)


def leg_file(recording: Path, leg: str) -> Path:
    """The mono file one leg ("caller", "agent") is recorded into, beside the call's recording."""
    return recording.with_name(f"{recording.stem}.{leg}.wav")


def failure_reason(code: int, not_found: str = "not-registered") -> str:
    """The reason a leg that was never answered gives, from its final SIP status."""
    if code in (486, 600):
        return "busy"
    if code in (408, 480, 487):
        return "no-answer"
    if code in (603, 403):
        return "rejected"
    if code == 404:
        return not_found
    return f"failed-{code}"


async def close_stereo(sip: Recorders | None, recording: Path, call: str) -> str | None:
    """Stops both legs' recorders and merges them into the stereo recording (caller left, agent
    right); returns its path, the caller's file if the merge failed (a full disk or a broken
    file never loses the call), None if nothing was recorded."""
    caller, agent = leg_file(recording, "caller"), leg_file(recording, "agent")
    if sip is not None:
        for path in (caller, agent):
            with contextlib.suppress(Exception):
                await sip.stop_record(str(path))
    if not caller.exists():
        return None
    try:
        await asyncio.to_thread(merge_stereo, caller, agent if agent.exists() else None, recording)
    except (OSError, ValueError) as exc:
        logger.error("call %s: stereo merge failed (%s); keeping %s", call, exc, caller)
        return str(caller)
    caller.unlink(missing_ok=True)
    agent.unlink(missing_ok=True)
    return str(recording)


class FlowDriver:
    """Feeds a sans-IO flow its events and carries out its commands, strictly in order, with a
    timer for its next deadline (the callback and survey runners; `_do` is theirs)."""

    what = "call"
    clock: Callable[[], float]
    spawn: Callable[[Any, str], None]

    def _tick(self) -> Any:
        raise NotImplementedError

    async def _do(self, a: Any, command: Any) -> None:
        raise NotImplementedError

    def _feed(self, a: Any, event: Any) -> None:
        try:
            commands = a.flow.handle(event, self.clock())
        except Exception:
            logger.exception("%s %s: %s", self.what, a.call_id, event)
            return
        self.spawn(self._execute(a, commands), f"{self.what}-{a.call_id}")
        if a.timer is not None:
            a.timer.cancel()
            a.timer = None
        deadline = a.flow.next_deadline()
        if deadline is not None:
            delay = max(0.0, deadline - self.clock())
            a.timer = asyncio.get_running_loop().call_later(delay + 0.001, self._feed, a, self._tick())

    async def _execute(self, a: Any, commands: list[Any]) -> None:
        async with a.lock:
            for command in commands:
                try:
                    await self._do(a, command)
                except Exception:
                    logger.exception("%s %s: %s failed", self.what, a.call_id, command)
