"""Per-city policies (hotline/tickets/policy.py, config/policy/*.yaml): the numbers, the checks, deadline_report."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from hotline.core.errors import ConfigError, InvalidRequest
from hotline.tickets.deadline import deadline_report, parse_local
from hotline.tickets.model import Kind, SupervisionRules, TicketRules
from hotline.tickets.policy import RULE_KEYS, SUPERVISION_KEYS, PolicyError, load_policies, load_policy
from hotline.tickets.workdays import WorkCalendar

POLICY_DIR = Path(__file__).resolve().parents[2] / "config" / "policy"
ZIBO = POLICY_DIR / "zibo.yaml"


def test_both_shipped_policies_load_by_name() -> None:
    policies = load_policies(POLICY_DIR)
    assert set(policies) == {"zibo", "mayors-hotline"}
    assert policies["zibo"].title == "淄博12345政务服务便民热线"
    assert policies["mayors-hotline"].title == "市长公开电话"


def test_zibo_numbers_are_those_of_its_regulation() -> None:
    zibo = load_policy(ZIBO)
    assert zibo.rules(Kind.COMPLAINT) == TicketRules(
        dispatch_working_days=1,  # 001 第十一条(二)
        dispatch_hours=None,
        handle_working_days=5,  # 001 第十一条(三)
        first_report_hours=None,
        extension_max_working_days=5,  # 001 第十一条(四)
        extension_max_count=1,
        extension_max_total_working_days=None,
        extension_request_lead_working_days=0,
        return_window_working_days=2,  # 001 第十一条(六)
        yellow_before_working_days=1,  # 001 第十二条
        red_after_working_days=1,
        redo_handle_working_days=5,
        direct_answer=True,  # 001 第十一条(一)
    )
    provincial = zibo.rules(Kind.COMPLAINT, provincial=True)
    assert (provincial.extension_request_lead_working_days, provincial.return_window_working_days) == (1, 1)
    emergency = zibo.rules(Kind.HELP, emergency=True)  # 001 第十三条
    assert (emergency.dispatch_hours, emergency.first_report_hours, emergency.handle_working_days) == (0, 2, 3)
    assert zibo.supervision == SupervisionRules(
        on_overdue=True, redo_count=2, repeat_reports=3, distinct_callers=3, unsatisfied_results=2
    )


def test_mayors_hotline_numbers_are_those_of_its_procedure() -> None:
    mayor = load_policy(POLICY_DIR / "mayors-hotline.yaml")
    rules = mayor.rules(Kind.COMPLAINT)
    assert rules.handle_working_days == 7  # 002 3)1: 7个工作日内回复
    assert rules.extension_max_total_working_days == 30  # 002 3)1: 最长不得超过30个工作日
    assert (rules.extension_max_working_days, rules.extension_max_count) == (None, None)
    assert rules.redo_handle_working_days == 7
    assert rules.dispatch_working_days == 1 and rules.return_window_working_days == 2  # RULES.md defaults
    assert (rules.yellow_before_working_days, rules.red_after_working_days) == (1, 1)
    emergency = mayor.rules(Kind.REPORT, emergency=True, provincial=True)
    assert (emergency.dispatch_hours, emergency.first_report_hours, emergency.handle_working_days) == (0, 2, 3)
    assert emergency.return_window_working_days == 1  # provincial, then emergency: both apply
    assert mayor.supervision.on_overdue is True  # 002 4)1 书面督办


def test_every_ticket_rule_and_supervision_rule_has_a_spec() -> None:
    assert list(RULE_KEYS) == [f.name for f in dataclasses.fields(TicketRules)]
    assert list(SUPERVISION_KEYS) == [f.name for f in dataclasses.fields(SupervisionRules)]


def test_overrides_apply_in_order_kind_then_provincial_then_emergency(tmp_path: Path) -> None:
    text = ZIBO.read_text(encoding="utf-8").replace(
        "  complaint: {}     # 投诉",
        "  complaint:\n    handle_working_days: 4\n    return_window_working_days: 3\n    direct_answer: false",
    )
    path = tmp_path / "zibo.yaml"
    path.write_text(text, encoding="utf-8")
    policy = load_policy(path)
    assert policy.rules(Kind.COMPLAINT).handle_working_days == 4
    assert policy.rules(Kind.COMPLAINT).direct_answer is False
    assert policy.rules(Kind.CONSULTATION).handle_working_days == 5
    assert policy.rules(Kind.COMPLAINT, provincial=True).return_window_working_days == 1  # provincial wins
    assert policy.rules(Kind.COMPLAINT, emergency=True).handle_working_days == 3  # emergency wins


BROKEN = """\
name: zibo
title: 淄博
defaults:
  dispatch_working_days: 1
  dispatch_hours: null
  handle_working_days: five
  first_report_hours: null
  extension_max_working_days: 5
  extension_max_count: 1
  extension_max_total_working_days: null
  extension_request_lead_working_days: -1
  return_window_working_days: 2
  yellow_before_working_days: 1
  red_after_working_days: 1
  redo_handle_working_days: null
  direct_answer: yes please
  handle_days: 5
