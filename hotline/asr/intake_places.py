"""Where the caller's matter is: province/city/district (cpca) and the city's own street names.

cpca knows every province, city and district of China but also fires on road names built from
city names (北京路, 南京路, 中山路 exist in most cities) and on two-character districts (城区, 东区).
So: the city's own places (roads, streets, communities, landmarks, the district names said
without 区/县) are matched from the lexicon first and hidden from cpca; a cpca name directly
followed by 路/街/小区/… is dropped; short district names in the lexicon's `ignore` list only count
after a city; and among several names, the one inside the hotline's own city wins.

cpca loads its table and pandas on first use (about half a second): `warm_up` does it early.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import re
from typing import Any

from hotline.asr.intake_lexicon import IntakeLexicon, LocalPlace

# A place name followed by one of these is part of another name (北京路, 朝阳小区, 河南人).
_NAME_SUFFIXES = (
    "路", "街", "大道", "道", "巷", "胡同", "小区", "花园", "新村", "村", "广场", "大厦", "公园", "里",
    "苑", "商场", "市场", "饭店", "酒店", "宾馆", "人", "菜", "话", "口音", "烧烤", "小吃", "银行",
)  # fmt: skip
_TYPE_RANK = {"community": 0, "landmark": 0, "road": 1, "street": 1, "area": 2, "district": 3}
_DETAIL = re.compile(r"\d+(?:号楼|栋|幢)(?:\d+单元)?(?:\d+(?:室|号|户)?)?|\d+单元\d+(?:室|号|户)?|\d+号院?")


@dataclasses.dataclass(frozen=True, slots=True)
class LocalHit:
    place: LocalPlace
    start: int
    end: int


@dataclasses.dataclass(frozen=True, slots=True)
class Admin:
    """One province/city/district reading of cpca, with where its most specific name was said."""

    province: str | None
    city: str | None
    district: str | None
    adcode: str
    start: int
    end: int

    @property
    def level(self) -> int:
        return 3 if self.district else 2 if self.city else 1


@dataclasses.dataclass(frozen=True, slots=True)
class PlaceGuess:
    province: str | None
    city: str | None
    district: str | None
    local: tuple[LocalHit, ...]
    detail: str | None
    confidence: float
    spans: tuple[tuple[int, int], ...]

    @property
    def label(self) -> str:
        """The most specific way to name the place: 张店区人民西路, 淄博市, …"""
        primary = _primary(self.local)
        head = self.district or self.city or self.province or ""
        if primary is None or primary.place.place_type == "district":
            return head
        return (self.district or "") + primary.place.name


def warm_up() -> None:
    """Load cpca (its table and pandas) now rather than on the first transcript."""
    _admins("山东省淄博市张店区")


class PlaceFinder:
    def __init__(self, lexicon: IntakeLexicon) -> None:
        self._lexicon = lexicon
        self._spellings = sorted(
            ((spelled, place) for place in lexicon.places for spelled in (place.name, *place.aliases)),
            key=lambda item: -len(item[0]),
        )
        self._ignore = frozenset(lexicon.ignore_places)
        self._home_prefix: str | None = None

    def find(self, text: str) -> PlaceGuess:
        local = self._local(text)
        masked = list(text)
        for hit in local:
            if hit.place.place_type != "district":
                masked[hit.start : hit.end] = "□" * (hit.end - hit.start)
        admins = [a for a in _admins("".join(masked)) if self._plausible(a, text)]
        home = self._home()
        admins.sort(key=lambda a: (not a.adcode.startswith(home), -a.level, a.start))
        admin = admins[0] if admins else None
        if admin is not None and local and not admin.adcode.startswith(home):
            admin = None  # the city's own names win over a province or city elsewhere (老家河南, 在临淄打工)
        detail_match = _DETAIL.search(text)
        detail = detail_match.group() if detail_match else None
        spans = tuple((h.start, h.end) for h in local) + (((admin.start, admin.end),) if admin else ())
        if admin is None and not local:
            return PlaceGuess(None, None, None, (), detail, 0.0, ())
        local_district = _local_district(local)
        if admin is not None:
            district = admin.district or (local_district if admin.adcode.startswith(home) else None)
            city, province = admin.city, admin.province
            if admin.level == 3:
                confidence = 0.9 if admin.adcode.startswith(home) else 0.7
                if local_district is not None and local_district != admin.district:
                    confidence -= 0.2
            else:
                confidence = 0.6 if admin.level == 2 else 0.4
                if local and admin.adcode.startswith(home):
                    confidence = 0.85
        else:
            district, city, province = local_district, self._lexicon.city, self._lexicon.province
            primary = _primary(local)
            confidence = 0.85 if primary is not None and primary.place.place_type == "district" else 0.8
        return PlaceGuess(province, city, district, local, detail, round(confidence, 2), spans)

    def _local(self, text: str) -> tuple[LocalHit, ...]:
        taken = [False] * len(text)
        hits: list[LocalHit] = []
        for spelled, place in self._spellings:
            pos = text.find(spelled)
            while pos != -1:
                end = pos + len(spelled)
                if not any(taken[pos:end]):
                    taken[pos:end] = [True] * (end - pos)
                    hits.append(LocalHit(place, pos, end))
                pos = text.find(spelled, end)
        return tuple(sorted(hits, key=lambda h: h.start))

    def _plausible(self, admin: Admin, text: str) -> bool:
        if text.startswith(_NAME_SUFFIXES, admin.end) and not text[admin.start : admin.end].endswith(("区", "县")):
            return False
        said = text[admin.start : admin.end]
        return not (admin.level == 3 and said in self._ignore and not _has_city_before(text, admin))

    def _home(self) -> str:
        if self._home_prefix is None:
            found = _admins(self._lexicon.province + self._lexicon.city)
            self._home_prefix = found[0].adcode[:4] if found else "--"
        return self._home_prefix


def _has_city_before(text: str, admin: Admin) -> bool:
    return admin.city is not None and admin.city.rstrip("市") in text[: admin.start]


def _primary(local: tuple[LocalHit, ...]) -> LocalHit | None:
    if not local:
        return None
    return min(local, key=lambda h: (_TYPE_RANK.get(h.place.place_type, 2), h.start))


def _local_district(local: tuple[LocalHit, ...]) -> str | None:
    for hit in local:
        if hit.place.place_type == "district":
            return hit.place.district or hit.place.name
    primary = _primary(local)
    return primary.place.district if primary is not None else None


@functools.cache
def _cpca() -> Any:
    # cpca has no type information; this module is its only user and returns typed values.
    return importlib.import_module("cpca")


def _admins(text: str) -> list[Admin]:
    if not text.strip():
        return []
    try:
        frame = _cpca().transform_text_with_addrs(text, pos_sensitive=True)
    except KeyError:  # cpca builds an empty table without its columns when nothing matches
        return []
    out: list[Admin] = []
    for row in frame.to_dict("records"):
        names = [_name(row.get(key)) for key in ("省", "市", "区")]
        positions = [int(row.get(key, -1)) for key in ("省_pos", "市_pos", "区_pos")]
        adcode = _name(row.get("adcode"))
        said = [(pos, name) for pos, name in zip(positions, names, strict=True) if pos >= 0 and name]
        if adcode is None or not said:
            continue
        start, name = said[-1]
        out.append(Admin(names[0], names[1], names[2], adcode, start, start + _said_length(text, start, name)))
    return out


def _name(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _said_length(text: str, start: int, name: str) -> int:
    """How much of `name` was said at `start` (淄博 for 淄博市)."""
    length = len(name)
    while length > 1 and not text.startswith(name[:length], start):
        length -= 1
    return length
