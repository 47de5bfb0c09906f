"""The knowledge base: paraphrases find their answer, other matters find nothing, best first."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from hotline.asr.knowledge import DEFAULT_THRESHOLD, KbEntry, KnowledgeBase, bigrams
from hotline.core.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
KB_DIR = ROOT / "config" / "knowledge"


@pytest.fixture(scope="module")
def kb() -> KnowledgeBase:
    return KnowledgeBase.load(KB_DIR)


def test_the_shipped_knowledge_base_has_topics_entries_and_answers(kb: KnowledgeBase) -> None:
    topics = {e.topic for e in kb.entries}
    assert len(topics) >= 3 and len(kb.entries) >= 15
    assert len({e.entry_id for e in kb.entries}) == len(kb.entries)
    for entry in kb.entries:
        assert len(entry.questions) >= 3, entry.entry_id
        assert 20 <= len(entry.answer) <= 120, entry.entry_id  # spoken: a few sentences, not a page


# Said the way callers say it: none of these is one of the entry's written phrasings.
PARAPHRASES = [
    ("我的社保卡不知道丢哪了想补一张", "si-card-lost"),
    ("医保卡找不到了怎么办", "si-card-lost"),
    ("你好我想问一下那个身份证丢了要去哪里补", "id-card-lost"),
    ("身份证掉了补办要带啥", "id-card-lost"),
    ("身份证还有两个月到期 现在能换吗", "id-card-renew"),
    ("我在出租房里住想把公积金取出来付房租可以吗", "hpf-withdraw-rent"),
    ("请问公积金贷款最多能贷多少", "hpf-loan"),
    ("我想查一下我公积金里还有多少钱", "hpf-balance"),
    ("我从济南换到淄博工作了 公积金怎么转过来", "hpf-transfer"),
    ("你们晚上几点下班", "hotline-hours"),
    ("一二三四五周六周日有人接电话吗", "hotline-hours"),
    ("我家孩子刚出生要去哪里落户口", "newborn-registration"),
    ("我买了房想把户口迁到淄博来", "household-transfer"),
    ("我爸退休了那个养老金每年认证在哪弄", "pension-certification"),
    ("我要去北京看病医保能不能报", "mi-out-of-town"),
    ("公司把我辞退了 失业金能领多少", "unemployment-benefit"),
    ("我没有单位 社保想自己交 怎么交", "si-flexible-employment"),
    ("上次我打电话说的那个路灯的事现在办得怎么样了", "hotline-progress"),
]


@pytest.mark.parametrize(("transcript", "entry_id"), PARAPHRASES)
def test_a_paraphrase_finds_its_entry_first(kb: KnowledgeBase, transcript: str, entry_id: str) -> None:
    matches = kb.match(transcript)
    assert matches, f"nothing for {transcript}"
    assert matches[0].entry_id == entry_id, [(m.entry_id, m.score) for m in matches]
    assert matches[0].score >= DEFAULT_THRESHOLD
    entry = next(e for e in kb.entries if e.entry_id == entry_id)
    assert (matches[0].question, matches[0].answer, matches[0].topic) == (entry.questions[0], entry.answer, entry.topic)


@pytest.mark.parametrize(
    "transcript",
    [
        "我们楼上装修特别吵一直到半夜",
        "我想投诉一个饭店卫生不好",
        "我们小区停水了",
        "我想举报一个黑诊所",
        "楼下烧烤店的油烟太大了",
        "我的电动车被偷了",
        "今天天气不错",
        "喂你好",
        "我想问一下社保的事",  # too vague to answer: the agent asks what about
        "",
        "   ",
    ],
)
def test_an_unrelated_or_vague_transcript_matches_nothing(kb: KnowledgeBase, transcript: str) -> None:
    assert kb.match(transcript) == []


def test_matches_are_best_first_and_limited_to_top_k(kb: KnowledgeBase) -> None:
    everything = KnowledgeBase(kb.entries, threshold=0.0).match("身份证丢了怎么补办 快到期了能一起换吗", top_k=10)
    scores = [m.score for m in everything]
    assert scores == sorted(scores, reverse=True) and len(everything) == 10
    assert [m.entry_id for m in everything[:2]] == ["id-card-lost", "id-card-renew"]
    assert len(kb.match("身份证丢了怎么补办", top_k=1)) == 1
    assert kb.match("身份证丢了怎么补办", top_k=0) == []


def test_a_long_rambling_call_still_finds_the_answer(kb: KnowledgeBase) -> None:
    preamble = "喂你好你好我跟你说一下啊我这个人年纪大了记性不好前两天出门买菜回来一看"
    matches = kb.match(preamble * 6 + "身份证丢了不知道去哪里补办")
    assert matches and matches[0].entry_id == "id-card-lost"


def test_scoring_is_idf_weighted_bigram_coverage() -> None:
    entries = [
        KbEntry("a", "t", ("公积金怎么提取",), (), "答案一号很长很长"),
        KbEntry("b", "t", ("社保卡怎么挂失",), (), "答案二号很长很长"),
    ]
    kb = KnowledgeBase(entries, threshold=0.0)
    assert bigrams("公积金，提取") == {"公积", "积金", "提取"}
    (full, partial) = kb.match("公积金怎么提取") , kb.match("公积金怎么办")  # fmt: skip
    assert full[0].entry_id == "a" and full[0].score == 1.0
    # 怎么 is in both entries, so it weighs less than 公积金 which only one entry has.
    assert 0.3 < partial[0].score < 0.8 and partial[0].entry_id == "a"


def _write(directory: Path, name: str, text: str) -> Path:
    directory.mkdir(exist_ok=True)
    path = directory / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def test_problems_in_files_name_the_file_and_line(tmp_path: Path) -> None:
    _write(tmp_path, "a.yaml", """\
        topic: 测试
        entries:
          - id: one
            questions: [第一个问题怎么办]
            answer: 第一个答案。
          - id: two
            questions: []
            answer: 第二个答案。
            colour: red
        """)  # fmt: skip
    b = _write(tmp_path, "b.yaml", """\
        topic: 测试二
        entries:
          - id: one
            questions: [另一个问题]
            answer: 重复的编号。
        """)  # fmt: skip
    with pytest.raises(ConfigError) as caught:
        KnowledgeBase.load(tmp_path)
    message = caught.value.message
    assert f"{tmp_path / 'a.yaml'}:6: entry 'two': needs at least one question" in message
    assert f"{tmp_path / 'a.yaml'}:9: entry: unknown key 'colour'" in message
    assert f"{b}:3: entry id 'one' already used at {tmp_path / 'a.yaml'}:3" in message


def test_an_empty_directory_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no knowledge base files"):
        KnowledgeBase.load(tmp_path)
