"""`hotline tickets create | show | list` against a real store (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from hotline.cli import main
from hotline.core.model import CallId
from hotline.tickets.store import SqlTicketStore

POLICY_DIR = Path(__file__).resolve().parents[2] / "config" / "policy"


@pytest.fixture
def config_file(tmp_path: Path, ticket_store_url: str) -> str:
    path = tmp_path / "hotline.yaml"
    path.write_text(
        f"data_dir: {tmp_path / 'var'}\npolicies_dir: {POLICY_DIR}\ntickets_url: '{ticket_store_url}'\n",
        encoding="utf-8",
    )
    return str(path)


def run(config_file: str, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["--config", config_file, "tickets", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_create_show_and_list(config_file: str, ticket_store_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(
        config_file, capsys, "create", "--caller", "13800138000", "--kind", "投诉", "--content", "小区夜间施工噪音",
        "--policy", "zibo", "--call-id", "call-1", "--place", "张店区",
    )  # fmt: skip
    assert code == 0, err
    number = out.strip()
    assert re.fullmatch(r"\d{11}", number)

    store = SqlTicketStore(ticket_store_url)
    try:
        store.save_call_draft(CallId("call-1"), "喂，我们小区晚上施工太吵了", {"kind": "complaint"}, "vosk")
    finally:
        store.close()

    code, out, err = run(config_file, capsys, "show", number, "--json")
    assert code == 0, err
    view = json.loads(out)
    assert (view["number"], view["status"], view["kind"], view["place"]) == (number, "accepted", "complaint", "张店区")
    assert [(c["call_id"], c["role"], c["record"]) for c in view["calls"]] == [("call-1", "intake", None)]
    assert view["intake_draft"]["transcript"] == "喂，我们小区晚上施工太吵了"
    assert [row["action"] for row in view["timeline"]] == ["Open"]

    code, out, err = run(config_file, capsys, "show", number)
    assert code == 0, err
    assert number in out and "已受理" in out and "喂，我们小区晚上施工太吵了" in out and "Open" in out

    code, out, err = run(config_file, capsys, "list", "--json")
    assert code == 0 and json.loads(out) == []  # `tickets list` still lists call records


def test_answered_at_once_and_errors(config_file: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(
        config_file, capsys, "create", "--caller", "139", "--kind", "consultation", "--content", "公积金怎么提取",
        "--policy", "zibo", "--answer", "携带身份证到公积金中心", "--json",
    )  # fmt: skip
    assert code == 0, err
    assert json.loads(out)["status"] == "closed"
    code, out, err = run(config_file, capsys, "create", "--caller", "139", "--kind", "投诉", "--content", "x")
    assert code == 1 and "--policy" in err and "zibo" in err  # two policies configured: which one?
    code, out, err = run(
        config_file, capsys, "create", "--caller", "139", "--kind", "抱怨", "--content", "x", "--policy", "zibo"
    )
    assert code == 1 and "kind" in err
    code, out, err = run(config_file, capsys, "show", "99999999999")
    assert code == 1 and "99999999999" in err
