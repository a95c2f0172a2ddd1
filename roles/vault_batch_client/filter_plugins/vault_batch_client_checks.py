"""Ansible filters that check Nomad periodic settings on the controller before anything changes."""

from __future__ import annotations

import re
import zoneinfo

# Nomad parses periodic crons with github.com/hashicorp/cronexpr: 5 fields
# (minute hour day-of-month month day-of-week), 6 fields (a year added at
# the end), 7 fields (a second added at the start), or one of these macros.
# https://developer.hashicorp.com/nomad/docs/job-specification/periodic
CRON_MACROS = frozenset({"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@hourly"})

MONTH_NAMES = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
]  # fmt: skip
MONTH_FULL_NAMES = [
    "january", "february", "march", "april", "may", "june",
    "july", "august", "september", "october", "november", "december",
]  # fmt: skip
DAY_NAMES = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]
DAY_FULL_NAMES = ["sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday"]

# Field name, minimum, maximum and the names that stand for numbers.
SECOND = ("second", 0, 59, {})
MINUTE = ("minute", 0, 59, {})
HOUR = ("hour", 0, 23, {})
DAY_OF_MONTH = ("day-of-month", 1, 31, {})
MONTH = (
    "month",
    1,
    12,
    {name: index + 1 for names in (MONTH_NAMES, MONTH_FULL_NAMES) for index, name in enumerate(names)},
)
# 7 is Sunday as well as 0.
DAY_OF_WEEK = (
    "day-of-week",
    0,
    7,
    {name: index for names in (DAY_NAMES, DAY_FULL_NAMES) for index, name in enumerate(names)},
)
YEAR = ("year", 1970, 2099, {})

LAYOUTS = {
    5: (MINUTE, HOUR, DAY_OF_MONTH, MONTH, DAY_OF_WEEK),
    6: (MINUTE, HOUR, DAY_OF_MONTH, MONTH, DAY_OF_WEEK, YEAR),
    7: (SECOND, MINUTE, HOUR, DAY_OF_MONTH, MONTH, DAY_OF_WEEK, YEAR),
}

# cronexpr's special forms: L (last day), LW (last weekday) and 15W (weekday
# nearest the 15th) in day-of-month, 5L (last Friday) and 5#3 (third Friday)
# in day-of-week.
DAY_OF_MONTH_SPECIAL = re.compile(r"^(l|lw|(?P<day>\d{1,2})w)$")
DAY_OF_WEEK_SPECIAL = re.compile(r"^(?P<day>[a-z0-9]+)(l|#[1-5])$")


def _value(token: str, field: tuple) -> int:
    """Convert one number or name of `field` to its number; raise ValueError when out of range."""
    name, minimum, maximum, names = field
    if token in names:
        return names[token]
    if not token.isdigit():
        raise ValueError(f"{name} field: '{token}' is not a number or a known name")
    number = int(token)
    if not minimum <= number <= maximum:
        raise ValueError(f"{name} field: {number} is outside {minimum}-{maximum}")
    return number


def _check_entry(entry: str, field: tuple) -> None:
    """Raise ValueError unless `entry` is *, ?, a value, a range, or either with a /step."""
    name = field[0]
    if field is DAY_OF_MONTH and (match := DAY_OF_MONTH_SPECIAL.match(entry)):
        if match["day"]:
            _value(match["day"], field)
        return
    if field is DAY_OF_WEEK and (match := DAY_OF_WEEK_SPECIAL.match(entry)):
        _value(match["day"], field)
        return

    base, slash, step = entry.partition("/")
    if slash and not (step.isdigit() and int(step) > 0):
        raise ValueError(f"{name} field: step '{step}' in '{entry}' must be a positive number")
    if base in ("*", "?"):
        if base == "?" and slash:
            raise ValueError(f"{name} field: '?' takes no step in '{entry}'")
        return
    first, dash, last = base.partition("-")
    low = _value(first, field)
    if dash:
        high = _value(last, field)
        if low > high:
            raise ValueError(f"{name} field: range '{base}' runs backwards")


def cron_errors(crons: list[str] | str) -> list[str]:
    """Return one message per invalid cron expression in `crons`, or an empty list."""
    if isinstance(crons, str):
        crons = [crons]
    errors = []
    for cron in crons:
        text = str(cron).strip()
        if text in CRON_MACROS:
            continue
        fields = text.lower().split()
        layout = LAYOUTS.get(len(fields))
        if layout is None:
            errors.append(
                f"'{cron}': expected 5 fields (minute hour day-of-month month day-of-week), "
                f"6 with a year or 7 with a second and a year, or one of {', '.join(sorted(CRON_MACROS))}; "
                f"got {len(fields)} fields"
            )
            continue
        for value, field in zip(fields, layout, strict=True):
            try:
                for entry in value.split(","):
                    _check_entry(entry, field)
            except ValueError as error:
                errors.append(f"'{cron}': {error}")
                break
    return errors


def time_zone_error(name: str) -> str:
    """Return why `name` is not a time zone that Nomad can load, or an empty string.

    Nomad loads the zone with Go's time.LoadLocation on its servers. The
    check here uses Python's zoneinfo with the controller's time zone
    database instead, so it needs no Nomad call. NOTE: a zone that only one
    of the two databases has (a very new or removed name) is judged by the
    controller's.
    """
    text = str(name)
    if text in ("UTC", "Local"):  # Go's time.LoadLocation accepts these without a database
        return ""
    try:
        zoneinfo.ZoneInfo(text)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as error:
        return f"time zone '{text}' was not found in the time zone database ({type(error).__name__})"
    return ""


class FilterModule:
    """Filters of the vault_batch_client role."""

    def filters(self) -> dict:
        return {
            "vault_batch_client_cron_errors": cron_errors,
            "vault_batch_client_time_zone_error": time_zone_error,
        }
