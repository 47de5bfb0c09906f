"""The pure parts of the units' webhooks: signatures, the retry schedule, and the scrubbing that
keeps callers' identities out of what units read (hotline/tickets/webhooks.py, unit_view.py)."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from hotline.tickets.unit_view import hidden_values, scrub
from hotline.tickets.webhooks import RetryPolicy, next_state, retry_delay, sign, verify_signature

SECRET = "whsec-0123456789abcdef"
BODY = '{"event_id":"e1","message":"主办：投诉工单"}'.encode()
T = 1_763_800_000


class TestSignature:
    def test_the_format_is_hmac_sha256_of_timestamp_dot_body(self) -> None:
        expected = hmac.new(SECRET.encode(), f"{T}.".encode() + BODY, hashlib.sha256).hexdigest()
        assert sign(SECRET, T, BODY) == f"sha256={expected}"
        assert sign(SECRET, str(T), BODY) == sign(SECRET, T, BODY)

    def test_a_receiver_accepts_the_real_thing(self) -> None:
        header = sign(SECRET, T, BODY)
        assert verify_signature(SECRET, str(T), BODY, header, tolerance_s=300, now=T + 299)
        assert verify_signature(SECRET, T, BODY, f"  {header} ", tolerance_s=300, now=T - 300)

    @pytest.mark.parametrize(
        ("secret", "timestamp", "body", "now"),
        [
            ("another-secret-000000", str(T), BODY, T),  # wrong key
            (SECRET, str(T + 1), BODY, T),  # another timestamp than the one signed
            (SECRET, str(T), BODY + b" ", T),  # the body changed
            (SECRET, str(T), BODY, T + 301),  # too old: a replay
            (SECRET, str(T), BODY, T - 301),  # from the future
            (SECRET, "not-a-number", BODY, T),
            (SECRET, "", BODY, T),
        ],
    )
    def test_a_receiver_refuses_anything_else(self, secret: str, timestamp: str, body: bytes, now: int) -> None:
        assert not verify_signature(secret, timestamp, body, sign(SECRET, T, BODY), tolerance_s=300, now=now)

    def test_a_malformed_header_is_refused(self) -> None:
        for header in ("", "sha256=", "md5=abc", sign(SECRET, T, BODY).removeprefix("sha256=")):
            assert not verify_signature(SECRET, T, BODY, header, now=T)


class TestRetrySchedule:
    POLICY = RetryPolicy(max_attempts=5, base_s=10, cap_s=60, timeout_s=5, lease_s=30)

    def test_exponential_with_jitter_and_a_cap(self) -> None:
        assert [retry_delay(self.POLICY, n, 0.0) for n in (1, 2, 3, 4, 5)] == [5, 10, 20, 30, 30]
        assert [retry_delay(self.POLICY, n, 0.999999) for n in (1, 2, 3)] == pytest.approx([10, 20, 40], rel=1e-5)
        assert retry_delay(self.POLICY, 2, 0.5) == 15

    def test_bounded_attempts(self) -> None:
        assert next_state(self.POLICY, 1, True, 0.5) == ("delivered", None)
        assert next_state(self.POLICY, 1, False, 0.0) == ("retry", 5)
        assert next_state(self.POLICY, 4, False, 0.0) == ("retry", 30)
        assert next_state(self.POLICY, 5, False, 0.0) == ("failed", None)
        assert next_state(self.POLICY, 5, True, 0.0) == ("delivered", None)

    @pytest.mark.parametrize(
        "changes",
        [{"max_attempts": 0}, {"base_s": 0}, {"cap_s": 1, "base_s": 2}, {"timeout_s": 0}, {"lease_s": 5}],
    )
    def test_bad_policies_are_refused(self, changes: dict[str, float]) -> None:
        values = {"max_attempts": 3, "base_s": 1.0, "cap_s": 10.0, "timeout_s": 5.0, "lease_s": 30.0, **changes}
        with pytest.raises(ValueError):
            RetryPolicy(**values)  # type: ignore[arg-type]


class TestScrub:
    def test_hidden_values_cover_the_number_in_its_forms_and_the_name(self) -> None:
        hidden = hidden_values("+86 139-1234-5678", "张三丰", ["13800138000"])
        text = "张三丰（+86 139-1234-5678，8613912345678）代 13800138000 反映：13912345678"
        assert scrub(text, hidden) == "***（***，***）代 *** 反映：***"

    def test_any_mobile_number_is_hidden_but_other_numbers_stay(self) -> None:
        text = "物业电话 15012345678，门牌 88 号，工单 26112200001，座机 0533-1234567"
        assert scrub(text, ()) == "物业电话 ***，门牌 88 号，工单 26112200001，座机 0533-1234567"

    def test_nothing_to_hide(self) -> None:
        assert hidden_values("", None) == ()
        assert scrub("小区噪音", hidden_values("", "王")) == "小区噪音"
