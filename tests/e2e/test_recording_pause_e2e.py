"""Pausing a live call's recording for sensitive data, end to end: `hotline serve` (recordings in
FLAC), a sipp caller talking through Kamailio, a baresip agent. While they talk, the agent's API
pauses the recording and resumes it; the stereo recording holds digital silence exactly over the
catalogued gap (within 100 ms of the gap row) on both channels, and the caller's speech before and
after it (correlated as the other e2e tests do)."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from tests.e2e.audio import best_correlation, read_wav_mono
from tests.e2e.peers import BaresipAgent, start_sipp, write_caller_scenario
from tests.e2e.service import Service
from tests.support import free_port, until

pytestmark = pytest.mark.e2e

CALLER = "13800138077"
FRAME_S = 0.02


def silent_run(samples: np.ndarray, rate: int, around_s: float) -> tuple[float, float]:
    """The span (seconds) of the run of digitally silent 20 ms frames that holds `around_s`."""
    frame = round(FRAME_S * rate)
    frames = samples[: len(samples) // frame * frame].reshape(-1, frame)
    silent = np.abs(frames).max(axis=1) == 0.0
    mid = int(around_s / FRAME_S)
    assert silent[mid], f"no silence at {around_s:.2f} s"
    first, last = mid, mid
    while first > 0 and silent[first - 1]:
        first -= 1
    while last + 1 < len(silent) and silent[last + 1]:
        last += 1
    return first * FRAME_S, (last + 1) * FRAME_S


def test_agent_pauses_and_resumes_the_recording(
    start_service: object, tmp_path: Path, caller_speech: Path, caller_clip: Path, agent_clip: Path
) -> None:
    service: Service = start_service(recordings={"format": "flac"})  # type: ignore[operator]
    agent = BaresipAgent(tmp_path / "agent", user="1001", registrar=("127.0.0.1", service.sip_port),
                         play_wav=agent_clip)  # fmt: skip
    agent.start()
    service.add_agent("1001")
    cwd = tmp_path / "caller"
    cwd.mkdir()
    scenario = write_caller_scenario(
        cwd / "call.xml", caller_number=CALLER, speech=caller_speech, speech_loops=-1, digits="5", talk_ms=16000
    )
    try:
        with start_sipp(
            scenario, ("127.0.0.1", service.sip_port), free_port(2), free_port(2), cwd, timeout_s=60
        ) as sipp:
            until(lambda: service.get("/agents/1001")["state"] == "on_call", timeout=20)
            call_id = service.get("/agents/1001")["call_id"]
            time.sleep(4.0)  # the caller talks, recorded
            path = f"/calls/{call_id}/recording"
            for paused in (True, True):  # pausing twice is one gap
                status, body = service.request("POST", path, {"paused": paused})
                assert status == 202, body
            time.sleep(3.0)  # the caller reads out his ID number: not recorded
            status, body = service.request("POST", path, {"paused": False})
            assert status == 202, body
            sipp.wait()
        ticket = service.ticket(lambda t: t["caller"] == CALLER)
    finally:
        agent.stop()
    assert ticket["outcome"] == "answered"
    status, unknown = service.request("POST", f"/calls/{call_id}/recording", {"paused": True})
    assert status == 404, unknown  # the call is over
    flac = Path(ticket["recording_path"])
    assert flac.suffix == ".flac" and flac.is_file() and not flac.with_suffix(".wav").exists()
    info = until(lambda: (lambda r: r if r[0] == 200 and r[1]["recording"] else None)(service.request("GET", path)))
    assert isinstance(info, tuple)
    view = info[1]
    print("recording:", view)
    assert view["recording"]["format"] == "flac" and view["missing"] is None
    (gap,) = view["gaps"]
    assert gap["reason"] == "paused" and gap["by"] and gap["end_ms"] is not None
    start_s, end_s = gap["start_ms"] / 1000, gap["end_ms"] / 1000
    assert 2.5 < end_s - start_s < 3.6, gap

    wav = tmp_path / "decoded.wav"
    subprocess.run(["sox", str(flac), "-b", "16", str(wav)], check=True)
    left, rate = read_wav_mono(wav, channel=0)
    right, _ = read_wav_mono(wav, channel=1)
    assert abs(len(left) / rate - view["recording"]["seconds"]) < 0.05
    # Digital silence over the gap on both channels, and only there (within 100 ms) on the caller's.
    quiet_from, quiet_to = silent_run(left, rate, (start_s + end_s) / 2)
    print(f"gap row {start_s:.3f}-{end_s:.3f} s; silence in the file {quiet_from:.3f}-{quiet_to:.3f} s")
    assert abs(quiet_from - start_s) <= 0.1 and abs(quiet_to - end_s) <= 0.1
    inner = slice(int((start_s + 0.1) * rate), int((end_s - 0.1) * rate))
    assert np.abs(right[inner]).max() == 0.0
    # The caller's speech before and after the gap.
    caller_ref, _ = read_wav_mono(caller_clip, rate=rate)
    before = best_correlation(caller_ref, left[: int(start_s * rate)], rate).score
    after = best_correlation(caller_ref, left[int(end_s * rate) :], rate).score
    speech_rms = float(np.sqrt(np.mean(left[int(end_s * rate) :] ** 2)))
    print(f"caller before the gap {before:.3f}, after {after:.3f}; speech rms {speech_rms:.4f}")
    assert before > 0.8 and after > 0.8
