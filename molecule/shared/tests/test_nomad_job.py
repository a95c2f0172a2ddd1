"""Nomad job file the role renders into scripts/, parsed with python-hcl2."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import hcl2
import pytest

# Every scenario's molecule.yml sets vault_batch_client_nomad_node_name to this.
NODE_NAME = "lil-pakalolo"
JOB_ID = "vault-batch-processor"


def unquote(value: str) -> str:
    """Strip the double quotes that python-hcl2 keeps around string values and labels."""
    return value.strip('"')


def only_block(blocks: list[dict[str, Any]]) -> tuple[str, dict[str, Any]]:
    """Return the label and body of a list that must hold exactly one labelled block."""
    assert len(blocks) == 1
    ((label, body),) = blocks[0].items()
    return unquote(label), body


@pytest.fixture
def job_file(host, scripts_dir):
    return host.file(f"{scripts_dir}/{JOB_ID}.nomad.hcl")


@pytest.fixture
def job(job_file) -> dict[str, Any]:
    job_id, body = only_block(hcl2.loads(job_file.content_string)["job"])
    assert job_id == JOB_ID
    return body


def test_job_file_owner_and_mode(job_file):
    assert job_file.is_file
    assert job_file.user == "root"
    assert job_file.mode == 0o644


def test_job_pinned_to_node(job):
    constraints = {unquote(c["attribute"]): unquote(c["value"]) for c in job["constraint"]}

    assert constraints["${node.unique.name}"] == NODE_NAME


def test_job_uses_host_volume(job):
    _, group = only_block(job["group"])
    volume_name, volume = only_block(group["volume"])
    _, task = only_block(group["task"])
    (env,) = task["env"]

    assert unquote(volume["type"]) == "host"
    assert unquote(volume["source"]) == f"vault-clients-{NODE_NAME}"
    if unquote(task["driver"]) == "raw_exec":
        # raw_exec mounts no volumes: the task uses the host folders directly.
        assert "volume_mount" not in task
        assert unquote(env["BATCH_DATA_DIR"]).endswith("/opt/nomad/vault-clients")
    else:
        (mount,) = task["volume_mount"]
        assert unquote(mount["volume"]) == volume_name
        assert unquote(mount["destination"]) == "/opt/vault-clients"
        assert unquote(env["BATCH_DATA_DIR"]) == "/opt/vault-clients"


def test_job_file_has_no_password(job_file):
    password_file = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "processor-password"
    # A plain bool, so that a failure does not print the password.
    leaked = password_file.read_text().strip() in job_file.content_string

    assert not leaked
