#!/usr/bin/python
"""Ansible module: write a Vault ACL policy."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: vault_acl_policy
short_description: Write a Vault ACL policy
description:
  - Writes the ACL policy O(name) when its text in Vault differs from
    O(policy), ignoring leading and trailing white space and line endings.
options:
  name:
    description: Policy name.
    type: str
    required: true
  policy:
    description: Policy text in HCL.
    type: str
    required: true
  url:
    description: Vault address.
    type: str
    required: true
  token:
    description: Token allowed to read and write C(sys/policies/acl).
    type: str
    required: true
  namespace:
    description: Namespace of the policy; empty for the root namespace.
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
"""

EXAMPLES = r"""
- name: Let the batch user read job configurations
  vault_acl_policy:
    url: https://vault.example.org:8200
    token: "{{ vault_admin_token }}"
    namespace: admin/client_population/batch
    name: batch-job-policy
    policy: |
      path "kv/data/jobs/*" {
        capabilities = ["read"]
      }
"""

RETURN = r"""
name:
  description: Policy name.
  returned: success
  type: str
  sample: batch-job-policy
"""

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


def normalize_policy(text: str) -> str:
    """Return the policy text with unified line endings, no trailing blanks and one final newline."""
    lines = [line.rstrip() for line in text.replace("\r\n", "\n").strip().split("\n")]
    return "\n".join(lines) + "\n"


def run_module() -> None:
    module = AnsibleModule(
        argument_spec=connection_argument_spec(
            name={"type": "str", "required": True},
            policy={"type": "str", "required": True},
        ),
        supports_check_mode=True,
    )
    name = module.params["name"]
    path = f"sys/policies/acl/{name}"
    desired = normalize_policy(module.params["policy"])
    client = build_client(module)

    try:
        response = client.sys.read_acl_policy(name=name)
        current = normalize_policy(response["data"]["policy"])
    except hvac.exceptions.InvalidPath:
        current = ""
    except vault_errors() as error:
        module.fail_json(msg=describe_vault_error(error, "read", path))

    if current == desired:
        module.exit_json(changed=False, name=name)

    if not module.check_mode:
        try:
            client.sys.create_or_update_acl_policy(name=name, policy=desired)
        except vault_errors() as error:
            module.fail_json(msg=describe_vault_error(error, "write", path))

    module.exit_json(changed=True, name=name, diff={"before": current, "after": desired})


def main() -> None:
    run_module()


if __name__ == "__main__":
    main()
