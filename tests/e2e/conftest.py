"""End-to-end fixtures: the service started as a user starts it, real peers around it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.e2e.peers import sipp_ulaw_file
from tests.e2e.service import Service
from tests.support import mandarin_clip

CALLER_CLIP = "funasr_asr_example_b"  # 5.5 s: 欢迎大家来体验达摩院推出的语音识别模型
AGENT_CLIP = "masr_test"  # 8.4 s: 近几年不但我用书给女儿压岁...


@pytest.fixture
def start_service(tmp_path: Path) -> Iterator[Callable[..., Service]]:
    started: list[Service] = []

    def start(**kw: object) -> Service:
        svc = Service(tmp_path / f"svc{len(started)}", **kw)  # type: ignore[arg-type]
        started.append(svc)
        svc.start()
        return svc

    yield start
    for svc in started:
        svc.stop()


@pytest.fixture
def service(start_service: Callable[..., Service]) -> Service:
    return start_service()


@pytest.fixture
def caller_speech(tmp_path: Path) -> Path:
    """The caller's speech as raw μ-law for sipp's rtp_stream."""
    return sipp_ulaw_file(mandarin_clip(CALLER_CLIP), tmp_path / "caller.ulaw")


@pytest.fixture
def agent_clip() -> Path:
    return mandarin_clip(AGENT_CLIP)


@pytest.fixture
def caller_clip() -> Path:
    return mandarin_clip(CALLER_CLIP)
