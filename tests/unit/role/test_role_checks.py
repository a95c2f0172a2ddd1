"""The role's preflight filters for Nomad cron expressions and time zones."""

from __future__ import annotations

import pytest
import vault_batch_client_checks as checks


@pytest.mark.parametrize(
    "cron",
    [
        "0 2 * * *",
        "*/15 * * * *",
        "0,30 8-18 * * MON-FRI",
        "0 9 1 JAN,jul *",
        "0 0 * * 7",
        "0 0 L * *",
        "0 0 15W * *",
        "0 0 * * 5#3",
        "0 0 * * 5L",
        "0 0 ? * sun",
        "0 2 * * * 2030",
        "*/15 * * * * *",
        "30 0 2 * * * *",
        "@daily",
        "@weekly",
    ],
)
def test_cron_accepts_nomad_forms(cron):
    assert checks.cron_errors([cron]) == []


@pytest.mark.parametrize(
    ("cron", "message"),
    [
        ("not a cron", "expected 5 fields"),
        ("61 2 * * *", "minute field: 61 is outside 0-59"),
        ("0 24 * * *", "hour field: 24 is outside 0-23"),
        ("0 2 0 * *", "day-of-month field: 0 is outside 1-31"),
        ("0 2 * 13 *", "month field: 13 is outside 1-12"),
        ("0 2 * * 8", "day-of-week field: 8 is outside 0-7"),
        ("0 2 * * FUNDAY", "'funday' is not a number or a known name"),
        ("*/0 * * * *", "step '0'"),
        ("5-1 * * * *", "runs backwards"),
        ("0 2 * * * 1969", "year field: 1969 is outside 1970-2099"),
        ("0 0 0 2 * * * *", "got 8 fields"),
        ("@reboot", "got 1 fields"),
    ],
)
def test_cron_rejects_invalid(cron, message):
    (error,) = checks.cron_errors([cron])
    assert message in error
    assert f"'{cron}'" in error


def test_cron_reports_each_invalid_entry():
    assert len(checks.cron_errors(["0 2 * * *", "61 * * * *", "bad"])) == 2


@pytest.mark.parametrize("zone", ["Etc/UTC", "Pacific/Honolulu", "UTC", "Local"])
def test_time_zone_accepts_known(zone):
    assert checks.time_zone_error(zone) == ""


@pytest.mark.parametrize("zone", ["Mars/Olympus", "", "../etc/passwd", "/etc/localtime"])
def test_time_zone_rejects_unknown(zone):
    assert "was not found" in checks.time_zone_error(zone)
