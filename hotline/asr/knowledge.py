"""The knowledge base: consultations the hotline answers at once, without dispatching a ticket.

RULES.md (000; 001 第十一条(一)): a consultation the knowledge base can answer is answered on
the call. Entries live in config/knowledge/*.yaml, one topic per file:

    topic: 公积金
    entries:
      - id: hpf-withdraw-rent
        questions: [租房怎么提取公积金, 租房能取公积金吗]   # several phrasings
        keywords: [公积金, 提取, 租房]                      # words that name the matter
        answer: 租房提取公积金……                            # short, spoken style
        audio: hpf-withdraw-rent.wav                        # optional recorded answer

Scoring is transparent, no model: both sides are cut into character bigrams; a phrasing's
score is the share of its bigrams (weighted by BM25 inverse document frequency over the entries,
so 怎么/办理 count little and 公积金 much) that the transcript contains; an entry's score is
0.6 × its best phrasing + 0.4 × its keyword coverage (two keywords heard = full). Entries under
`threshold` are not returned, so a transcript about something else matches nothing.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from hotline.asr import yamlcheck as yc
from hotline.asr.intake_text import normalise
from hotline.core.errors import ConfigError

DEFAULT_THRESHOLD = 0.45
PATTERN_WEIGHT = 0.6
KEYWORD_WEIGHT = 0.4
_KEYWORDS_FOR_FULL = 2
_NOT_WORD = re.compile(r"[^\w]+")
_ID = re.compile(r"^[a-z0-9][a-z0-9_-]*$")


@dataclasses.dataclass(frozen=True, slots=True)
class KbEntry:
    entry_id: str
    topic: str
    questions: tuple[str, ...]
    keywords: tuple[str, ...]
    answer: str
    audio: str | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class KbMatch:
    """A knowledge-base answer for a transcript; `question` is the entry's first phrasing."""

    entry_id: str
    score: float
    question: str
    answer: str
    topic: str = ""
    audio: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def bigrams(text: str) -> set[str]:
    """Character bigrams within runs of word characters (single characters for one-character runs)."""
    grams: set[str] = set()
    for piece in _NOT_WORD.split(normalise(text).lower()):
        if len(piece) == 1:
            grams.add(piece)
        grams.update(piece[i : i + 2] for i in range(len(piece) - 1))
    return grams


class KnowledgeBase:
    """Answers matched by bigram overlap; immutable after construction, safe to share."""

    def __init__(self, entries: Iterable[KbEntry], threshold: float = DEFAULT_THRESHOLD) -> None:
        self.entries = tuple(entries)
        self.threshold = threshold
        self._patterns = [[bigrams(q) for q in e.questions] for e in self.entries]
        self._keywords = [tuple(normalise(k) for k in e.keywords) for e in self.entries]
        df: dict[str, int] = {}
        for entry, patterns in zip(self.entries, self._patterns, strict=True):
            vocabulary = set().union(*patterns, *(bigrams(k) for k in entry.keywords))
            for gram in vocabulary:
                df[gram] = df.get(gram, 0) + 1
        n = len(self.entries)
        self._idf = {g: math.log(1 + (n - d + 0.5) / (d + 0.5)) for g, d in df.items()}

    @classmethod
    def load(cls, directory: Path | str, threshold: float = DEFAULT_THRESHOLD) -> KnowledgeBase:
        """Every *.yaml under `directory`; all problems reported at once as ConfigError "file:line: ..."."""
        directory = Path(directory)
        files = sorted(directory.glob("*.yaml"))
        if not files:
            raise ConfigError(f"{directory}: no knowledge base files (*.yaml)")
        entries: list[KbEntry] = []
        messages: list[str] = []
        first_seen: dict[str, str] = {}
        for path in files:
            problems = yc.Problems(path)
            for entry, node in _read_file(path, problems):
                where = f"{path}:{node.start_mark.line + 1}"
                if entry.entry_id in first_seen:
                    problems.add(node, f"entry id {entry.entry_id!r} already used at {first_seen[entry.entry_id]}")
                    continue
                first_seen[entry.entry_id] = where
                entries.append(entry)
            messages.extend(problems.messages)
        if messages:
            raise ConfigError("\n".join(messages))
        return cls(entries, threshold)

    def match(self, transcript: str, top_k: int = 3) -> list[KbMatch]:
        """The best entries for a transcript, best first; none under the threshold."""
        query = bigrams(transcript)
        if not query or top_k <= 0:
            return []
        text = normalise(transcript)
        scored: list[tuple[float, int]] = []
        for i in range(len(self.entries)):
            best = max((self._coverage(p, query) for p in self._patterns[i]), default=0.0)
            keywords = self._keywords[i]
            if keywords:
                heard = sum(1 for k in keywords if k in text)
                score = PATTERN_WEIGHT * best + KEYWORD_WEIGHT * min(
                    1.0, heard / min(len(keywords), _KEYWORDS_FOR_FULL)
                )
            else:
                score = best
            if score >= self.threshold:
                scored.append((score, i))
        scored.sort(key=lambda item: (-item[0], self.entries[item[1]].entry_id))
        return [self._as_match(self.entries[i], score) for score, i in scored[:top_k]]

    def _coverage(self, pattern: set[str], query: set[str]) -> float:
        total = sum(self._idf.get(g, 0.0) for g in pattern)
        if total <= 0:
            return 0.0
        return sum(self._idf.get(g, 0.0) for g in pattern & query) / total

    @staticmethod
    def _as_match(entry: KbEntry, score: float) -> KbMatch:
        return KbMatch(entry.entry_id, round(score, 3), entry.questions[0], entry.answer, entry.topic, entry.audio)


def _read_file(path: Path, problems: yc.Problems) -> list[tuple[KbEntry, yaml.Node]]:
    root = yc.compose(path)
    top = yc.Fields(root, problems, "knowledge file")
    topic = yc.text(top.require("topic"), problems, "topic") or ""
    out: list[tuple[KbEntry, yaml.Node]] = []
    for node in yc.sequence(top.require("entries"), problems, "entries"):
        f = yc.Fields(node, problems, "entry")
        entry_id = yc.text(f.require("id"), problems, "entry id")
        what = f"entry {entry_id!r}"
        if entry_id is not None and not _ID.match(entry_id):
            problems.add(f.get("id"), f"{what}: ids are lower-case ASCII letters, digits, '-' and '_'")
        questions = yc.texts(f.require("questions"), problems, f"{what} questions", min_len=2)
        if not questions and f.get("questions") is not None:
            problems.add(node, f"{what}: needs at least one question")
        keywords_node = f.get("keywords")
        keywords = yc.texts(keywords_node, problems, f"{what} keywords") if keywords_node is not None else []
        answer = yc.text(f.require("answer"), problems, f"{what} answer")
        audio_node = f.get("audio")
        audio = yc.text(audio_node, problems, f"{what} audio") if audio_node is not None else None
        entry_topic_node = f.get("topic")
        entry_topic = yc.text(entry_topic_node, problems, f"{what} topic") if entry_topic_node is not None else topic
        f.finish()
        if entry_id is None or not questions or answer is None:
            continue
        entry = KbEntry(entry_id, entry_topic or topic, tuple(questions), tuple(keywords), answer, audio)
        out.append((entry, node))
    top.finish()
    return out
