"""Speech recognition on live calls, end to end: `hotline serve` with the speech service on,
sipp callers through Kamailio playing the real Mandarin clips as G.711 μ-law RTP, no agent
logged in (the callers wait in the queue, then hang up after their clip). Each call's draft,
as `hotline tickets list --json` shows it, holds the transcript; its character error rate
against ../shared/audio/mandarin/refs.tsv is printed per clip and overall.

Bound: bench/asr.py measures Whisper base at 0.099 in total on these clips through G.711 (whole
files); the live path adds RTP, the jitter buffer and the recorder, and cuts utterances with the
streaming VAD (tests/integration/test_speech_service.py: 0.00-0.06). 0.25 in total (0.6 for one
clip, as in tests/integration/test_asr.py) leaves room for Whisper's homophones and traditional
characters on a loaded machine, not for a broken pipeline, which scores about 1.0 (no or
unrelated text).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from hotline.asr.metrics import edit_distance, normalise
from hotline.core import events as ev
from hotline.core.model import WorkerId
from hotline.queue import keys
from tests.e2e.peers import run_sipp, sipp_ulaw_file, write_caller_scenario
from tests.e2e.service import Service
from tests.support import MANDARIN_DIR, free_port, mandarin_clip

pytestmark = pytest.mark.e2e

CER_BOUND_TOTAL = 0.25
CER_BOUND_CLIP = 0.6


def references() -> dict[str, str]:
    lines = (MANDARIN_DIR / "refs.tsv").read_text(encoding="utf-8").strip().splitlines()
    return dict(line.split("\t", 1) for line in sorted(lines))


def speech_commands(svc: Service) -> dict[str, list[dict[str, Any]]]:
    """The speech commands each worker got, by call id."""
    import redis.asyncio

    async def read() -> dict[str, list[dict[str, Any]]]:
        client = redis.asyncio.Redis.from_url(svc.redis_url, decode_responses=True)
        found: dict[str, list[dict[str, Any]]] = {}
        try:
            for worker in range(svc.workers):
                for _, fields in await client.xrange(keys.worker_commands(WorkerId(f"w{worker}"))):
                    kind, data = ev.decode(fields)
                    if kind == ev.CMD_SPEECH:
                        found.setdefault(str(data["call_id"]), []).append(data)
            return found
        finally:
            await client.aclose()

    return asyncio.run(read())


def test_callers_words_become_their_ticket_drafts(start_service: Any, tmp_path: Path) -> None:
    svc: Service = start_service(asr={"enabled": True})
    refs = references()
    callers: dict[str, str] = {}
    for index, name in enumerate(refs):
        cwd = tmp_path / name
        cwd.mkdir()
        speech = sipp_ulaw_file(mandarin_clip(name), cwd / f"{name}.ulaw")
        seconds = speech.stat().st_size / 8000  # μ-law: one byte a sample
        caller = f"1380013{index:04d}"
        callers[name] = caller
        scenario = write_caller_scenario(
            cwd / "call.xml",
            caller_number=caller,
            speech=speech,
            digits="5",  # skips the greeting first: the caller then waits in the queue, talking
            pre_dtmf_ms=500,
            pre_speech_ms=500,
            talk_ms=int(seconds * 1000) + 1500,  # hang up after the clip
        )
        run_sipp(scenario, ("127.0.0.1", svc.sip_port), free_port(2), free_port(2), cwd, timeout_s=60)
    edits = chars = 0
    lines = []
    for name, caller in callers.items():
        ticket = svc.ticket(lambda t, c=caller: t["caller"] == c and t["draft"] is not None, timeout=180)
        assert ticket["outcome"] == "abandoned_in_queue", ticket
        draft = ticket["draft"]
        assert draft["call_id"] == ticket["call_id"] and draft["engine"] == "whisper"
        assert draft["draft"]["error"] is None, draft
        assert draft["draft"]["kind"]["value"] and "summary" in draft["draft"]
        hypothesis, reference = normalise(draft["transcript"]), normalise(refs[name])
        e = edit_distance(hypothesis, reference)
        edits, chars = edits + e, chars + len(reference)
        lines.append(f"{name:32} CER {e / len(reference):.3f}  {draft['transcript']}")
        assert e / len(reference) <= CER_BOUND_CLIP, lines[-1]
        commands = speech_commands(svc)  # the final one is sent before the draft is saved
        final = [c for c in commands.get(ticket["call_id"], []) if c["final"]]
        assert final and final[-1]["text"] == draft["transcript"], commands.get(ticket["call_id"])
    total = edits / chars
    print("\n" + "\n".join(lines) + f"\noverall CER {total:.3f} ({edits} edits in {chars} characters)")
    assert total <= CER_BOUND_TOTAL
