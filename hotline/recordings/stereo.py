"""Stereo call recordings: caller on the left channel, agent on the right.

The media worker records each leg into its own mono file (pjsua2 recorders are mono, and the
caller's file doubles as the speech-recognition tap). Both recorders are fed by the same
conference-bridge clock and stop together at hang-up, so their ends are aligned: the agent's
file is padded at the start by the difference in length. The result is 16-bit PCM WAV.
"""

from __future__ import annotations

import hashlib
import wave
from pathlib import Path

import numpy as np


def _read_mono(path: Path) -> tuple[np.ndarray, int]:
    with wave.open(str(path), "rb") as w:
        if w.getsampwidth() != 2 or w.getnchannels() != 1:
            raise ValueError(f"{path}: expected 16-bit mono PCM")
        rate = w.getframerate()
        data = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    return data, rate


def merge_stereo(caller: Path, agent: Path | None, out: Path) -> Path:
    """Writes out (caller left, agent right, agent aligned to the end); returns out."""
    left, rate = _read_mono(caller)
    right = np.zeros(0, dtype="<i2")
    if agent is not None and agent.exists():
        right, agent_rate = _read_mono(agent)
        if agent_rate != rate:
            raise ValueError(f"{agent}: {agent_rate} Hz, but the caller's file is {rate} Hz")
    if len(right) > len(left):
        right = right[len(right) - len(left) :]
    right = np.concatenate([np.zeros(len(left) - len(right), dtype="<i2"), right])
    frames = np.empty(2 * len(left), dtype="<i2")
    frames[0::2] = left
    frames[1::2] = right
    tmp = out.with_suffix(".tmp")
    with wave.open(str(tmp), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(frames.tobytes())
    tmp.replace(out)
    return out


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
