"""`hotline intake "文本"`: the ticket draft of one transcript, with knowledge-base answers, as JSON.

The composition root wires this to the command line; the lexicon and the knowledge base are
loaded once per process and kept, so calling `intake_json` again costs only the draft itself.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from hotline.asr.intake import Intake, load_lexicon
from hotline.asr.knowledge import KnowledgeBase


@functools.cache
def _intake(lexicon_path: Path) -> Intake:
    return Intake(load_lexicon(lexicon_path))


@functools.cache
def _knowledge(kb_dir: Path) -> KnowledgeBase:
    return KnowledgeBase.load(kb_dir)


def intake_json(text: str, lexicon_path: Path | str, kb_dir: Path | str, top_k: int = 3) -> dict[str, Any]:
    """The draft of `text` as plain JSON data, plus `knowledge`: the matching answers, best first.

    Raises ConfigError (naming file and line) when the lexicon or the knowledge base is invalid.
    """
    draft = _intake(Path(lexicon_path).resolve()).draft(text)
    data = draft.to_dict()
    data["knowledge"] = [m.to_dict() for m in _knowledge(Path(kb_dir).resolve()).match(draft.text, top_k=top_k)]
    return data
