"""`hotline recordings purge | hold | release` on a folder of old recordings, against a real store
(SQLite and PostgreSQL): exactly the expired recordings not on hold go, each one logged."""

from __future__ import annotations

import json
import logging
import wave
from datetime import timedelta
from pathlib import Path

import pytest

from hotline.cli import main
from hotline.core.model import CallId, utcnow
from hotline.recordings.catalog import describe
from hotline.tickets.model import Kind
from hotline.tickets.policy import load_policies
from hotline.tickets.records import NewTicket, TicketActor
from hotline.tickets.store import SqlTicketStore

POLICIES = load_policies(Path(__file__).resolve().parents[2] / "config" / "policy")


@pytest.fixture
def config_file(tmp_path: Path, ticket_store_url: str) -> str:
    path = tmp_path / "hotline.yaml"
    path.write_text(
        f"data_dir: {tmp_path / 'var'}\ntickets_url: '{ticket_store_url}'\n"
        "recordings:\n  retention_days: 180\n  retention_by_kind: {投诉: 365}\n",
        encoding="utf-8",
    )
    return str(path)


def run(config_file: str, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["--config", config_file, "recordings", *args])
    out, err = capsys.readouterr()
    return code, out, err


def write_wav(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(bytes(4 * 800))
    return path


# call id -> (age in days, the recording's own kind)
FOLDER = {
    "fresh": (10, None),
    "old": (200, None),  # expired: 180 days
    "old-complaint": (200, "complaint"),  # 投诉: kept 365 days
    "ancient-complaint": (400, "complaint"),  # expired
    "old-held": (300, None),  # on hold itself
    "old-held-ticket": (300, None),  # its ticket is on hold
    "old-report": (300, None),  # linked to a report ticket (no retention of its own): expired
    "old-complaint-callback": (300, None),  # a callback of a complaint ticket: kept 365 days
    "old-missing": (300, None),  # catalogued, but its file is already gone
}
EXPIRED = ["ancient-complaint", "old-missing", "old-report", "old"]  # oldest first (then by call id)


def test_the_purge_removes_exactly_the_expired_recordings_not_on_hold(
    config_file: str, ticket_store_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    now = utcnow()
    root = tmp_path / "var" / "recordings"
    store = SqlTicketStore(ticket_store_url, policies=POLICIES.values())
    files: dict[str, Path] = {}
    try:
        for call_id, (days, kind) in FOLDER.items():
            created = now - timedelta(days=days)
            path = write_wav(root / f"{created:%Y/%m/%d}" / f"{call_id}.wav")
            info = describe(path)
            store.register_recording(
                CallId(call_id), str(path), format=info.format, bytes=info.bytes, seconds=info.seconds,
                sha256=info.sha256, created_at=created, kind=kind,
            )  # fmt: skip
            files[call_id] = path
        files.pop("old-missing").unlink()
        numbers = {}
        for call_id, kind in [("old-held-ticket", Kind.HELP), ("old-report", Kind.REPORT)]:
            new = NewTicket(caller="13800138000", kind=kind, content="路灯不亮", call_id=CallId(call_id))
            numbers[call_id] = store.create_ticket(new, TicketActor("a1"), now, POLICIES["zibo"]).number
        complaint = NewTicket(caller="13900139000", kind=Kind.COMPLAINT, content="噪音", call_id=CallId("intake"))
        number = store.create_ticket(complaint, TicketActor("a1"), now, POLICIES["zibo"]).number
        store.link_call(number, CallId("old-complaint-callback"), "callback")
    finally:
        store.close()
    # Files the catalogue does not know are never touched, however old.
    strays = [write_wav(root / "2020/01/01/stray.wav"), write_wav(root / "2020/01/01/stray.caller.wav")]

    code, out, err = run(config_file, capsys, "hold", "old-held", "--why", "法院调取", "--by", "admin")
    assert code == 0, err
    assert json.loads(out) == {"target": "old-held", "legal_hold": True, "recordings": ["old-held"]}
    code, out, err = run(config_file, capsys, "hold", numbers["old-held-ticket"], "--why", "信访复查", "--by", "sup")
    assert code == 0, err
    assert json.loads(out)["recordings"] == ["old-held-ticket"]
    code, out, err = run(config_file, capsys, "hold", "no-such-thing", "--why", "x")
    assert code == 1 and "no ticket and no recorded call" in err

    code, out, err = run(config_file, capsys, "purge", "--dry-run", "--json")
    assert code == 0, err
    dry = json.loads(out)
    assert dry["dry_run"] and [p["call_id"] for p in dry["purged"]] == EXPIRED
    assert all(path.exists() for path in files.values())

    caplog.set_level(logging.INFO, logger="hotline.recordings.retention")
    code, out, err = run(config_file, capsys, "purge", "--json")
    assert code == 0, err
    report = json.loads(out)
    assert [p["call_id"] for p in report["purged"]] == EXPIRED
    assert [p["call_id"] for p in report["purged"] if p["missing"]] == ["old-missing"]
    by_id = {p["call_id"]: p for p in report["purged"]}
    assert (by_id["ancient-complaint"]["kind"], by_id["ancient-complaint"]["retention_days"]) == ("complaint", 365)
    assert (by_id["old-report"]["kind"], by_id["old-report"]["retention_days"]) == (None, 180)
    assert 299.9 < by_id["old-report"]["age_days"] < 300.1
    assert report["bytes_freed"] == sum(p["bytes"] for p in report["purged"] if not p["missing"]) > 0
    gone = {call_id for call_id, path in files.items() if not path.exists()}
    assert gone == set(EXPIRED) - {"old-missing"}
    assert all(path.exists() for path in strays)
    # Each deletion is logged with its call id, path, age and size.
    deleted = [r.getMessage() for r in caplog.records if ": deleted " in r.getMessage()]
    assert len(deleted) == 3
    for call_id in gone:
        assert any(f"recording {call_id}: deleted {files[call_id]}" in line for line in deleted)

    store = SqlTicketStore(ticket_store_url)
    try:
        purged = {c for c in FOLDER if store.get_recording(CallId(c)).purged_at is not None}  # type: ignore[union-attr]
    finally:
        store.close()
    assert purged == set(EXPIRED)

    code, out, err = run(config_file, capsys, "purge")
    assert code == 0, err
    assert out.splitlines()[-1] == "0 recordings, freed 0 bytes, 0 failed"

    # Released, the held recording goes at the next purge.
    code, out, err = run(config_file, capsys, "release", "old-held", "--why", "结案", "--by", "admin")
    assert code == 0, err
    code, out, err = run(config_file, capsys, "purge")
    assert code == 0, err
    assert out.splitlines()[0].startswith("old-held\tdeleted\t300.0d\t")
    assert not files["old-held"].exists() and files["old-held-ticket"].exists()
