"""Pure logic of the role's Vault modules: parsing, comparing, planning and diffs."""

from __future__ import annotations

import json
from pathlib import Path

import hvac.exceptions
import pytest
import requests.exceptions
import vault_acl_policy
import vault_kv2_bulk
import vault_mount
import vault_namespace
import vault_userpass_user
from ansible.module_utils.vault_batch_client_common import describe_vault_error
from vault_kv2_bulk import Current


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("0", 0), ("90", 90), ("90s", 90), ("15m", 900), ("1h", 3600), ("1h30m", 5400), ("2h0m5s", 7205)],
)
def test_parse_duration_valid(text: str, seconds: int) -> None:
    assert vault_userpass_user.parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "1d", "-5", "1.5h", "m", "1h 30m", "forever"])
def test_parse_duration_invalid(text: str) -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        vault_userpass_user.parse_duration(text)


def test_compare_user_new_user_changes_all() -> None:
    desired = {"token_policies": ["p"], "token_ttl": 3600, "token_max_ttl": 14400}
    assert vault_userpass_user.compare_user(None, desired) == ["token_max_ttl", "token_policies", "token_ttl"]


def test_compare_user_ignores_policy_order() -> None:
    current = {"token_policies": ["b", "a"], "token_ttl": 60, "token_max_ttl": 120, "other": 1}
    desired = {"token_policies": ["a", "b"], "token_ttl": 60, "token_max_ttl": 120}
    assert vault_userpass_user.compare_user(current, desired) == []


def test_compare_user_reports_ttl_change() -> None:
    current = {"token_policies": ["a"], "token_ttl": 60, "token_max_ttl": 120}
    desired = {"token_policies": ["a"], "token_ttl": 3600, "token_max_ttl": 120}
    assert vault_userpass_user.compare_user(current, desired) == ["token_ttl"]


def test_split_namespace_path_strips_slashes() -> None:
    assert vault_namespace.split_namespace_path("/client_population/batch/") == [
        "client_population",
        "batch",
    ]


@pytest.mark.parametrize("path", ["", "a//b", "a/b c", "a/../b", "a/b.c"])
def test_split_namespace_path_rejects(path: str) -> None:
    with pytest.raises(ValueError, match="invalid namespace segment"):
        vault_namespace.split_namespace_path(path)


def test_join_namespace_from_root() -> None:
    assert vault_namespace.join_namespace("", "admin") == "admin"
    assert vault_namespace.join_namespace("admin/", "batch") == "admin/batch"


def test_find_conflict_same_kv_version() -> None:
    existing = {"type": "kv", "options": {"version": "2"}}
    assert vault_mount.find_conflict(existing, "kv", {"version": "2"}) is None


def test_find_conflict_kv_version_one() -> None:
    existing = {"type": "kv", "options": None}
    assert vault_mount.find_conflict(existing, "kv", {"version": "2"}) == "KV version 1, expected 2"


def test_find_conflict_other_type() -> None:
    reason = vault_mount.find_conflict({"type": "ldap"}, "userpass", {})
    assert reason == "type 'ldap', expected 'userpass'"


def test_normalize_policy_ignores_layout() -> None:
    left = 'path "a" {\r\n  capabilities = ["read"]   \r\n}\r\n\r\n'
    right = '\npath "a" {\n  capabilities = ["read"]\n}'
    assert vault_acl_policy.normalize_policy(left) == vault_acl_policy.normalize_policy(right)


def test_normalize_policy_keeps_content() -> None:
    assert vault_acl_policy.normalize_policy('path "a" {}') != vault_acl_policy.normalize_policy(
        'path "b" {}'
    )


@pytest.mark.parametrize("name", ["", "/a", "a/", "a//b", "../a", "a/./b", "a/..", "a\nb"])
def test_validate_entry_name_rejects(name: str) -> None:
    with pytest.raises(ValueError, match="invalid entry name"):
        vault_kv2_bulk.validate_entry_name(name)


