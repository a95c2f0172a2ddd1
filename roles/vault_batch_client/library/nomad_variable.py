#!/usr/bin/python
"""Ansible module: write secret items into a Nomad Variable with check-and-set."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: nomad_variable
short_description: Write secret items into a Nomad Variable
description:
  - Reads the variable at O(path), compares O(items) with its items and
    writes only when one differs, with the variable's modify index as
    C(cas), so a concurrent writer makes the module fail instead of being
    overwritten.
  - Items of the variable that O(items) does not name are kept.
  - Values are never returned or shown in the diff: the diff names each
    item and marks whether its value changes.
options:
  path:
    description: Variable path, such as C(nomad/jobs/<job id>).
    type: str
    required: true
  items:
    description: Item names and their string values.
    type: dict
    required: true
  addr:
    description: Nomad HTTP API address, for example C(https://127.0.0.1:4646).
    type: str
    required: true
  token:
    description: Nomad ACL token, sent in the C(X-Nomad-Token) header; empty when ACLs are off.
    type: str
    default: ""
  namespace:
    description: Nomad namespace of the variable.
    type: str
    default: default
  ca_cert:
    description: CA bundle that signs the Nomad server certificate.
    type: path
  client_cert:
    description: Client certificate for Nomad's mutual TLS.
    type: path
  client_key:
    description: Private key of O(client_cert).
    type: path
  validate_certs:
    description: Whether to verify the Nomad server certificate.
    type: bool
    default: true
  timeout:
    description: Seconds to wait for each Nomad response.
    type: int
    default: 30
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
notes:
  - "ACL capabilities: C(variables) read and write on O(path) in the namespace."
"""

EXAMPLES = r"""
- name: Store the processor password for the job's template
  nomad_variable:
    addr: http://127.0.0.1:4646
    path: nomad/jobs/vault-batch-processor
    items:
      vault_password: "{{ vault_batch_client_processor_password }}"
  no_log: true
"""

RETURN = r"""
path:
  description: Variable path.
  returned: success
  type: str
written_items:
  description: Names of the items that were written (or would be, in check mode); never their values.
  returned: success
  type: list
  elements: str
modify_index:
  description: Modify index of the variable after the module ran; 0 for a variable check mode would create.
  returned: success
  type: int
"""


from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.vault_batch_client_nomad import (
    NomadClient,
    NomadError,
    connection_argument_spec,
)


def variable_url(path: str) -> str:
    # https://developer.hashicorp.com/nomad/api-docs/variables/variables
    # The path keeps its slashes: they are part of the variable's name.
    return f"/v1/var/{path}"


def describe_items(current: list[str], desired: list[str], changed: list[str]) -> tuple[str, str]:
    """Return diff texts that name each item and mark changed values, without the values."""
    before = "".join(f"{name}: (hidden{', value changes' if name in changed else ''})\n" for name in current)
    after = "".join(f"{name}: (hidden{', new value' if name in changed else ''})\n" for name in desired)
    return before, after


def run_module() -> None:
    module = AnsibleModule(
        argument_spec=connection_argument_spec(
            path={"type": "str", "required": True},
            items={"type": "dict", "required": True, "no_log": True},
        ),
        supports_check_mode=True,
    )
    client = NomadClient(module.params)
    path = module.params["path"].strip("/")
    desired = {str(key): str(value) for key, value in module.params["items"].items()}
    if not desired:
        module.fail_json(msg=f"items for variable {path} is empty: give at least one item")

    try:
        current = client.get(variable_url(path))
    except NomadError as error:
        if error.status != 404:
            module.fail_json(msg=error.describe(f"read variable {path}"), status=error.status)
        current = None

    current_items: dict[str, str] = (current or {}).get("Items") or {}
    written_items = sorted(name for name, value in desired.items() if current_items.get(name) != value)
    before, after = describe_items(
        sorted(current_items), sorted(set(current_items) | set(desired)), written_items
    )
    modify_index = int((current or {}).get("ModifyIndex") or 0)

    if written_items and not module.check_mode:
        # cas=0 creates only when the variable does not exist; otherwise it must
        # still be at the index that was read.
        body = {"Namespace": client.namespace, "Path": path, "Items": {**current_items, **desired}}
        try:
            written = client.request("PUT", variable_url(path), body, {"cas": modify_index})
        except NomadError as error:
            if error.status == 409:
                module.fail_json(
                    msg=f"variable {path} changed while the module ran (check-and-set conflict at "
                    f"index {modify_index}): run the play again",
                    status=409,
                )
            module.fail_json(msg=error.describe(f"write variable {path}"), status=error.status)
        modify_index = int(written.get("ModifyIndex") or 0)

    module.exit_json(
        changed=bool(written_items),
        path=path,
        written_items=written_items,
        modify_index=modify_index,
        diff={"before": before, "after": after},
    )


def main() -> None:
    run_module()


if __name__ == "__main__":
    main()
