"""How many concurrent calls, and how many calls per second, this host holds with media intact.

Run from the repository root (not part of CI; a few minutes to a quarter of an hour):

    .venv/bin/python -m bench.calls            # the full ladders, results appended to docs/benchmarks.md
    .venv/bin/python -m bench.calls --quick    # a couple of minutes, same shape, fewer and shorter steps

What runs: `hotline serve` as a user starts it (tests/e2e/service.py: embedded Redis, Kamailio,
N pjsua2 workers, control plane) with an admission limit high enough never to be what stops a
step, and one sipp process calling 12345 through Kamailio. Every caller streams a real Mandarin
clip (μ-law, looped, RFC 3550 from sipp's ``rtp_stream``). No agent is logged in, so each call is
what the media worker does for every caller: answer, greeting, queue, hold music, and the caller's
per-leg recording, which is the frame tap the speech recogniser reads (docs/architecture.md).

Two ladders per worker count (``--workers 1,2``: per worker, then in total):
- concurrency: N callers set up at ``--setup-rate`` calls/s, all held ``--hold-s`` seconds after
  the last one is up, then hung up by the callers. CPU is read from /proc (utime+stime of every
  process of the service, of sipp, and of the whole host) over the window in which all N are up.
- call rate: ``--rate-calls`` short calls (``--call-s`` each) offered at each rate.

Overload is silent (PJSUA2.md: SIP still says 200 while the media goes choppy), so a step is
judged on the recordings, never on SIP alone. The bridge and recorder run at 8 kHz and pass the
decoded G.711 samples through unchanged, one packet per 20 ms frame, so the caller's (left)
channel of a recording must be, frame for frame and bit for bit, a 20 ms window of the looped
clip that sipp sent. A frame that is not was *lost*: concealed, zero-filled (nothing arrived in
time), mixed or garbled; the offsets of the frames that are show where the jitter buffer dropped
or repeated a packet. A call's media is *intact* when its ticket and recording exist, the clip
is found in that channel with a correlation of at least 0.9 (``best_correlation``, 0.5 s windows),
at most 2 % of its frames (or 4, whichever is more) are lost, and never more than 3 in a row
(60 ms). The allowance is for the jitter buffer adapting to sipp's bursty sending, which costs 2
frames each time. A step passes when at least 99 % of its calls were answered (sipp completed
the call and its ticket has a recording) and at least 99 % are intact; a rate step also needs no
5xx at all. A ladder stops at its first failing step; then one step halfway between the last
pass and that failure is tried, to narrow the ceiling. The host is shared: a step that fails while
other processes used more than half a core is run once more (both runs are reported).

Diagnostics besides the verdict: frames lost while all N calls were up (the CPU window), and
*stalls*: 100 ms in which at least half of the calls up (10 or more) lost audio at once, which
points at the worker as a whole rather than at single calls.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import dataclasses
import datetime
import json
import math
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tests.e2e.audio import best_correlation, read_wav_mono, ulaw_decode
from tests.e2e.peers import SippProcess, caller_scenario, sipp_ulaw_file, start_sipp
from tests.e2e.service import REPO, Service
from tests.support import free_port, mandarin_clip

CLIP = "funasr_asr_example_b"  # 5.5 s of Mandarin: 欢迎大家来体验达摩院推出的语音识别模型
RATE = 8000  # the conference bridge and the recordings are 8 kHz
MIN_SCORE = 0.9
MAX_LOST = 0.02  # share of a call's 20 ms frames that may be lost
MIN_LOST_ALLOWED = 4  # or this many, whichever is more (two jitter-buffer adjustments in a short call)
MAX_GAP_FRAMES = 3  # and no more than this many in a row (60 ms: a jitter-buffer adjustment costs 2)
MIN_ANSWERED = 0.99
MIN_INTACT = 0.99
FRAME = 160  # 20 ms at 8 kHz: one packet
FRAME_S = 0.02
NOISY_OTHERS = 50.0  # % of a core used by other processes above which a failed step is run again
STALL_BIN_S = 0.1  # a stall: in some 100 ms, at least half of the calls up (and 10 or more) lost audio
TAIL_S = 0.3  # the last moments before the BYE are not judged
PRE_SPEECH_MS = 500  # the caller starts talking this long after its ACK
CLK_TCK = os.sysconf("SC_CLK_TCK")
DOC = REPO / "docs" / "benchmarks.md"

FULL = {
    "concurrency": {1: [10, 50, 100, 150, 200, 300, 400, 600], 2: [10, 100, 200, 300, 400, 600, 800]},
    "rates": {1: [10, 20, 40, 60, 80, 100], 2: [10, 20, 40, 60, 80, 100]},
    "hold_s": 20.0,
    "rate_calls": 200,
}
QUICK = {
    "concurrency": {1: [10, 100, 200], 2: [10, 200]},
    "rates": {1: [10, 40], 2: [20]},
    "hold_s": 8.0,
    "rate_calls": 80,
}


# ------------------------------------------------------------------------------------------ CPU
def _ticks(pid: int) -> int | None:
    """utime + stime of a process (all its threads), in clock ticks; None once it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw.rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def _host_ticks() -> tuple[int, int]:
    """(busy, total) clock ticks of the whole host, all cores, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values)


def _cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return []


def service_processes(root_pid: int) -> dict[str, list[int]]:
    """The processes under `hotline serve`, by role: w0, w1, …, kamailio, redis, control, serve."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    tree = {root_pid}
    grew = True
    while grew:
        grew = False
        for pid, ppid in parents.items():
            if ppid in tree and pid not in tree:
                tree.add(pid)
                grew = True
    roles: dict[str, list[int]] = {}
    for pid in sorted(tree):
        args = _cmdline(pid)
        name = Path(args[0]).name if args else ""
        if "worker" in args and "--index" in args:
            role = f"w{args[args.index('--index') + 1]}"
        elif "control" in args:
            role = "control"
        elif name.startswith("kamailio"):
            role = "kamailio"
        elif name.startswith("redis"):
            role = "redis"
        elif pid == root_pid:
            role = "serve"
        else:
            role = "other"
        roles.setdefault(role, []).append(pid)
    return roles


