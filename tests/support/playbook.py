"""Run site.yml with the demo inventory and read its PLAY RECAP."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO_DIR = Path(__file__).resolve().parents[2]
RECAP_LINE = re.compile(r"^(?P<host>\S+)\s+:\s+(?P<counts>(?:\w+=\d+\s*)+)$", re.MULTILINE)


@dataclass
class PlaybookRun:
    """Exit status, output and duration of one ansible-playbook run."""

    returncode: int
    stdout: str
    stderr: str
    seconds: float

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    def recap(self) -> dict[str, int]:
        """Return the PLAY RECAP counts of the single host."""
        matches = list(RECAP_LINE.finditer(self.stdout))
        assert len(matches) == 1, self.stdout[-3000:]
        return {key: int(value) for key, value in re.findall(r"(\w+)=(\d+)", matches[0]["counts"])}


def run_site(
    vault_addr: str,
    token: str,
    demo_dir: Path,
    password: str,
    *args: str,
    nomad_addr: str,
    nomad_token: str | None = None,
) -> PlaybookRun:
    """Run site.yml with the demo inventory.

    Vault settings, the password and the Nomad ACL token go in through the
    environment, as an operator would pass them, so none of them is in argv.
    """
    env = {key: value for key, value in os.environ.items() if not key.startswith(("VAULT_", "NOMAD_"))}
    venv_bin = str(Path(sys.executable).parent)
    env.update(
        PATH=f"{venv_bin}{os.pathsep}{env.get('PATH', '')}",
        ANSIBLE_CONFIG=str(REPO_DIR / "ansible.cfg"),
        ANSIBLE_NOCOLOR="1",
        VAULT_ADDR=vault_addr,
        VAULT_TOKEN=token,
        DEMO_DIR=str(demo_dir),
        DEMO_PROCESSOR_PASSWORD=password,
    )
    if nomad_token is not None:
        env["NOMAD_TOKEN"] = nomad_token
    started = time.monotonic()
    completed = subprocess.run(
        [
            f"{venv_bin}/ansible-playbook",
            "site.yml",
            "-i",
            "inventory/demo",
            "-e",
            f"vault_batch_client_nomad_addr={nomad_addr}",
            *args,
        ],
        cwd=REPO_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    return PlaybookRun(completed.returncode, completed.stdout, completed.stderr, time.monotonic() - started)
