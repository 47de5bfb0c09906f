"""Text work for the intake: normalising a transcript, spoken numbers, and phrase search by sound.

Speech recognisers write numbers as characters (三号楼二单元五零一, 幺三八…) and confuse
homophones (停水 heard as 停睡). `normalise` turns spoken numbers into digits where they are
numbers, and leaves words that merely contain a numeral (一些, 一直, 统一) alone. `PhoneticText`
finds a phrase where the transcript *sounds* like it: the transcript is read in context (one
toneless pinyin per character), the phrase may sound like any reading of its characters; the
fuzzy pass also equates the pairs southern speakers and recognisers mix up (z/zh, c/ch, s/sh,
l/n, en/eng, in/ing), on the phrase's own reading only.

cn2an and pypinyin are imported on first use: `warm_up` does it ahead of the first call.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import re
import unicodedata
from collections.abc import Iterable, Sequence
from typing import Any, Literal

NUMERALS = "零〇一二两三四五六七八九十百千万亿幺"
_POSITIONAL = set("十百千万亿")
_DIGIT = {"零": "0", "〇": "0", "一": "1", "幺": "1", "二": "2", "两": "2", "三": "3", "四": "4", "五": "5"}
_DIGIT |= {"六": "6", "七": "7", "八": "8", "九": "9"}
_RUN = re.compile(f"[{NUMERALS}]+")

# A numeral followed by one of these is a number (longest first: 号楼 before 号).
UNITS = (
    "个月", "个小时", "号楼", "单元", "小时", "分钟", "公里", "平米", "平方", "块钱", "周岁",
    "号", "楼", "层", "室", "栋", "幢", "户", "期", "岁", "年", "月", "日", "天", "周", "点", "元",
    "块", "次", "米", "斤", "度", "路", "组", "排", "床", "辆", "间", "套", "趟", "人", "位",
)  # fmt: skip

# Words that contain a numeral but are not numbers: a numeral run inside one stays as it is.
NOT_NUMBERS = (
    "一些", "一直", "一下", "一样", "一般", "一定", "一起", "一点", "一会", "一切", "一律", "一边", "一旦",
    "一向", "一致", "一共", "一再", "一路", "一块儿", "一次性", "一方面", "一家人", "一天到晚", "一年四季",
    "一模一样", "一五一十", "三三两两", "七七八八", "乱七八糟", "七上八下", "万一", "千万", "统一", "唯一",
    "单一", "之一", "十分", "十足", "万分", "百姓", "一个劲", "一会儿", "一阵", "一刀切",
    "一体", "一线", "一把手", "两口子", "两边", "一号线",
)  # fmt: skip

_SPACE = re.compile(r"\s+")
_WIDE = re.compile("[\uff10-\uff19\uff21-\uff3a\uff41-\uff5a]+")


def warm_up() -> None:
    """Import cn2an and pypinyin now rather than on the first transcript."""
    _cn2an()
    _readings("水")
    context_readings("停水")


def normalise(text: str, keep: Sequence[str] = ()) -> str:
    """Full-width letters and digits as ASCII, one space for any whitespace, spoken numbers as digits.

    Chinese punctuation (，。？) stays: agents read the text. Numerals inside the words of `keep`
    (place names such as 西六路, 八大局) stay as they are.
    """
    text = _WIDE.sub(lambda m: unicodedata.normalize("NFKC", m.group()), text)
    text = _SPACE.sub(" ", text).strip()
    return spoken_numbers(text, keep) if _RUN.search(text) else text


def spoken_numbers(text: str, keep: Sequence[str] = ()) -> str:
    """三号楼二单元五零一 → 3号楼2单元501, 幺三八… → 138…; 一些, 一直, 统一 stay words."""
    out: list[str] = []
    last = 0
    for match in _RUN.finditer(text):
        start, end = match.span()
        out.append(text[last:start])
        out.append(_convert_run(text, start, end, match.group(), keep))
        last = end
    out.append(text[last:])
    return "".join(out)


def _convert_run(text: str, start: int, end: int, run: str, keep: Sequence[str]) -> str:
    if _inside_word(text, start, end, NOT_NUMBERS) or _inside_word(text, start, end, keep):
        return run
    after = text[end : end + 3]
    has_unit = any(after.startswith(unit) for unit in UNITS)
    positional = any(ch in _POSITIONAL for ch in run)
    if after.startswith(("几", "来")) or (len(run) == 1 and not has_unit):
        return run  # 十几天, 三来个: approximate; 三 alone: a word, not a number
    if not positional:
        if len(run) == 2 and _DIGIT[run[1]] == str(int(_DIGIT[run[0]]) + 1):
            return run  # 一两点, 两三天, 七八个: a range, not a number
        if len(run) >= 3 or has_unit:
            return "".join(_DIGIT[ch] for ch in run)  # read digit by digit: rooms, phones
        return run  # 五一 (the holiday), 一一: not numbers without a unit
    try:
        value = _cn2an().cn2an(run, "smart")
    except (ValueError, KeyError, IndexError, TypeError):
        return run  # cn2an refuses malformed runs (一五一十 outside the word list): keep them
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value)


def _inside_word(text: str, start: int, end: int, words: Sequence[str]) -> bool:
    for word in words:
        pos = text.find(word, max(0, end - len(word)), start + len(word))
        while pos != -1 and pos <= start:
            if pos + len(word) >= end:
                return True
            pos = text.find(word, pos + 1, start + len(word))
    return False


@functools.cache
def _cn2an() -> Any:
    # cn2an has no type information; it is used through this one call site.
    return importlib.import_module("cn2an")


# --- sound-alike search -------------------------------------------------------------------

Match = Literal["exact", "pinyin", "fuzzy"]

_FUZZY_INITIALS = (("zh", "z"), ("ch", "c"), ("sh", "s"), ("n", "l"))
_FUZZY_FINALS = (("ing", "in"), ("eng", "en"))
_HAN_RUN = re.compile("[\u3400-\u9fff]+")
_HOW_RANK = {"exact": 0, "pinyin": 1, "fuzzy": 2}
GAP = "…"  # in a phrase, "暖气…不热": both parts, in this order, at most MAX_GAP characters apart
MAX_GAP = 6


@functools.cache
def _readings(char: str) -> frozenset[str]:
    """Every toneless pinyin reading of a Han character; any other character stands for itself."""
    if not ("\u3400" <= char <= "\u9fff"):
        return frozenset((char,))
    from pypinyin import Style, pinyin

    readings = pinyin(char, style=Style.NORMAL, heteronym=True, errors="ignore")
    found = frozenset(r for group in readings for r in group if r)
    return found or frozenset((char,))


def context_readings(text: str) -> list[str]:
    """One toneless reading per character, as pypinyin reads it in context (长大 zhang, 重新 chong)."""
    from pypinyin import Style, lazy_pinyin

    out = list(text)
    for run in _HAN_RUN.finditer(text):
        readings = lazy_pinyin(run.group(), style=Style.NORMAL)
        if len(readings) != len(run.group()):  # a character pypinyin does not know: read one by one
            readings = [lazy_pinyin(ch, style=Style.NORMAL)[0] for ch in run.group()]
        out[run.start() : run.end()] = readings
    return out


def _fuzz(reading: str) -> str:
    for long, short in _FUZZY_INITIALS:
        if reading.startswith(long):
            reading = short + reading[len(long) :]
            break
    for long, short in _FUZZY_FINALS:
        if reading.endswith(long):
            reading = reading[: -len(long)] + short
            break
    return reading


def is_han(text: str) -> bool:
    return bool(text) and all("\u3400" <= ch <= "\u9fff" for ch in text)


@dataclasses.dataclass(frozen=True, slots=True)
class Hit:
    """Where a phrase of the lexicon was found, and how (as written, by pinyin, by fuzzy pinyin)."""

    phrase: str
    start: int
    end: int
    how: Match

    def text_in(self, text: str) -> str:
        return text[self.start : self.end]


class PhoneticText:
    """A normalised transcript, searchable for phrases as written or as they sound."""

    def __init__(self, text: str, negations: Sequence[str] = ()) -> None:
        self.text = text
        self._negations = tuple(negations)
        self._sounds: list[str] | None = None
        self._fuzzy: list[str] | None = None

    def find(self, phrase: str, *, by_sound: bool = False, fuzzy: bool = False) -> list[Hit]:
        """Every non-overlapping occurrence of `phrase`, skipping negated ones (没有停水)."""
        if GAP in phrase:
            return self._find_gapped(phrase, by_sound=by_sound, fuzzy=fuzzy)
        hits = [Hit(phrase, pos, pos + len(phrase), "exact") for pos in _positions(self.text, phrase)]
        if by_sound and len(phrase) >= 2 and is_han(phrase):
            taken = {h.start for h in hits}
            found: list[tuple[int, Match]] = []
            wanted = [_readings(ch) for ch in phrase]
            found += [(pos, "pinyin") for pos in _sound_positions(self._sound_table(), wanted)]
            if fuzzy:
                fuzzed = [frozenset((_fuzz(r),)) for r in context_readings(phrase)]
                found += [(pos, "fuzzy") for pos in _sound_positions(self._fuzzy_table(), fuzzed)]
            for pos, how in found:
                if pos not in taken:
                    taken.add(pos)
                    hits.append(Hit(phrase, pos, pos + len(phrase), how))
        return sorted((h for h in hits if not self.negated(h.start)), key=lambda h: h.start)

    def find_any(self, phrases: Iterable[str], *, by_sound: bool = False, fuzzy: bool = False) -> list[Hit]:
        """Occurrences of any of the phrases; where two overlap, the longer and more exact one wins."""
        hits = [hit for phrase in phrases for hit in self.find(phrase, by_sound=by_sound, fuzzy=fuzzy)]
        return non_overlapping(hits)

    def negated(self, start: int) -> bool:
        before = self.text[max(0, start - 4) : start]
        return any(before.endswith(neg) for neg in self._negations) or any(
            before.endswith(neg + gap) for neg in self._negations for gap in ("有", "再", "发生", "出现")
        )

    def _find_gapped(self, phrase: str, *, by_sound: bool, fuzzy: bool) -> list[Hit]:
        head, _, tail = phrase.partition(GAP)
        tails = self.find(tail, by_sound=by_sound, fuzzy=fuzzy)
        hits: list[Hit] = []
        for h in self.find(head, by_sound=by_sound, fuzzy=fuzzy):
            t = next((t for t in tails if 0 <= t.start - h.end <= MAX_GAP), None)
            if t is not None:
                how = max(h.how, t.how, key=lambda m: _HOW_RANK[m])
                hits.append(Hit(phrase, h.start, t.end, how))
        return hits

    def _sound_table(self) -> list[str]:
        if self._sounds is None:
            self._sounds = context_readings(self.text)
        return self._sounds

    def _fuzzy_table(self) -> list[str]:
        if self._fuzzy is None:
            self._fuzzy = [_fuzz(r) for r in self._sound_table()]
        return self._fuzzy


def non_overlapping(hits: list[Hit]) -> list[Hit]:
    """Where hits overlap, the more exact one wins, then the longer, then the earlier."""
    chosen: list[Hit] = []
    for hit in sorted(hits, key=lambda h: (_HOW_RANK[h.how], -(h.end - h.start), h.start)):
        if all(hit.end <= c.start or hit.start >= c.end for c in chosen):
            chosen.append(hit)
    return sorted(chosen, key=lambda h: h.start)


def _positions(text: str, phrase: str) -> list[int]:
    out: list[int] = []
    pos = text.find(phrase)
    while pos != -1:
        out.append(pos)
        pos = text.find(phrase, pos + len(phrase))
    return out


def _sound_positions(table: list[str], wanted: list[frozenset[str]]) -> list[int]:
    """Start positions where the reading of each character is one the phrase's character allows."""
    n = len(wanted)
    out: list[int] = []
    pos = 0
    first = wanted[0]
    while pos <= len(table) - n:
        if table[pos] in first and all(table[pos + i] in wanted[i] for i in range(1, n)):
            out.append(pos)
            pos += n
        else:
            pos += 1
    return out
