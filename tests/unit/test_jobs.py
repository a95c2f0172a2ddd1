"""Job configuration schema and result file names."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from batch_processor import jobs
from batch_processor.jobs import InvalidJobConfig, safe_file_stem, validate_job_config

SCHEMA = json.loads((Path(jobs.__file__).parent / "job_config.schema.json").read_text())

VALID = [
    {},
    {"priority": "high"},
    {"priority": "low", "enabled": False},
    {"priority": "medium", "duration_seconds": 0},
    {"duration_seconds": 2.5, "simulate_failure": True},
    {"duration_seconds": 86400},
    {"priority": "high", "api_key": "kept out of results", "nested": {"a": [1, 2]}},
]

INVALID = [
    ("not-an-object", "must be a JSON object"),
    (["priority", "high"], "must be a JSON object"),
    (None, "must be a JSON object"),
    ({"priority": "urgent"}, "priority must be one of high, medium, low"),
    ({"priority": "HIGH"}, "priority must be one of"),
    ({"priority": 1}, "priority must be one of"),
    ({"priority": None}, "priority must be one of"),
    ({"enabled": "false"}, "enabled must be a boolean"),
    ({"enabled": 0}, "enabled must be a boolean"),
    ({"simulate_failure": "yes"}, "simulate_failure must be a boolean"),
    ({"duration_seconds": -5}, "duration_seconds must be between 0 and 86400"),
    ({"duration_seconds": 86401}, "duration_seconds must be between"),
    ({"duration_seconds": "10"}, "duration_seconds must be a number"),
    ({"duration_seconds": True}, "duration_seconds must be a number"),
    ({"duration_seconds": None}, "duration_seconds must be a number"),
]


@pytest.mark.parametrize("data", VALID)
def test_valid_config_accepted(data: dict) -> None:
    config = validate_job_config(data)
    assert config.priority == data.get("priority", "medium")
    assert config.enabled is data.get("enabled", True)
    assert config.simulate_failure is data.get("simulate_failure", False)


@pytest.mark.parametrize(("data", "message"), INVALID)
def test_invalid_config_names_field(data: object, message: str) -> None:
    with pytest.raises(InvalidJobConfig, match=message):
        validate_job_config(data)


@pytest.mark.parametrize("data", VALID + [case for case, _ in INVALID])
def test_validator_agrees_with_schema_file(data: object) -> None:
    schema_ok = jsonschema.Draft202012Validator(SCHEMA).is_valid(data)
    try:
        validate_job_config(data)
        code_ok = True
    except InvalidJobConfig:
        code_ok = False
    assert code_ok == schema_ok


def test_duration_defaults_by_priority() -> None:
    assert validate_job_config({"priority": "high"}).duration_seconds == 1.0
    assert validate_job_config({"priority": "medium"}).duration_seconds == 2.0
    assert validate_job_config({"priority": "low"}).duration_seconds == 3.0
    assert validate_job_config({"priority": "low", "duration_seconds": 0.5}).duration_seconds == 0.5


def test_error_never_quotes_extra_keys() -> None:
    with pytest.raises(InvalidJobConfig) as caught:
        validate_job_config({"priority": "urgent", "password": "hunter2-extra"})
    assert "hunter2-extra" not in str(caught.value)


def test_error_preview_is_bounded() -> None:
    with pytest.raises(InvalidJobConfig) as caught:
        validate_job_config({"priority": "x" * 1_000_000})
    assert len(str(caught.value)) < 200


HOSTILE_NAMES = [
    "...",
    "..",
    ".",
    "..x",
    ".hidden",
    "a\\b",
    "what?",
    "tag#1",
    "a%2Fb",
    "with space",
    "ünïcødé-名前",
    "x" * 250,
    "team/nightly",
    "../../etc/passwd",
    "",
    "a_b",
    "a/b",
    "a?b",
    "nul\x00byte",
]


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_safe_stem_is_one_plain_file_name(name: str) -> None:
    stem = safe_file_stem(name)
    assert stem
    assert "/" not in stem
    assert "\\" not in stem
    assert "\x00" not in stem
    assert not stem.startswith(".")
    assert len(stem) <= 120
    assert stem.isascii()


def test_safe_stem_keeps_plain_names() -> None:
    assert safe_file_stem("nightly-report_v2.1") == "nightly-report_v2.1"


def test_safe_stems_never_collide() -> None:
    names = [*HOSTILE_NAMES, "a_b~0000", "x" * 251, "x" * 100, "x" * 101]
    stems = [safe_file_stem(name) for name in names]
    assert len(set(stems)) == len(names)


def test_changed_name_cannot_equal_plain_name() -> None:
    # "a/b" maps to "a_b~<hash>"; the plain name "a_b" keeps its own stem.
    assert safe_file_stem("a/b") != safe_file_stem("a_b")
    assert safe_file_stem("a/b").startswith("a_b~")
