"""Shared fixtures: one OpenBao dev server per test session, a fresh namespace and Nomad double per test."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest

from support.nomad_double import NomadDouble
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


@pytest.fixture
def nomad_double(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NomadDouble]:
    """A Nomad API double of the test's own, with client node lil-pakalolo as in the demo inventory."""
    double = NomadDouble(node_name="lil-pakalolo", data_dir=tmp_path_factory.mktemp("nomad")).start()
    try:
        yield double
    finally:
        double.stop()
