"""The intake lexicon: the words that turn a transcript into ticket fields, loaded from YAML.

Everything a hotline tunes lives in the file (config/intake/zh-CN.yaml), not in code: the cue
words of each kind of request with their weights, the emergency types with the phrases that
reveal them and the numbers (110/119/120) to link, the matters 12345 does not accept with the
channel to tell the caller, and the local streets, communities and landmarks of the city.
`load_lexicon` validates the whole file and reports every problem with its line.
"""

from __future__ import annotations

import dataclasses
import enum
from pathlib import Path

import yaml

from hotline.asr import yamlcheck as yc


class RequestKind(enum.StrEnum):
    """The six kinds of request of the 12345 rules (001 第三条)."""

    CONSULTATION = "咨询"
    HELP = "求助"
    COMPLAINT = "投诉"
    REPORT = "举报"
    SUGGESTION = "意见建议"
    PRAISE = "表扬"


@dataclasses.dataclass(frozen=True, slots=True)
class Cue:
    phrase: str
    weight: float


@dataclasses.dataclass(frozen=True, slots=True)
class EmergencyType:
    """One kind of emergency: the phrases that reveal it and what the agent must do about it.

    `phrases` also match by toneless pinyin (ASR homophones: 停睡 for 停水); `exact_phrases`
    only as written (没水 would otherwise match 没睡). `needs_scale`: only a large outage makes an
    emergency ticket (001 第十三条 "较大规模"); one household without water is urgent.
    """

    type_id: str
    label: str
    phrases: tuple[str, ...]
    exact_phrases: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    life_threatening: bool = False
    needs_scale: bool = False
    links: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True, slots=True)
class OutOfScope:
    """A matter 12345 does not accept (001 第三条) and the channel the caller is told about."""

    type_id: str
    label: str
    phrases: tuple[str, ...]
    channel: str
    exclude: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True, slots=True)
class LocalPlace:
    """A street, road, community, landmark or district alias of the hotline's own area."""

    name: str
    place_type: str  # district, street, road, community, landmark, area
    aliases: tuple[str, ...] = ()
    district: str | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class IntakeLexicon:
    """Everything the intake reads from config/intake/<lang>.yaml."""

    kinds: dict[RequestKind, tuple[Cue, ...]]
    default_kind: RequestKind
    emergency_kind: RequestKind  # the kind an emergency points to (a call for help)
    emergency_weight: float  # how much one emergency flag adds to that kind's score
    kind_sound_cues: tuple[str, ...]  # cue words also matched by pinyin (头诉 for 投诉)
    urgent_cues: tuple[str, ...]
    scale_cues: tuple[str, ...]
    negations: tuple[str, ...]
    emergencies: tuple[EmergencyType, ...]
    out_of_scope: tuple[OutOfScope, ...]
    province: str
    city: str
    places: tuple[LocalPlace, ...]
    ignore_places: tuple[str, ...] = ()
    fillers: tuple[str, ...] = ()
    pinyin_fuzzy: bool = True
    source: str = ""


PLACE_TYPES = ("district", "street", "road", "community", "landmark", "area")


