"""Intake: a caller's transcript becomes a ticket draft the agent confirms.

Rules of this module (12345 rules, shared/RULES.md):
- the kind of request is one of 咨询/求助/投诉/举报/意见建议/表扬, from weighted cue words;
  an emergency call with no other cue is a request for help;
- emergencies (outages, fire, gas leak, flood, injury, collapse, …) are found by the phrase as
  written *and* by its toneless pinyin, so an ASR homophone (停睡 for 停水) still raises the flag;
  an outage is an emergency ticket only when it is large (整个小区, 一片…), otherwise urgent;
  a life-threatening one adds a hint to link 110/119/120;
- matters 12345 does not accept (litigation, arbitration, discipline inspection, administrative
  reconsideration, information disclosure, petition, secrets/privacy) give a hint with the
  channel to tell the caller; the agent decides;
- every field carries a confidence in [0, 1]; the raw transcript is always kept;
- the summary is extractive and deterministic: place + the clause that carries the matter, ≤ 40
  characters.
Nothing here does I/O: the lexicon is read once by `load_lexicon` and given to `Intake`.
"""

from __future__ import annotations

import dataclasses
import enum
import itertools
import re
from typing import Any

from hotline.asr import intake_places, intake_text
from hotline.asr.intake_lexicon import IntakeLexicon, RequestKind, load_lexicon
from hotline.asr.intake_places import PlaceFinder, PlaceGuess
from hotline.asr.intake_text import NUMERALS, Hit, PhoneticText, non_overlapping, normalise

__all__ = [
    "EmergencyFlag",
    "Intake",
    "IntakeLexicon",
    "KindField",
    "LinkHint",
    "LocalPlaceRef",
    "OutOfScopeHint",
    "PhoneField",
    "PlaceField",
    "RequestKind",
    "SummaryField",
    "TicketDraft",
    "Urgency",
    "UrgencyField",
    "load_lexicon",
]

SUMMARY_MAX = 40
_HOW_CONFIDENCE = {"exact": 0.9, "pinyin": 0.7, "fuzzy": 0.5}
_CLAUSE_BREAK = re.compile(r"[，。！？；、,.!?;:：\s]+")
_CLAUSE_MARKERS = re.compile(r"(?=然后|但是|可是|结果|而且|现在|所以|因为|我想|请问|麻烦|希望|你们)")
_MOBILE = re.compile(r"(?<!\d)1[3-9]\d{9}(?!\d)")
_LANDLINE = re.compile(r"(?<!\d)0\d{2,3}\d{7,8}(?!\d)")
_DIGIT_GAP = re.compile(r"(?<=\d)[\s-]+(?=\d)")


class Urgency(enum.StrEnum):
    NORMAL = "normal"
    URGENT = "urgent"  # needs quick handling: a household outage, an explicit "very urgent"
    EMERGENCY = "emergency"  # an emergency ticket (001 第十三条): dispatched at once, 2-hour report


@dataclasses.dataclass(frozen=True, slots=True)
class KindField:
    value: RequestKind
    confidence: float
    cues: tuple[str, ...]  # the cue words that decided it, as heard
    scores: tuple[tuple[str, float], ...]  # every kind's score, best first


@dataclasses.dataclass(frozen=True, slots=True)
class LocalPlaceRef:
    name: str
    type: str
    district: str | None
    said: str  # how the caller said it (an alias such as 张店 for 张店区)


@dataclasses.dataclass(frozen=True, slots=True)
class PlaceField:
    province: str | None
    city: str | None
    district: str | None
    local: tuple[LocalPlaceRef, ...]
    detail: str | None  # house number: 3号楼2单元501
    label: str  # the most specific name: 张店区人民西路
    confidence: float


@dataclasses.dataclass(frozen=True, slots=True)
class EmergencyFlag:
    type: str
    label: str
    matched: str  # the lexicon phrase
    heard: str  # what the transcript says there (停睡 for 停水)
    how: str  # exact, pinyin or fuzzy
    life_threatening: bool
    large_scale: bool
    confidence: float


@dataclasses.dataclass(frozen=True, slots=True)
class UrgencyField:
    level: Urgency
    confidence: float
    cues: tuple[str, ...]


