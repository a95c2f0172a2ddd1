"""Run the processor the way the Nomad task does and read what it wrote."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from support.vault_seed import BatchVault

FILES_DIR = Path(__file__).resolve().parents[2] / "files"


@dataclass
class BatchRun:
    """The outcome of one processor run: exit status, stderr and the files it left."""

    returncode: int
    stderr: str
    data_dir: Path

    @property
    def results_dir(self) -> Path:
        return self.data_dir / "results"

    def summary(self) -> dict[str, Any]:
        summaries = sorted(self.results_dir.glob("*_summary.json"))
        assert summaries, f"no summary in {self.results_dir}"
        return json.loads(summaries[-1].read_text())

    def results(self) -> dict[str, dict[str, Any]]:
        """Return every job result of the newest batch, keyed by job name."""
        batch_id = self.summary()["batch_id"]
        found: dict[str, dict[str, Any]] = {}
        for path in self.results_dir.glob(f"*_{batch_id}.json"):
            if path.name.endswith("_summary.json"):
                continue
            document = json.loads(path.read_text())
            assert document["job"] not in found, f"two result files for job {document['job']!r}"
            found[document["job"]] = document
        return found

    def log(self) -> str:
        return (self.data_dir / "logs" / "batch-processing.log").read_text()


def processor_env(vault: BatchVault, data_dir: Path, **extra: str) -> dict[str, str]:
    """Build the task environment: password delivered in a file, as Nomad's template does."""
    secrets_dir = data_dir.parent / f"{data_dir.name}-secrets"
    secrets_dir.mkdir(mode=0o700, exist_ok=True)
    password_file = secrets_dir / "vault-password"
    password_file.write_text(vault.password + "\n")
    password_file.chmod(0o600)
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(secrets_dir),
        "PYTHONPATH": str(FILES_DIR),
        **vault.env(),
        "VAULT_PASSWORD_FILE": str(password_file),
        "BATCH_DATA_DIR": str(data_dir),
        "BATCH_TIME_SCALE": "0",
        "BATCH_RETRY_INITIAL_DELAY": "0.05",
        "BATCH_RETRY_MAX_DELAY": "0.2",
    }
    env.update(extra)
    return env


def start_processor(env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "batch_processor", "run"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def run_processor(env: dict[str, str], timeout: float = 120) -> BatchRun:
    process = start_processor(env)
    _, stderr = process.communicate(timeout=timeout)
    return BatchRun(process.returncode, stderr, Path(env["BATCH_DATA_DIR"]))
