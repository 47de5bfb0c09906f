"""Numbers spoken by joining prompts, the way PBXs do: a number is a list of prompt names.

Rules of this module (Mandarin, as people read numbers aloud; 万 groups up to 99,999,999):
- Prompt names: `num_0`..`num_9` (零 一 二 … 九), `num_2_liang` (两), `num_10` (十), `num_100` (百),
  `num_1000` (千), `num_10000` (万); `digit_0`..`digit_9` read digit strings (零 幺 二 … 九).
- A number is read as its 万 group then its units group (12345678 → 一千两百三十四 万 五千六百七十八).
- 十 opens a number without 一 (10 → 十, 15 → 十五, 100000 → 十万); elsewhere it keeps it (110 → 一百一十).
- 2 is 两 before 百 and 千 (两百, 一千两百, 两千万) and before 万 when the 万 group is just 2 (两万);
  otherwise 二 (2, 12, 二十, 十二万).
- Zeros: trailing zeros of a group are silent; one 零 stands for a run of zeros between spoken
  digits within a group, and for leading zeros of the units group after the 万 group
  (101 → 一百零一, 1005 → 一千零五, 10010 → 一万零一十, 1005000 → 一百万五千).
- Any language not starting with "zh" reads a number digit by digit (12 → digit_1 digit_2): its
  prompt set (English: espeak-ng) has only digits.
- In text given to a speech synthesiser (`speakable_digits`), a run of three or more digits is a
  service or phone number (12345, 12333, 110) and is spelled digit by digit, 1 as 幺; shorter
  numbers (5个工作日, 24小时) are left for the synthesiser to read as numbers.
"""

from __future__ import annotations

import re

MAX_NUMBER = 99_999_999
_UNITS = ("num_1000", "num_100", "num_10", None)  # positions within a four-digit group
DIGIT_CHARS = "零幺二三四五六七八九"  # how digit_0..digit_9 read (幺: 1 on the phone)
_SERVICE_NUMBER = re.compile(r"[0-9]{3,}")


def _is_chinese(language: str) -> bool:
    return language.lower().startswith("zh")


def digit_prompts(digits: str, language: str = "zh-CN") -> list[str]:
    """One `digit_<d>` prompt per digit (ticket and phone numbers; Chinese reads 1 as 幺).

    The names are the same in every language. ValueError on anything but ASCII digits.
    """
    if not digits or not all("0" <= ch <= "9" for ch in digits):
        raise ValueError(f"not a string of digits: {digits!r}")
    return [f"digit_{ch}" for ch in digits]


def number_prompts(n: int, language: str = "zh-CN") -> list[str]:
    """The prompt names that speak `n` (0 ≤ n ≤ 99,999,999), in Chinese as described above.

    For a language other than Chinese the number is read digit by digit (`digit_<d>` prompts).
    ValueError outside the range.
    """
    if isinstance(n, bool) or not isinstance(n, int):
        raise ValueError(f"not an integer: {n!r}")
    if not 0 <= n <= MAX_NUMBER:
        raise ValueError(f"{n} is outside 0..{MAX_NUMBER}")
    if not _is_chinese(language):
        return digit_prompts(str(n), language)
    if n == 0:
        return ["num_0"]
    high, low = divmod(n, 10_000)
    out: list[str] = []
    if high:
        _group(high, out, liang_before_wan=high == 2)
        out.append("num_10000")
    if low:
        _group(low, out, liang_before_wan=False)
    return out


def _group(value: int, out: list[str], *, liang_before_wan: bool) -> None:
    """Appends a four-digit group (1..9999); `out` holds what was already said before it."""
    digits = f"{value:04d}"
    pending_zero = False
    for digit, unit in zip(digits, _UNITS, strict=True):
        d = int(digit)
        if d == 0:
            pending_zero = pending_zero or bool(out)
            continue
        if pending_zero:
            out.append("num_0")
            pending_zero = False
        if unit == "num_10" and d == 1 and not out:
            out.append(unit)  # 十, 十五: not 一十 at the head of a number
            continue
        if d == 2 and (unit in ("num_1000", "num_100") or (unit is None and liang_before_wan)):
            out.append("num_2_liang")
        else:
            out.append(f"num_{d}")
        if unit is not None:
            out.append(unit)


def speakable_digits(text: str) -> str:
    """`text` with each run of three or more ASCII digits spelled out (拨打12333 → 拨打幺二三三三)."""
    return _SERVICE_NUMBER.sub(lambda m: "".join(DIGIT_CHARS[int(ch)] for ch in m.group()), text)
