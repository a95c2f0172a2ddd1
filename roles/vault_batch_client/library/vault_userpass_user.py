#!/usr/bin/python
"""Ansible module: create or update a Vault userpass user."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: vault_userpass_user
short_description: Create or update a Vault userpass user
description:
  - Creates the userpass user O(username) or updates its token policies,
    token TTLs and password when they differ.
  - Vault never returns a password, so with O(update_password=always) the
    module logs in as the user once to learn whether O(password) still
    works, and revokes the token of that login at once.
options:
  username:
    description: Name of the userpass user.
    type: str
    required: true
  password:
    description: Password of the user. Never logged and never sent on the command line.
    type: str
    required: true
  mount_point:
    description: Path of the userpass auth method.
    type: str
    default: userpass
  token_policies:
    description: Policies attached to the tokens this user logs in for.
    type: list
    elements: str
    default: []
  token_ttl:
    description: Default token lifetime, as seconds or a duration such as C(1h).
    type: str
    default: "0"
  token_max_ttl:
    description: Maximum token lifetime, as seconds or a duration such as C(4h).
    type: str
    default: "0"
  update_password:
    description:
      - C(always) sets O(password) whenever a test login with it fails.
      - C(on_create) sets it only when the user is created.
    type: str
    choices: [always, on_create]
    default: always
  url:
    description: Vault address.
    type: str
    required: true
  token:
    description: Token allowed to read and write the users of O(mount_point).
    type: str
    required: true
  namespace:
    description: Namespace of the auth method; empty for the root namespace.
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
  - A test login with a password that no longer matches counts as one failed
    login toward the user lockout of Vault and OpenBao (documented defaults
    5 failures, then 15 minutes locked; a successful login resets the count).
    Each run with a new password adds one failure, and so does each check
    mode run until the new password is applied.
  - While the user is locked out, the test login is denied and the module
    fails without writing anything.
"""

EXAMPLES = r"""
- name: Create the batch user
  vault_userpass_user:
    url: https://vault.example.org:8200
    token: "{{ vault_admin_token }}"
    namespace: admin/client_population/batch
    username: batch-processor
    password: "{{ vault_processor_password }}"
    token_policies: [batch-job-policy]
    token_ttl: 1h
    token_max_ttl: 4h
"""

RETURN = r"""
changes:
  description: Names of the attributes that were (or, in check mode, would be) written.
  returned: success
  type: list
  elements: str
  sample: [password, token_ttl]
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

_DURATION = re.compile(r"^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s?)?$")


def parse_duration(value: str | int) -> int:
    """Convert a Vault duration ("90", "90s", "15m", "1h30m") to seconds; raise ValueError if invalid."""
    text = str(value).strip()
    match = _DURATION.match(text)
    if not text or match is None:
        raise ValueError(f"invalid duration {value!r}: use seconds or a form like 90s, 15m, 1h30m")
    hours, minutes, seconds = (int(part) if part else 0 for part in match.groups())
    return hours * 3600 + minutes * 60 + seconds


def compare_user(current: dict[str, Any] | None, desired: dict[str, Any]) -> list[str]:
    """Return the attribute names whose current value differs from the desired one."""
    if current is None:
        return sorted(desired)
    changes = []
    for key, expected in desired.items():
        have = current.get(key)
        if key == "token_policies":
            if sorted(have or []) != sorted(expected):
                changes.append(key)
        elif have != expected:
            changes.append(key)
    return changes


def password_works(module: AnsibleModule, username: str, password: str, mount_point: str) -> bool:
    """Log in as the user with `password`, revoke the token at once and return whether it worked."""
    client = build_client(module, token="")
    try:
        response = client.auth.userpass.login(
            username=username, password=password, mount_point=mount_point, use_token=False
        )
    except hvac.exceptions.InvalidRequest:
        # Vault returns 400 "invalid username or password" for a wrong password.
        return False
    except hvac.exceptions.Forbidden:
        # A locked-out user gets 403 even with the right password, so the
        # password cannot be tested now and must not be rewritten blindly.
        module.fail_json(
            msg=f"login as {username} at auth/{mount_point} was denied, most likely by the user "
            "lockout after failed logins: wait for the lockout duration (15 minutes by default) "
            "or unlock the user through sys/locked-users, then run again"
        )
    login_token = response["auth"]["client_token"]
    build_client(module, token=login_token).auth.token.revoke_self()
    return True


def run_module() -> None:
    module = AnsibleModule(
        argument_spec=connection_argument_spec(
            username={"type": "str", "required": True},
            password={"type": "str", "required": True, "no_log": True},
            mount_point={"type": "str", "default": "userpass"},
            token_policies={"type": "list", "elements": "str", "default": []},
            token_ttl={"type": "str", "default": "0"},
            token_max_ttl={"type": "str", "default": "0"},
            update_password={
                "type": "str",
                "choices": ["always", "on_create"],
                "default": "always",
                "no_log": False,
            },
        ),
        supports_check_mode=True,
    )
    params = module.params
    username = params["username"]
    mount_point = params["mount_point"].strip("/")
    path = f"auth/{mount_point}/users/{username}"
    try:
        desired = {
            "token_policies": params["token_policies"],
            "token_ttl": parse_duration(params["token_ttl"]),
            "token_max_ttl": parse_duration(params["token_max_ttl"]),
        }
    except ValueError as error:
        module.fail_json(msg=str(error))
    client = build_client(module)

    try:
        current: dict[str, Any] | None = client.auth.userpass.read_user(
            username=username, mount_point=mount_point
        )["data"]
    except hvac.exceptions.InvalidPath:
        current = None
    except vault_errors() as error:
        module.fail_json(msg=describe_vault_error(error, "read", path))

    changes = compare_user(current, desired)
    body: dict[str, Any] = {key: desired[key] for key in changes}
    try:
        if current is None or (
            params["update_password"] == "always"  # noqa: S105 (an option value, not a password)
            and not password_works(module, username, params["password"], mount_point)
        ):
            changes.append("password")
            body["password"] = params["password"]
    except vault_errors() as error:
        module.fail_json(msg=describe_vault_error(error, "test a login as", path))

    if not changes:
        module.exit_json(changed=False, changes=[])

    if not module.check_mode:
        try:
            client.adapter.post(f"/v1/{path}", json=body)
        except vault_errors() as error:
            module.fail_json(msg=describe_vault_error(error, "write", path))

    before = {key: (current or {}).get(key) for key in desired}
    after = dict(before, **{key: desired[key] for key in changes if key in desired})
    # The diff shows that the password changes but never its value.
    if "password" in changes:
        before["password"] = "<unset>" if current is None else "<old value>"
        after["password"] = "<new value>"  # noqa: S105
    module.exit_json(changed=True, changes=sorted(changes), diff={"before": before, "after": after})


def main() -> None:
    run_module()


if __name__ == "__main__":
    main()