@dataclasses.dataclass
class CpuSample:
    at: float
    ticks: dict[str, int]
    host_busy: int
    host_total: int
    wall: float = dataclasses.field(default_factory=time.time)


def sample_cpu(processes: dict[str, list[int]]) -> CpuSample:
    ticks = {role: sum(_ticks(pid) or 0 for pid in pids) for role, pids in processes.items()}
    busy, total = _host_ticks()
    return CpuSample(time.monotonic(), ticks, busy, total)


def cpu_between(a: CpuSample, b: CpuSample) -> dict[str, float]:
    """% of one core per role over a..b; "host" is the whole machine (100 × cores at most)."""
    seconds = max(b.at - a.at, 1e-6)
    use = {role: 100.0 * (b.ticks[role] - a.ticks.get(role, 0)) / CLK_TCK / seconds for role in b.ticks}
    cores = os.cpu_count() or 1
    use["host"] = 100.0 * cores * (b.host_busy - a.host_busy) / max(b.host_total - a.host_total, 1)
    return use


# ------------------------------------------------------------------------------------------ audio
@dataclasses.dataclass
class CallAudio:
    score: float  # best_correlation of the clip in the left channel (0.5 s windows)
    frames: int  # 20 ms frames of the recording from the first packet of speech to the BYE
    lost: int  # of which are not an exact packet of what the caller sent (concealed, late, garbled)
    zero: int  # of which are digital silence (nothing arrived in time)
    gap: int  # the longest run of lost frames
    jumps: int  # places where the stream skipped or repeated (jitter-buffer adjustments)
    first: int = 0  # index of the first judged frame (the recording's first packet of speech)
    runs: list[tuple[int, int]] = dataclasses.field(default_factory=list)  # lost frames: (index, count)
    started: float = 0.0  # wall-clock time of the recording's first frame (from the ticket), epoch s

    def span(self) -> tuple[float, float]:
        """Wall-clock time of the judged frames, epoch s."""
        return self.started + self.first * FRAME_S, self.started + (self.first + self.frames) * FRAME_S

    @property
    def intact(self) -> bool:
        return (
            self.score >= MIN_SCORE
            and self.frames > 0
            and self.lost <= max(MIN_LOST_ALLOWED, MAX_LOST * self.frames)
            and self.gap <= MAX_GAP_FRAMES
        )


_PACKETS: dict[bytes, int] = {}  # every 20 ms window of the looped clip (16-bit PCM) -> its offset
_SENT: list[np.ndarray] = []  # the clip as decoded from what sipp sends, for best_correlation


def init_analysis(ulaw: bytes) -> None:
    """Indexes the clip the callers stream (run once in each analysis process)."""
    reference = ulaw_decode(ulaw)
    pcm = np.round(reference * 32768.0).astype("<i2")
    looped = np.concatenate([pcm, pcm[:FRAME]])
    windows = np.lib.stride_tricks.sliding_window_view(looped, FRAME)[: pcm.size]
    _PACKETS.clear()
    _PACKETS.update((w.tobytes(), i) for i, w in enumerate(windows))
    _SENT[:] = [reference]


