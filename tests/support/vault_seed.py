"""Seed a namespace the way the role does, for tests of the processor alone.

Processor tests must not depend on the role, so this module builds the same
Vault layout (userpass user, KV v2 mount, least-privilege policy) with plain
API calls.
"""

from __future__ import annotations

import secrets
import urllib.error
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from support.openbao import OpenBaoServer

BATCH_POLICY = """\
path "kv/data/jobs/*" {
  capabilities = ["read"]
}

path "kv/metadata/jobs" {
  capabilities = ["list"]
}

path "kv/metadata/jobs/*" {
  capabilities = ["list"]
}
"""


@dataclass
class BatchVault:
    """A namespace seeded for the processor, with the credentials to log in."""

    server: OpenBaoServer
    namespace: str
    username: str
    password: str = field(repr=False)
    mount: str = "kv"
    jobs_path: str = "jobs"

    def put_job(self, name: str, data: Any) -> None:
        """Write one job configuration as a new KV v2 version."""
        self.server.request("POST", self._path("data", name), {"data": data}, namespace=self.namespace)

    def delete_latest(self, name: str) -> None:
        self.server.request("DELETE", self._path("data", name), namespace=self.namespace)

    def destroy_versions(self, name: str, versions: list[int]) -> None:
        self.server.request(
            "POST",
            self._path("destroy", name),
            {"versions": versions},
            namespace=self.namespace,
        )

    def _path(self, kind: str, name: str) -> str:
        # Job names may hold "?", "#", "%" or spaces: escape each one, keep "/"
        # so a name with a slash lands in a subfolder as it would in Vault.
        return f"{self.mount}/{kind}/{self.jobs_path}/{quote(name, safe='/')}"

    def env(self) -> dict[str, str]:
        """Return the processor's environment for this namespace, password excluded."""
        return {
            "VAULT_ADDR": self.server.addr,
            "VAULT_NAMESPACE": self.namespace,
            "VAULT_USERNAME": self.username,
            "BATCH_KV_MOUNT": self.mount,
            "BATCH_JOBS_PATH": self.jobs_path,
        }

    def token_works(self, token: str) -> bool:
        """Return True when `token` can still look itself up."""
        try:
            self.server.request("GET", "auth/token/lookup-self", namespace=self.namespace, token=token)
        except urllib.error.HTTPError as error:
            if error.code == 403:
                return False
            raise
        return True


def seed_batch_namespace(
    server: OpenBaoServer,
    namespace: str,
    *,
    username: str = "batch-processor",
    token_ttl: str = "1h",
    token_max_ttl: str = "4h",
) -> BatchVault:
    """Create `namespace` with a userpass user that may read the jobs folder only."""
    server.create_namespace_chain(namespace)
    password = secrets.token_urlsafe(24)
    server.request("POST", "sys/auth/userpass", {"type": "userpass"}, namespace=namespace)
    server.request("POST", "sys/mounts/kv", {"type": "kv", "options": {"version": "2"}}, namespace=namespace)
    server.request("PUT", "sys/policies/acl/batch-job-policy", {"policy": BATCH_POLICY}, namespace=namespace)
    server.request(
        "POST",
        f"auth/userpass/users/{username}",
        {
            "password": password,
            "token_policies": ["batch-job-policy"],
            "token_ttl": token_ttl,
            "token_max_ttl": token_max_ttl,
        },
        namespace=namespace,
    )
    return BatchVault(server=server, namespace=namespace, username=username, password=password)
