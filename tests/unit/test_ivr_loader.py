"""Flow files: the shipped ones load; every mistake is reported at once as path:line."""

from __future__ import annotations

from pathlib import Path

import pytest

from hotline.core.errors import ConfigError
from hotline.core.model import Outcome
from hotline.ivr.loader import load_flow, load_flows, select_flow
from hotline.ivr.spec import TICKET_STATUSES, HangupNode, KeyAction, LookupNode, MenuNode, QueueNode, prompts

CONFIG = Path(__file__).resolve().parents[2] / "config" / "ivr"
# The prompt names the flows use (config/prompts/zh-CN), as the prompt helper records them.
KNOWN = {
    "greeting", "hold_music", "queue_position", "queue_position_unit", "queue_wait", "unit_minutes",
    "queue_wait_under_minute", "queue_next", "callback_offer", "callback_confirmed", "priority_raised",
    "menu_main", "menu_invalid", "menu_timeout", "lookup_prompt", "lookup_not_found", "lookup_result",
    "lookup_status_is", "self_service_ask", "self_service_no_match", "self_service_more",
    "language_menu", "goodbye",
    *(f"status_{s}" for s in TICKET_STATUSES),
    *(f"digit_{d}" for d in range(10)),
}  # fmt: skip


def test_the_shipped_flows_load_with_every_prompt_known() -> None:
    flows = load_flows(CONFIG)
    assert set(flows) >= {"default", "menu"}
    for name in ("default", "menu"):
        spec = select_flow(CONFIG, name, KNOWN)
        assert spec.warnings == ()
    default = flows["default"]
    queue = default.nodes[default.start]
    assert isinstance(queue, QueueNode)
    assert queue.greeting == "greeting" and queue.announce_interval_s == 45
    assert queue.keys == {"1": KeyAction.CALLBACK, "0": KeyAction.PRIORITY}
    assert queue.emergency_priority and queue.announce_offer == "callback_offer"
    menu = flows["menu"]
    main = menu.nodes["main"]
    assert isinstance(main, MenuNode) and main.options["2"] == "status"
    assert isinstance(menu.nodes["status"], LookupNode)
    goodbye = menu.nodes["goodbye"]
    assert isinstance(goodbye, HangupNode) and goodbye.outcome == Outcome.SELF_SERVED
    assert menu.fallback == "queue"


