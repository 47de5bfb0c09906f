"""Repeat and duplicate 工单: which earlier tickets a new matter may repeat, and which matters were
already closed and are raised again. Pure matching functions plus the store's query part.

Rules of this module (RULES.md "Scope of a call", "督办"; 001 第十一条(一), 第十五条(二); 000):
- Possible repeat (relation "repeat"): an earlier ticket of the same caller, created within the
  repeat window (default 30 days).
- Possible duplicate (relation "duplicate"): an earlier ticket of another caller, of the same kind
  and about the same place, created within the duplicate window (default 7 days). Without a place
  on both sides there is no duplicate: a kind alone says nothing.
- Same matter: the same kind, and the same place or similar content. Places are the same when
  their normalised texts are equal, one contains the other (at least PLACE_CONTAINED characters),
  or their character-bigram Jaccard similarity is at least PLACE_SIMILAR. Contents are similar
  at a bigram Jaccard similarity of at least CONTENT_SIMILAR. Simple and explainable: every
  candidate carries its numbers and a reason in words.
- Not accepted again (不再受理): an earlier ticket of the same caller on the same matter that is
  已办结 (closed), created within the history window (default 365 days). A flag for the agent,
  never an automatic refusal: he decides, and says so to the caller.
- When a ticket is created, every candidate on the same matter is linked to it (repeat or
  duplicate, with the reason; another matter of the same caller is only shown to the agent),
  and one earlier ticket on the same matter is told (lifecycle SameMatter, which counts reports
  and callers for 督办, and for a closed ticket tells the caller it is not accepted again): the
  oldest one still open (the original: later reports of the matter are linked to it, so its count
  grows with each), else the newest closed one. Only one, so that one call counts once.
"""

from __future__ import annotations

import dataclasses
import unicodedata
from collections.abc import Iterable
from datetime import datetime, timedelta

from sqlalchemy import select

from hotline.core.errors import InvalidRequest
from hotline.core.model import TicketSummary
from hotline.tickets import schema
from hotline.tickets.ledger import TicketLedger
from hotline.tickets.model import Kind, State

PLACE_SIMILAR = 0.5  # bigram Jaccard of two normalised places at which they are the same place
PLACE_CONTAINED = 4  # characters the shorter place needs for "contained in the other" to count
CONTENT_SIMILAR = 0.3  # bigram Jaccard of two contents at which they state the same facts
CANDIDATES_MAX = 500  # earlier tickets of the same kind read for duplicates (newest first)

# Words that say nothing about where: stripped from both sides before places are compared.
_PLACE_NOISE = ("附近", "旁边", "对面", "门口", "这边", "那边", "一带")


@dataclasses.dataclass(frozen=True, slots=True)
class Windows:
    """How far back each rule looks (days; tickets.* in the configuration)."""

    repeat_days: int = 30
    duplicate_days: int = 7
    history_days: int = 365

    def __post_init__(self) -> None:
        for name in ("repeat_days", "duplicate_days", "history_days"):
            if getattr(self, name) < 1:
                raise InvalidRequest(f"{name} must be at least 1 day")


@dataclasses.dataclass(frozen=True, slots=True)
class Matter:
    """What a new ticket (or the draft of a call) is about."""

    caller: str
    kind: str  # Kind value
    place: str
    content: str


@dataclasses.dataclass(frozen=True, slots=True)
class Candidate:
    """An earlier ticket the new matter may repeat or duplicate."""

    earlier: TicketSummary
    relation: str  # repeat, duplicate
    same_matter: bool
    not_accepted_again: bool  # 不再受理: closed, same caller, same matter
    place_match: bool
    similarity: float  # bigram Jaccard of the contents, 0..1
    reason: str  # in Chinese, for the agent and the link

    def to_dict(self) -> dict[str, object]:
        t = self.earlier
        return {
            "number": t.number,
            "relation": self.relation,
            "same_matter": self.same_matter,
            "not_accepted_again": self.not_accepted_again,
            "place_match": self.place_match,
            "similarity": round(self.similarity, 2),
            "reason": self.reason,
            "kind": t.kind,
            "state": t.stage,
            "status": t.status.value,
            "place": t.place,
            "content": summarise(t.content),
            "created_at": t.created_at.isoformat(),
        }


def _plain(text: str) -> str:
    """NFKC (full-width to half-width), lower case, without whitespace and punctuation."""
    folded = unicodedata.normalize("NFKC", text).lower()
    return "".join(ch for ch in folded if not ch.isspace() and not unicodedata.category(ch).startswith(("P", "S")))


def normalise_place(text: str) -> str:
    """A place as compared: plain text without words like 附近/门口 that say nothing about where."""
    plain = _plain(text)
    for noise in _PLACE_NOISE:
        plain = plain.replace(noise, "")
    return plain


def bigrams(text: str) -> frozenset[str]:
    """The character bigrams of the plain text (a one-character text is its own bigram)."""
    plain = _plain(text)
    if len(plain) < 2:
        return frozenset({plain}) if plain else frozenset()
    return frozenset(plain[i : i + 2] for i in range(len(plain) - 1))


def jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    if not a or not b:
        return 0.0
    return len(a & b) / len(a | b)


def content_similarity(a: str, b: str) -> float:
    """Bigram Jaccard similarity of two contents, 0..1."""
    return jaccard(bigrams(a), bigrams(b))


def same_place(a: str, b: str) -> bool:
    """Both places given, and equal, one inside the other, or similar (see the module's rules)."""
    x, y = normalise_place(a), normalise_place(b)
    if not x or not y:
        return False
    if x == y:
        return True
    shorter, longer = sorted((x, y), key=len)
    if len(shorter) >= PLACE_CONTAINED and shorter in longer:
        return True
    return jaccard(bigrams(x), bigrams(y)) >= PLACE_SIMILAR


def summarise(content: str, limit: int = 60) -> str:
    text = " ".join(content.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def find_candidates(
    matter: Matter, earlier: Iterable[TicketSummary], now: datetime, windows: Windows, exclude: str | None = None
) -> list[Candidate]:
    """The earlier tickets the matter may repeat or duplicate (see the module's rules): same
    matter first, then newest first. `exclude`: the new ticket itself."""
    found: dict[str, Candidate] = {}
    caller = matter.caller.strip()
    for t in earlier:
        if t.number == exclude or t.number in found or t.created_at > now:
            continue
        age = now - t.created_at
        same_caller = t.caller.strip() == caller
        same_kind = t.kind == matter.kind
        place = same_place(matter.place, t.place)
        similarity = content_similarity(matter.content, t.content)
        same = same_kind and (place or similarity >= CONTENT_SIMILAR)
        closed_again = same_caller and same and t.stage == State.CLOSED.value and age <= timedelta(windows.history_days)
        if same_caller and (age <= timedelta(windows.repeat_days) or closed_again):
            relation = "repeat"
        elif not same_caller and same_kind and place and age <= timedelta(windows.duplicate_days):
            relation = "duplicate"
        else:
            continue
        found[t.number] = Candidate(
            t, relation, same, closed_again, place, similarity, _reason(t, relation, same, closed_again, age, place)
        )
    return sorted(
        found.values(), key=lambda c: (not c.same_matter, -c.earlier.created_at.timestamp(), c.earlier.number)
    )


def _reason(t: TicketSummary, relation: str, same: bool, closed_again: bool, age: timedelta, place: bool) -> str:
    days = max(0, age.days)
    kind = _kind_label(t.kind)
    if closed_again:
        return f"同一来电人{days}天前反映的同一事项（{kind}）已办结，以同一事实和理由再次反映的不再受理（请话务员判断）"
    if relation == "repeat":
        what = f"同一事项（{kind}，{'同一地点' if place else '内容相近'}）" if same else "另一事项"
        return f"同一来电人{days}天内再次来电：{what}"
    return f"{days}天内其他来电人反映同一地点的同类事项（{kind}）"


def _kind_label(kind: str) -> str:
    try:
        return Kind(kind).label
    except ValueError:
        return kind


def same_matter_target(candidates: Iterable[Candidate]) -> Candidate | None:
    """The one earlier ticket that is told of the new report: the oldest open one on the same
    matter, else the newest closed one (terminated tickets are left alone)."""
    same = [c for c in candidates if c.same_matter and c.earlier.stage != State.TERMINATED.value]
    oldest = sorted(same, key=lambda c: (c.earlier.created_at, c.earlier.number))
    still_open = [c for c in oldest if c.earlier.stage != State.CLOSED.value]
    if still_open:
        return still_open[0]
    return oldest[-1] if oldest else None


class RepeatFinder(TicketLedger):
    """The store's half: reads the earlier tickets the rules look at. Mixed into SqlTicketStore
    (listed before TicketLedger, which it extends)."""

    def repeat_candidates(
        self, matter: Matter, now: datetime, windows: Windows, exclude: str | None = None
    ) -> list[Candidate]:
        """find_candidates over the caller's tickets of the history window and the tickets of
        the matter's kind of the duplicate window (at most CANDIDATES_MAX, newest first)."""
        longest = max(windows.repeat_days, windows.history_days)
        mine = self.tickets_for_caller(matter.caller, now - timedelta(days=longest)) if matter.caller.strip() else []
        others = self.tickets_of_kind(matter.kind, now - timedelta(days=windows.duplicate_days), CANDIDATES_MAX)
        return find_candidates(matter, [*mine, *others], now, windows, exclude)

    def tickets_of_kind(self, kind: str, since: datetime, limit: int) -> list[TicketSummary]:
        """Tickets of a kind created at or after `since`, newest first."""
        t = schema.tickets
        stmt = (
            select(t)
            .where(t.c.kind == kind, t.c.created_at >= since)
            .order_by(t.c.created_at.desc(), t.c.number.desc())
            .limit(limit)
        )
        with self._read(f"tickets of kind {kind}") as conn:
            return [self._summary(conn, row._mapping) for row in conn.execute(stmt).all()]
