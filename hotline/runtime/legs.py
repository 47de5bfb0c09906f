"""What the worker's calls and its callback attempts do alike with their legs: the per-leg
recording files and their stereo merge, the reason a failed leg gives, and the queue's clock."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from pathlib import Path
from typing import Protocol

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
