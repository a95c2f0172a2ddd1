"""Vault layout the role seeded, checked from the controller as the batch user.

The role seeds Vault from the controller in every scenario, so these tests
send their requests from the controller too, to the OpenBao server that
prepare.yml started.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

# Parent namespace "admin" (molecule.yml) and the role's default child namespace.
DEFAULT_NAMESPACE = "admin/client_population/batch"
USERNAME = "batch-processor"
POLICY = "batch-job-policy"


# Secrets are left out of repr() so that pytest's failure output never shows them.
@dataclass
class BatchVault:
    addr: str
    namespace: str
    password: str = field(repr=False)


@dataclass
class BatchLogin:
    policies: list[str]
    token: str = field(repr=False)


def send(vault: BatchVault, method: str, path: str, *, token: str | None = None, body: Any = None) -> Any:
    """Send one Vault API request in the batch namespace and return the decoded JSON body."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(f"{vault.addr}/v1/{path}", data=data, method=method)  # noqa: S310
    request.add_header("X-Vault-Namespace", vault.namespace)
    if token is not None:
        request.add_header("X-Vault-Token", token)
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
        raw = response.read()
    return json.loads(raw) if raw else {}


@pytest.fixture(scope="module")
def vault() -> BatchVault:
    ephemeral = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"])
    state = json.loads((ephemeral / "openbao.json").read_text())
    return BatchVault(
        addr=state["addr"],
        namespace=os.environ.get("VAULT_BATCH_CLIENT_NAMESPACE", DEFAULT_NAMESPACE),
        password=(ephemeral / "processor-password").read_text().strip(),
    )


@pytest.fixture(scope="module")
def login(vault: BatchVault) -> BatchLogin:
    """Log in as the batch user with the password that converge gave it."""
    response = send(vault, "POST", f"auth/userpass/login/{USERNAME}", body={"password": vault.password})
    return BatchLogin(policies=response["auth"]["policies"], token=response["auth"]["client_token"])


def test_batch_user_gets_policy(login):
    assert POLICY in login.policies
    assert "root" not in login.policies


def test_batch_user_lists_jobs(vault, login):
    jobs_dir = Path(os.environ["MOLECULE_PROJECT_DIRECTORY"]) / "files" / "jobs"
    expected = {path.stem for path in jobs_dir.glob("*.json")}
    expected |= {f"{path.name}/" for path in jobs_dir.iterdir() if path.is_dir()}

    response = send(vault, "LIST", "kv/metadata/jobs", token=login.token)

    assert set(response["data"]["keys"]) == expected


def test_batch_user_cannot_write_jobs(vault, login):
    with pytest.raises(urllib.error.HTTPError) as raised:
        send(vault, "POST", "kv/data/jobs/written-by-test", token=login.token, body={"data": {}})

    assert raised.value.code == 403