@dataclasses.dataclass(frozen=True, slots=True)
class LinkHint:
    number: str  # 110, 119, 120
    reason: str


@dataclasses.dataclass(frozen=True, slots=True)
class OutOfScopeHint:
    type: str
    label: str
    matched: str
    channel: str  # what to tell the caller
    confidence: float


@dataclasses.dataclass(frozen=True, slots=True)
class PhoneField:
    value: str
    confidence: float


@dataclasses.dataclass(frozen=True, slots=True)
class SummaryField:
    text: str
    confidence: float


@dataclasses.dataclass(frozen=True, slots=True)
class TicketDraft:
    """What the intake proposes for a ticket; the agent confirms or corrects every field."""

    transcript: str  # exactly as the recogniser gave it
    text: str  # normalised: digits for spoken numbers, one space for whitespace
    kind: KindField
    place: PlaceField
    urgency: UrgencyField
    emergencies: tuple[EmergencyFlag, ...]
    links: tuple[LinkHint, ...]
    out_of_scope: tuple[OutOfScopeHint, ...]
    phones: tuple[PhoneField, ...]
    summary: SummaryField

    @property
    def emergency(self) -> EmergencyFlag | None:
        """The strongest emergency flag, if any."""
        return self.emergencies[0] if self.emergencies else None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data (lists, strings, numbers, None)."""
        data: dict[str, Any] = _plain(dataclasses.asdict(self))
        return data


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, enum.Enum):
        return value.value
    return value


class Intake:
    """Turns transcripts into ticket drafts with one lexicon; safe to share between threads."""

    def __init__(self, lexicon: IntakeLexicon) -> None:
        self.lexicon = lexicon
        self._places = PlaceFinder(lexicon)
        self._kind_cues = {cue.phrase: (kind, cue.weight) for kind, cues in lexicon.kinds.items() for cue in cues}
        self._kind_order = {kind: i for i, kind in enumerate(lexicon.kinds)}
        self._sound_cues = frozenset(lexicon.kind_sound_cues)
        spellings = [s for place in lexicon.places for s in (place.name, *place.aliases)]
        phrases = [p for e in lexicon.emergencies for p in (*e.phrases, *e.exact_phrases)]
        phrases += [p for o in lexicon.out_of_scope for p in o.phrases] + list(self._kind_cues)
        # Names and phrases with a numeral in them (西六路, 八大局) are not numbers.
        self._keep = tuple(w for w in (*spellings, *phrases) if any(ch in NUMERALS for ch in w))

    @staticmethod
    def warm_up() -> None:
        """Load cpca, pandas, cn2an and pypinyin now (about a second) instead of on the first call."""
        intake_text.warm_up()
        intake_places.warm_up()

    def draft(self, transcript: str) -> TicketDraft:
        text = normalise(transcript, self._keep)
        searchable = PhoneticText(text, self.lexicon.negations)
        emergencies, emergency_hits = self._emergencies(searchable)
        kind, kind_hits = self._kind(searchable, emergencies)
        out_of_scope, oos_hits = self._out_of_scope(searchable)
        guess = self._places.find(text)
        urgency = self._urgency(searchable, emergencies)
        evidence = [(h, 5.0) for h in emergency_hits] + [(h, 3.0) for h in oos_hits]
        evidence += [(h, self._kind_cues[h.phrase][1]) for h in kind_hits]
        return TicketDraft(
            transcript=transcript,
            text=text,
            kind=kind,
            place=_place_field(guess, text),
            urgency=urgency,
            emergencies=emergencies,
            links=_links(self.lexicon, emergencies),
            out_of_scope=out_of_scope,
            phones=_phones(text),
            summary=self._summary(text, guess, evidence),
        )

    # --- kind -----------------------------------------------------------------------------

    def _kind(self, text: PhoneticText, emergencies: tuple[EmergencyFlag, ...]) -> tuple[KindField, list[Hit]]:
        plain = [cue for cue in self._kind_cues if cue not in self._sound_cues]
        hits = non_overlapping(text.find_any(plain) + text.find_any(self._sound_cues, by_sound=True))
        scores = dict.fromkeys(self.lexicon.kinds, 0.0)
        if emergencies:
            scores[self.lexicon.emergency_kind] += self.lexicon.emergency_weight
        counted: dict[str, int] = {}
        used: list[Hit] = []
        for hit in hits:
            counted[hit.phrase] = counted.get(hit.phrase, 0) + 1
            if counted[hit.phrase] > 2:  # a word said five times is not five times the evidence
                continue
            kind, weight = self._kind_cues[hit.phrase]
            scores[kind] += weight
            used.append(hit)
        ranked = sorted(scores.items(), key=lambda kv: (-kv[1], self._kind_order[kv[0]]))
        best, top = ranked[0]
        total = sum(scores.values())
        if top <= 0:
            return KindField(self.lexicon.default_kind, 0.2, (), tuple((k.value, 0.0) for k, _ in ranked)), []
        confidence = (top / total) * (top / (top + 1.5))
        cues = tuple(dict.fromkeys(h.phrase for h in used if self._kind_cues[h.phrase][0] == best))
        field = KindField(best, round(confidence, 2), cues, tuple((k.value, round(s, 2)) for k, s in ranked))
        return field, used

    # --- emergencies and urgency -----------------------------------------------------------

    def _emergencies(self, text: PhoneticText) -> tuple[tuple[EmergencyFlag, ...], list[Hit]]:
        large = bool(text.find_any(self.lexicon.scale_cues))
        flags: list[tuple[int, EmergencyFlag]] = []
        hits_used: list[Hit] = []
        for etype in self.lexicon.emergencies:
            hits = text.find_any(etype.phrases, by_sound=True, fuzzy=self.lexicon.pinyin_fuzzy)
            hits += text.find_any(etype.exact_phrases)
            hits = [h for h in hits if not _excluded(text.text, h, etype.exclude)]
            if not hits:
                continue
            hit = min(hits, key=lambda h: (_HOW_CONFIDENCE[h.how] * -1, h.start))
            flag = EmergencyFlag(
                type=etype.type_id,
                label=etype.label,
                matched=hit.phrase,
                heard=hit.text_in(text.text),
                how=hit.how,
                life_threatening=etype.life_threatening,
                large_scale=large or not etype.needs_scale,
                confidence=_HOW_CONFIDENCE[hit.how],
            )
            flags.append((hit.start, flag))
            hits_used.append(hit)
        flags.sort(key=lambda item: (not item[1].life_threatening, -item[1].confidence, item[0]))
        return tuple(flag for _, flag in flags), hits_used

    def _urgency(self, text: PhoneticText, emergencies: tuple[EmergencyFlag, ...]) -> UrgencyField:
        serious = [e for e in emergencies if e.life_threatening or e.large_scale]
        if serious:
            return UrgencyField(Urgency.EMERGENCY, max(e.confidence for e in serious), tuple(e.heard for e in serious))
        cues = tuple(h.text_in(text.text) for h in text.find_any(self.lexicon.urgent_cues))
        if emergencies:
            confidence = max(e.confidence for e in emergencies) * 0.8
            return UrgencyField(Urgency.URGENT, round(confidence, 2), tuple(e.heard for e in emergencies) + cues)
        if cues:
            return UrgencyField(Urgency.URGENT, 0.6, cues)
        return UrgencyField(Urgency.NORMAL, 0.7, ())

    # --- out of scope -----------------------------------------------------------------------

    def _out_of_scope(self, text: PhoneticText) -> tuple[tuple[OutOfScopeHint, ...], list[Hit]]:
        hints: list[OutOfScopeHint] = []
        used: list[Hit] = []
        for matter in self.lexicon.out_of_scope:
            hits = [h for h in text.find_any(matter.phrases) if not _excluded(text.text, h, matter.exclude)]
            if not hits:
                continue
            confidence = 0.9 if len(hits) > 1 else 0.8
            hints.append(OutOfScopeHint(matter.type_id, matter.label, hits[0].phrase, matter.channel, confidence))
            used.extend(hits)
        return tuple(hints), used

    # --- summary ----------------------------------------------------------------------------

    def _summary(self, text: str, place: PlaceGuess, evidence: list[tuple[Hit, float]]) -> SummaryField:
        clauses = _clauses(text)
        if not clauses:
            return SummaryField("", 0.0)
        fillers = self.lexicon.fillers
        best: tuple[float, int, int] | None = None
        for start, end in clauses:
            start = _skip_fillers(text, start, end, fillers)
            if start >= end:
                continue
            inside = [(h, w) for h, w in evidence if start <= h.start and h.end <= end]
            covered = sum(h.end - h.start for h, _ in inside)
            score = sum(w for _, w in inside) + min(end - start, 15) / 15
            score += sum(0.5 for a, b in place.spans if start <= a and b <= end)
            if covered >= 0.6 * (end - start):  # "我想咨询一下": a preamble, the matter follows it
                score *= 0.3
            if best is None or score > best[0]:
                best = (score, start, end)
        if best is None:
            return SummaryField("", 0.0)
        score, start, end = best
        end = _extend(text, clauses, start, end)
        label = place.label
        said_inside = any(start <= a and b <= end for a, b in place.spans)  # 周村 already in the clause
        prefix = f"{label}：" if label and not said_inside and label not in text[start:end] else ""
        budget = SUMMARY_MAX - len(prefix)
        if end - start > budget:
            anchors = [h.start for h, _ in evidence if start <= h.start < end] or [start]
            start = max(start, min(min(anchors) - 8, end - budget))
            end = start + budget
        clause = text[start:end].strip(" ，,。")
        confidence = 0.8 if score >= 2 else 0.5 if score >= 1 else 0.3
        return SummaryField((prefix + clause)[:SUMMARY_MAX], confidence)


def _excluded(text: str, hit: Hit, exclude: tuple[str, ...]) -> bool:
    for word in exclude:
        pos = text.find(word, max(0, hit.start - len(word) + 1))
        while pos != -1 and pos < hit.end:
            if pos + len(word) > hit.start:
                return True
            pos = text.find(word, pos + 1)
    return False


def _links(lexicon: IntakeLexicon, emergencies: tuple[EmergencyFlag, ...]) -> tuple[LinkHint, ...]:
    reasons: dict[str, list[str]] = {}
    links = {e.type_id: e.links for e in lexicon.emergencies}
    for flag in emergencies:
        if flag.life_threatening:
            for number in links.get(flag.type, ()):
                reasons.setdefault(number, []).append(flag.label)
    return tuple(LinkHint(number, "、".join(labels)) for number, labels in reasons.items())


def _phones(text: str) -> tuple[PhoneField, ...]:
    joined = _DIGIT_GAP.sub("", text)
    found = [PhoneField(m.group(), 0.9) for m in _MOBILE.finditer(joined)]
    found += [PhoneField(m.group(), 0.7) for m in _LANDLINE.finditer(joined)]
    return tuple(dict.fromkeys(found))


def _place_field(guess: PlaceGuess, text: str) -> PlaceField:
    local = tuple(
        LocalPlaceRef(h.place.name, h.place.place_type, h.place.district, text[h.start : h.end]) for h in guess.local
    )
    return PlaceField(guess.province, guess.city, guess.district, local, guess.detail, guess.label, guess.confidence)


def _clauses(text: str) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    pos = 0
    for piece in _CLAUSE_BREAK.split(text):
        start = text.find(piece, pos) if piece else pos
        if not piece:
            continue
        end = start + len(piece)
        pos = end
        if len(piece) <= 16:
            out.append((start, end))
            continue
        cuts = [m.start() for m in _CLAUSE_MARKERS.finditer(piece) if m.start() > 0]
        bounds = [0, *cuts, len(piece)]
        out.extend((start + a, start + b) for a, b in itertools.pairwise(bounds) if b > a)
    return out


def _skip_fillers(text: str, start: int, end: int, fillers: tuple[str, ...]) -> int:
    moved = True
    while moved and start < end:
        moved = False
        for filler in fillers:
            if text.startswith(filler, start) and start + len(filler) <= end:
                start += len(filler)
                moved = True
    return start


def _extend(text: str, clauses: list[tuple[int, int]], start: int, end: int) -> int:
    """A very short clause (停水了) takes the next one along (三天了) if it fits."""
    for c_start, c_end in clauses:
        if c_start >= end and end - start < 10 and c_end - start <= SUMMARY_MAX - 12:
            return c_end
    return end
