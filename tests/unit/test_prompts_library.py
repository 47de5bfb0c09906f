"""hotline.runtime.prompts: prompts by name and language, city overrides, joined sequences."""

from __future__ import annotations

import os
import struct
import wave
from pathlib import Path

import pytest

from hotline.runtime.prompts import RATE, PromptError, PromptLibrary

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "config" / "prompts"


def write_wav(path: Path, frames: int, *, value: int = 1000, rate: int = RATE, channels: int = 1) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(struct.pack("<h", value) * frames * channels)
    return path


def samples(path: Path) -> tuple[int, ...]:
    with wave.open(str(path), "rb") as w:
        data = w.readframes(w.getnframes())
    return struct.unpack(f"<{len(data) // 2}h", data)


@pytest.fixture
def roots(tmp_path: Path) -> tuple[Path, Path]:
    city, shipped = tmp_path / "city", tmp_path / "shipped"
    write_wav(shipped / "zh-CN" / "greeting.wav", 8000, value=1)
    write_wav(shipped / "zh-CN" / "hold_music.wav", 4000, value=2)
    write_wav(shipped / "zh-CN" / "num_1.wav", 800, value=3)
    write_wav(shipped / "zh-CN" / "num_10.wav", 1200, value=4)
    write_wav(shipped / "zh-CN" / "kb" / "kb_a_b.wav", 400, value=5)
    write_wav(shipped / "en" / "greeting.wav", 2000, value=6)
    write_wav(city / "zh-CN" / "greeting.wav", 16000, value=7)
    return city, shipped


def library(roots: tuple[Path, Path], tmp_path: Path) -> PromptLibrary:
    return PromptLibrary(roots, tmp_path / "cache")


def test_the_city_recording_wins(roots: tuple[Path, Path], tmp_path: Path) -> None:
    lib = library(roots, tmp_path)
    city, shipped = roots
    assert lib.path("greeting") == (city / "zh-CN" / "greeting.wav").resolve()
    assert lib.seconds("greeting") == 2.0
    assert lib.path("num_1") == (shipped / "zh-CN" / "num_1.wav").resolve()
    assert lib.path("greeting", "en") == (shipped / "en" / "greeting.wav").resolve()  # per language


def test_sub_folders_are_found_by_name(roots: tuple[Path, Path], tmp_path: Path) -> None:
    lib = library(roots, tmp_path)
    assert lib.has("kb_a_b") and lib.seconds("kb_a_b") == 0.05
    assert lib.names("zh-CN") == {"greeting", "hold_music", "num_1", "num_10", "kb_a_b"}
    assert lib.languages() == {"zh-CN", "en"}


def test_only_hold_music_falls_back_to_chinese(roots: tuple[Path, Path], tmp_path: Path) -> None:
    lib = library(roots, tmp_path)
    assert lib.path("hold_music", "en") == lib.path("hold_music", "zh-CN")
    assert "hold_music" in lib.names("en")
    assert not lib.has("num_1", "en")
    with pytest.raises(PromptError, match=r"'num_1' in en"):
        lib.path("num_1", "en")


def test_a_missing_prompt_names_where_it_was_looked_for(roots: tuple[Path, Path], tmp_path: Path) -> None:
    lib = library(roots, tmp_path)
    with pytest.raises(PromptError, match="no prompt 'queue_next' in zh-CN") as err:
        lib.seconds("queue_next")
    assert str(roots[0] / "zh-CN") in err.value.message and str(roots[1] / "zh-CN") in err.value.message
    problems = lib.validate(["greeting", "queue_next", "num_99"])
    assert len(problems) == 2 and "queue_next" in problems[0] and "num_99" in problems[1]
    assert lib.validate(["greeting", "hold_music"], "en") == []


def test_a_missing_override_folder_is_fine(tmp_path: Path) -> None:
    write_wav(tmp_path / "shipped" / "zh-CN" / "greeting.wav", 80)
    lib = PromptLibrary([tmp_path / "nowhere", tmp_path / "shipped"], tmp_path / "cache")
    assert lib.seconds("greeting") == 0.01


def test_a_recording_in_another_format_is_refused_naming_the_file(tmp_path: Path) -> None:
    shipped = tmp_path / "shipped"
    write_wav(shipped / "zh-CN" / "num_1.wav", 80)
    bad = write_wav(tmp_path / "city" / "zh-CN" / "greeting.wav", 441, rate=44100, channels=2)
    (tmp_path / "city" / "zh-CN" / "goodbye.wav").write_bytes(b"not a wav at all")
    with pytest.raises(PromptError) as err:
        PromptLibrary([tmp_path / "city", shipped], tmp_path / "cache")
    message = err.value.message
    assert f"{bad}: 44100 Hz, 2 channel(s), 16-bit" in message
    assert "goodbye.wav: not a PCM WAV" in message  # every problem at once
    assert "sox greeting.wav -r 8000 -c 1 -b 16" in message


def test_the_same_name_twice_in_one_language_is_refused(tmp_path: Path) -> None:
    write_wav(tmp_path / "p" / "zh-CN" / "greeting.wav", 80)
    write_wav(tmp_path / "p" / "zh-CN" / "kb" / "greeting.wav", 80)
    with pytest.raises(PromptError, match="also at"):
        PromptLibrary([tmp_path / "p"], tmp_path / "cache")


