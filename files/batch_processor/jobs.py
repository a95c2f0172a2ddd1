"""Job configurations: validation against the schema and safe result file names.

The schema lives in job_config.schema.json next to this module. The checks
below implement it with the standard library only, because the processor
ships to the node with nothing but hvac. A unit test keeps both in step.
"""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass
from typing import Any

PRIORITY_SECONDS = {"high": 1.0, "medium": 2.0, "low": 3.0}
PRIORITY_RANK = {"high": 0, "medium": 1, "low": 2}
DEFAULT_PRIORITY = "medium"
MAX_DURATION_SECONDS = 86400.0

# Characters kept as they are in result file names. Everything else is
# replaced, and a name that needed any change gets a hash suffix after "~",
# a character that never survives unchanged, so two job names can never map
# to the same file.
_SAFE_CHARS = re.compile(r"[^A-Za-z0-9._-]")
_MAX_SAFE_LENGTH = 100
_HASH_LENGTH = 16
_VALUE_PREVIEW_LENGTH = 40


class InvalidJobConfig(ValueError):
    """A job configuration that breaks the schema; the message names the field."""


@dataclass(frozen=True)
class JobConfig:
    """The validated fields of one job configuration."""

    priority: str
    enabled: bool
    duration_seconds: float
    simulate_failure: bool

    @property
    def rank(self) -> int:
        return PRIORITY_RANK[self.priority]


def _describe(value: Any) -> str:
    """Describe a wrong value by type, with a short preview for scalars."""
    type_name = {
        bool: "boolean",
        int: "integer",
        float: "number",
        str: "string",
        list: "array",
        dict: "object",
        type(None): "null",
    }.get(type(value), type(value).__name__)
    if value is None or isinstance(value, (list, dict)):
        return type_name
    if isinstance(value, int) and value.bit_length() > 64:
        return f"{type_name} with {len(str(abs(value))) if value.bit_length() < 10000 else 'thousands of'} digits"
    preview = repr(value)
    if len(preview) > _VALUE_PREVIEW_LENGTH:
        preview = preview[: _VALUE_PREVIEW_LENGTH - 3] + "..."
    return f"{type_name} {preview}"


def _boolean(data: dict[str, Any], key: str, default: bool) -> bool:
    value = data.get(key, default)
    if not isinstance(value, bool):
        raise InvalidJobConfig(
            f"{key} must be a boolean (true or false), got {_describe(value)}; "
            "write the configuration as JSON so types are kept"
        )
    return value


def validate_job_config(data: Any) -> JobConfig:
    """Check `data` against the job schema and return its fields with defaults.

    Raises InvalidJobConfig naming the first field that is wrong. Keys outside
    the schema are allowed and ignored; their values never reach a message.
    """
    if not isinstance(data, dict):
        raise InvalidJobConfig(f"configuration must be a JSON object, got {_describe(data)}")

    priority = data.get("priority", DEFAULT_PRIORITY)
    if not isinstance(priority, str) or priority not in PRIORITY_SECONDS:
        raise InvalidJobConfig(f"priority must be one of high, medium, low, got {_describe(priority)}")

    enabled = _boolean(data, "enabled", True)
    simulate_failure = _boolean(data, "simulate_failure", False)

    if "duration_seconds" in data:
        duration = data["duration_seconds"]
        if isinstance(duration, bool) or not isinstance(duration, (int, float)):
            raise InvalidJobConfig(f"duration_seconds must be a number of seconds, got {_describe(duration)}")
        # Integers are compared as they are: a 400-digit one would overflow float().
        in_range = 0 <= duration <= MAX_DURATION_SECONDS
        if not in_range or (isinstance(duration, float) and not math.isfinite(duration)):
            raise InvalidJobConfig(
                f"duration_seconds must be between 0 and {MAX_DURATION_SECONDS:g}, got {_describe(duration)}"
            )
        duration_seconds = float(duration)
    else:
        duration_seconds = PRIORITY_SECONDS[priority]

    return JobConfig(
        priority=priority,
        enabled=enabled,
        duration_seconds=duration_seconds,
        simulate_failure=simulate_failure,
    )


def safe_file_stem(job_name: str) -> str:
    """Map a job name to a file name stem with no path separators or leading dots.

    Names made only of letters, digits, ".", "_" and "-" (and not starting
    with a dot) are kept as they are. Any other name is reduced to those
    characters, cut to a bounded length and given "~" plus a hash of the
    original name, so distinct job names always give distinct stems.
    """
    if (
        job_name
        and not _SAFE_CHARS.search(job_name)
        and not job_name.startswith(".")
        and len(job_name) <= _MAX_SAFE_LENGTH
    ):
        return job_name
    readable = _SAFE_CHARS.sub("_", job_name).lstrip(".")[:_MAX_SAFE_LENGTH] or "job"
    digest = hashlib.sha256(job_name.encode("utf-8", "surrogatepass")).hexdigest()
    return f"{readable}~{digest[:_HASH_LENGTH]}"