def write(tmp_path: Path, text: str, name: str = "city.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def errors(path: Path, known: set[str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_flow(path, known)
    return info.value.message.splitlines()


BROKEN = """\
start: main
nodes:
  main:
    type: menu
    prompt: menu_main
    options:
      "1": queue
      "1": lookup
      "5": nowhere
      x: queue
    timeout_s: 0
    retries: lots
    colour: blue
  status:
    type: lookup
    next: queue
    min_digits: 8
    max_digits: 4
  odd:
    type: wizard
  queue:
    type: queue
    keys:
      "1": teleport
    announce_interval_s: 5
  ask:
    type: self_service
  bye:
    type: hangup
    outcome: happy
"""


def test_every_mistake_is_reported_at_once_with_its_line(tmp_path: Path) -> None:
    path = write(tmp_path, BROKEN)
    got = errors(path)
    expected = [
        (8, "key '1' appears twice"),
        (10, "a key is one of 0-9, * or #"),
        (11, "timeout_s must be between 1 and 120, not 0"),
        (12, "retries must be a whole number"),
        (13, "unknown key 'colour' for a menu node"),
        (14, "min_digits (8) is more than max_digits (4)"),
        (20, "unknown node type 'wizard'"),
        (24, "unknown action 'teleport'"),
        (25, "announce_interval_s must be 0 (off) or at least 10 seconds"),
        (26, "node 'ask': missing 'next'"),
        (30, "outcome 'happy' is not an outcome"),
    ]
    for line, message in expected:
        assert any(e.startswith(f"{path}:{line}: ") and message in e for e in got), (line, message, got)
    assert len(got) == len(expected), got


def test_missing_targets_and_start_name_their_lines(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
start: welcome
nodes:
  main:
    type: menu
    prompt: menu_main
    options: {"1": agents}
    on_failure: bye
  hello:
    type: play
    prompt: greeting
    next: main2
  bye: {type: hangup}
""",
    )
    got = errors(path)
    assert got == [
        f"{path}:1: start: no node 'welcome'",
        f"{path}:6: node 'main': options.1: no node 'agents'",
        f"{path}:11: node 'hello': next: no node 'main2'",
    ]


def test_a_menu_without_on_failure_needs_a_queue_node(tmp_path: Path) -> None:
    path = write(tmp_path, 'start: m\nnodes:\n  m:\n    type: menu\n    prompt: menu_main\n    options: {"1": m}\n')
    assert errors(path) == [f"{path}:3: node 'm': needs 'on_failure' (the flow has no queue node to fall back to)"]


def test_unknown_prompts_are_named_at_their_line(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "start: q\nnodes:\n  q:\n    type: queue\n    greeting: greeting\n    hold: elevator_music\n"
        '    keys: {"0": priority}\n',
    )
    got = errors(path, {"greeting", "hold_music"})
    assert got == [
        f"{path}:6: node 'q': hold: unknown prompt 'elevator_music'",
        f"{path}:7: node 'q': keys.0: unknown prompt 'priority_raised'",
    ]


def test_yaml_syntax_error_names_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, "start: q\nnodes:\n  q:\n    type: queue\n   hold: [\n")
    (got,) = errors(path)
    assert got.startswith(f"{path}:5: invalid YAML")


def test_structure_errors(tmp_path: Path) -> None:
    assert errors(write(tmp_path, "", "empty.yaml")) == [f"{tmp_path / 'empty.yaml'}:1: the file is empty"]
    got = errors(write(tmp_path, "nodes: [1]\nextra: 2\n", "list.yaml"))
    assert any("unknown key 'extra'" in e for e in got)
    assert any("missing 'start'" in e for e in got)
    assert any(":1: nodes must be a mapping" in e for e in got)
    got = errors(write(tmp_path, "start: a\nnodes:\n  a: {type: language, language: en, next: b}\n"
                       "  b: {type: language, language: zh-CN, next: a}\n", "loop.yaml"))  # fmt: skip
    assert any(":3: node 'a': language nodes loop" in e for e in got)


def test_unreachable_nodes_are_warnings(tmp_path: Path) -> None:
    path = write(tmp_path, "start: q\nnodes:\n  q: {type: queue}\n  lost: {type: hangup}\n")
    assert load_flow(path).warnings == (f"{path}:4: node 'lost' is never reached",)


def test_all_files_of_the_directory_are_checked_and_the_selected_must_exist(tmp_path: Path) -> None:
    write(tmp_path, "start: q\nnodes:\n  q: {type: queue, hold: nope}\n", "a.yaml")
    write(tmp_path, "start: q\nnodes:\n  q: {type: queue, speech_skips_greeting: maybe}\n", "b.yaml")
    with pytest.raises(ConfigError) as info:
        select_flow(tmp_path, "c", {"greeting", "hold_music"})
    lines = info.value.message.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith(f"{tmp_path / 'b.yaml'}:3: ") and "true or false" in lines[0]
    assert "no flow 'c'" in lines[1] and "have: a, b" in lines[1]
    # Prompts are checked for the selected flow only.
    with pytest.raises(ConfigError, match="unknown prompt 'nope'"):
        select_flow(tmp_path, "a", {"greeting", "hold_music"})


def test_every_prompt_of_the_menu_flow_is_in_the_prompt_list() -> None:
    menu = load_flow(CONFIG / "menu.yaml")
    used = {p for node in menu.nodes.values() for _, p in prompts(node)}
    assert used <= KNOWN


def test_queue_skills_are_read_and_checked(tmp_path: Path) -> None:
    path = write(tmp_path, 'start: q\nnodes:\n  q:\n    type: queue\n    skills: ["language:en", 投诉]\n')
    spec = load_flow(path)
    node = spec.nodes["q"]
    assert isinstance(node, QueueNode) and node.skills == ("language:en", "投诉")
    bad = write(
        tmp_path,
        'start: q\nnodes:\n  q:\n    type: queue\n    skills:\n      - "a b"\n      - x\n      - x\n',
        "bad.yaml",
    )
    assert errors(bad) == [
        f"{bad}:6: node 'q': skills: 'a b' is not a skill name (no spaces, commas or braces)",
        f"{bad}:8: node 'q': skills: 'x' appears twice",
    ]
    scalar = write(tmp_path, "start: q\nnodes:\n  q: {type: queue, skills: en}\n", "scalar.yaml")
    assert [e.split(": ", 1)[1] for e in errors(scalar)] == [
        "node 'q': skills must be a list of skill names, e.g. [\"language:en\"]"
    ]
