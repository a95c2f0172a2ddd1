"""Shared parts of the benchmarks: OpenBao, fast seeding, child runs and reports.

Every figure is measured in one script run against one OpenBao dev server on
loopback, so the ratios compare runs made on the same machine under the same
load. Absolute times only describe the machine the report names.
"""

from __future__ import annotations

import http.client
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
OUT_DIR = ROOT / "bench" / "out"
sys.path.insert(0, str(ROOT / "tests"))

from support.openbao import OpenBaoServer, find_bao  # noqa: E402
from support.vault_seed import BatchVault, seed_batch_namespace  # noqa: E402

__all__ = ["BatchVault", "OpenBaoServer", "seed_batch_namespace"]

PRIORITIES = ("high", "medium", "low")
SEED_CONCURRENCY = 16


class KeepAliveClient:
    """A minimal Vault HTTP client: one persistent connection per thread, JSON in and out."""

    def __init__(self, addr: str, token: str, namespace: str | None, timeout: float = 30.0) -> None:
        parts = urlsplit(addr)
        if parts.scheme != "http" or parts.hostname is None or parts.port is None:
            raise ValueError(f"expected http://HOST:PORT, got {addr!r}")
        self.host, self.port = parts.hostname, parts.port
        self.headers = {"X-Vault-Token": token, "Content-Type": "application/json"}
        if namespace:
            self.headers["X-Vault-Namespace"] = namespace
        self.timeout = timeout
        self._local = threading.local()

    def _connection(self) -> http.client.HTTPConnection:
        connection = getattr(self._local, "connection", None)
        if connection is None:
            connection = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            self._local.connection = connection
        return connection

    def request(self, method: str, path: str, body: Any = None) -> dict[str, Any]:
        """Send one request to /v1/`path`; raise RuntimeError on a status of 400 or more."""
        payload = json.dumps(body).encode() if body is not None else None
        connection = self._connection()
        connection.request(method, f"/v1/{path}", body=payload, headers=self.headers)
        response = connection.getresponse()
        raw = response.read()
        if response.status >= 400:
            raise RuntimeError(f"{method} /v1/{path}: HTTP {response.status}: {raw[:200]!r}")
        return json.loads(raw) if raw else {}


def job_config(index: int) -> dict[str, Any]:
    """Return the configuration of job `index`: priorities in turn, plus a job secret."""
    return {
        "priority": PRIORITIES[index % len(PRIORITIES)],
        "enabled": True,
        "api_key": f"not-a-real-secret-{index}",
    }


def job_name(index: int) -> str:
    return f"job-{index:05d}"


def seed_jobs(
    server: OpenBaoServer,
    vault: BatchVault,
    configs: Sequence[tuple[str, dict[str, Any]]],
    concurrency: int = SEED_CONCURRENCY,
) -> float:
    """Write each (name, config) into the namespace's jobs folder; return the seconds taken."""
    client = KeepAliveClient(server.addr, server.root_token, vault.namespace)

    def write(item: tuple[str, dict[str, Any]]) -> None:
        name, config = item
        client.request("POST", f"{vault.mount}/data/{vault.jobs_path}/{name}", {"data": config})

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        for _ in pool.map(write, configs):
            pass
    return time.perf_counter() - started


@dataclass
class ChildRun:
    """Wall time, peak resident memory and exit status of one child process."""

    seconds: float
    max_rss_mb: float
    returncode: int


def run_child(
    argv: Sequence[str], env: dict[str, str], log_path: Path, cwd: Path = ROOT, timeout: float = 600.0
) -> ChildRun:
    """Run `argv`, wait with wait4 to read the child's own peak RSS, and time it.

    stdout and stderr go to `log_path`. The child is killed after `timeout` seconds.
    """
    with log_path.open("wb") as log:
        started = time.perf_counter()
        process = subprocess.Popen(list(argv), env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT)
        deadline = started + timeout
        while True:
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            if pid != 0:
                break
            if time.perf_counter() > deadline:
                process.kill()
                pid, status, usage = os.wait4(process.pid, 0)
                break
            time.sleep(0.005)
        seconds = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    # ru_maxrss is in KiB on Linux.
    return ChildRun(seconds, usage.ru_maxrss / 1024, process.returncode)


def base_env() -> dict[str, str]:
    """Return the environment for children, without any Vault or batch settings of the caller."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VAULT_", "BAO_", "BATCH_"))}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def median(values: Iterable[float]) -> float:
    return statistics.median(list(values))


def interleaved(repeats: int, variants: Sequence[str]) -> list[tuple[int, str]]:
    """Return (repeat, variant) pairs, rotating the variant order in each repeat.

    Rotation spreads slow phases of the machine over all variants instead of
    hitting one of them every time.
    """
    order: list[tuple[int, str]] = []
    for repeat in range(repeats):
        shift = repeat % len(variants)
        rotated = list(variants[shift:]) + list(variants[:shift])
        order.extend((repeat, variant) for variant in rotated)
    return order


def machine_description() -> dict[str, str]:
    """Describe the machine the figures come from: cores, CPU model, Python, OpenBao."""
    cpu_model = "unknown"
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
        match = re.search(r"^model name\s*:\s*(.+)$", cpuinfo, re.MULTILINE)
        if match:
            cpu_model = match.group(1).strip()
    except OSError:
        pass
    bao_version = subprocess.run(
        [find_bao(), "version"], capture_output=True, text=True, check=False
    ).stdout.strip()
    return {
        "nproc": str(os.cpu_count()),
        "cpu_model": cpu_model,
        "python": platform.python_version(),
        "openbao": bao_version.split(" (")[0],
        "kernel": platform.release(),
        "memory_gib": f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f}",
    }


def write_results(name: str, document: dict[str, Any]) -> Path:
    """Write one benchmark's results as bench/out/`name`.json."""
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    document = {"machine": machine_description(), **document}
    path = OUT_DIR / f"{name}.json"
    path.write_text(json.dumps(document, indent=2) + "\n")
    return path


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def check_returncode(label: str, run: ChildRun, expected: Callable[[int], bool], log_path: Path) -> None:
    """Stop the benchmark when a child exited with an unexpected status, showing its log tail."""
    if expected(run.returncode):
        return
    tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-20:])
    raise SystemExit(f"{label} exited with {run.returncode}; last lines of {log_path}:\n{tail}")
