"""Connection options, client setup and error messages shared by the role's Vault modules."""

from __future__ import annotations

import copy
import traceback
from typing import Any

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

try:
    import hvac
    import hvac.exceptions
    import requests.exceptions
except ImportError:
    HVAC_IMPORT_ERROR: str | None = traceback.format_exc()
else:
    HVAC_IMPORT_ERROR = None

_CONNECTION_ARGUMENT_SPEC: dict[str, dict[str, Any]] = {
    "url": {"type": "str", "required": True},
    "token": {"type": "str", "required": True, "no_log": True},
    "namespace": {"type": "str", "default": ""},
    "ca_cert": {"type": "path"},
    "validate_certs": {"type": "bool", "default": True},
    "timeout": {"type": "int", "default": 30},
}


def connection_argument_spec(**extra: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Return the shared connection options merged with a module's own options."""
    spec = copy.deepcopy(_CONNECTION_ARGUMENT_SPEC)
    spec.update(extra)
    return spec


def build_client(
    module: AnsibleModule, *, token: str | None = None, namespace: str | None = None
) -> hvac.Client:
    """Create an hvac client from the module's connection options.

    The URL and token are always passed explicitly, so hvac never falls back
    to VAULT_ADDR, VAULT_TOKEN or ~/.vault-token. An empty token sends no
    X-Vault-Token header, which is what a login request needs.
    """
    if HVAC_IMPORT_ERROR is not None:
        module.fail_json(msg=missing_required_lib("hvac"), exception=HVAC_IMPORT_ERROR)
    params = module.params
    verify: bool | str = params["validate_certs"]
    if params["ca_cert"] and verify:
        verify = params["ca_cert"]
    return hvac.Client(
        url=params["url"],
        token=params["token"] if token is None else token,
        namespace=(params["namespace"] if namespace is None else namespace) or None,
        verify=verify,
        timeout=params["timeout"],
    )


def describe_vault_error(error: Exception, action: str, path: str) -> str:
    """Return a one-line message for a failed Vault request on `path`, with a hint at the fix."""
    reason = str(error).strip() or type(error).__name__
    if isinstance(error, hvac.exceptions.Forbidden):
        hint = "the token lacks a policy that allows this, or the namespace is wrong"
    elif isinstance(error, hvac.exceptions.Unauthorized):
        hint = "the token is invalid or expired"
    elif isinstance(error, hvac.exceptions.InvalidPath):
        hint = "the path does not exist: check the mount and namespace"
    elif isinstance(error, hvac.exceptions.InvalidRequest):
        hint = "Vault rejected the request body"
    elif isinstance(error, (hvac.exceptions.VaultDown, hvac.exceptions.VaultNotInitialized)):
        hint = "Vault is sealed or not initialized"
    elif isinstance(error, requests.exceptions.RequestException):
        hint = "Vault did not answer: check the URL and the network"
    else:
        hint = "see the Vault server log"
    return f"failed to {action} {path}: {reason} ({hint})"


def vault_errors() -> tuple[type[Exception], ...]:
    """Return the exception types that a Vault request raises for Vault or network failures."""
    return (hvac.exceptions.VaultError, requests.exceptions.RequestException)