def analyse_recording(path: str) -> CallAudio:
    """Judges the caller's channel of one call recording against what the caller sent.

    The bridge and the recorder run at 8 kHz and pass G.711-decoded samples through unchanged,
    and each 20 ms the recorder writes one packet's worth, so every frame of the caller's channel
    from the first packet on is, bit for bit, a 20 ms window of the looped clip: the frames that
    are not were lost (concealed, zero-filled, mixed or garbled). The offsets of the ones that are
    show where the jitter buffer dropped or repeated a packet."""
    left, rate = read_wav_mono(path, channel=0)
    if rate != RATE:
        raise ValueError(f"{path}: {rate} Hz; the check expects the 8 kHz bridge")
    period = _SENT[0].size
    score = best_correlation(_SENT[0], left[: round(12.0 * rate)], rate, window_s=0.5).score
    pcm = np.round(left.astype(np.float64) * 32768.0).astype("<i2")
    count = pcm.size // FRAME
    rows = pcm[: count * FRAME].reshape(count, FRAME)
    offsets = [_PACKETS.get(row.tobytes(), -1) for row in rows]
    stop = count - round(TAIL_S * rate / FRAME)
    first = next((i for i, o in enumerate(offsets[:stop]) if o >= 0), None)
    if first is None:
        judged = max(stop - PRE_SPEECH_MS * rate // 1000 // FRAME, 0)
        skip = PRE_SPEECH_MS * rate // 1000 // FRAME
        return CallAudio(score, judged, judged, 0, judged, 0, skip, [(skip, judged)])
    lost = zero = jumps = gap = 0
    runs: list[tuple[int, int]] = []
    last_i, last_o = first, offsets[first]
    for i in range(first + 1, stop):
        o = offsets[i]
        if o < 0:
            lost += 1
            zero += int(not rows[i].any())
            gap = max(gap, i - last_i)
            if runs and runs[-1][0] + runs[-1][1] == i:
                runs[-1] = (runs[-1][0], runs[-1][1] + 1)
            else:
                runs.append((i, 1))
            continue
        if (o - last_o - FRAME * (i - last_i)) % period:
            jumps += 1
        last_i, last_o = i, o
    return CallAudio(score, stop - first, lost, zero, gap, jumps, first, runs)


# ------------------------------------------------------------------------------------------ sipp
@dataclasses.dataclass
class SippStats:
    returncode: int
    successful: int = 0
    failed: int = 0
    retransmissions: int = 0
    failures: dict[str, int] = dataclasses.field(default_factory=dict)
    five_xx: int = 0
    first_error: str = ""  # the first line of sipp's error log about a call, if any
    setup_ms: list[float] = dataclasses.field(default_factory=list)  # INVITE → 200, per call
    starts: list[float] = dataclasses.field(default_factory=list)  # when each INVITE went out (epoch s)


def read_sipp(proc: SippProcess, returncode: int, stat_file: Path) -> SippStats:
    stats = SippStats(returncode)
    with contextlib.suppress(OSError, IndexError):
        lines = stat_file.read_text().splitlines()
        header, last = lines[0].split(";"), lines[-1].split(";")
        row = dict(zip(header, last, strict=False))
        stats.successful = int(row.get("SuccessfulCall(C)", 0))
        stats.failed = int(row.get("FailedCall(C)", 0))
        stats.retransmissions = int(row.get("Retransmissions(C)", 0))
        stats.failures = {
            k[6:-3]: int(v)
            for k, v in row.items()
            if k.startswith("Failed") and k.endswith("(C)") and v not in ("0", "")
        }
        stats.failures.pop("Call", None)
    with contextlib.suppress(OSError), proc.message_log.open(errors="replace") as log:
        stats.five_xx = sum(1 for line in log if re.match(r"SIP/2\.0 5\d\d ", line))
    with contextlib.suppress(OSError):
        # (The log also holds a "receive timeout … jumping to label" line for every call that got
        # no late 180: that is the scenario's normal path, see tolerant().)
        errors = proc.error_log.read_text(errors="replace")
        at = errors.find("Aborting call")
        if at >= 0:
            stats.first_error = " ".join(errors[at : at + 300].split())[:200]
    for rtt in proc.cwd.glob(f"{proc.name.rsplit('-', 1)[0]}_*_rtt.csv"):
        for line in rtt.read_text().splitlines()[1:]:
            parts = line.split(";")
            with contextlib.suppress(ValueError, IndexError):  # Date_ms;response_time_ms;rtd_no
                ms = float(parts[1])
                stats.setup_ms.append(ms)
                stats.starts.append((float(parts[0]) - ms) / 1000.0)
        rtt.rename(rtt.with_suffix(".read"))
    return stats


def tolerant(scenario: str) -> str:
    """The tests' caller, made to absorb a 180 that arrives after the 200.

    Kamailio relays replies from several processes, so under load a worker's 180 and 200 sent a
    millisecond apart can reach the caller in the other order. A real phone ignores the late
    180; sipp aborts the call (its BYE then lacks the route set, and the call stays up in the
    worker). That is the load generator's strictness, not the service failing, so right after
    the ACK the caller waits up to 300 ms for such a 180 and carries on either way."""
    if '<label id="acked"/>' in scenario:
        return scenario  # tests/e2e/peers.caller_scenario waits for a late 180 itself now
    at = scenario.index("ACK [next_url]")
    end = scenario.index("</send>", at) + len("</send>")
    wait = '\n  <recv response="180" timeout="300" ontimeout="acked"/>\n  <label id="acked"/>'
    return scenario[:end] + wait + scenario[end:]


# ------------------------------------------------------------------------------------------ steps
@dataclasses.dataclass
class Step:
    kind: str  # "concurrency" or "rate"
    workers: int
    target: int  # N concurrent calls, or calls per second offered
    calls: int
    sipp: SippStats | None = None
    tickets: int = 0
    answered: int = 0
    audio: list[CallAudio] = dataclasses.field(default_factory=list)
    cpu: dict[str, float] = dataclasses.field(default_factory=dict)
    window_s: float = 0.0
    window: tuple[float, float] = (0.0, 0.0)  # the CPU window, wall clock (epoch s)
    live_calls: int = 0  # calls the workers held when the CPU window opened
    achieved_cps: float = 0.0
    log_errors: int = 0
    notes: list[str] = dataclasses.field(default_factory=list)
    seconds: float = 0.0

    @property
    def intact(self) -> int:
        return sum(1 for a in self.audio if a.intact)

    def window_loss(self) -> tuple[int, int]:
        """(lost, judged) frames inside the CPU window: for a concurrency step, while all are up."""
        lo, hi = self.window
        lost = frames = 0
        for a in self.audio:
            begin, end = a.span()
            frames += max(0, round((min(end, hi) - max(begin, lo)) / FRAME_S))
            for index, count in a.runs:
                for k in range(count):
                    lost += int(lo <= a.started + (index + k) * FRAME_S < hi)
        return lost, frames

    def stalls(self) -> list[tuple[float, float]]:
        """Moments when most calls lost audio at once (a worker-wide stall): (start, seconds)."""
        if not self.audio:
            return []
        origin = min(a.span()[0] for a in self.audio)
        up: dict[int, int] = {}
        hit: dict[int, set[int]] = {}
        for n, a in enumerate(self.audio):
            begin, end = a.span()
            for b in range(int((begin - origin) / STALL_BIN_S), int((end - origin) / STALL_BIN_S) + 1):
                up[b] = up.get(b, 0) + 1
            for index, count in a.runs:
                first_bin = int((a.started + index * FRAME_S - origin) / STALL_BIN_S)
                last_bin = int((a.started + (index + count) * FRAME_S - origin) / STALL_BIN_S)
                for b in range(first_bin, last_bin + 1):
                    hit.setdefault(b, set()).add(n)
        bad = sorted(b for b, calls in hit.items() if len(calls) >= max(10, 0.5 * up.get(b, 0)))
        events: list[tuple[float, float]] = []
        for b in bad:
            if events and abs(events[-1][0] + events[-1][1] - (origin + b * STALL_BIN_S)) < 1e-6:
                events[-1] = (events[-1][0], events[-1][1] + STALL_BIN_S)
            else:
                events.append((origin + b * STALL_BIN_S, STALL_BIN_S))
        return events

    @property
    def passed(self) -> bool:
        ok = self.answered >= MIN_ANSWERED * self.calls and self.intact >= MIN_INTACT * self.calls
        if self.kind == "rate":
            ok = ok and self.sipp is not None and self.sipp.five_xx == 0
        return ok

    def worker_cpu(self) -> float:
        return sum(v for k, v in self.cpu.items() if re.fullmatch(r"w\d+", k))

    def others_cpu(self) -> float:
        """% of a core that processes other than the service and sipp used during the window."""
        return max(0.0, self.cpu.get("host", 0.0) - sum(v for k, v in self.cpu.items() if k != "host"))


class Bench:
    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        self.args = args
        self.workdir = workdir
        self.sipp_dir = workdir / "sipp"
        self.sipp_dir.mkdir(parents=True, exist_ok=True)
        self.speech = sipp_ulaw_file(mandarin_clip(CLIP), self.sipp_dir / "caller.ulaw")
        self.steps: list[Step] = []
        self.serial = 0
        self.pool = concurrent.futures.ProcessPoolExecutor(
            max_workers=os.cpu_count() or 1, initializer=init_analysis, initargs=(self.speech.read_bytes(),)
        )
        self.svc: Service | None = None
        self.idle_cpu: dict[int, dict[str, float]] = {}  # per worker count: CPU with no call up
        self.processes: dict[str, list[int]] = {}
        self._log_offsets: dict[Path, int] = {}

    # -- service
    @contextlib.contextmanager
    def service(self, workers: int) -> Iterator[Service]:
        svc = Service(
            self.workdir / f"svc-w{workers}",
            workers=workers,
            sip={"max_calls_per_worker": self.args.max_calls_per_worker, "log_level": 3},
            log_level="INFO",
        )
        svc.start(timeout=90)
        self.svc = svc
        assert svc.proc is not None
        self.processes = service_processes(svc.proc.pid)
        try:
            # A few calls first (not reported): the first calls after start pay one-off costs.
            print("  warm-up …", flush=True)
            self.run_step("rate", workers, 5, calls=10)
            self.steps.pop()
            first = sample_cpu(self.processes)
            time.sleep(3.0)
            self.idle_cpu[workers] = cpu_between(first, sample_cpu(self.processes))
            yield svc
        finally:
            svc.stop()
            self.svc = None

    def live_calls(self) -> int:
        assert self.svc is not None
        return sum(int(info.get("calls", 0)) for info in self.svc.alive_workers().values())

    def wait_idle(self, timeout: float = 30.0) -> int:
        """Waits until the workers hold no call; returns how many are still up after `timeout`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.live_calls() > 0:
            time.sleep(0.5)
        time.sleep(1.0)
        return self.live_calls()

    def new_log_errors(self) -> int:
        assert self.svc is not None
        count = 0
        for path in sorted((self.svc.data / "log").glob("*.log")):
            if path.name.startswith(("pjsip", "redis")):
                continue
            with path.open("rb") as f:
                f.seek(self._log_offsets.get(path, 0))
                chunk = f.read()
                self._log_offsets[path] = f.tell()
            count += len(re.findall(rb" (?:ERROR|CRITICAL) ", chunk))
        return count

    # -- one step
    def run_step(self, kind: str, workers: int, target: int, calls: int | None = None) -> Step:
        assert self.svc is not None
        svc, args = self.svc, self.args
        self.serial += 1
        prefix = f"1{self.serial:03d}"
        if kind == "concurrency":
            calls, rate = target, args.setup_rate
            ramp_s = calls / rate
            talk_ms = round((ramp_s + args.hold_s) * 1000)
            limit = calls
        else:
            calls, rate = calls or args.rate_calls, target
            ramp_s = calls / rate
            talk_ms = round(args.call_s * 1000) - PRE_SPEECH_MS
            limit = min(max(math.ceil(rate * (args.call_s + 3)), 20), workers * args.max_calls_per_worker)
        step = Step(kind, workers, target, calls)
        name = f"s{self.serial:02d}-{kind[0]}{target}-w{workers}"
        scenario = self.sipp_dir / f"{name}.xml"
        scenario.write_text(
            tolerant(
                caller_scenario(
                    caller_number=f"{prefix}[call_number]",
                    speech=self.speech.name,
                    speech_loops=-1,
                    pre_speech_ms=PRE_SPEECH_MS,
                    talk_ms=talk_ms,
                )
            )
        )
        stat_file = self.sipp_dir / f"{name}-stat.csv"
        timeout_s = ramp_s + talk_ms / 1000 + 30
        print(f"  {name}: {calls} calls, {rate} cps, each {talk_ms / 1000 + 0.5:.1f} s …", flush=True)
        self.new_log_errors()
        began = time.monotonic()
        proc = start_sipp(
            scenario,
            ("127.0.0.1", svc.sip_port),
            free_port(2),
            free_port(2),
            self.sipp_dir,
            timeout_s=timeout_s,
            calls=calls,
            rate=rate,
            concurrent=limit,
            extra_args=["-trace_stat", "-stf", str(stat_file), "-fd", "1", "-trace_rtt", "-rtt_freq", "1"],
        )
        with proc:
            processes = {**self.processes, "sipp": [proc.proc.pid]}
            if kind == "concurrency":
                # The window in which all N callers are up: after the ramp, before the first BYE.
                window_end = began + ramp_s + args.hold_s
                while time.monotonic() < began + ramp_s + 6 and self.live_calls() < calls:
                    time.sleep(0.5)
                time.sleep(max(0.0, began + ramp_s + 1.0 - time.monotonic()))
                step.live_calls = self.live_calls()
                first = sample_cpu(processes)
                time.sleep(max(0.0, window_end - time.monotonic()))
                last = sample_cpu(processes)
                result = proc.wait(check=False)
            else:
                # A burst of short calls: CPU over the whole of it, from the first INVITE to the last BYE
                # (a call sipp lost track of does not stretch the window: it ends with the last scheduled one).
                first = sample_cpu(processes)
                time.sleep(max(0.0, began + ramp_s - time.monotonic()))
                step.live_calls = self.live_calls()
                end = began + ramp_s + args.call_s + 2.0
                while True:
                    last = sample_cpu(processes)  # before poll() reaps sipp, so its time is still there
                    if time.monotonic() >= end or proc.proc.poll() is not None:
                        break
                    time.sleep(0.1)
                result = proc.wait(check=False)
            step.cpu = cpu_between(first, last)
            step.window_s = last.at - first.at
            step.window = (first.wall, last.wall)
            if step.window_s < 3.0:
                step.notes.append(f"CPU window only {step.window_s:.1f} s")
        step.sipp = read_sipp(proc, result.returncode, stat_file)
        if step.sipp.failed:
            step.notes.append(f"sipp: {step.sipp.failed} failed {step.sipp.failures}")
            if step.sipp.first_error:
                print(f"    sipp: {step.sipp.first_error}", flush=True)
        if len(step.sipp.starts) > 1:
            step.achieved_cps = (len(step.sipp.starts) - 1) / max(max(step.sipp.starts) - min(step.sipp.starts), 1e-3)
        self.collect(step, prefix)
        step.log_errors = self.new_log_errors()
        if step.log_errors:
            step.notes.append(f"{step.log_errors} ERROR lines in the service's logs")
        alive = service_processes(svc.proc.pid) if svc.proc is not None else {}
        for role, pids in self.processes.items():
            if role.startswith("w") and alive.get(role) != pids:
                step.notes.append(f"worker {role} restarted")
        self.processes = alive or self.processes
        step.seconds = time.monotonic() - began
        left = self.wait_idle()
        if left:
            step.notes.append(f"{left} calls still up 30 s after the step")
        self.steps.append(step)
        print("   ", summary_line(step), flush=True)
        return step

    def collect(self, step: Step, prefix: str) -> None:
        """Tickets of this step's calls (callers prefix…), their recordings judged, then deleted."""
        assert self.svc is not None
        deadline = time.monotonic() + 45
        mine: list[dict[str, Any]] = []
        grew = time.monotonic()
        while True:
            try:
                out = self.svc.cli("tickets", "list", "--json", "--limit", "1000000")
                found = [t for t in json.loads(out) if str(t.get("caller", ""))[:4] == prefix]
                if len(found) > len(mine):
                    mine, grew = found, time.monotonic()
            except (AssertionError, subprocess.TimeoutExpired, ValueError) as exc:
                print(f"    reading tickets failed ({exc}); retrying", flush=True)
            now = time.monotonic()
            # Every call sipp finished has ended in the service within a second or two; one that is
            # still up (the service never heard the caller hang up) has no ticket yet: stop waiting.
            if len(mine) >= step.calls or now > deadline or now - grew > 10:
                break
            time.sleep(2.0)
        step.tickets = len(mine)
        outcomes: dict[str, int] = {}
        recordings: list[tuple[str, float]] = []
        for ticket in mine:
            outcomes[ticket["outcome"]] = outcomes.get(ticket["outcome"], 0) + 1
            path = ticket.get("recording_path")
            if ticket.get("answered_at") and path and Path(path).is_file():
                # The caller's recorder starts right after the answer (within milliseconds).
                recordings.append((path, datetime.datetime.fromisoformat(ticket["answered_at"]).timestamp()))
        step.answered = min(len(recordings), step.sipp.successful if step.sipp else 0)
        unexpected = {k: v for k, v in outcomes.items() if k not in ("abandoned_in_queue", "abandoned_in_greeting")}
        if unexpected:
            step.notes.append(f"outcomes {unexpected}")
        futures = [self.pool.submit(analyse_recording, path) for path, _ in recordings]
        step.audio = [f.result() for f in futures]
        for audio, (_, answered) in zip(step.audio, recordings, strict=True):
            audio.started = answered
        if not self.args.keep:
            for path, _ in recordings:
                Path(path).unlink(missing_ok=True)

    # -- ladders
    def step(self, kind: str, workers: int, target: int) -> Step:
        """One step; a failure while other processes kept the host busy is run once more."""
        step = self.run_step(kind, workers, target)
        if not step.passed and step.others_cpu() >= NOISY_OTHERS and not self.args.no_retry:
            step.notes.append(f"others used {step.others_cpu():.0f} % of a core: run again")
            step = self.run_step(kind, workers, target)
            step.notes.append("second run")
        return step

    def ladder(self, kind: str, workers: int, targets: Sequence[int]) -> None:
        passed: int | None = None
        for target in targets:
            if self.step(kind, workers, target).passed:
                passed = target
                continue
            if passed is not None and not self.args.no_refine:
                middle = _round_to(passed + (target - passed) / 2, 10 if kind == "concurrency" else 5)
                if passed < middle < target:
                    self.step(kind, workers, middle)
            break


def _round_to(value: float, unit: int) -> int:
    return int(round(value / unit) * unit)


# ------------------------------------------------------------------------------------------ report
def _pct(part: int, whole: int, digits: int = 1) -> str:
    return f"{100.0 * part / whole:.{digits}f}" if whole else "-"


def _quantile(values: Sequence[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def summary_line(s: Step) -> str:
    sipp = s.sipp or SippStats(-1)
    scores = [a.score for a in s.audio]
    frames = sum(a.frames for a in s.audio)
    return (
        f"{'PASS' if s.passed else 'FAIL'} answered {s.answered}/{s.calls}, intact {s.intact}, "
        f"tickets {s.tickets}, sipp ok {sipp.successful} failed {sipp.failed} {sipp.failures or ''} "
        f"5xx {sipp.five_xx} retrans {sipp.retransmissions}; min score {min(scores, default=0):.3f}, "
        f"lost {_pct(sum(a.lost for a in s.audio), frames, 3)} % of {frames} frames "
        f"(zero {_pct(sum(a.zero for a in s.audio), frames, 3)} %), longest gap "
        f"{20 * max((a.gap for a in s.audio), default=0)} ms, jumps {sum(a.jumps for a in s.audio)}, "
        f"stalls {_stall_cell(s)}, lost while all up {_pct(*s.window_loss(), 3)} %; "
        f"workers {s.worker_cpu():.0f}% core, host {s.cpu.get('host', 0):.0f}%, others {s.others_cpu():.0f}%; "
        f"{s.seconds:.0f} s" + (f"; {'; '.join(s.notes)}" if s.notes else "")
    )


def _cpu_cell(s: Step) -> str:
    parts = [f"{s.cpu[k]:.0f}" for k in sorted(s.cpu) if re.fullmatch(r"w\d+", k)]
    return "+".join(parts) if len(parts) > 1 else (parts[0] if parts else "-")


def _lost_cell(s: Step) -> str:
    frames = sum(a.frames for a in s.audio)
    worst = max((100.0 * a.lost / a.frames for a in s.audio if a.frames), default=0.0)
    return f"{_pct(sum(a.lost for a in s.audio), frames, 2)} ({worst:.1f})"


def _stall_cell(s: Step) -> str:
    events = s.stalls()
    return f"{len(events)} ({1000 * max((d for _, d in events), default=0.0):.0f})" if events else "0"


def _setup_cell(s: Step) -> str:
    rtt = s.sipp.setup_ms if s.sipp else []
    return f"{_quantile(rtt, 0.5):.0f}/{_quantile(rtt, 0.99):.0f}"


def _result_cell(s: Step) -> str:
    return ("pass" if s.passed else "**fail**") + (f" ({'; '.join(s.notes)})" if s.notes else "")


def _table(rows: list[dict[str, str]]) -> list[str]:
    header = list(rows[0])
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(row[h] for h in header) + " |" for row in rows]


def concurrency_table(steps: Sequence[Step], idle: dict[int, dict[str, float]]) -> list[str]:
    rows = []
    base: dict[int, float] = {}
    for s in steps:
        at_rest = sum(v for k, v in idle.get(s.workers, {}).items() if re.fullmatch(r"w\d+", k))
        per_call = max(s.worker_cpu() - at_rest, 0.0) / max(s.live_calls or s.calls, 1)
        base.setdefault(s.workers, per_call)
        ratio = per_call / base[s.workers] if base[s.workers] else float("nan")
        rows.append(
            {
                "workers": str(s.workers),
                "calls (up)": f"{s.target} ({s.live_calls})",
                "answered": f"{s.answered}/{s.calls}",
                "intact": f"{s.intact}/{s.calls}",
                "frames lost % (worst call)": _lost_cell(s),
                "lost while all up %": _pct(*s.window_loss(), 2),
                "longest gap ms": f"{20 * max((a.gap for a in s.audio), default=0)}",
                "stalls (longest ms)": _stall_cell(s),
                "setup p50/p99 ms": _setup_cell(s),
                "workers % core": _cpu_cell(s),
                "% core per call (× base)": f"{per_call:.2f} (×{ratio:.2f})",
                "kamailio %": f"{s.cpu.get('kamailio', 0):.0f}",
                "sipp %": f"{s.cpu.get('sipp', 0):.0f}",
                "others %": f"{s.others_cpu():.0f}",
                "result": _result_cell(s),
            }
        )
    return _table(rows)


def rate_table(steps: Sequence[Step]) -> list[str]:
    rows = []
    for s in steps:
        sipp = s.sipp or SippStats(-1)
        rows.append(
            {
                "workers": str(s.workers),
                "cps offered (achieved)": f"{s.target} ({s.achieved_cps:.1f})",
                "calls up": str(s.live_calls),
                "answered": f"{s.answered}/{s.calls}",
                "5xx": str(sipp.five_xx),
                "retrans": str(sipp.retransmissions),
                "intact": f"{s.intact}/{s.calls}",
                "frames lost % (worst call)": _lost_cell(s),
                "longest gap ms": f"{20 * max((a.gap for a in s.audio), default=0)}",
                "stalls (longest ms)": _stall_cell(s),
                "setup p50/p99 ms": _setup_cell(s),
                "workers % core": _cpu_cell(s),
                "worker CPU ms per call": f"{s.worker_cpu() * s.window_s * 10 / max(s.calls, 1):.1f}",
                "kamailio %": f"{s.cpu.get('kamailio', 0):.0f}",
                "sipp %": f"{s.cpu.get('sipp', 0):.0f}",
                "others %": f"{s.others_cpu():.0f}",
                "result": _result_cell(s),
            }
        )
    return _table(rows)


def best(steps: Sequence[Step], kind: str, workers: int) -> str:
    """The highest passing target below the first failure of a ladder (a target run twice counts
    by its last run)."""
    verdict = {s.target: s.passed for s in steps if s.kind == kind and s.workers == workers}
    if not verdict:
        return "-"
    failed = [t for t, ok in verdict.items() if not ok]
    ceiling = min(failed) if failed else math.inf
    good = [t for t, ok in verdict.items() if ok and t < ceiling]
    if not good:
        return f"< {min(verdict)}"
    return f"{max(good)}" + ("" if failed else " (no failure up to the top of the ladder)")


def machine() -> str:
    model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem = ""
    with contextlib.suppress(OSError, IndexError, ValueError):
        kb = int(Path("/proc/meminfo").read_text().split("\n", 1)[0].split()[1])
        mem = f", {kb / 1024 / 1024:.0f} GiB RAM"
    return f"{os.cpu_count()} × {model} (nproc {os.cpu_count()}){mem}, Linux {os.uname().release}"


def tool_versions() -> str:
    def first_line(cmd: list[str]) -> str:
        try:
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=10, check=False)
        except (OSError, subprocess.TimeoutExpired):
            return "?"
        text = (out.stdout or out.stderr).strip().splitlines()
        return next((line.strip() for line in text if line.strip()), "?")

    return f"{first_line(['sipp', '-v'])}; {first_line(['kamailio', '-v'])}; pjproject 2.12.1 (8 kHz bridge)"


def report(bench: Bench, command: str, started: datetime.datetime, idle_host: float) -> str:
    args = bench.args
    steps = bench.steps
    lines = [
        f"### {started:%Y-%m-%d %H:%M} UTC{' (quick)' if args.quick else ''}",
        "",
        f"- command: `{command}`",
        f"- machine: {machine()}; host busy before the run (no service yet): {idle_host:.0f} % of one core",
        f"- tools: {tool_versions()}" + (f"; pjsua2 from {args.pjsua2}" if args.pjsua2 else ""),
        f"- concurrency steps: callers set up at {args.setup_rate} calls/s, held {args.hold_s:g} s after the last "
        f"one was up; CPU over that window. Rate steps: {args.rate_calls} calls of {args.call_s:g} s each. "
        f"Admission limit {args.max_calls_per_worker} per worker (never the limit here). "
        f"Run took {(datetime.datetime.now(datetime.UTC) - started).total_seconds() / 60:.1f} min.",
        "- ladders: "
        + "; ".join(
            f"{w} worker(s): concurrency {args.concurrency_ladders[w]}, rates {args.rate_ladders[w]}"
            for w in args.workers
        ),
        "",
        "Highest step passing (criterion above):",
        "",
    ]
    for workers in args.workers:
        lines.append(
            f"- {workers} worker(s): {best(steps, 'concurrency', workers)} concurrent calls; "
            f"{best(steps, 'rate', workers)} calls/s"
        )
    conc = [s for s in steps if s.kind == "concurrency"]
    rate = [s for s in steps if s.kind == "rate"]
    if conc:
        lines += [
            "",
            "Concurrent calls (first row per worker count: the baseline):",
            "",
            *concurrency_table(conc, bench.idle_cpu),
        ]
    if rate:
        lines += ["", "Call rate:", "", *rate_table(rate)]
    return "\n".join(lines) + "\n"


HEADING = "## Calls: concurrency and call rate with media intact (`bench/calls.py`)"


def append_doc(text: str, path: Path = DOC) -> None:
    """Adds a run at the end of this benchmark's section of docs/benchmarks.md (creating the
    section at the end of the file, or the file); other sections are left exactly as they are."""
    existing = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n"
    lines = existing.splitlines(keepends=True)
    if HEADING + "\n" not in lines and HEADING not in lines:
        updated = existing.rstrip("\n") + f"\n\n{HEADING}\n\nMethod: see `bench/calls.py`.\n\n" + text
    else:
        start = lines.index(HEADING + "\n") if HEADING + "\n" in lines else lines.index(HEADING)
        end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
        before, section, after = "".join(lines[:start]), "".join(lines[start:end]), "".join(lines[end:])
        updated = before + section.rstrip("\n") + "\n\n" + text + ("\n" + after if after else "")
    path.write_text(updated, encoding="utf-8")


# ------------------------------------------------------------------------------------------ main
def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.calls", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="a couple of minutes: fewer, shorter steps")
    p.add_argument("--workers", default="1,2", help="worker counts to measure, e.g. 1,2 (default)")
    p.add_argument("--concurrency", help="ladder of concurrent calls, e.g. 10,100,200 (first = baseline)")
    p.add_argument("--rates", help="ladder of calls per second, e.g. 10,20,40; empty: skip")
    p.add_argument("--hold-s", type=float, help="seconds all callers are up together (20; quick 8)")
    p.add_argument("--setup-rate", type=int, default=25, help="calls/s at which a concurrency step is set up")
    p.add_argument("--rate-calls", type=int, help="calls per rate step (200; quick 80)")
    p.add_argument("--call-s", type=float, default=3.0, help="length of a call in the rate steps")
    p.add_argument("--max-calls-per-worker", type=int, default=900, help="admission limit given to the service")
    p.add_argument("--no-refine", action="store_true", help="do not try a step between last pass and first fail")
    p.add_argument("--no-retry", action="store_true", help="do not run again a step that failed on a busy host")
    p.add_argument("--workdir", type=Path, help="where the service and sipp run (default: a temporary directory)")
    p.add_argument("--keep", action="store_true", help="keep recordings and the work directory")
    p.add_argument("--no-doc", action="store_true", help="print only; do not append to docs/benchmarks.md")
    p.add_argument("--pjsua2", type=Path, help="directory of another pjsua2 build to run the service with")
    args = p.parse_args(argv)
    preset = QUICK if args.quick else FULL
    args.workers = [int(w) for w in str(args.workers).split(",") if w.strip()]
    args.hold_s = args.hold_s if args.hold_s is not None else preset["hold_s"]
    args.rate_calls = args.rate_calls or preset["rate_calls"]

    def ladder(text: str | None, key: str, workers: int) -> list[int]:
        if text is not None:
            return [int(v) for v in text.split(",") if v.strip()]
        table: dict[int, list[int]] = preset[key]  # type: ignore[assignment]
        return table.get(workers) or [n * workers for n in table[1]]

    args.concurrency_ladders = {w: ladder(args.concurrency, "concurrency", w) for w in args.workers}
    args.rate_ladders = {w: ladder(args.rates, "rates", w) for w in args.workers}
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    for tool in ("sipp", "kamailio", "redis-server", "sox"):
        if shutil.which(tool) is None:
            print(f"{tool} is missing: run `make test` once (it installs what the service and tests need)")
            return 2
    command = ".venv/bin/python -m bench.calls" + "".join(f" {shlex.quote(a)}" for a in (argv or sys.argv[1:]))
    started = datetime.datetime.now(datetime.UTC)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench-calls-"))
    workdir.mkdir(parents=True, exist_ok=True)
    if args.pjsua2 is not None:
        # Put before the venv's .pth entry; the service's processes inherit the environment.
        paths = [str(args.pjsua2.resolve()), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
        os.environ["PYTHONPATH"] = os.pathsep.join(paths)
    busy0, total0 = _host_ticks()
    time.sleep(2.0)
    busy1, total1 = _host_ticks()
    idle_host = 100.0 * (os.cpu_count() or 1) * (busy1 - busy0) / max(total1 - total0, 1)
    print(f"bench.calls in {workdir}; host busy before start: {idle_host:.0f} % of one core", flush=True)
    bench = Bench(args, workdir)
    try:
        for workers in args.workers:
            print(f"== {workers} worker(s)", flush=True)
            with bench.service(workers):
                bench.wait_idle()
                if args.concurrency_ladders[workers]:
                    bench.ladder("concurrency", workers, args.concurrency_ladders[workers])
                if args.rate_ladders[workers]:
                    bench.ladder("rate", workers, args.rate_ladders[workers])
    except KeyboardInterrupt:
        print("interrupted: reporting the steps done so far", flush=True)
    finally:
        bench.pool.shutdown(cancel_futures=True)
    text = report(bench, command, started, idle_host)
    print()
    print(text)
    if not args.no_doc and bench.steps:
        append_doc(text)
        print(f"appended to {DOC.relative_to(REPO)}")
    if not args.keep and args.workdir is None:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
