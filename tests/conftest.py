"""Shared fixtures: one OpenBao dev server per test session, a fresh namespace per test."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest

from support.openbao import OpenBaoServer
from support.vault_seed import BatchVault, seed_batch_namespace


@pytest.fixture(scope="session")
def openbao() -> Iterator[OpenBaoServer]:
    server = OpenBaoServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def fresh_openbao() -> Iterator[OpenBaoServer]:
    """A server of the test's own, for tests that seal, stop or restart it."""
    server = OpenBaoServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def batch_vault(openbao: OpenBaoServer) -> BatchVault:
    """A seeded namespace `admin-<random>/client_population/batch` of the test's own."""
    namespace = f"admin-{secrets.token_hex(4)}/client_population/batch"
    return seed_batch_namespace(openbao, namespace)
