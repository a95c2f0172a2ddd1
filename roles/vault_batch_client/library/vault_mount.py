#!/usr/bin/python
"""Ansible module: enable a Vault auth method or secrets engine at a path."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: vault_mount
short_description: Enable a Vault auth method or secrets engine at a path
description:
  - Enables an auth method (O(kind=auth)) or a secrets engine (O(kind=secret))
    at O(path) unless one of the same type is mounted there already.
  - Fails, without changing anything, when the path has a mount of another
    type or, for C(kv), another KV version.
options:
  kind:
    description: Whether O(path) is below C(sys/auth) or C(sys/mounts).
    type: str
    choices: [auth, secret]
    required: true
  path:
    description: Mount path without slashes, for example C(userpass) or C(kv).
    type: str
    required: true
  type:
    description: Auth method or secrets engine type, for example C(userpass) or C(kv).
    type: str
    required: true
  description:
    description: Human-readable description stored with a new mount.
    type: str
    default: ""
  options:
    description: Mount options of a new mount, for example C({version: "2"}) for KV v2.
    type: dict
    default: {}
  url:
    description: Vault address.
    type: str
    required: true
  token:
    description: Token allowed to read and write C(sys/auth) or C(sys/mounts).
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
  - The description and options of an existing mount are left as they are.
"""

EXAMPLES = r"""
- name: Enable KV version 2 at kv/
  vault_mount:
    url: https://vault.example.org:8200
    token: "{{ vault_admin_token }}"
    namespace: admin/client_population/batch
    kind: secret
    path: kv
    type: kv
    options:
      version: "2"
"""

RETURN = r"""
mount:
  description: The mount as Vault lists it after the run; empty in check mode for a new mount.
  returned: success
  type: dict
  sample: {type: kv, options: {version: "2"}}
"""

from typing import Any

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.vault_batch_client_common import (
    build_client,
    connection_argument_spec,
    describe_vault_error,
    vault_errors,
)


def find_conflict(existing: dict[str, Any], mount_type: str, options: dict[str, Any]) -> str | None:
    """Return why an existing mount cannot stand in for the requested one, or None if it can."""
    if existing.get("type") != mount_type:
        return f"type {existing.get('type')!r}, expected {mount_type!r}"
    expected_version = str(options.get("version", "")) if mount_type == "kv" else ""
    if expected_version:
        current_version = str((existing.get("options") or {}).get("version", "1"))
        if current_version != expected_version:
            return f"KV version {current_version}, expected {expected_version}"
    return None


def list_mounts(client: Any, kind: str) -> dict[str, Any]:
    """Return the mounts of `kind` keyed by path with a trailing slash."""
    if kind == "auth":
        response = client.sys.list_auth_methods()
    else:
        response = client.sys.list_mounted_secrets_engines()
    return response.get("data", response)


def run_module() -> None:
    module = AnsibleModule(
        argument_spec=connection_argument_spec(
            kind={"type": "str", "choices": ["auth", "secret"], "required": True},
            path={"type": "str", "required": True},
            type={"type": "str", "required": True},
            description={"type": "str", "default": ""},
            options={"type": "dict", "default": {}},
        ),
        supports_check_mode=True,
    )
    params = module.params
    kind = params["kind"]
    path = params["path"].strip("/")
    where = f"{'sys/auth' if kind == 'auth' else 'sys/mounts'}/{path}"
    if params["namespace"]:
        where = f"{where} in namespace {params['namespace']}"
    client = build_client(module)

    try:
        existing = list_mounts(client, kind).get(f"{path}/")
    except vault_errors() as error:
        module.fail_json(msg=describe_vault_error(error, "list mounts for", where))

    if existing is not None:
        conflict = find_conflict(existing, params["type"], params["options"])
        if conflict:
            module.fail_json(
                msg=f"{where} is already mounted with {conflict}: choose another path or "
                "move the existing mount"
            )
        module.exit_json(changed=False, mount=existing)

    if not module.check_mode:
        try:
            if kind == "auth":
                client.sys.enable_auth_method(
                    method_type=params["type"], path=path, description=params["description"]
                )
            else:
                client.sys.enable_secrets_engine(
                    backend_type=params["type"],
                    path=path,
                    description=params["description"],
                    options=params["options"] or None,
                )
            existing = list_mounts(client, kind).get(f"{path}/")
        except vault_errors() as error:
            module.fail_json(msg=describe_vault_error(error, "enable", where))

    diff = {"before": "", "after": f"{path}/ ({params['type']})\n"}
    module.exit_json(changed=True, mount=existing or {}, diff=diff)


def main() -> None:
    run_module()


if __name__ == "__main__":
    main()