kinds:
  complaint: {}
  appeal: {}
supervision:
  on_overdue: 1
  redo_count: 2
  repeat_reports: 3
  distinct_callers: 3
"""


def test_a_broken_policy_reports_every_problem_with_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "zibo.yaml"
    path.write_text(BROKEN, encoding="utf-8")
    with pytest.raises(PolicyError) as caught:
        load_policy(path)
    assert isinstance(caught.value, ConfigError)
    assert caught.value.problems == [
        f"{path}:6: defaults.handle_working_days: 'five' is not a whole number >= 1",
        f"{path}:11: defaults.extension_request_lead_working_days: -1 is not a whole number >= 0",
        f"{path}:15: defaults.redo_handle_working_days: None is not a whole number >= 1",
        f"{path}:16: defaults.direct_answer: 'yes please' is not true or false",
        f"{path}:17: defaults: unknown key 'handle_days'; known: " + ", ".join(RULE_KEYS),
        f"{path}:20: unknown kind 'appeal'; one of: consultation, help, complaint, report, suggestion, praise",
        f"{path}:21: supervision: missing 'unsatisfied_results'",
        f"{path}:22: supervision.on_overdue: 1 is not true or false",
    ]
    message = str(caught.value)
    assert message.startswith("8 problem(s) in policy files:")
    assert f"{path}:20: unknown kind 'appeal'" in message


def test_yaml_syntax_errors_and_duplicate_keys_name_their_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\ntitle: [unclosed\ndefaults: {}\n", encoding="utf-8")
    with pytest.raises(PolicyError) as caught:
        load_policy(bad)
    assert len(caught.value.problems) == 1
    assert caught.value.problems[0].startswith(f"{bad}:3: not valid YAML")

    twice = tmp_path / "zibo.yaml"
    twice.write_text(ZIBO.read_text(encoding="utf-8").replace("name: zibo\n", "name: zibo\nname: zibo\n"))
    with pytest.raises(PolicyError) as caught:
        load_policy(twice)
    assert caught.value.problems == [f"{twice}:7: the policy file: 'name' given twice"]


def test_the_name_must_be_the_file_name(tmp_path: Path) -> None:
    path = tmp_path / "jinan.yaml"
    path.write_text(ZIBO.read_text(encoding="utf-8"), encoding="utf-8")
    with pytest.raises(PolicyError) as caught:
        load_policy(path)
    assert caught.value.problems == [f"{path}:6: name 'zibo' must be the file's name without .yaml ('jinan')"]


def test_numbers_that_contradict_each_other_are_reported(tmp_path: Path) -> None:
    text = (POLICY_DIR / "mayors-hotline.yaml").read_text(encoding="utf-8")
    text = text.replace("extension_max_total_working_days: 30", "extension_max_total_working_days: 6")
    path = tmp_path / "mayors-hotline.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(PolicyError) as caught:
        load_policy(path)
    problems = caught.value.problems
    # once, at the defaults block (line 10): emergencies override handle_working_days with 3, within 6
    assert problems == [
        f"{path}:10: defaults: extension_max_total_working_days (6) is less than handle_working_days (7)"
    ]


def test_load_policies_reports_problems_of_every_file_at_once(tmp_path: Path) -> None:
    (tmp_path / "zibo.yaml").write_text(ZIBO.read_text(encoding="utf-8"), encoding="utf-8")
    (tmp_path / "zibo.yml").write_text(ZIBO.read_text(encoding="utf-8"), encoding="utf-8")
    (tmp_path / "a.yaml").write_text("name: a\n", encoding="utf-8")
    with pytest.raises(PolicyError) as caught:
        load_policies(tmp_path)
    problems = caught.value.problems
    assert f"{tmp_path / 'a.yaml'}:1: missing 'title'" in problems
    assert f"{tmp_path / 'a.yaml'}:1: missing 'defaults'" in problems
    assert f"{tmp_path / 'zibo.yml'}:1: policy name 'zibo' is also used by {tmp_path / 'zibo.yaml'}" in problems


def test_an_empty_directory_or_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no policy files"):
        load_policies(tmp_path)
    with pytest.raises(ConfigError, match="cannot read the policy file"):
        load_policy(tmp_path / "nowhere.yaml")


# ---------------------------------------------------------------- deadline_report (hotline tickets deadline)
def test_deadline_report_for_zibo_handling_across_national_day() -> None:
    report = deadline_report(load_policy(ZIBO), WorkCalendar(), "投诉", "办理", parse_local("2025-09-30 10:00"))
    assert report == {
        "policy": "zibo",
        "kind": "complaint",
        "stage": "handle",
        "provincial": False,
        "emergency": False,
        "start": "2025-09-30T10:00:00+08:00",
        "period": {"working_days": 5},
        "deadline": "2025-10-14T23:59:59+08:00",  # 10-09, 10-10, 10-11 (make-up Saturday), 10-13, 10-14
        "yellow_light": "2025-10-14T00:00:00+08:00",
        "red_light": "2025-10-16T00:00:00+08:00",
        "text": "淄博12345政务服务便民热线·投诉·办理：承办单位办结回复时限，自 2025年9月30日（星期二）10:00 起算，"
        "当日不计，5个工作日，期限 2025年10月14日（星期二）23:59；黄灯 2025年10月14日（星期二）00:00 起，"
        "红灯 2025年10月16日（星期四）00:00 起并自动催办。",
    }


@pytest.mark.parametrize(
    ("name", "kind", "stage", "start", "deadline", "yellow", "red"),
    [
        (
            "mayors-hotline",
            "complaint",
            "handle",
            "2025-09-30 10:00",
            "2025-10-16T23:59:59",
            "2025-10-16",
            "2025-10-18",
        ),
        ("mayors-hotline", "help", "dispatch", "2025-09-27 15:00", "2025-09-28T23:59:59", None, None),
        ("zibo", "report", "return", "2025-09-30 10:00", "2025-10-10T23:59:59", None, None),
        ("zibo", "praise", "extension", "2025-09-30 10:00", "2025-10-14T23:59:59", None, None),
        ("zibo", "help", "emergency-report", "2025-10-01 09:00", "2025-10-01T11:00:00", None, None),
        ("zibo", "help", "emergency-result", "2025-10-01 09:00", "2025-10-11T23:59:59", "2025-10-11", "2025-10-14"),
        ("mayors-hotline", "help", "emergency-dispatch", "2025-10-01 09:00", "2025-10-01T09:00:00", None, None),
        ("mayors-hotline", "complaint", "重办", "2025-10-13 15:00", "2025-10-22T23:59:59", "2025-10-22", "2025-10-24"),
    ],
)
def test_deadline_report_clocks(
    name: str, kind: str, stage: str, start: str, deadline: str, yellow: str | None, red: str | None
) -> None:
    report = deadline_report(load_policy(POLICY_DIR / f"{name}.yaml"), WorkCalendar(), kind, stage, parse_local(start))
    assert report["deadline"] == deadline + "+08:00"
    assert report["yellow_light"] == (None if yellow is None else f"{yellow}T00:00:00+08:00")
    assert report["red_light"] == (None if red is None else f"{red}T00:00:00+08:00")


def test_deadline_report_provincial_extension_and_bad_input() -> None:
    zibo, cal = load_policy(ZIBO), WorkCalendar()
    report = deadline_report(zibo, cal, "complaint", "extension", parse_local("2025-09-30 10:00"), provincial=True)
    assert report["deadline"] == "2025-10-13T23:59:59+08:00"  # one working day before the 10-14 deadline
    assert "（省级工单）" in report["text"] and "办理期限前1个工作日" in report["text"]
    assert parse_local("2025-09-30T02:00:00+00:00") == parse_local("2025-09-30 10:00")
    with pytest.raises(InvalidRequest, match="unknown kind"):
        deadline_report(zibo, cal, "appeal", "handle", parse_local("2025-09-30 10:00"))
    with pytest.raises(InvalidRequest, match="unknown stage"):
        deadline_report(zibo, cal, "complaint", "handling", parse_local("2025-09-30 10:00"))
    with pytest.raises(InvalidRequest, match="cannot read the time"):
        parse_local("30/09/2025")