def test_a_sequence_is_the_prompts_back_to_back(roots: tuple[Path, Path], tmp_path: Path) -> None:
    lib = library(roots, tmp_path)
    names = ["num_10", "num_1", "num_10", "greeting"]
    path, seconds = lib.sequence(names)
    assert seconds == pytest.approx(sum(lib.seconds(n) for n in names))
    with wave.open(str(path), "rb") as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (RATE, 1, 2)
        assert w.getnframes() == 1200 + 800 + 1200 + 16000
    data = samples(path)
    assert data[0] == 4 and data[1200] == 3 and data[2000] == 4 and data[-1] == 7
    assert path.is_relative_to((tmp_path / "cache").resolve())


def test_a_single_prompt_sequence_is_the_prompt_itself(roots: tuple[Path, Path], tmp_path: Path) -> None:
    lib = library(roots, tmp_path)
    assert lib.sequence(["num_1"]) == (lib.path("num_1"), 0.1)
    with pytest.raises(ValueError):
        lib.sequence([])
    with pytest.raises(PromptError):
        lib.sequence(["num_1", "num_77"])


def test_a_joined_sequence_is_reused(roots: tuple[Path, Path], tmp_path: Path) -> None:
    lib = library(roots, tmp_path)
    first, _ = lib.sequence(["num_1", "num_10"])
    stamp = first.stat().st_mtime_ns
    assert lib.sequence(["num_1", "num_10"])[0] == first
    again = library(roots, tmp_path)  # another worker, or a restart: same file, not rewritten
    assert again.sequence(["num_1", "num_10"])[0] == first
    assert first.stat().st_mtime_ns >= stamp
    assert len(list((tmp_path / "cache" / "sequences").glob("*.wav"))) == 1
    assert lib.sequence(["num_10", "num_1"])[0] != first  # order matters
    assert lib.sequence(["greeting", "greeting"], "en") != lib.sequence(["greeting", "greeting"], "zh-CN")


def test_a_replaced_recording_makes_a_new_sequence(roots: tuple[Path, Path], tmp_path: Path) -> None:
    first, _ = library(roots, tmp_path).sequence(["num_1", "num_10"])
    write_wav(roots[0] / "zh-CN" / "num_1.wav", 1600, value=9)  # the city records its own
    second, seconds = library(roots, tmp_path).sequence(["num_1", "num_10"])
    assert second != first and seconds == 0.35 and samples(second)[0] == 9


def test_no_partial_files_and_old_sequences_are_pruned(roots: tuple[Path, Path], tmp_path: Path) -> None:
    lib = library(roots, tmp_path)
    path, _ = lib.sequence(["num_1", "num_10"])
    assert [p.name for p in path.parent.iterdir()] == [path.name]
    old = 1_000_000_000
    os.utime(path, (old, old))
    PromptLibrary(roots, tmp_path / "cache", cache_max_age_s=3600)
    assert not path.exists()


def test_register_adds_a_rendered_prompt(roots: tuple[Path, Path], tmp_path: Path) -> None:
    lib = library(roots, tmp_path)
    rendered = write_wav(tmp_path / "cache" / "kb" / "kb_x_y-abc.wav", 2400)
    lib.register("kb_x_y", rendered)
    assert lib.path("kb_x_y") == rendered.resolve() and lib.seconds("kb_x_y") == 0.3
    with pytest.raises(PromptError, match="22050 Hz"):
        lib.register("kb_bad", write_wav(tmp_path / "bad.wav", 10, rate=22050))


# ---------------------------------------------------------------- the shipped prompts
CATALOG_NAMES = [
    "greeting", "hold_music", "queue_position", "queue_position_unit", "queue_wait", "unit_minutes",
    "queue_wait_under_minute", "queue_next", "callback_offer", "callback_confirmed", "callback_greeting",
    "callback_agent", "priority_raised", "menu_main", "menu_invalid", "menu_timeout", "lookup_prompt",
    "lookup_not_found", "lookup_result", "lookup_status_is", "status_accepted", "status_dispatched",
    "status_handling", "status_extended", "status_replied", "status_survey", "status_closed",
    "status_terminated", "self_service_ask", "self_service_no_match", "self_service_more", "language_menu",
    "goodbye", "survey_intro", "survey_process", "survey_result", "survey_thanks", "voicemail",
    *(f"digit_{d}" for d in range(10)), *(f"num_{d}" for d in range(10)),
    "num_2_liang", "num_10", "num_100", "num_1000", "num_10000",
]  # fmt: skip
ENGLISH_NAMES = [
    "greeting", "hold_music", "queue_position", "queue_position_unit", "queue_wait", "unit_minutes",
    "queue_wait_under_minute", "queue_next", "callback_confirmed", "priority_raised", "goodbye",
    *(f"digit_{d}" for d in range(10)),
]  # fmt: skip


def test_every_shipped_prompt_is_there_in_the_bridge_format(tmp_path: Path) -> None:
    lib = PromptLibrary([SHIPPED], tmp_path / "cache")  # refuses any file not 8 kHz mono 16-bit
    assert lib.validate(CATALOG_NAMES, "zh-CN") == []
    assert lib.validate(ENGLISH_NAMES, "en") == []
    assert 3.0 <= lib.seconds("greeting") <= 8.0  # the recording notice, short enough to skip into the queue
    for name in CATALOG_NAMES:
        assert 0.2 <= lib.seconds(name) <= 10.0, name
