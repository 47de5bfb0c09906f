"""hotline.runtime.kb_audio: every knowledge-base answer has audio matching its current text."""

from __future__ import annotations

import json
import struct
import textwrap
import wave
from pathlib import Path

import pytest

from hotline.runtime.kb_audio import KbAudio, kb_prompt_name, prepare_kb_audio, render_espeak
from hotline.runtime.prompts import RATE, PromptLibrary
from tests.support import require_tool

ROOT = Path(__file__).resolve().parents[2]

KB = """\
    topic: 公积金
    entries:
      - id: hpf-balance
        questions: [公积金余额怎么查, 怎么查公积金]
        keywords: [公积金, 余额]
        answer: {balance}
      - id: hpf_loan-2
        questions: [公积金贷款怎么申请, 怎么用公积金贷款]
        keywords: [公积金, 贷款]
        answer: 申请公积金贷款请拨打12329咨询。
"""


@pytest.fixture
def espeak_and_sox() -> None:
    """Rendering answers needs both (Debian packages `make test` installs): missing ones fail."""
    require_tool("espeak-ng", "apt-get install espeak-ng")
    require_tool("sox", "apt-get install sox libsox-fmt-all")


def write_wav(path: Path, frames: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(struct.pack("<h", 500) * frames)
    return path


class FakeRenderer:
    """Writes a silent prompt whose length is the text's length in tens of milliseconds."""

    def __init__(self) -> None:
        self.texts: list[str] = []

    def __call__(self, text: str, target: Path) -> None:
        self.texts.append(text)
        write_wav(target, 80 * len(text))


@pytest.fixture
def setup(tmp_path: Path) -> dict[str, Path]:
    knowledge = tmp_path / "knowledge"
    knowledge.mkdir()
    (knowledge / "gong-ji-jin.yaml").write_text(
        textwrap.dedent(KB).format(balance="查余额可以用手机公积金客户端。"), encoding="utf-8"
    )
    shipped = tmp_path / "prompts"
    lang = shipped / "zh-CN"
    write_wav(lang / "greeting.wav", 800)
    write_wav(lang / "kb" / "kb_gong_ji_jin_hpf_balance.wav", 8000)
    write_wav(lang / "kb" / "kb_gong_ji_jin_hpf_loan_2.wav", 4000)
    manifest = {
        "kb_gong_ji_jin_hpf_balance": {
            "file": "kb/kb_gong_ji_jin_hpf_balance.wav",
            "text": "查余额可以用手机公积金客户端。",
        },
        "kb_gong_ji_jin_hpf_loan_2": {"file": "kb/kb_gong_ji_jin_hpf_loan_2.wav", "text": "旧的答案。"},
    }
    (lang / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False), encoding="utf-8")
    return {"knowledge": knowledge, "shipped": shipped, "city": tmp_path / "city", "cache": tmp_path / "cache"}


def prepare(paths: dict[str, Path], render: FakeRenderer) -> tuple[PromptLibrary, KbAudio]:
    lib = PromptLibrary([paths["city"], paths["shipped"]], paths["cache"])
    audio = prepare_kb_audio(paths["knowledge"], lib, paths["shipped"] / "zh-CN", paths["cache"], render=render)
    return lib, audio


def test_names() -> None:
    assert kb_prompt_name("shebao", "si-card-lost") == "kb_shebao_si_card_lost"
    assert kb_prompt_name("Gong-Ji-Jin", "hpf_loan.2") == "kb_gong_ji_jin_hpf_loan_2"


def test_unchanged_answers_use_the_shipped_audio_and_changed_ones_are_rendered(setup: dict[str, Path]) -> None:
    render = FakeRenderer()
    lib, audio = prepare(setup, render)
    balance = audio.answers["hpf-balance"]
    loan = audio.answers["hpf_loan-2"]
    assert (balance.source, balance.seconds) == ("shipped", 1.0)
    assert loan.source == "rendered" and render.texts == ["申请公积金贷款请拨打12329咨询。"]
    assert loan.path.parent == (setup["cache"] / "kb").resolve()
    assert lib.path("kb_gong_ji_jin_hpf_loan_2") == loan.path  # the library plays the new one
    assert lib.seconds("kb_gong_ji_jin_hpf_loan_2") == pytest.approx(0.01 * len(render.texts[0]))
    assert audio.prompt_name("hpf_loan-2") == "kb_gong_ji_jin_hpf_loan_2"
    assert audio.prompt_name("nothing") is None


