"""What FLAC storage of call recordings costs: CPU per minute of audio and the size against WAV.

Run from the repository root (not part of CI; well under a minute with the defaults):

    .venv/bin/python -m bench.recordings_flac              # results appended to docs/benchmarks.md
    .venv/bin/python -m bench.recordings_flac --no-write   # printed only

The recordings are made like the worker's: 8 kHz 16-bit stereo, caller left and agent right, each
channel real Mandarin speech (../shared/audio/mandarin) passed through G.711 μ-law (what the
conference bridge records from an RTP leg), in turns: while one side talks the other channel
holds the quiet line noise of a telephone (μ-law's smallest steps), with a paused gap of digital
silence in each minute. Each length is converted with the product's `to_flac`
(hotline/recordings/compress.py: sox encodes, sox decodes, the samples are compared, the WAV is
removed), --repeat times. CPU is the child processes' (sox) user + system time plus this
process's (reading and comparing) from getrusage, per minute of audio; wall time beside it.
"""

from __future__ import annotations

import argparse
import dataclasses
import platform
import resource
import statistics
import subprocess
import tempfile
import time
import wave
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from hotline.recordings.compress import to_flac
from tests.support import mandarin_clip

REPO = Path(__file__).resolve().parents[1]
BENCHMARKS = REPO / "docs" / "benchmarks.md"
HEADING = "## Recordings: FLAC storage (`bench/recordings_flac.py`)"
RATE = 8000
CLIPS = ("funasr_asr_example_b", "masr_test")


def telephone(clip: Path, into: Path) -> np.ndarray:
    """The clip as the bridge records it: 8 kHz μ-law decoded back to 16-bit samples."""
    ulaw = into.with_suffix(".ul.wav")
    subprocess.run(["sox", str(clip), "-r", str(RATE), "-c", "1", "-e", "u-law", "-b", "8", str(ulaw)], check=True)
    subprocess.run(["sox", str(ulaw), "-e", "signed", "-b", "16", str(into)], check=True)
    with wave.open(str(into), "rb") as w:
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").copy()


def conversation(minutes: float, caller: np.ndarray, agent: np.ndarray) -> np.ndarray:
    """Interleaved stereo frames: turns of speech, line noise opposite, a 5 s pause each minute."""
    total = int(minutes * 60 * RATE)
    rng = np.random.default_rng(12345)
    left = np.zeros(total, dtype="<i2")
    right = np.zeros(total, dtype="<i2")
    pos, turn = 0, 0
    while pos < total:
        clip = caller if turn % 2 == 0 else agent
        n = min(len(clip), total - pos)
        (left if turn % 2 == 0 else right)[pos : pos + n] = clip[:n]
        pos += n + int(rng.uniform(0.3, 1.2) * RATE)  # a pause between turns
        turn += 1
    for channel in (left, right):  # μ-law's quietest steps: the line when nobody talks
        quiet = channel == 0
        channel[quiet] = rng.choice(np.array([-8, -4, 0, 4, 8], dtype="<i2"), int(quiet.sum()))
    for start in range(20 * RATE, total, 60 * RATE):  # the agent paused the recording for 5 s
        left[start : start + 5 * RATE] = 0
        right[start : start + 5 * RATE] = 0
    frames = np.empty(2 * total, dtype="<i2")
    frames[0::2], frames[1::2] = left, right
    return frames


@dataclasses.dataclass
class Run:
    minutes: float
    cpu_s: list[float]
    wall_s: list[float]
    wav_bytes: int
    flac_bytes: int

    @property
    def cpu_per_minute(self) -> float:
        return statistics.median(self.cpu_s) / self.minutes

    @property
    def ratio(self) -> float:
        return self.flac_bytes / self.wav_bytes


def cpu_now() -> float:
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def measure(minutes: float, frames: np.ndarray, folder: Path, repeat: int) -> Run:
    run = Run(minutes, [], [], 0, 0)
    for i in range(repeat):
        wav = folder / f"call-{minutes:g}-{i}.wav"
        with wave.open(str(wav), "wb") as w:
            w.setnchannels(2)
            w.setsampwidth(2)
            w.setframerate(RATE)
            w.writeframes(frames.tobytes())
        cpu, wall = cpu_now(), time.perf_counter()
        done = to_flac(wav)
        run.cpu_s.append(cpu_now() - cpu)
        run.wall_s.append(time.perf_counter() - wall)
        run.wav_bytes, run.flac_bytes = done.wav_bytes, done.flac_bytes
        done.path.unlink()
    return run


def report(runs: list[Run], repeat: int) -> str:
    sox = subprocess.run(["sox", "--version"], capture_output=True, text=True).stdout.split(":")[-1].strip()
    out = [
        f"### {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.node()}, {sox}, median of {repeat}",
        "",
        "| call length | WAV | FLAC | FLAC / WAV | CPU s per minute of audio | wall s |",
        "|---|---|---|---|---|---|",
    ]
    for r in runs:
        out.append(
            f"| {r.minutes:g} min | {r.wav_bytes / 1e6:.2f} MB | {r.flac_bytes / 1e6:.2f} MB | {r.ratio:.0%} "
            f"| {r.cpu_per_minute:.3f} | {statistics.median(r.wall_s):.2f} |"
        )
    out.append("")
    return "\n".join(out) + "\n"


def append_section(text: str, path: Path = BENCHMARKS) -> None:
    """Adds a run at the end of this benchmark's section (made at the end of the file if missing)."""
    existing = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n"
    lines = existing.splitlines(keepends=True)
    if HEADING + "\n" not in lines:
        updated = existing.rstrip("\n") + f"\n\n{HEADING}\n\nRecorded by `bench/recordings_flac.py`.\n\n" + text
    else:
        start = lines.index(HEADING + "\n")
        end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
        before, section, after = "".join(lines[:start]), "".join(lines[start:end]), "".join(lines[end:])
        updated = before + section.rstrip("\n") + "\n\n" + text + ("\n" + after if after else "")
    path.write_text(updated, encoding="utf-8")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", default="1,5,20", help="call lengths, comma-separated")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-write", action="store_true", help="print only, do not touch docs/benchmarks.md")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-flac-") as tmp:
        folder = Path(tmp)
        caller = telephone(mandarin_clip(CLIPS[0]), folder / "caller.wav")
        agent = telephone(mandarin_clip(CLIPS[1]), folder / "agent.wav")
        runs = [
            measure(float(m), conversation(float(m), caller, agent), folder, args.repeat)
            for m in args.minutes.split(",")
        ]
    text = report(runs, args.repeat)
    print(text)
    if not args.no_write:
        append_section(text)


if __name__ == "__main__":
    main()
