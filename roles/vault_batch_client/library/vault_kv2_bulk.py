#!/usr/bin/python
"""Ansible module: write many KV version 2 secrets below one folder in one task."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: vault_kv2_bulk
short_description: Write many KV version 2 secrets below one folder in one task
description:
  - Reads the latest version of every entry below O(mount_point)/O(path),
    compares it with the desired data and writes only the entries that are
    missing or differ. Reads and writes run in O(workers) threads, so a
    thousand entries take one task instead of a thousand.
  - Each write is a check-and-set against the version that was read, so an
    entry changed by someone else during the run fails the task instead of
    being overwritten.
  - The diff names entries and keys but never shows values, because job
    configurations may carry secrets of their own.
options:
  mount_point:
    description: Path of the KV version 2 secrets engine.
    type: str
    default: kv
  path:
    description: Folder below the mount that contains the entries, for example C(jobs).
    type: str
    required: true
  entries:
    description: Entries as a mapping of name (may contain C(/)) to secret data.
    type: dict
    default: {}
  entries_dir:
    description:
      - Folder of C(*.json) files, searched recursively, each containing one
        entry's data as a JSON object. C(team/nightly.json) becomes the entry
        C(team/nightly).
      - Read on the host the module runs on. An entry of the same name in
        O(entries) wins.
    type: path
  validate_only:
    description:
      - Load and check O(entries) and every file in O(entries_dir), then
        return without contacting Vault. A file that is not valid JSON or
        contains no JSON object fails the task with its path.
    type: bool
    default: false
  workers:
    description: Number of threads that read and write entries.
    type: int
    default: 8
  url:
    description: Vault address.
    type: str
    required: true
  token:
    description: Token allowed to read and write the entries.
    type: str
    required: true
  namespace:
    description: Namespace of the mount; empty for the root namespace.
    type: str
    default: ""
  ca_cert:
    description: CA bundle that signs the Vault server certificate.
    type: path
  validate_certs:
    description: Whether to verify the Vault server certificate.
    type: bool
    default: true
  timeout:
    description: Seconds to wait for each Vault request.
    type: int
    default: 30
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
requirements:
  - hvac
notes:
  - Entries that exist in Vault but not in O(entries) or O(entries_dir) are left alone.
  - An entry whose latest version is deleted or destroyed is written again.
"""

EXAMPLES = r"""
- name: Seed job configurations from files and a variable
  vault_kv2_bulk:
    url: https://vault.example.org:8200
    token: "{{ vault_admin_token }}"
    namespace: admin/client_population/batch
    mount_point: kv
    path: jobs
    entries_dir: "{{ playbook_dir }}/files/jobs"
    entries:
      extra-report: {priority: low}
"""

RETURN = r"""
validated:
  description: Number of entries loaded and checked.
  returned: when O(validate_only) is true
  type: int
  sample: 4
created:
  description: Number of entries written for the first time.
  returned: success
  type: int
  sample: 3
updated:
  description: Number of entries that got a new version.
  returned: success
  type: int
  sample: 1
unchanged:
  description: Number of entries whose latest version already held the data.
  returned: success
  type: int
  sample: 996
created_names:
  description: Names of the created entries.
  returned: success
  type: list
  elements: str
updated_names:
  description: Names of the updated entries, each mapped to the keys that were added, removed or changed.
  returned: success
  type: dict
"""

import json
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.vault_batch_client_common import (
    build_client,
    connection_argument_spec,
    describe_vault_error,
    vault_errors,
)

try:
    import hvac.exceptions
except ImportError:
    pass  # build_client reports the missing library

MAX_REPORTED_ERRORS = 10


@dataclass
class Current:
    """Latest version of one entry as read from Vault: version 0 means it never existed."""

    version: int = 0
    data: dict[str, Any] | None = None


