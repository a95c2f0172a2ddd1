"""Shared testinfra fixtures for every molecule scenario of the role.

Each scenario sets VAULT_BATCH_CLIENT_BASE_DIR in its verifier environment to
the vault_batch_client_base_dir it converged with, and chooses how testinfra
reaches the node (local, or podman exec into the container).
"""

from __future__ import annotations

import json
import os
import shlex
from collections.abc import Iterator
from pathlib import Path

import pytest

from support.openbao import OpenBaoServer

DEFAULT_BASE_DIR = "/opt/nomad/vault-clients"
LOG_TAIL_LINES = 40


@pytest.fixture(scope="module")
def base_dir() -> str:
    return os.environ.get("VAULT_BATCH_CLIENT_BASE_DIR", DEFAULT_BASE_DIR)


@pytest.fixture(scope="module")
def scripts_dir(base_dir: str) -> str:
    return f"{base_dir}/scripts"


@pytest.fixture(scope="module")
def venv_python(scripts_dir: str) -> str:
    return f"{scripts_dir}/venv/bin/python"


def describe_node(host: object, base_dir: str) -> str:
    """Collect the folder tree and the processor log from the node, for a failed test."""
    folder = shlex.quote(base_dir)
    log_file = shlex.quote(f"{base_dir}/logs/batch-processing.log")
    commands = [
        f"find {folder} -maxdepth 2 -not -path '*/venv/*' -printf '%M %u:%g %p\\n'",
        f"tail -n {LOG_TAIL_LINES} {log_file}",
    ]
    sections = []
    for command in commands:
        result = host.run(command)  # type: ignore[attr-defined]
        sections.append(f"$ {command}\n{result.stdout}{result.stderr}")
    return "\n".join(sections)


def describe_openbao() -> str:
    """Return the end of the OpenBao server log that prepare.yml started, token masked."""
    state_file = Path(os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY", "")) / "openbao.json"
    try:
        state = json.loads(state_file.read_text())
    except FileNotFoundError:
        return f"no OpenBao state file at {state_file}"
    server = OpenBaoServer(root_token=state["root_token"], workdir=Path(state["workdir"]))
    return server.log_tail(lines=LOG_TAIL_LINES)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Attach the node's folders, the processor log and the OpenBao log to a failed test."""
    report = yield
    if report.when != "call" or not report.failed:
        return report

    host = getattr(item, "funcargs", {}).get("host")
    if host is not None:
        base = os.environ.get("VAULT_BATCH_CLIENT_BASE_DIR", DEFAULT_BASE_DIR)
        report.sections.append(("node state", describe_node(host, base)))
    report.sections.append(("OpenBao log", describe_openbao()))
    return report
