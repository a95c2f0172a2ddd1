"""HTTP client, connection options and error messages shared by the role's Nomad modules.

Requests go through Ansible's own `open_url`, so the modules need nothing
but the standard library on the host that runs them. The ACL token travels
in the X-Nomad-Token header only and never appears in a returned message.
API reference: https://developer.hashicorp.com/nomad/api-docs
"""

from __future__ import annotations

import copy
import json
from typing import Any
from urllib.error import HTTPError, URLError
from urllib.parse import quote, urlencode

from ansible.module_utils.urls import open_url

_CONNECTION_ARGUMENT_SPEC: dict[str, dict[str, Any]] = {
    "addr": {"type": "str", "required": True},
    "token": {"type": "str", "default": "", "no_log": True},
    "namespace": {"type": "str", "default": "default"},
    "ca_cert": {"type": "path"},
    "client_cert": {"type": "path"},
    "client_key": {"type": "path", "no_log": False},
    "validate_certs": {"type": "bool", "default": True},
    "timeout": {"type": "int", "default": 30},
}


def connection_argument_spec(**extra: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Return the shared Nomad connection options merged with a module's own options."""
    spec = copy.deepcopy(_CONNECTION_ARGUMENT_SPEC)
    spec.update(extra)
    return spec


class NomadError(Exception):
    """A failed Nomad request: HTTP status (0 when no response came) and Nomad's message."""

    def __init__(self, method: str, path: str, status: int, message: str) -> None:
        super().__init__(f"{method} {path}: {message}")
        self.method = method
        self.path = path
        self.status = status
        self.message = message

    def describe(self, action: str) -> str:
        """Return a one-line message that names the failed request and what to do next."""
        if self.status == 0:
            hint = "Nomad did not answer: check vault_batch_client_nomad_addr, TLS settings and the network"
        elif self.status == 403:
            hint = (
                "the ACL token is missing, invalid or lacks a capability: set "
                "vault_batch_client_nomad_token or NOMAD_TOKEN"
            )
        elif self.status == 404:
            hint = "not found"
        elif self.status >= 500:
            hint = "see the Nomad server log"
        else:
            hint = "Nomad rejected the request"
        return (
            f"failed to {action}: HTTP {self.status} from {self.method} {self.path}: {self.message} ({hint})"
        )


class NomadClient:
    """Send JSON requests to one Nomad agent with the module's connection options."""

    def __init__(self, params: dict[str, Any]) -> None:
        self.addr = params["addr"].rstrip("/")
        self.token = params["token"] or ""
        self.namespace = params["namespace"] or "default"
        self.ca_cert = params["ca_cert"]
        self.client_cert = params["client_cert"]
        self.client_key = params["client_key"]
        self.validate_certs = params["validate_certs"]
        self.timeout = params["timeout"]

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        query: dict[str, Any] | None = None,
        *,
        namespaced: bool = True,
    ) -> Any:
        """Send one request and return the decoded JSON response (None for an empty body).

        Raises NomadError for a non-2xx status or a connection failure.
        """
        parameters = dict(query or {})
        if namespaced:
            parameters.setdefault("namespace", self.namespace)
        url = f"{self.addr}{path}"
        if parameters:
            url = f"{url}?{urlencode(parameters)}"
        headers = {"Content-Type": "application/json"}
        if self.token:
            headers["X-Nomad-Token"] = self.token
        data = None if body is None else json.dumps(body)
        try:
            response = open_url(
                url,
                method=method,
                data=data,
                headers=headers,
                validate_certs=self.validate_certs,
                ca_path=self.ca_cert,
                client_cert=self.client_cert,
                client_key=self.client_key,
                timeout=self.timeout,
                follow_redirects="none",
            )
            payload = response.read()
        except HTTPError as error:
            text = error.read().decode("utf-8", "replace").strip() if error.fp else ""
            raise NomadError(method, path, error.code, text or error.reason) from None
        except (URLError, OSError, ValueError) as error:
            reason = getattr(error, "reason", None) or error
            raise NomadError(method, path, 0, str(reason)) from None
        if not payload:
            return None
        try:
            return json.loads(payload)
        except ValueError:
            raise NomadError(method, path, 200, "invalid JSON in the response") from None

    def get(self, path: str, query: dict[str, Any] | None = None, **kwargs: Any) -> Any:
        return self.request("GET", path, query=query, **kwargs)


def escape_segment(value: str) -> str:
    """Escape one URL path segment, including `/`, as Nomad's Go client does for job IDs."""
    return quote(value, safe="")
