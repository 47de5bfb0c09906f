"""Several queues from configuration: `queues:` (or the single `queue:`), their names and overflow
targets checked at load (every problem at once), their policies built by the composition root,
and an IVR queue node naming its queue (an unknown name refused at start-up)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import redis.asyncio
import yaml

from hotline import cli, config
from hotline.core.errors import ConfigError
from hotline.ivr import flow as fl
from hotline.ivr.loader import load_flow
from hotline.queue.routing import Strategy

ROOT = Path(__file__).resolve().parents[2]


def load(tmp_path: Path, data: dict[str, Any]) -> config.Config:
    path = tmp_path / "hotline.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return config.load(str(path), environ={})


QUEUES = [
    {"name": "hotline", "wrap_up_s": 5, "max_length": 20, "overflow_target": "queue:spare", "ring_timeout_s": 15},
    {
        "name": "spare",
        "skills": ["complaint"],
        "strategy": "fewest_calls",
        "max_wait_s": 120,
        "overflow_target": "callback",
        "service_level_s": 20,
        "announce_interval_s": 30,
    },
]


def test_the_single_queue_still_works_as_one_queue_named_by_its_name(tmp_path: Path) -> None:
    cfg = load(tmp_path, {"queue": {"name": "main", "wrap_up_s": 3}})
    assert [q.name for q in cfg.queue_configs] == ["main"]
    policies = cli.queue_policies(cfg)
    assert list(policies) == ["main"] and policies["main"].agent.wrap_up_ms == 3_000


def test_queues_are_read_each_with_its_own_policy(tmp_path: Path) -> None:
    cfg = load(tmp_path, {"queues": QUEUES})
    assert [q.name for q in cfg.queue_configs] == ["hotline", "spare"]
    assert cfg.queue_configs[1].skills == ("complaint",)
    policies = cli.queue_policies(cfg)
    hotline, spare = policies["hotline"], policies["spare"]
    assert (hotline.agent.wrap_up_ms, hotline.max_length, hotline.overflow_target) == (5_000, 20, "queue:spare")
    assert (spare.strategy, spare.required_skills, spare.max_wait_s) == (Strategy.FEWEST_CALLS, ("complaint",), 120)
    assert (spare.service_level_s, spare.announce_interval_s, spare.agent.wrap_up_ms) == (20, 30, 0)
    queue = cli.make_queue(cfg, redis.asyncio.Redis(unix_socket_path=str(tmp_path / "none.sock")))
    assert (queue.name, list(queue.policies)) == ("hotline", ["hotline", "spare"])


def test_every_queue_problem_is_reported_at_once(tmp_path: Path) -> None:
    bad = [
        {"name": "a", "overflow_target": "queue:nowhere"},
        {"name": "a"},
        {"name": "b c", "overflow_target": "queue:b c"},
        {"name": "d", "overflow_target": "mail"},
    ]
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, {"queues": bad})
    message = caught.value.message
    assert "queues[0].overflow_target: 'queue:nowhere' names no other queue" in message
    assert "queues[1].name: 'a' is used by another queue" in message
    assert "queues[2].name: a name without spaces" in message
    assert "queues[3].overflow_target:" in message
    with pytest.raises(ConfigError, match="set one of them"):
        load(tmp_path, {"queue": {"name": "x", "wrap_up_s": 1}, "queues": QUEUES})
    with pytest.raises(ConfigError, match=r"queues\[0\]: expected a mapping"):
        load(tmp_path, {"queues": ["hotline"]})


def test_policies_are_checked_per_queue(tmp_path: Path) -> None:
    cfg = load(
        tmp_path,
        {
            "queues": [
                {"name": "a", "strategy": "fastest"},
                {"name": "b", "overflow_target": "callback"},
                {"name": "c", "overflow_target": "voicemail", "max_wait_s": 60, "voicemail_max_s": 1},
                {"name": "d", "overflow_target": "voicemail", "max_length": 5, "voicemail_max_s": 90},
            ]
        },
    )
    with pytest.raises(ConfigError) as caught:
        cli.queue_policies(cfg)
    assert "queues[0] (a):" in caught.value.message
    assert "queues[1] (b): overflow_target needs max_wait_s or max_length" in caught.value.message
    assert "queues[2] (c): voicemail_max_s must be 5..600 s, got 1.0" in caught.value.message
    assert "(d)" not in caught.value.message


def test_a_queue_node_names_its_queue(tmp_path: Path) -> None:
    flows = tmp_path / "ivr"
    flows.mkdir()
    spec = yaml.safe_load((ROOT / "config/ivr/default.yaml").read_text(encoding="utf-8"))
    spec["nodes"]["queue"]["queue"] = "spare"
    (flows / "default.yaml").write_text(yaml.safe_dump(spec, allow_unicode=True), encoding="utf-8")
    base = {"prompts_dir": str(ROOT / "config/prompts/zh-CN"), "data_dir": str(tmp_path / "var")}
    cfg = load(tmp_path, {**base, "ivr": {"dir": str(flows)}, "queues": QUEUES})
    loaded = cli.ivr_flow(cfg)
    node = loaded.nodes["queue"]
    assert node.queue == "spare" and node.announce_interval_s == 30  # the queue's interval wins
    flow = fl.CallFlow(fl.FlowSettings(greeting_s=5.0, spec=loaded))
    flow.handle(fl.Incoming(), 0.0)
    assert fl.Enqueue((), "spare") in flow.handle(fl.MediaReady(), 0.0)
    unknown = load(tmp_path, {**base, "ivr": {"dir": str(flows)}, "queue": {"name": "main"}})
    with pytest.raises(ConfigError, match="names queue 'spare'"):
        cli.ivr_flow(unknown)
    assert load_flow(flows / "default.yaml").nodes["queue"].queue == "spare"