def load_lexicon(path: Path | str) -> IntakeLexicon:
    """Read and validate a lexicon file; every problem is reported as ConfigError "file:line: ..."."""
    path = Path(path)
    root = yc.compose(path)
    problems = yc.Problems(path)
    top = yc.Fields(root, problems, "lexicon")
    kinds, default_kind, emergency_kind, emergency_weight, sound_cues = _kinds(top.require("kinds"), problems)
    urgency = yc.Fields(top.require("urgency"), problems, "urgency")
    urgent_cues = yc.texts(urgency.require("urgent_cues"), problems, "urgency.urgent_cues")
    scale_cues = yc.texts(urgency.require("scale_cues"), problems, "urgency.scale_cues")
    negations = yc.texts(urgency.require("negations"), problems, "urgency.negations")
    fuzzy_node = urgency.get("pinyin_fuzzy")
    fuzzy = yc.flag(fuzzy_node, problems, "urgency.pinyin_fuzzy") if fuzzy_node is not None else True
    urgency.finish()
    emergency_nodes = yc.sequence(top.require("emergencies"), problems, "emergencies")
    emergencies = tuple(_emergency(node, problems) for node in emergency_nodes)
    _unique([e.type_id for e in emergencies], emergency_nodes, problems, "emergency id")
    oos_nodes = yc.sequence(top.require("out_of_scope"), problems, "out_of_scope")
    out_of_scope = tuple(_out_of_scope(node, problems) for node in oos_nodes)
    _unique([o.type_id for o in out_of_scope], oos_nodes, problems, "out_of_scope id")
    province, city, places, ignore = _places(top.require("places"), problems)
    fillers = yc.texts(top.get("fillers"), problems, "fillers") if top.get("fillers") is not None else []
    top.finish()
    problems.raise_if_any()
    return IntakeLexicon(
        kinds=kinds,
        default_kind=default_kind,
        emergency_kind=emergency_kind,
        emergency_weight=emergency_weight,
        kind_sound_cues=tuple(sound_cues),
        urgent_cues=tuple(urgent_cues),
        scale_cues=tuple(scale_cues),
        negations=tuple(negations),
        emergencies=emergencies,
        out_of_scope=out_of_scope,
        province=province,
        city=city,
        places=places,
        ignore_places=tuple(ignore),
        fillers=tuple(fillers),
        pinyin_fuzzy=bool(fuzzy),
        source=str(path),
    )


def _kind(node: yaml.Node | None, problems: yc.Problems, what: str) -> RequestKind:
    value = yc.text(node, problems, what)
    try:
        return RequestKind(value or "")
    except ValueError:
        if value is not None:
            problems.add(node, f"{what}: {value!r} is not one of {', '.join(k.value for k in RequestKind)}")
        return RequestKind.CONSULTATION


def _kinds(
    node: yaml.Node | None, problems: yc.Problems
) -> tuple[dict[RequestKind, tuple[Cue, ...]], RequestKind, RequestKind, float, list[str]]:
    fields = yc.Fields(node, problems, "kinds")
    default = _kind(fields.require("default"), problems, "kinds.default")
    emergency = _kind(fields.require("emergency_kind"), problems, "kinds.emergency_kind")
    weight = yc.number(fields.require("emergency_weight"), problems, "kinds.emergency_weight", low=0, high=10)
    kinds: dict[RequestKind, tuple[Cue, ...]] = {}
    cues_fields = yc.Fields(fields.require("cues"), problems, "kinds.cues")
    for key, value in cues_fields:
        cues_fields.get(key)
        try:
            kind = RequestKind(key)
        except ValueError:
            problems.add(value, f"kinds.cues: {key!r} is not one of {', '.join(k.value for k in RequestKind)}")
            continue
        cues: list[Cue] = []
        for phrase, weight_node in yc.mapping(value, problems, f"kinds.cues.{key}"):
            weight = yc.number(weight_node, problems, f"weight of cue {phrase!r}", low=0.1, high=10)
            if weight is not None and phrase.strip():
                cues.append(Cue(phrase.strip(), weight))
        kinds[kind] = tuple(cues)
    for kind in RequestKind:
        if kind not in kinds and isinstance(cues_fields.node, yaml.MappingNode):
            problems.add(cues_fields.node, f"kinds.cues: no cue words for {kind.value!r}")
    cues_fields.finish()
    sound_node = fields.get("by_sound")
    sound = yc.texts(sound_node, problems, "kinds.by_sound", min_len=2) if sound_node is not None else []
    known = {cue.phrase for cues in kinds.values() for cue in cues}
    for phrase in sound:
        if phrase not in known:
            problems.add(sound_node, f"kinds.by_sound: {phrase!r} is not a cue word of any kind")
    fields.finish()
    return kinds, default, emergency, weight if weight is not None else 0.0, sound


