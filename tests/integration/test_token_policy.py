"""What the processor's token may do, and where the password and token can leak.

The token is taken from a running processor through the fault proxy, so the
checks use the very token the processor logged in for, while it is valid.
"""

from __future__ import annotations

import signal
import stat
import urllib.error
from collections.abc import Iterator
from pathlib import Path

import pytest

from support.fault_proxy import FaultProxy
from support.live_processor import ProcessorRun, files_below, find_secret, run_processor, start_processor
from support.vault_seed import BatchVault

pytestmark = pytest.mark.integration


@pytest.fixture
def proxy(batch_vault: BatchVault) -> Iterator[FaultProxy]:
    started = FaultProxy(upstream=batch_vault.server.addr).start()
    yield started
    started.stop()


@pytest.fixture
def running(tmp_path: Path, batch_vault: BatchVault, proxy: FaultProxy) -> Iterator[ProcessorRun]:
    """A processor busy with a 20 s job, logged in through the proxy."""
    batch_vault.put_job("long", {"priority": "high", "duration_seconds": 20})
    run = start_processor(
        {**batch_vault.env(), "VAULT_ADDR": proxy.addr, "BATCH_TIME_SCALE": "1"},
        batch_vault.password,
        tmp_path / "data",
    )
    try:
        run.wait_for_log("job 'long' started")
        yield run
    finally:
        run.stop()


def status_with(vault: BatchVault, token: str, method: str, path: str, body: dict | None = None) -> int:
    """Send one request with `token` and return its HTTP status."""
    try:
        vault.server.request(method, path, body, namespace=vault.namespace, token=token)
    except urllib.error.HTTPError as error:
        return error.code
    return 200


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "kv/data/jobs/long", {"data": {"priority": "low"}}),
        ("POST", "kv/data/jobs/new-job", {"data": {}}),
        ("DELETE", "kv/data/jobs/long", None),
        ("DELETE", "kv/metadata/jobs/long", None),
        ("GET", "kv/data/elsewhere/secret", None),
        ("GET", "kv/metadata/jobs/long", None),
        ("LIST", "kv/metadata", None),
        ("LIST", "sys/policies/acl", None),
        ("GET", "sys/mounts", None),
        ("LIST", "auth/userpass/users", None),
        ("POST", "auth/token/create", {"policies": ["batch-job-policy"]}),
        ("POST", "auth/token/create-orphan", {}),
        ("PUT", "sys/policies/acl/batch-job-policy", {"policy": 'path "*" {capabilities=["sudo"]}'}),
    ],
    ids=lambda value: value if isinstance(value, str) else "",
)
def test_processor_token_denied_outside_policy(
    running: ProcessorRun,
    batch_vault: BatchVault,
    proxy: FaultProxy,
    method: str,
    path: str,
    body: dict | None,
) -> None:
    (token,) = proxy.login_tokens()
    # The token works for what the policy grants: the denial below is the policy's.
    assert status_with(batch_vault, token, "GET", "kv/data/jobs/long") == 200

    assert status_with(batch_vault, token, method, path, body) == 403


def test_processor_token_revoked_after_run(
    running: ProcessorRun, batch_vault: BatchVault, proxy: FaultProxy
) -> None:
    (token,) = proxy.login_tokens()
    assert batch_vault.token_works(token)

    running.signal(signal.SIGTERM)
    running.wait()

    assert not batch_vault.token_works(token)
    written = [*files_below(running.data_dir), running.stderr_path]
    assert find_secret(token, written) is None, "the token was written to a file"
    assert find_secret(batch_vault.password, written) is None, "the password was written to a file"


def test_jobs_folder_outside_policy_is_reported(tmp_path: Path, batch_vault: BatchVault) -> None:
    env = {**batch_vault.env(), "BATCH_JOBS_PATH": "elsewhere"}

    code, run = run_processor(env, batch_vault.password, tmp_path / "data")

    assert code == 3, run.stderr()
    assert "LIST kv/metadata/elsewhere was denied" in run.stderr()
    assert "the policy must grant list on it" in run.stderr()


def proc_contains(pid: int, name: str, secret: str) -> bool:
    """Return True when /proc/<pid>/<name> contains `secret`; never returns the text."""
    return secret.encode() in Path(f"/proc/{pid}/{name}").read_bytes()


def test_password_and_token_not_in_proc(
    running: ProcessorRun, batch_vault: BatchVault, proxy: FaultProxy
) -> None:
    (token,) = proxy.login_tokens()
    for name in ("cmdline", "environ"):
        assert not proc_contains(running.pid, name, batch_vault.password), f"password in /proc/<pid>/{name}"
        assert not proc_contains(running.pid, name, token), f"token in /proc/<pid>/{name}"
    # The check reads the right process: its environment names the password file.
    assert proc_contains(running.pid, "environ", "VAULT_PASSWORD_FILE=")


def test_created_files_and_folders_not_world_accessible(tmp_path: Path, batch_vault: BatchVault) -> None:
    batch_vault.put_job("one", {"priority": "high"})
    batch_vault.put_job("two", {"priority": "low", "simulate_failure": True})
    data_dir = tmp_path / "data"

    code, run = run_processor(batch_vault.env(), batch_vault.password, data_dir)

    assert code == 1, run.stderr()
    for folder in (run.results_dir, run.log_path.parent):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o750, folder.name
    results = list(run.results_dir.glob("*.json"))
    assert len(results) == 3
    for path in results:
        assert stat.S_IMODE(path.stat().st_mode) == 0o640, path.name
    for path in files_below(data_dir):
        mode = stat.S_IMODE(path.stat().st_mode)
        assert not mode & stat.S_IRWXO, f"{path.relative_to(data_dir)} has mode {mode:o}"
    for path in [data_dir, *(p for p in data_dir.rglob("*") if p.is_dir())]:
        mode = stat.S_IMODE(path.stat().st_mode)
        assert not mode & stat.S_IWOTH, f"{path} is world-writable"
