"""Start the batch processor as its own process and watch, signal or kill it mid-run.

The password goes through VAULT_PASSWORD_FILE, never through the command
line or the environment. Helpers read the results back and look for secrets
in files without ever printing the secret itself.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
PROCESSOR_PATH = REPO_ROOT / "files"
RUN_TIMEOUT_SECONDS = 120.0
# Retry settings small enough that a test of an unreachable Vault takes well
# under a second per request.
FAST_RETRY = {
    "BATCH_RETRY_ATTEMPTS": "4",
    "BATCH_RETRY_INITIAL_DELAY": "0.05",
    "BATCH_RETRY_MAX_DELAY": "0.2",
    "BATCH_REQUEST_TIMEOUT": "5",
}


@dataclass
class ProcessorRun:
    """A started processor and the folders it writes."""

    process: subprocess.Popen[str]
    data_dir: Path
    stderr_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def results_dir(self) -> Path:
        return self.data_dir / "results"

    @property
    def log_path(self) -> Path:
        return self.data_dir / "logs" / "batch-processing.log"

    def wait(self, timeout: float = RUN_TIMEOUT_SECONDS) -> int:
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise

    def signal(self, number: int) -> None:
        os.kill(self.process.pid, number)

    def stderr(self) -> str:
        return self.stderr_path.read_text(encoding="utf-8", errors="replace")

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace") if self.log_path.exists() else ""

    def summaries(self) -> list[dict[str, Any]]:
        return [
            json.loads(path.read_text("utf-8")) for path in sorted(self.results_dir.glob("*_summary.json"))
        ]

    def summary(self) -> dict[str, Any]:
        """Return the only summary in results/; fail if there is not exactly one."""
        found = self.summaries()
        assert len(found) == 1, f"expected one summary, found {len(found)}: {self.stderr()[-2000:]}"
        return found[0]

    def job_results(self) -> list[dict[str, Any]]:
        return [
            json.loads(path.read_text("utf-8"))
            for path in sorted(self.results_dir.glob("*.json"))
            if not path.name.endswith("_summary.json")
        ]

    def wait_for_log(self, text: str, timeout: float = 20.0) -> None:
        """Block until `text` appears in the processor's stderr."""
        deadline = time.monotonic() + timeout
        while text not in self.stderr():
            if self.process.poll() is not None:
                raise AssertionError(f"processor exited {self.process.returncode} before logging {text!r}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"processor did not log {text!r} in {timeout} s")
            time.sleep(0.02)

    def stop(self) -> None:
        """Kill the processor if it still runs; for test cleanup."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def write_password_file(folder: Path, password: str) -> Path:
    path = folder / "password"
    path.write_text(password + "\n", encoding="utf-8")
    path.chmod(0o600)
    return path


def start_processor(
    env: Mapping[str, str],
    password: str,
    data_dir: Path,
    *,
    extra_env: Mapping[str, str] | None = None,
    home: Path | None = None,
    args: Iterable[str] = (),
    stderr_name: str = "stderr.txt",
) -> ProcessorRun:
    """Start `python -m batch_processor run` with a clean environment of its own."""
    data_dir.mkdir(parents=True, exist_ok=True)
    secrets_dir = data_dir.parent / f"{data_dir.name}-secrets"
    secrets_dir.mkdir(mode=0o700, exist_ok=True)
    password_file = write_password_file(secrets_dir, password)
    full_env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONPATH": str(PROCESSOR_PATH),
        "HOME": str(home or secrets_dir),
        "BATCH_DATA_DIR": str(data_dir),
        "BATCH_TIME_SCALE": "0",
        "VAULT_PASSWORD_FILE": str(password_file),
        **FAST_RETRY,
        **env,
        **(extra_env or {}),
    }
    stderr_path = secrets_dir / stderr_name
    with stderr_path.open("w", encoding="utf-8") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "batch_processor", "run", *args],
            env=full_env,
            stdin=subprocess.DEVNULL,
            stdout=stderr,
            stderr=stderr,
            text=True,
        )
    return ProcessorRun(process=process, data_dir=data_dir, stderr_path=stderr_path)


def run_processor(
    env: Mapping[str, str], password: str, data_dir: Path, **kwargs: Any
) -> tuple[int, ProcessorRun]:
    """Run the processor to its end and return (exit status, run)."""
    run = start_processor(env, password, data_dir, **kwargs)
    return run.wait(), run


def find_secret(secret: str, paths: Iterable[Path]) -> str | None:
    """Return "<file> at offset N" for the first file that contains `secret`, else None.

    The secret itself is never part of the return value, so an assert on it
    cannot print the secret when it fails.
    """
    needle = secret.encode("utf-8")
    for path in paths:
        if not path.is_file():
            continue
        offset = path.read_bytes().find(needle)
        if offset >= 0:
            return f"{path.name} at offset {offset}"
    return None


def files_below(folder: Path) -> list[Path]:
    return sorted(path for path in folder.rglob("*") if path.is_file())
