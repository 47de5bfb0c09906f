"""hotline.ivr.numbers: numbers and digit strings as lists of prompt names."""

from __future__ import annotations

import pytest

from hotline.ivr.numbers import DIGIT_CHARS, MAX_NUMBER, digit_prompts, number_prompts, speakable_digits

# Prompt name → the character it speaks, so the table below reads as Chinese.
SPOKEN = {f"num_{d}": ch for d, ch in enumerate("零一二三四五六七八九")} | {
    "num_2_liang": "两",
    "num_10": "十",
    "num_100": "百",
    "num_1000": "千",
    "num_10000": "万",
}


def said(n: int) -> str:
    return "".join(SPOKEN[name] for name in number_prompts(n))


@pytest.mark.parametrize(
    ("n", "text"),
    [
        (0, "零"),
        (1, "一"),
        (2, "二"),
        (9, "九"),
        (10, "十"),
        (11, "十一"),
        (12, "十二"),
        (19, "十九"),
        (20, "二十"),
        (22, "二十二"),
        (99, "九十九"),
        (100, "一百"),
        (101, "一百零一"),
        (110, "一百一十"),
        (111, "一百一十一"),
        (120, "一百二十"),
        (200, "两百"),
        (202, "两百零二"),
        (999, "九百九十九"),
        (1000, "一千"),
        (1001, "一千零一"),
        (1005, "一千零五"),
        (1010, "一千零一十"),
        (1100, "一千一百"),
        (1200, "一千两百"),
        (2000, "两千"),
        (2222, "两千两百二十二"),
        (9999, "九千九百九十九"),
        (10000, "一万"),
        (10001, "一万零一"),
        (10010, "一万零一十"),
        (10100, "一万零一百"),
        (11000, "一万一千"),
        (20000, "两万"),
        (22000, "两万两千"),
        (100000, "十万"),
        (120000, "十二万"),
        (150000, "十五万"),
        (220000, "二十二万"),
        (1000000, "一百万"),
        (1005000, "一百万五千"),
        (2000000, "两百万"),
        (10000005, "一千万零五"),
        (20000000, "两千万"),
        (12345678, "一千两百三十四万五千六百七十八"),
        (99999999, "九千九百九十九万九千九百九十九"),
    ],
)
def test_chinese_reading(n: int, text: str) -> None:
    assert said(n) == text


def test_names_are_the_catalog_names() -> None:
    assert number_prompts(10010) == ["num_1", "num_10000", "num_0", "num_1", "num_10"]
    assert number_prompts(2) == ["num_2"]
    assert number_prompts(200) == ["num_2_liang", "num_100"]


@pytest.mark.parametrize("n", [-1, MAX_NUMBER + 1, 10**12])
def test_out_of_range(n: int) -> None:
    with pytest.raises(ValueError, match="outside"):
        number_prompts(n)


def test_not_an_integer() -> None:
    with pytest.raises(ValueError):
        number_prompts(True)
    with pytest.raises(ValueError):
        number_prompts(1.5)  # type: ignore[arg-type]


def test_every_number_uses_known_prompts_and_never_doubles_zero() -> None:
    for n in [*range(0, 3000), *range(9990, 10200), *range(99_999_000, MAX_NUMBER + 1)]:
        names = number_prompts(n)
        assert set(names) <= SPOKEN.keys()
        text = "".join(SPOKEN[x] for x in names)
        assert "零零" not in text
        assert not (n and text.endswith("零")), n
        assert not text.startswith("一十"), n


def test_other_languages_read_digit_by_digit() -> None:
    assert number_prompts(105, "en") == ["digit_1", "digit_0", "digit_5"]
    assert number_prompts(0, "en") == ["digit_0"]
    with pytest.raises(ValueError):
        number_prompts(-3, "en")


def test_digit_prompts() -> None:
    assert digit_prompts("2025112200013") == [f"digit_{c}" for c in "2025112200013"]
    assert digit_prompts("110", "en") == ["digit_1", "digit_1", "digit_0"]


@pytest.mark.parametrize("bad", ["", "12a", "１２", "1 2", "-1"])
def test_digit_prompts_reject_non_digits(bad: str) -> None:
    with pytest.raises(ValueError):
        digit_prompts(bad)


def test_speakable_digits_spells_service_numbers() -> None:
    assert speakable_digits("请拨打12333或者12345") == "请拨打幺二三三三或者幺二三四五"
    assert speakable_digits("请直接拨打119、110、120。") == "请直接拨打幺幺九、幺幺零、幺二零。"
    assert speakable_digits("5个工作日，24小时，工本费20元") == "5个工作日，24小时，工本费20元"
    assert DIGIT_CHARS[1] == "幺"
