#!/usr/bin/python
"""Ansible module: create a chain of nested Vault namespaces."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: vault_namespace
short_description: Create a chain of nested Vault namespaces
description:
  - Creates each namespace of O(path) that does not exist yet, starting in
    O(namespace) (the root namespace when empty).
  - Never deletes a namespace.
options:
  path:
    description: Namespace chain below O(namespace), segments separated by C(/).
    type: str
    required: true
  url:
    description: Vault address, for example C(https://vault.example.org:8200).
    type: str
    required: true
  token:
    description: Token allowed to create namespaces in O(namespace).
    type: str
    required: true
  namespace:
    description: Existing namespace in which the chain starts; empty for the root namespace.
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
  - Namespaces need Vault Enterprise, HCP Vault or OpenBao.
"""

EXAMPLES = r"""
- name: Create admin/client_population/batch below the admin namespace
  vault_namespace:
    url: https://vault.example.org:8200
    token: "{{ vault_admin_token }}"
    namespace: admin
    path: client_population/batch
"""

RETURN = r"""
namespace:
  description: Full path of the last namespace of the chain.
  returned: success
  type: str
  sample: admin/client_population/batch
created:
  description: Full paths of the namespaces that were created (or would be, in check mode).
  returned: success
  type: list
  elements: str
  sample: [admin/client_population, admin/client_population/batch]
"""

import re
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

_SEGMENT = re.compile(r"^[A-Za-z0-9_-]+$")


def split_namespace_path(path: str) -> list[str]:
    """Split "a/b/c" into its segments and raise ValueError on an invalid segment."""
    segments = path.strip("/").split("/")
    for segment in segments:
        if not _SEGMENT.match(segment):
            raise ValueError(
                f"invalid namespace segment {segment!r} in {path!r}: use letters, digits, '_' and '-'"
            )
    return segments


def join_namespace(parent: str, name: str) -> str:
    """Return the full path of namespace `name` inside `parent`."""
    parent = parent.strip("/")
    return f"{parent}/{name}" if parent else name


def namespace_exists(client: Any, name: str) -> bool:
    """Return whether namespace `name` exists inside the client's namespace."""
    try:
        client.adapter.get(f"/v1/sys/namespaces/{name}")
    except hvac.exceptions.InvalidPath:
        return False
    return True


def run_module() -> None:
    module = AnsibleModule(
        argument_spec=connection_argument_spec(path={"type": "str", "required": True}),
        supports_check_mode=True,
    )
    start = module.params["namespace"].strip("/")
    try:
        segments = split_namespace_path(module.params["path"])
    except ValueError as error:
        module.fail_json(msg=str(error))

    created: list[str] = []
    existing: list[str] = []
    parent = start
    for name in segments:
        full_path = join_namespace(parent, name)
        # Once one namespace is missing, everything below it is missing too.
        if not created:
            client = build_client(module, namespace=parent)
            try:
                present = namespace_exists(client, name)
            except vault_errors() as error:
                module.fail_json(msg=describe_vault_error(error, "read namespace", full_path))
        else:
            present = False

        if present:
            existing.append(full_path)
        else:
            if not module.check_mode:
                try:
                    client.sys.create_namespace(path=name)
                except vault_errors() as error:
                    module.fail_json(msg=describe_vault_error(error, "create namespace", full_path))
                client = build_client(module, namespace=full_path)
            created.append(full_path)
        parent = full_path

    diff = {
        "before": "".join(f"{path}\n" for path in existing),
        "after": "".join(f"{path}\n" for path in existing + created),
    }
    module.exit_json(changed=bool(created), namespace=parent, created=created, diff=diff)


def main() -> None:
    run_module()


if __name__ == "__main__":
    main()