@dataclass
class Plan:
    """Entries to create, update or leave alone, with the changed keys of each update."""

    create: list[str] = field(default_factory=list)
    update: dict[str, list[str]] = field(default_factory=dict)
    unchanged: list[str] = field(default_factory=list)


def validate_entry_name(name: str) -> None:
    """Raise ValueError when `name` is not a clean relative secret path."""
    segments = name.split("/")
    if not name or any(segment in ("", ".", "..") for segment in segments):
        raise ValueError(
            f"invalid entry name {name!r}: use a relative path without empty, '.' or '..' segments"
        )
    if any(ord(char) < 32 for char in name):
        raise ValueError(f"invalid entry name {name!r}: control characters are not allowed")


def load_entries_dir(directory: str) -> dict[str, dict[str, Any]]:
    """Load every *.json file below `directory` as one entry named by its relative path."""
    if not os.path.isdir(directory):
        raise ValueError(f"entries_dir {directory} is not a directory")
    entries: dict[str, dict[str, Any]] = {}
    for root, dirs, files in os.walk(directory):
        dirs.sort()
        for file_name in sorted(files):
            if not file_name.endswith(".json"):
                continue
            file_path = os.path.join(root, file_name)
            relative = os.path.relpath(file_path, directory)[: -len(".json")]
            name = relative.replace(os.sep, "/")
            try:
                with open(file_path, encoding="utf-8") as handle:
                    data = json.load(handle)
            except (OSError, ValueError) as error:
                raise ValueError(f"cannot read {file_path}: {error}") from error
            if not isinstance(data, dict):
                raise ValueError(f"{file_path} must contain a JSON object, not {type(data).__name__}")
            entries[name] = data
    return entries


