"""The pure repeat/duplicate rules of hotline/tickets/repeats.py: place normalisation, similarity,
candidates and the one earlier ticket told of a new report."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from hotline.core.errors import InvalidRequest
from hotline.core.model import TicketStatus, TicketSummary
from hotline.tickets.repeats import (
    CONTENT_SIMILAR,
    Matter,
    Windows,
    bigrams,
    content_similarity,
    find_candidates,
    jaccard,
    normalise_place,
    same_matter_target,
    same_place,
)

NOW = datetime(2025, 10, 20, 2, 0, tzinfo=UTC)
CALLER, OTHER = "13800138000", "13900139000"
NOISE = "小区夜间施工噪音扰民，请求处理"
PLACE = "淄博市张店区华光路88号"


def ticket(
    number: str,
    *,
    caller: str = CALLER,
    kind: str = "complaint",
    days_ago: float = 1,
    stage: str = "handling",
    place: str = PLACE,
    content: str = NOISE,
) -> TicketSummary:
    status = TicketStatus.CLOSED if stage == "closed" else TicketStatus.HANDLING
    return TicketSummary(number, caller, kind, status, stage, content, place, None, False, NOW - timedelta(days_ago))


def matter(**changes: str) -> Matter:
    fields = {"caller": CALLER, "kind": "complaint", "place": PLACE, "content": "晚上小区里施工噪音太大，睡不着"}
    fields.update(changes)
    return Matter(**fields)


class TestText:
    def test_places_are_compared_without_width_case_space_punctuation_or_vague_words(self) -> None:
        assert normalise_place(" 张店区　华光路８８号（东门）附近 ") == "张店区华光路88号东门"
        assert normalise_place("") == ""

    @pytest.mark.parametrize(
        ("a", "b", "same"),
        [
            (PLACE, "张店区华光路88号", True),  # one contains the other
            ("张店区华光路８８号", "张店区 华光路88号", True),  # width and spaces
            ("张店区华光路88号", "张店区华光路86号", True),  # bigram Jaccard 0.6
            ("张店区华光路", "周村区丝绸路", False),
            ("华光路", "华光路88号小区", False),  # too short to count as contained, and not similar
            ("", PLACE, False),  # a missing place is never the same place
        ],
    )
    def test_same_place(self, a: str, b: str, same: bool) -> None:
        assert same_place(a, b) is same

    def test_bigrams_and_jaccard(self) -> None:
        assert bigrams("施工噪音") == frozenset({"施工", "工噪", "噪音"})
        assert bigrams("水") == frozenset({"水"})
        assert bigrams("，。 ") == frozenset()
        assert jaccard(frozenset({"ab", "bc"}), frozenset({"bc", "cd"})) == pytest.approx(1 / 3)
        assert jaccard(frozenset(), frozenset({"a"})) == 0.0

    def test_content_similarity_is_symmetric_and_separates_matters(self) -> None:
        same = content_similarity(NOISE, "小区夜间施工噪音扰民")
        assert same == content_similarity("小区夜间施工噪音扰民", NOISE) >= CONTENT_SIMILAR
        assert content_similarity(NOISE, "咨询社保卡补办需要什么材料") < CONTENT_SIMILAR


class TestCandidates:
    def test_the_same_callers_tickets_within_30_days_are_possible_repeats(self) -> None:
        earlier = [
            ticket("A", days_ago=3),  # same matter
            ticket("B", days_ago=10, kind="consultation", content="社保卡补办", place=""),  # another matter
            ticket("C", days_ago=31),  # too old
        ]
        found = find_candidates(matter(), earlier, NOW, Windows())
        assert [(c.earlier.number, c.relation, c.same_matter) for c in found] == [
            ("A", "repeat", True),
            ("B", "repeat", False),
        ]
        assert "同一来电人3天内再次来电" in found[0].reason and "同一事项" in found[0].reason
        assert "另一事项" in found[1].reason

    def test_other_callers_same_place_and_kind_within_7_days_are_possible_duplicates(self) -> None:
        earlier = [
            ticket("D", caller=OTHER, days_ago=2, content="工地晚上施工"),
            ticket("E", caller=OTHER, days_ago=8),  # too old for a duplicate
            ticket("F", caller=OTHER, days_ago=1, kind="help"),  # another kind
            ticket("G", caller=OTHER, days_ago=1, place="周村区丝绸路"),  # another place
        ]
        found = find_candidates(matter(), earlier, NOW, Windows())
        assert [(c.earlier.number, c.relation, c.same_matter, c.place_match) for c in found] == [
            ("D", "duplicate", True, True)
        ]
        assert "其他来电人" in found[0].reason

    def test_no_place_no_duplicate(self) -> None:
        earlier = [ticket("D", caller=OTHER, place="", content=NOISE)]
        assert find_candidates(matter(place=""), earlier, NOW, Windows()) == []

    def test_a_closed_matter_raised_again_is_flagged_not_accepted_again_within_the_history(self) -> None:
        earlier = [
            ticket("H", days_ago=200, stage="closed"),  # closed, same facts, past the repeat window
            ticket("I", days_ago=400, stage="closed"),  # past the history window
            ticket("J", days_ago=200, stage="closed", kind="help"),  # closed, another matter
        ]
        [found] = find_candidates(matter(), earlier, NOW, Windows())
        assert (found.earlier.number, found.relation, found.not_accepted_again) == ("H", "repeat", True)
        assert "不再受理" in found.reason and "话务员" in found.reason

    def test_same_matter_by_content_alone(self) -> None:
        earlier = [ticket("K", days_ago=2, place="别的地方")]
        [found] = find_candidates(matter(content=NOISE, place=""), earlier, NOW, Windows())
        assert found.same_matter and not found.place_match and found.similarity >= CONTENT_SIMILAR

    def test_windows_come_from_settings(self) -> None:
        earlier = [ticket("A", days_ago=3), ticket("D", caller=OTHER, days_ago=2)]
        assert find_candidates(matter(), earlier, NOW, Windows(repeat_days=2, duplicate_days=1)) == []
        with pytest.raises(InvalidRequest):
            Windows(repeat_days=0)

    def test_the_new_ticket_and_later_tickets_are_never_candidates(self) -> None:
        earlier = [ticket("A", days_ago=0), ticket("Z", days_ago=-1)]
        assert find_candidates(matter(), earlier, NOW, Windows(), exclude="A") == []

    def test_same_matter_first_then_newest(self) -> None:
        earlier = [
            ticket("B", days_ago=1, kind="consultation", content="社保", place=""),
            ticket("A", days_ago=5),
            ticket("D", caller=OTHER, days_ago=2),
        ]
        found = find_candidates(matter(), earlier, NOW, Windows())
        assert [c.earlier.number for c in found] == ["D", "A", "B"]


class TestTarget:
    def test_the_oldest_open_one_on_the_same_matter_is_told(self) -> None:
        earlier = [
            ticket("D", caller=OTHER, days_ago=2),
            ticket("A", days_ago=5),
            ticket("H", days_ago=9, stage="closed"),
            ticket("B", days_ago=6, kind="consultation", content="社保", place=""),  # another matter
        ]
        target = same_matter_target(find_candidates(matter(), earlier, NOW, Windows()))
        assert target is not None and target.earlier.number == "A"

    def test_else_the_newest_closed_one_and_never_a_terminated_one(self) -> None:
        earlier = [
            ticket("G", days_ago=20, stage="closed"),
            ticket("H", days_ago=9, stage="closed"),
            ticket("T", days_ago=1, stage="terminated"),
        ]
        target = same_matter_target(find_candidates(matter(), earlier, NOW, Windows()))
        assert target is not None and target.earlier.number == "H"
        other = [ticket("B", days_ago=1, kind="consultation", content="社保", place="")]
        assert same_matter_target(find_candidates(matter(), other, NOW, Windows())) is None
