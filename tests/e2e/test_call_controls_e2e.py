"""Call controls end to end: `hotline serve`, a sipp caller (its speech looped) through Kamailio,
baresip agents registered to Kamailio. What each party heard is checked by correlation: RTP to
the caller captured with tcpdump, baresip's own recordings of what it received, and the call's
stereo recording (caller left, agent channel right).

- Hold: the caller hears the prompt library's hold music, the agent hears digital silence for
  the span of the hold, the recording runs on without a break (its agent channel carries the
  music), and the agent's voice reaches the caller before and after.
- Blind transfer to a second agent: the caller ends up talking to agent 2 (each hears the
  other's clip), agent 1 goes to wrap-up at once (reason transferred:1002), the queue has agent
  2 on the call (on_call with its id) and puts him in wrap-up after it, and the record names
  agent 2 with the transfer in its reason.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.e2e.audio import best_correlation, read_wav_mono
from tests.e2e.peers import start_sipp, write_caller_scenario
from tests.e2e.rtpcapture import RtpCapture, decode_rtp_pcap
from tests.e2e.service import REPO, Service
from tests.e2e.test_call_e2e import agent_for, ts
from tests.support import free_port, mandarin_clip, until

pytestmark = pytest.mark.e2e

HOLD_MUSIC = REPO / "config" / "prompts" / "zh-CN" / "hold_music.wav"
FRAME_S = 0.02


def longest_silence_s(samples: np.ndarray, rate: int, level: float = 1e-3) -> float:
    """The longest run of 20 ms frames whose peak stays below `level` (full scale 1.0)."""
    frame = round(FRAME_S * rate)
    frames = samples[: len(samples) // frame * frame].reshape(-1, frame)
    quiet = np.abs(frames).max(axis=1) < level
    best = run = 0
    for q in quiet:
        run = run + 1 if q else 0
        best = max(best, run)
    return best * FRAME_S


def frames_lost(reference: np.ndarray, signal: np.ndarray, rate: int, step_s: float = 0.25) -> tuple[float, float]:
    """(the share of the reference's time missing from the signal, the median score of its
    short windows): each `step_s` window of the reference is found in the signal, and the slope
    of where they land says how much of the reference time was dropped on the way (1 - slope)."""
    step = round(step_s * rate)
    found = [(i / rate, best_correlation(reference[i : i + step], signal, rate, window_s=None))
             for i in range(0, len(reference) - step, step)]  # fmt: skip
    good = [(t, m.lag_s) for t, m in found if m.score > 0.8]
    assert len(good) >= 4, f"the reference is not in the signal: {found}"
    # Theil-Sen: the median of the pairwise slopes (a window matched elsewhere is outvoted)
    slope = np.median([(lb - la) / (tb - ta) for k, (ta, la) in enumerate(good) for tb, lb in good[k + 1 :]])
    return 1.0 - float(slope), float(np.median([m.score for _, m in found]))


def heard(reference: np.ndarray, signal: np.ndarray, rate: int, slice_s: float = 0.5) -> float:
    """How clearly `reference` is in `signal`, robust to the odd dropped frame: the best
    correlation of any of its slices with speech in (`slice_s` long, every quarter second, at
    least a twentieth of the loudest slice's energy). One 20 ms frame lost every second or two
    (defect 1) sinks a 2 s window's correlation to ~0.5 although every word is there; unrelated
    speech scores at most ~0.46 here."""
    size, hop = round(slice_s * rate), round(0.25 * rate)
    slices = [reference[i : i + size] for i in range(0, len(reference) - size + 1, hop)]
    energy = np.array([float(np.dot(x, x)) for x in slices])
    loud = [x for x, e in zip(slices, energy, strict=True) if e >= 0.05 * energy.max()]
    return max(best_correlation(x, signal, rate, window_s=None).score for x in loud)


def post(service: Service, path: str, body: Any = None) -> dict[str, Any]:
    status, reply = service.request("POST", path, body)
    assert status == 202, (path, status, reply)
    assert isinstance(reply, dict)
    return reply


def test_hold_plays_music_to_the_caller_and_the_recording_runs_on(
    start_service: Any, tmp_path: Path, caller_speech: Path, caller_clip: Path, agent_clip: Path
) -> None:
    service: Service = start_service(workers=1)
    agent = agent_for(service, tmp_path, agent_clip)
    cwd = tmp_path / "caller"
    cwd.mkdir()
    scenario = write_caller_scenario(
        cwd / "call.xml", caller_number="13800138101", speech=caller_speech, speech_loops=-1, digits="5",
        pre_dtmf_ms=500, talk_ms=15000,
    )  # fmt: skip
    media = free_port(2)
    try:
        with start_sipp(scenario, ("127.0.0.1", service.sip_port), free_port(2), media, cwd, timeout_s=60) as sipp:
            until(lambda: service.get("/agents/1001")["state"] == "on_call", timeout=20)
            call_id = service.get("/agents/1001")["call_id"]
            # Captured from the connection on: the hold music of the queue wait is not in it.
            with RtpCapture(media, tmp_path / "to-caller.pcap"):
                time.sleep(2.5)  # caller and agent talk
                post(service, f"/calls/{call_id}/hold")
                time.sleep(5.0)
                post(service, f"/calls/{call_id}/resume")
                time.sleep(2.5)
            sipp.wait()
        ticket = service.ticket(lambda t: t["call_id"] == call_id)
    finally:
        agent.stop()
    print("ticket:", ticket)
    assert ticket["outcome"] == "answered" and ticket["agent_id"] == "1001"
    music, _ = read_wav_mono(HOLD_MUSIC, rate=8000)
    agent_ref, _ = read_wav_mono(agent_clip, rate=8000)
    to_caller = decode_rtp_pcap(tmp_path / "to-caller.pcap", payload_type=None)
    music_heard = best_correlation(music, to_caller, 8000).score
    agent_heard = heard(agent_ref, to_caller, 8000)
    (received,) = agent.received_wavs()
    at_agent, agent_rate = read_wav_mono(received)
    music_at_agent = best_correlation(read_wav_mono(HOLD_MUSIC, rate=agent_rate)[0], at_agent, agent_rate).score
    caller_at_agent = heard(read_wav_mono(caller_clip, rate=agent_rate)[0], at_agent, agent_rate)
    silence_at_agent = longest_silence_s(at_agent, agent_rate)
    recording = Path(ticket["recording_path"])
    left, rate = read_wav_mono(recording, channel=0)
    right, _ = read_wav_mono(recording, channel=1)
    music_in_right = best_correlation(read_wav_mono(HOLD_MUSIC, rate=rate)[0], right, rate).score
    caller_in_left = best_correlation(read_wav_mono(caller_clip, rate=rate)[0], left, rate).score
    recorded_s = len(left) / rate
    call_s = (ts(ticket, "ended_at") - ts(ticket, "answered_at")).total_seconds()
    print(
        f"caller heard: music {music_heard:.3f}, agent {agent_heard:.3f}; agent heard: caller "
        f"{caller_at_agent:.3f}, music {music_at_agent:.3f}, longest silence {silence_at_agent:.2f} s; "
        f"recording: music in agent channel {music_in_right:.3f}, caller in left {caller_in_left:.3f}, "
        f"{recorded_s:.2f} s for a call of {call_s:.2f} s"
    )
    assert music_heard > 0.8
    assert agent_heard > 0.8
    assert caller_at_agent > 0.8
    assert music_at_agent < 0.4  # the agent never hears the music
    # The caller talks all along (his clip looped); only the hold keeps it from the agent.
    assert 4.0 <= silence_at_agent <= 6.0
    assert music_in_right > 0.8 and caller_in_left > 0.8
    assert abs(recorded_s - call_s) < 1.0  # one file for the whole call, no break


def _in_state(service: Service, agent_id: str, state: str) -> dict[str, Any] | None:
    agent = service.get(f"/agents/{agent_id}")
    return agent if isinstance(agent, dict) and agent.get("state") == state else None


def test_blind_transfer_to_a_second_agent(
    start_service: Any, tmp_path: Path, caller_speech: Path, caller_clip: Path, agent_clip: Path
) -> None:
    service: Service = start_service(workers=1, queue={"wrap_up_s": 30})
    second_clip = mandarin_clip("paddlespeech_zh")
    agent1 = agent_for(service, tmp_path, agent_clip, user="1001")
    agent2 = agent_for(service, tmp_path, second_clip, user="1002", pad_before_s=1.0)
    # Both are available: take agent 2 out of rotation so that the call goes to agent 1.
    status, body = service.request("POST", "/agents/1002/state", {"state": "paused", "reason": "小休"})
    assert status == 200, body
    cwd = tmp_path / "caller"
    cwd.mkdir()
    scenario = write_caller_scenario(
        cwd / "call.xml", caller_number="13800138102", speech=caller_speech, speech_loops=-1, digits="5",
        pre_dtmf_ms=500, talk_ms=16000,
    )  # fmt: skip
    media = free_port(2)
    try:
        with start_sipp(scenario, ("127.0.0.1", service.sip_port), free_port(2), media, cwd, timeout_s=60) as sipp:
            until(lambda: service.get("/agents/1001")["state"] == "on_call", timeout=20)
            call_id = service.get("/agents/1001")["call_id"]
            status, body = service.request("POST", "/agents/1002/state", {"state": "available"})
            assert status == 200, body
            with RtpCapture(media, tmp_path / "to-caller.pcap"):
                time.sleep(2.0)
                post(service, f"/calls/{call_id}/transfer", {"target": "agent:1002", "mode": "blind"})
                until(lambda: service.get("/agents/1001")["state"] == "wrap_up", timeout=15)
                agent2.wait_event("CALL_ESTABLISHED", timeout=10)
                talking = until(lambda: _in_state(service, "1002", "on_call"), timeout=10)
                first = service.get("/agents/1001")
                sipp.wait()
        ticket = service.ticket(lambda t: t["call_id"] == call_id)
        after = until(lambda: _in_state(service, "1002", "wrap_up"), timeout=20)
    finally:
        agent1.stop()
        agent2.stop()
    print("ticket:", ticket, "agent 2 during the call:", talking, "after:", after, "agent 1:", first)
    assert talking["call_id"] == call_id and talking["reason"] == ""
    assert (first["state"], first["reason"]) == ("wrap_up", "transferred:1002")
    assert after["call_id"] == call_id  # his wrap-up is the call's
    assert ticket["outcome"] == "answered" and ticket["agent_id"] == "1002"
    assert "transferred 1001 -> agent:1002 (blind)" in ticket["reason"]
    assert ticket["hangup_by"] == "caller"
    assert agent1.calls_ended(), "agent 1's leg was not released"
    to_caller = decode_rtp_pcap(tmp_path / "to-caller.pcap", payload_type=None)
    second_heard = best_correlation(read_wav_mono(second_clip, rate=8000)[0], to_caller, 8000).score
    (received,) = agent2.received_wavs()
    at_second, rate2 = read_wav_mono(received)
    caller_at_second = heard(read_wav_mono(caller_clip, rate=rate2)[0], at_second, rate2)
    recording = Path(ticket["recording_path"])
    right, rate = read_wav_mono(recording, channel=1)
    second_in_right = best_correlation(read_wav_mono(second_clip, rate=rate)[0], right, rate).score
    # Agent 1's ~2 s before the transfer are still in the agent channel: the file ran on.
    first_in_right = heard(read_wav_mono(agent_clip, rate=rate)[0][: 2 * rate], right, rate)
    second_ref = read_wav_mono(second_clip, rate=8000)[0]
    lost_heard, short_heard = frames_lost(second_ref, to_caller, 8000)
    lost_recorded, short_recorded = frames_lost(read_wav_mono(second_clip, rate=rate)[0], right, rate)
    print(
        f"caller heard agent 2: {second_heard:.3f} (0.25 s windows {short_heard:.3f}, {lost_heard:.1%} of his "
        f"time lost); agent 2 heard the caller: {caller_at_second:.3f}; agent 2 in the recording's agent "
        f"channel: {second_in_right:.3f} ({short_recorded:.3f}, {lost_recorded:.1%} lost), agent 1 there "
        f"before: {first_in_right:.3f}"
    )
    assert caller_at_second > 0.8
    assert first_in_right > 0.8
    # Agent 2 reaches the caller and the recording, but his leg is received chopped: the known
    # defect 1 of tests/e2e/test_media_defects.py (~4 % of frames lost, so 2 s windows correlate
    # only ~0.4) hits this leg too, although it is bridged within ~50 ms of his answer (pjsip
    # log). What the path gives today (two runs: 4-5 %, short windows 0.82): his speech in short
    # windows, at most 7 % of his time lost.
    assert short_heard > 0.7 and short_recorded > 0.7
    assert lost_heard < 0.07 and lost_recorded < 0.07
