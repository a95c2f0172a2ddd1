"""Seed a thousand KV entries with one vault_kv2_bulk task against a real OpenBao server."""

from __future__ import annotations

import json
import os
import sys
import time
import urllib.error
from pathlib import Path
from subprocess import CompletedProcess, run

import pytest

from support.openbao import OpenBaoServer

pytestmark = pytest.mark.integration

REPO_DIR = Path(__file__).resolve().parents[2]
ROLE_DIR = REPO_DIR / "roles" / "vault_batch_client"
ENTRY_COUNT = 1000

PLAYBOOK = """\
- name: Seed entries in bulk
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Seed the entries
      vault_kv2_bulk:
        url: "{{ vault_url }}"
        token: "{{ vault_token }}"
        mount_point: kv
        path: jobs
        entries: "{{ entries }}"
        workers: 8
      register: seeded

    - name: Store the counts
      ansible.builtin.copy:
        content: "{{ seeded | ansible.builtin.to_json }}"
        dest: "{{ result_file }}"
        mode: "0600"
      check_mode: false
"""


def seed(server: OpenBaoServer, tmp_path: Path, entries: dict, *args: str) -> tuple[dict, float]:
    """Run the bulk module once; return its result and the playbook's duration in seconds."""
    playbook = tmp_path / "bulk.yml"
    playbook.write_text(PLAYBOOK)
    result_file = tmp_path / "result.json"
    result_file.unlink(missing_ok=True)

    vars_file = tmp_path / "vars.json"
    vars_file.write_text(
        json.dumps(
            {
                "vault_url": server.addr,
                "vault_token": server.root_token,
                "entries": entries,
                "result_file": str(result_file),
            }
        )
    )

    venv_bin = Path(sys.executable).parent
    env = {key: value for key, value in os.environ.items() if not key.startswith("VAULT_")}
    env.update(
        PATH=f"{venv_bin}{os.pathsep}{env.get('PATH', '')}",
        ANSIBLE_LIBRARY=str(ROLE_DIR / "library"),
        ANSIBLE_MODULE_UTILS=str(ROLE_DIR / "module_utils"),
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_PYTHON_INTERPRETER=sys.executable,
    )

    started = time.monotonic()
    completed: CompletedProcess[str] = run(
        [
            str(venv_bin / "ansible-playbook"),
            "-i",
            "localhost,",
            "-c",
            "local",
            str(playbook),
            "-e",
            f"@{vars_file}",
            *args,
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    seconds = time.monotonic() - started
    if completed.returncode != 0:
        pytest.fail(completed.stdout[-3000:] + completed.stderr[-3000:])
    return json.loads(result_file.read_text()), seconds


def make_entries() -> dict[str, dict]:
    priorities = ["high", "medium", "low"]
    return {
        f"bulk/job-{index:04d}": {"priority": priorities[index % 3], "enabled": index % 7 != 0}
        for index in range(ENTRY_COUNT)
    }


def test_bulk_seed_thousand_entries(fresh_openbao: OpenBaoServer, tmp_path: Path) -> None:
    fresh_openbao.request("POST", "sys/mounts/kv", {"type": "kv", "options": {"version": "2"}})
    entries = make_entries()

    first, first_seconds = seed(fresh_openbao, tmp_path, entries)
    assert first["changed"] is True
    assert (first["created"], first["updated"], first["unchanged"]) == (ENTRY_COUNT, 0, 0)

    second, second_seconds = seed(fresh_openbao, tmp_path, entries)
    assert second["changed"] is False
    assert (second["created"], second["updated"], second["unchanged"]) == (0, 0, ENTRY_COUNT)
    print(f"{ENTRY_COUNT} entries: create {first_seconds:.1f} s, compare {second_seconds:.1f} s")

    entries["bulk/job-0001"]["api_token"] = "t-123"
    entries["bulk/job-0002"]["priority"] = "high"
    third, _ = seed(fresh_openbao, tmp_path, entries)
    assert (third["created"], third["updated"], third["unchanged"]) == (0, 2, ENTRY_COUNT - 2)
    assert third["updated_names"] == {"bulk/job-0001": ["api_token"], "bulk/job-0002": ["priority"]}
    stored = fresh_openbao.request("GET", "kv/data/jobs/bulk/job-0001")
    assert stored["data"]["data"]["api_token"] == "t-123"
    assert stored["data"]["metadata"]["version"] == 2


def test_bulk_check_mode_writes_nothing(fresh_openbao: OpenBaoServer, tmp_path: Path) -> None:
    fresh_openbao.request("POST", "sys/mounts/kv", {"type": "kv", "options": {"version": "2"}})
    result, _ = seed(fresh_openbao, tmp_path, {"a": {"priority": "high"}, "b/c": {"x": 1}}, "--check")
    assert result["changed"] is True
    assert result["created"] == 2
    with pytest.raises(urllib.error.HTTPError) as raised:
        fresh_openbao.request("LIST", "kv/metadata/jobs")
    assert raised.value.code == 404, "check mode wrote an entry"
