"""Character error rate (CER), the accuracy measure for Mandarin transcripts."""

from __future__ import annotations

import unicodedata


def normalise(text: str) -> str:
    """Drops punctuation, symbols and spaces; CER compares the characters that were said."""
    return "".join(c for c in unicodedata.normalize("NFKC", text) if unicodedata.category(c)[0] not in "PSZC")


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance between two strings (insertions, deletions, substitutions)."""
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]