def _emergency(node: yaml.Node, problems: yc.Problems) -> EmergencyType:
    f = yc.Fields(node, problems, "emergency")
    type_id = yc.text(f.require("id"), problems, "emergency id") or "?"
    what = f"emergency {type_id!r}"
    label = yc.text(f.require("label"), problems, f"{what} label") or type_id
    phrases = yc.texts(f.require("phrases"), problems, f"{what} phrases", min_len=2)
    exact = _optional_texts(f, "exact_phrases", problems, what)
    exclude = _optional_texts(f, "exclude", problems, what)
    life = _optional_flag(f, "life_threatening", problems, what)
    scale = _optional_flag(f, "needs_scale", problems, what)
    links = _optional_texts(f, "links", problems, what)
    for link in links:
        if not link.isdigit():
            problems.add(f.get("links"), f"{what} links: {link!r} is not a phone number")
    if life and not links:
        problems.add(node, f"{what}: a life-threatening emergency needs links (110/119/120)")
    f.finish()
    return EmergencyType(type_id, label, tuple(phrases), tuple(exact), tuple(exclude), life, scale, tuple(links))


def _out_of_scope(node: yaml.Node, problems: yc.Problems) -> OutOfScope:
    f = yc.Fields(node, problems, "out_of_scope")
    type_id = yc.text(f.require("id"), problems, "out_of_scope id") or "?"
    what = f"out_of_scope {type_id!r}"
    label = yc.text(f.require("label"), problems, f"{what} label") or type_id
    phrases = yc.texts(f.require("phrases"), problems, f"{what} phrases", min_len=2)
    channel = yc.text(f.require("channel"), problems, f"{what} channel") or ""
    exclude = _optional_texts(f, "exclude", problems, what)
    f.finish()
    return OutOfScope(type_id, label, tuple(phrases), channel, tuple(exclude))


def _places(node: yaml.Node | None, problems: yc.Problems) -> tuple[str, str, tuple[LocalPlace, ...], tuple[str, ...]]:
    f = yc.Fields(node, problems, "places")
    province = yc.text(f.require("province"), problems, "places.province") or ""
    city = yc.text(f.require("city"), problems, "places.city") or ""
    ignore = _optional_texts(f, "ignore", problems, "places")
    local: list[LocalPlace] = []
    names: dict[str, yaml.Node] = {}
    for item in yc.sequence(f.require("local"), problems, "places.local"):
        p = yc.Fields(item, problems, "local place")
        name = yc.text(p.require("name"), problems, "local place name", min_len=2)
        place_type = yc.text(p.require("type"), problems, f"local place {name!r} type")
        if place_type is not None and place_type not in PLACE_TYPES:
            problems.add(p.get("type"), f"local place {name!r}: type must be one of {', '.join(PLACE_TYPES)}")
        aliases = _optional_texts(p, "aliases", problems, f"local place {name!r}")
        district_node = p.get("district")
        district = yc.text(district_node, problems, f"local place {name!r} district") if district_node else None
        p.finish()
        if name is None:
            continue
        for spelled in (name, *aliases):
            if spelled in names:
                problems.add(
                    item, f"local place {spelled!r} is listed twice (line {names[spelled].start_mark.line + 1})"
                )
            names[spelled] = item
        local.append(LocalPlace(name, place_type or "area", tuple(aliases), district))
    f.finish()
    return province, city, tuple(local), ignore


def _optional_texts(f: yc.Fields, key: str, problems: yc.Problems, what: str) -> tuple[str, ...]:
    node = f.get(key)
    return tuple(yc.texts(node, problems, f"{what} {key}")) if node is not None else ()


def _optional_flag(f: yc.Fields, key: str, problems: yc.Problems, what: str) -> bool:
    node = f.get(key)
    return bool(yc.flag(node, problems, f"{what} {key}")) if node is not None else False


def _unique(ids: list[str], nodes: list[yaml.Node], problems: yc.Problems, what: str) -> None:
    seen: set[str] = set()
    for type_id, node in zip(ids, nodes, strict=False):
        if type_id in seen:
            problems.add(node, f"{what} {type_id!r} appears twice")
        seen.add(type_id)
