"""VaultSession.read_job against a real OpenBao: the urllib3 path and its hvac fallback."""

from __future__ import annotations

import threading

import pytest

from batch_processor.vault import (
    ConnectionSettings,
    NotFound,
    RetryPolicy,
    VaultError,
    VaultSession,
    VaultUnavailable,
)
from support.openbao import free_port
from support.vault_seed import BatchVault

pytestmark = pytest.mark.integration

FAST_RETRY = RetryPolicy(attempts=2, initial_delay=0.01, max_delay=0.02)


def logged_in(vault: BatchVault) -> VaultSession:
    session = VaultSession(
        ConnectionSettings(addr=vault.server.addr, namespace=vault.namespace), FAST_RETRY, threading.Event()
    )
    session.login(vault.username, vault.password)
    return session


def test_read_job_returns_data(batch_vault: BatchVault) -> None:
    batch_vault.put_job("nightly", {"priority": "high", "api_key": "k"})
    session = logged_in(batch_vault)
    try:
        secret = session.read_job("kv", "jobs", "nightly")
    finally:
        session.revoke_tokens()
        session.close()
    assert secret.data == {"priority": "high", "api_key": "k"}
    assert secret.version == 1
    assert not secret.deleted
    assert not secret.destroyed


def test_read_job_escapes_name(batch_vault: BatchVault) -> None:
    batch_vault.put_job("team/a b", {"priority": "low"})
    session = logged_in(batch_vault)
    try:
        secret = session.read_job("kv", "jobs", "team/a b")
    finally:
        session.revoke_tokens()
        session.close()
    assert secret.data == {"priority": "low"}


def test_read_job_deleted_version(batch_vault: BatchVault) -> None:
    batch_vault.put_job("old", {"priority": "low"})
    batch_vault.delete_latest("old")
    session = logged_in(batch_vault)
    try:
        secret = session.read_job("kv", "jobs", "old")
    finally:
        session.revoke_tokens()
        session.close()
    assert secret.deleted
    assert secret.data is None
    assert secret.version == 1


def test_read_job_missing_raises_not_found(batch_vault: BatchVault) -> None:
    session = logged_in(batch_vault)
    try:
        with pytest.raises(NotFound, match="jobs/absent: not found"):
            session.read_job("kv", "jobs", "absent")
    finally:
        session.revoke_tokens()
        session.close()


def test_read_job_outside_policy_denied(batch_vault: BatchVault) -> None:
    session = logged_in(batch_vault)
    try:
        with pytest.raises(VaultError, match="was denied"):
            session.read_job("kv", "other", "x")
    finally:
        session.revoke_tokens()
        session.close()


def test_read_job_refused_connection_retried() -> None:
    settings = ConnectionSettings(addr=f"http://127.0.0.1:{free_port()}", timeout=2)
    session = VaultSession(settings, FAST_RETRY, threading.Event())
    with pytest.raises(VaultUnavailable, match="failed after 2 attempts: connection failed"):
        session.read_job("kv", "jobs", "x")
    session.close()