def test_a_rendering_is_reused_and_replaced_when_the_text_changes_again(setup: dict[str, Path]) -> None:
    render = FakeRenderer()
    _, first = prepare(setup, render)
    _, second = prepare(setup, render)
    assert len(render.texts) == 1 and second.answers["hpf_loan-2"].source == "cached"
    kb_file = setup["knowledge"] / "gong-ji-jin.yaml"
    kb_file.write_text(kb_file.read_text("utf-8").replace("请拨打12329咨询", "请到窗口咨询"), "utf-8")
    _, third = prepare(setup, render)
    assert render.texts[-1] == "申请公积金贷款请到窗口咨询。"
    paths = sorted((setup["cache"] / "kb").glob("*.wav"))
    assert paths == [third.answers["hpf_loan-2"].path]
    assert paths[0] != first.answers["hpf_loan-2"].path


def test_a_city_recording_is_used_as_it_is(setup: dict[str, Path]) -> None:
    own = write_wav(setup["city"] / "zh-CN" / "kb_gong_ji_jin_hpf_loan_2.wav", 1600)
    render = FakeRenderer()
    _, audio = prepare(setup, render)
    assert render.texts == []
    loan = audio.answers["hpf_loan-2"]
    assert (loan.source, loan.path, loan.seconds) == ("override", own.resolve(), 0.2)


def test_an_answer_that_cannot_be_rendered_is_left_without_audio(setup: dict[str, Path]) -> None:
    from hotline.core.errors import ConfigError

    def broken(text: str, target: Path) -> None:
        raise ConfigError("espeak-ng: not installed")

    lib = PromptLibrary([setup["shipped"]], setup["cache"])
    audio = prepare_kb_audio(setup["knowledge"], lib, setup["shipped"] / "zh-CN", setup["cache"], render=broken)
    assert audio.missing == ("hpf_loan-2",) and len(audio) == 1
    assert audio.prompt_name("hpf_loan-2") is None
    assert not list((setup["cache"] / "kb").glob("*"))  # no partial file left


def test_espeak_renders_the_bridge_format_trimmed(tmp_path: Path, espeak_and_sox: None) -> None:
    target = tmp_path / "answer.wav"
    render_espeak("请拨打12345咨询。", target)
    with wave.open(str(target), "rb") as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (RATE, 1, 2)
        seconds = w.getnframes() / RATE
        data = w.readframes(w.getnframes())
    assert 1.0 < seconds < 5.0
    pcm = struct.unpack(f"<{len(data) // 2}h", data)
    assert max(abs(s) for s in pcm[:400]) == 0  # the 50 ms pad is silence
    assert max(abs(s) for s in pcm) > 16000  # normalised to about -3 dBFS


def test_the_real_knowledge_base_has_audio_for_every_answer(tmp_path: Path, espeak_and_sox: None) -> None:
    shipped = ROOT / "config" / "prompts"
    lib = PromptLibrary([tmp_path / "city", shipped], tmp_path / "cache")
    audio = prepare_kb_audio(ROOT / "config" / "knowledge", lib, shipped / "zh-CN", tmp_path / "cache")
    assert audio.missing == ()
    sources = {a.source for a in audio.answers.values()}
    assert sources == {"shipped"}, "the shipped answers are out of date: run `make prompts`"


def test_render_py_names_answers_the_same_way() -> None:
    manifest = json.loads((ROOT / "config" / "prompts" / "zh-CN" / "manifest.json").read_text("utf-8"))
    from hotline.runtime.kb_audio import answers_by_prompt

    expected = answers_by_prompt(ROOT / "config" / "knowledge")
    assert {n for n in manifest if n.startswith("kb_")} == set(expected)
    for name, (_, text) in expected.items():
        assert manifest[name]["text"] == text.strip()
