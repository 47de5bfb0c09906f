"""The prompt library: WAV files found by name and language, and sequences of them joined once.

Rules of this module:
- Layout: `<root>/<language>/<name>.wav`, also in sub-folders (`<root>/zh-CN/kb/kb_….wav`); the
  name is the file's stem. Roots are searched in the order given: a city's override root first
  (`<data_dir>/prompts` unless `prompts_override_dir` says otherwise), the shipped
  `config/prompts` last, so a city replaces any prompt by dropping a file with the same name.
- Every prompt is 8 kHz mono 16-bit PCM, the conference bridge's format, so nothing is resampled
  while a call plays it. A file in any other format is refused when the library is built, with
  all such files named at once and the sox command that converts one; nothing converts silently.
- A prompt missing in a language is missing, except `hold_music`, which falls back to zh-CN.
- `sequence()` joins prompts (a number read out, "您前面还有 · 三 · 位来电") into one WAV under
  `cache_dir`, named by a hash of the language, the names and each source's path, size and
  modification time, written to a temporary file and renamed, so concurrent workers never see a
  half-written file and a replaced recording never plays stale. Joined files not used for
  `cache_max_age_s` are removed when a library is built.
- The files are indexed once, at construction: a recording added later is seen after a restart.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import tempfile
import time
import wave
from collections.abc import Iterable, Sequence
from pathlib import Path

from hotline.core.errors import ConfigError

logger = logging.getLogger(__name__)

RATE = 8000
CHANNELS = 1
SAMPLE_WIDTH = 2
DEFAULT_LANGUAGE = "zh-CN"
FALLBACK_TO_DEFAULT = frozenset({"hold_music"})  # language-neutral: music
CACHE_MAX_AGE_S = 7 * 86400


class PromptError(ConfigError):
    """A prompt is missing or unusable; the message names the prompt and where it was looked for."""

    error_id = "prompt"


@dataclasses.dataclass(frozen=True, slots=True)
class PromptFile:
    path: Path
    frames: int
    size: int
    mtime_ns: int

    @property
    def seconds(self) -> float:
        return self.frames / RATE


def read_prompt_file(path: Path) -> PromptFile:
    """The header of a prompt WAV; PromptError naming the file if it is not 8 kHz mono 16-bit PCM."""
    try:
        with wave.open(str(path), "rb") as w:
            rate, channels, width, frames = w.getframerate(), w.getnchannels(), w.getsampwidth(), w.getnframes()
    except (wave.Error, EOFError, OSError) as exc:
        raise PromptError(f"{path}: not a PCM WAV file ({exc}); {_convert_hint(path)}") from exc
    if (rate, channels, width) != (RATE, CHANNELS, SAMPLE_WIDTH):
        raise PromptError(
            f"{path}: {rate} Hz, {channels} channel(s), {8 * width}-bit; prompts must be "
            f"{RATE} Hz mono 16-bit: {_convert_hint(path)}"
        )
    st = path.stat()
    return PromptFile(path, frames, st.st_size, st.st_mtime_ns)


def _convert_hint(path: Path) -> str:
    return f"convert it with `sox {path.name} -r {RATE} -c 1 -b 16 fixed.wav`"


class PromptLibrary:
    """Prompts by name and language, from the first root that has them; joins sequences once.

    Blocking file I/O is small (headers at construction; a join writes tens of kilobytes once per
    distinct sequence), so the worker may call it on its event loop.
    """

    def __init__(
        self,
        dirs: Sequence[Path],
        cache_dir: Path,
        *,
        default_language: str = DEFAULT_LANGUAGE,
        cache_max_age_s: float = CACHE_MAX_AGE_S,
    ) -> None:
        self.dirs = tuple(Path(d) for d in dirs)
        self.cache_dir = Path(cache_dir)
        self.default_language = default_language
        self._files: dict[tuple[str, str], PromptFile] = {}
        self._sequences: dict[str, tuple[Path, float]] = {}
        problems: list[str] = []
        for root in self.dirs:
            if not root.is_dir():
                continue
            for lang_dir in sorted(p for p in root.iterdir() if p.is_dir()):
                seen: dict[str, Path] = {}
                for path in sorted(lang_dir.rglob("*.wav")):
                    if path.name.startswith("."):
                        continue  # a file being written (renamed into place when complete)
                    name = path.stem
                    if name in seen:
                        problems.append(f"{path}: prompt {name!r} also at {seen[name]}")
                        continue
                    seen[name] = path
                    key = (lang_dir.name, name)
                    if key in self._files:
                        continue  # an earlier root (the city's) has it
                    try:
                        self._files[key] = read_prompt_file(path)
                    except PromptError as exc:
                        problems.append(exc.message)
        if problems:
            raise PromptError("\n".join(problems))
        self._prune_cache(cache_max_age_s)

    # ------------------------------------------------------------- single prompts
    def _find(self, name: str, language: str | None) -> PromptFile:
        language = language or self.default_language
        found = self._files.get((language, name))
        if found is None and name in FALLBACK_TO_DEFAULT:
            found = self._files.get((self.default_language, name))
        if found is None:
            where = ", ".join(str(d / language) for d in self.dirs)
            raise PromptError(f"no prompt {name!r} in {language} (looked in {where}; run `make prompts`)")
        return found

    def has(self, name: str, language: str | None = None) -> bool:
        try:
            self._find(name, language)
        except PromptError:
            return False
        return True

    def path(self, name: str, language: str | None = None) -> Path:
        """The file of a prompt (absolute); PromptError if no root has it."""
        return self._find(name, language).path.resolve()

    def seconds(self, name: str, language: str | None = None) -> float:
        return self._find(name, language).seconds

    def names(self, language: str | None = None) -> set[str]:
        """Every prompt `has()` finds in `language` (fallbacks included)."""
        language = language or self.default_language
        names = {n for (lang, n) in self._files if lang == language}
        names |= {n for n in FALLBACK_TO_DEFAULT if (self.default_language, n) in self._files}
        return names

    def languages(self) -> set[str]:
        return {lang for (lang, _) in self._files}

    def validate(self, required: Iterable[str], language: str | None = None) -> list[str]:
        """One problem per required prompt that cannot be found (empty: all present)."""
        problems = []
        for name in required:
            try:
                self._find(name, language)
            except PromptError as exc:
                problems.append(exc.message)
        return problems

    def register(self, name: str, path: Path, language: str | None = None) -> None:
        """Adds (or replaces) a prompt rendered at run time, such as a knowledge-base answer."""
        self._files[(language or self.default_language, name)] = read_prompt_file(Path(path))

    # ------------------------------------------------------------- sequences
    def sequence(self, names: Sequence[str], language: str | None = None) -> tuple[Path, float]:
        """One WAV playing `names` back to back, and its length in seconds.

        A single prompt is returned as it is; a longer sequence is joined once into the cache.
        """
        if not names:
            raise ValueError("an empty sequence of prompts")
        language = language or self.default_language
        parts = [self._find(n, language) for n in names]
        if len(parts) == 1:
            return parts[0].path.resolve(), parts[0].seconds
        identity = [
            language,
            [[n, str(p.path.resolve()), p.size, p.mtime_ns] for n, p in zip(names, parts, strict=True)],
        ]
        key = hashlib.sha256(json.dumps(identity, ensure_ascii=False).encode()).hexdigest()[:24]
        known = self._sequences.get(key)
        if known is not None:
            return known
        target = self.cache_dir / "sequences" / f"{key}.wav"
        seconds = sum(p.frames for p in parts) / RATE
        if target.exists():
            os.utime(target)  # used: keeps it from being pruned
        else:
            _join(parts, target)
            logger.debug("joined %s (%s) into %s", " ".join(names), language, target)
        result = (target.resolve(), seconds)
        self._sequences[key] = result
        return result

    def _prune_cache(self, max_age_s: float) -> None:
        folder = self.cache_dir / "sequences"
        if not folder.is_dir():
            return
        cutoff = time.time() - max_age_s
        for path in folder.glob("*.wav"):
            try:
                if path.stat().st_mtime < cutoff:
                    path.unlink()
            except FileNotFoundError:
                pass  # another worker pruned it first


def _join(parts: Sequence[PromptFile], target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.stem}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as raw, wave.open(raw, "wb") as out:
            out.setnchannels(CHANNELS)
            out.setsampwidth(SAMPLE_WIDTH)
            out.setframerate(RATE)
            for part in parts:
                with wave.open(str(part.path), "rb") as src:
                    out.writeframes(src.readframes(src.getnframes()))
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