@pytest.mark.parametrize("name", ["nightly", "team/nightly", "a.b-c_d", "x/y/z"])
def test_validate_entry_name_accepts(name: str) -> None:
    vault_kv2_bulk.validate_entry_name(name)


def test_load_entries_dir_names_nested_files(tmp_path: Path) -> None:
    (tmp_path / "team").mkdir()
    (tmp_path / "a.json").write_text(json.dumps({"priority": "high"}))
    (tmp_path / "team" / "nightly.json").write_text(json.dumps({"priority": "low"}))
    (tmp_path / "notes.txt").write_text("not a job")
    entries = vault_kv2_bulk.load_entries_dir(str(tmp_path))
    assert entries == {"a": {"priority": "high"}, "team/nightly": {"priority": "low"}}


def test_load_entries_dir_rejects_non_object(tmp_path: Path) -> None:
    (tmp_path / "list.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match="must contain a JSON object"):
        vault_kv2_bulk.load_entries_dir(str(tmp_path))


def test_load_entries_dir_rejects_bad_json(tmp_path: Path) -> None:
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(ValueError, match=r"cannot read .*broken\.json"):
        vault_kv2_bulk.load_entries_dir(str(tmp_path))


def test_load_entries_dir_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="is not a directory"):
        vault_kv2_bulk.load_entries_dir(str(tmp_path / "absent"))


def test_changed_keys_covers_add_remove_change() -> None:
    before = {"keep": 1, "change": 1, "remove": 1}
    after = {"keep": 1, "change": 2, "add": None}
    assert vault_kv2_bulk.changed_keys(before, after) == ["add", "change", "remove"]


def test_plan_changes_sorts_entries() -> None:
    desired = {
        "new": {"priority": "high"},
        "same": {"priority": "low"},
        "changed": {"priority": "low", "api_token": "t2"},
        "deleted": {"priority": "medium"},
    }
    current = {
        "same": Current(version=1, data={"priority": "low"}),
        "changed": Current(version=3, data={"priority": "low", "api_token": "t1"}),
        "deleted": Current(version=2, data=None),
    }
    plan = vault_kv2_bulk.plan_changes(desired, current)
    assert plan.create == ["new"]
    assert plan.update == {"changed": ["api_token"], "deleted": ["priority"]}
    assert plan.unchanged == ["same"]


def test_render_diff_hides_values() -> None:
    desired = {"new": {"password": "n3w-s3cret"}, "changed": {"api_token": "t2-s3cret", "priority": "low"}}
    current = {"changed": Current(version=3, data={"api_token": "t1-s3cret", "priority": "low"})}
    plan = vault_kv2_bulk.plan_changes(desired, current)
    diff = vault_kv2_bulk.render_diff(plan, desired, current, "kv/jobs")
    text = diff["before"] + diff["after"]
    assert "s3cret" not in text
    assert diff["before"] == "kv/jobs/changed: api_token (value of version 3)\n"
    assert diff["after"] == "kv/jobs/changed: api_token (new value)\nkv/jobs/new: password\n"


def test_render_diff_empty_when_unchanged() -> None:
    desired = {"same": {"priority": "low"}}
    current = {"same": Current(version=1, data={"priority": "low"})}
    plan = vault_kv2_bulk.plan_changes(desired, current)
    assert vault_kv2_bulk.render_diff(plan, desired, current, "kv/jobs") == {"before": "", "after": ""}


def test_describe_vault_error_names_path_and_hint() -> None:
    message = describe_vault_error(hvac.exceptions.Forbidden("permission denied"), "read", "kv/data/jobs/a")
    assert message.startswith("failed to read kv/data/jobs/a: permission denied")
    assert "lacks a policy" in message


def test_describe_vault_error_network_failure() -> None:
    message = describe_vault_error(
        requests.exceptions.ConnectionError("refused"), "list mounts for", "sys/mounts/kv"
    )
    assert "check the URL and the network" in message