def changed_keys(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """Return the keys that were added, removed or given another value, sorted."""
    return sorted(
        key for key in before.keys() | after.keys() if before.get(key, object()) != after.get(key, object())
    )


def plan_changes(desired: dict[str, dict[str, Any]], current: dict[str, Current]) -> Plan:
    """Sort the desired entries into those to create, update or leave alone."""
    plan = Plan()
    for name in sorted(desired):
        have = current.get(name, Current())
        if have.version == 0:
            plan.create.append(name)
        elif have.data is None:
            plan.update[name] = sorted(desired[name])
        elif have.data != desired[name]:
            plan.update[name] = changed_keys(have.data, desired[name])
        else:
            plan.unchanged.append(name)
    return plan


def render_diff(
    plan: Plan, desired: dict[str, dict[str, Any]], current: dict[str, Current], prefix: str
) -> dict[str, str]:
    """Build a before/after text that names changed entries and keys but hides every value."""
    before: list[str] = []
    after: list[str] = []
    for name in plan.create:
        after.extend(f"{prefix}/{name}: {key}" for key in sorted(desired[name]))
    for name, keys in plan.update.items():
        version = current[name].version
        old = current[name].data or {}
        for key in keys:
            if key in old:
                before.append(f"{prefix}/{name}: {key} (value of version {version})")
            if key in desired[name]:
                after.append(f"{prefix}/{name}: {key} (new value)")
    return {
        "before": "".join(f"{line}\n" for line in sorted(before)),
        "after": "".join(f"{line}\n" for line in sorted(after)),
    }


class KvWorker:
    """Read and write entries with one hvac client per thread."""

    def __init__(self, module: AnsibleModule, mount_point: str, folder: str) -> None:
        self._module = module
        self._mount_point = mount_point
        self._folder = folder
        self._local = threading.local()

    def _client(self) -> Any:
        if not hasattr(self._local, "client"):
            self._local.client = build_client(self._module)
        return self._local.client

    def secret_path(self, name: str) -> str:
        return f"{self._folder}/{name}" if self._folder else name

    def read(self, name: str) -> Current:
        """Read the latest version of entry `name`."""
        kv = self._client().secrets.kv.v2
        try:
            response = kv.read_secret_version(
                path=self.secret_path(name),
                mount_point=self._mount_point,
                raise_on_deleted_version=False,
            )
        except hvac.exceptions.InvalidPath:
            return Current()
        body = response.get("data") or {}
        metadata = body.get("metadata") or {}
        return Current(version=int(metadata.get("version", 0)), data=body.get("data"))

    def write(self, name: str, data: dict[str, Any], cas: int) -> None:
        """Write `data` as a new version of `name` if its latest version is still `cas`."""
        self._client().secrets.kv.v2.create_or_update_secret(
            path=self.secret_path(name), secret=data, cas=cas, mount_point=self._mount_point
        )


def run_in_threads(
    worker_count: int, names: list[str], action: Any
) -> tuple[dict[str, Any], dict[str, Exception]]:
    """Call `action(name)` for every name in threads; return results and errors by name."""
    results: dict[str, Any] = {}
    errors: dict[str, Exception] = {}

    def call(name: str) -> None:
        try:
            results[name] = action(name)
        except vault_errors() as error:
            errors[name] = error

    with ThreadPoolExecutor(max_workers=max(1, worker_count)) as pool:
        list(pool.map(call, names))
    return results, errors


def run_module() -> None:
    module = AnsibleModule(
        argument_spec=connection_argument_spec(
            mount_point={"type": "str", "default": "kv"},
            path={"type": "str", "required": True},
            entries={"type": "dict", "default": {}},
            entries_dir={"type": "path"},
            workers={"type": "int", "default": 8},
            validate_only={"type": "bool", "default": False},
        ),
        supports_check_mode=True,
    )
    params = module.params
    mount_point = params["mount_point"].strip("/")
    folder = params["path"].strip("/")
    prefix = f"{mount_point}/{folder}"

    desired: dict[str, dict[str, Any]] = {}
    try:
        if params["entries_dir"]:
            desired.update(load_entries_dir(params["entries_dir"]))
        for name, data in params["entries"].items():
            if not isinstance(data, dict):
                raise ValueError(f"entry {name!r} must be a mapping, not {type(data).__name__}")
            desired[name] = data
        for name in desired:
            validate_entry_name(name)
    except ValueError as error:
        module.fail_json(msg=str(error))

    if params["validate_only"]:
        module.exit_json(changed=False, validated=len(desired), msg=f"{len(desired)} entries are valid")

    worker = KvWorker(module, mount_point, folder)
    current, read_errors = run_in_threads(params["workers"], sorted(desired), worker.read)
    if read_errors:
        fail_with_errors(module, "read", read_errors, prefix, written=[])

    plan = plan_changes(desired, current)
    to_write = plan.create + list(plan.update)
    if to_write and not module.check_mode:
        _, write_errors = run_in_threads(
            params["workers"],
            to_write,
            lambda name: worker.write(name, desired[name], current[name].version),
        )
        if write_errors:
            written = sorted(set(to_write) - set(write_errors))
            fail_with_errors(module, "write", write_errors, prefix, written=written)

    module.exit_json(
        changed=bool(to_write),
        created=len(plan.create),
        updated=len(plan.update),
        unchanged=len(plan.unchanged),
        created_names=plan.create,
        updated_names=plan.update,
        diff=render_diff(plan, desired, current, prefix),
    )


def fail_with_errors(
    module: AnsibleModule,
    action: str,
    errors: dict[str, Exception],
    prefix: str,
    written: list[str],
) -> None:
    """Fail the task with the first errors by entry path and the entries already written."""
    names = sorted(errors)
    messages = [
        describe_vault_error(errors[name], action, f"{prefix}/{name}") for name in names[:MAX_REPORTED_ERRORS]
    ]
    more = len(names) - len(messages)
    summary = f"{len(names)} of the entries failed to {action}"
    if more:
        summary += f" (first {len(messages)} shown)"
    module.fail_json(msg=f"{summary}: " + "; ".join(messages), written_names=written)


def main() -> None:
    run_module()


if __name__ == "__main__":
    main()
