"""Faults around a batch: Vault down, sealed or erroring, signals, a held lock, full disks, kills.

Each test runs the processor as its own process against a real OpenBao
server, mostly through the fault proxy so a fault can start in the middle of
a batch. Retry settings are small (see support.processor.FAST_RETRY).
"""

from __future__ import annotations

import contextlib
import json
import random
import re
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from support.fault_proxy import Fault, FaultProxy
from support.live_processor import FAST_RETRY, ProcessorRun, run_processor, start_processor
from support.openbao import OpenBaoServer, free_port
from support.vault_seed import BatchVault, seed_batch_namespace

pytestmark = pytest.mark.integration

NAMESPACE = "admin/client_population/batch"
ProxyFactory = Callable[[OpenBaoServer], FaultProxy]
READ_PATH = r"/v1/kv/data/jobs/"
LOGIN_PATH = r"/v1/auth/[^/]+/login/"
REVOKE_PATH = r"/v1/auth/token/revoke-self"


@pytest.fixture
def proxy_for() -> Iterator[ProxyFactory]:
    """Start fault proxies in front of the given servers and stop them after the test."""
    started: list[FaultProxy] = []

    def start(server: OpenBaoServer) -> FaultProxy:
        proxy = FaultProxy(upstream=server.addr).start()
        started.append(proxy)
        return proxy

    yield start
    for proxy in started:
        proxy.stop()


@pytest.fixture
def runs() -> Iterator[list[ProcessorRun]]:
    """Processor runs a test started; any still running at the end is killed."""
    started: list[ProcessorRun] = []
    yield started
    for run in started:
        run.stop()


def proxied_env(vault: BatchVault, proxy: FaultProxy, **extra: str) -> dict[str, str]:
    return {**vault.env(), "VAULT_ADDR": proxy.addr, **extra}


def seed_jobs(vault: BatchVault, count: int, **config: object) -> list[str]:
    names = [f"job-{index:03d}" for index in range(count)]
    for name in names:
        vault.put_job(name, {"priority": "high", **config})
    return names


def assert_tokens_revoked(vault: BatchVault, proxy: FaultProxy) -> None:
    tokens = proxy.login_tokens()
    assert tokens, "the proxy saw no login, so nothing can be checked"
    for index, token in enumerate(tokens):
        assert not vault.token_works(token), f"token #{index} from login still works"


# -- Vault unreachable, sealed or returning 5xx ------------------------------


def test_unreachable_vault_retries_then_exits_3(tmp_path: Path) -> None:
    address = f"http://127.0.0.1:{free_port()}"
    env = {"VAULT_ADDR": address, "VAULT_NAMESPACE": NAMESPACE}

    started = time.monotonic()
    code, run = run_processor(env, "unused-password", tmp_path / "data")
    elapsed = time.monotonic() - started

    assert code == 3, run.stderr()
    stderr = run.stderr()
    assert f"failed after {FAST_RETRY['BATCH_RETRY_ATTEMPTS']} attempts" in stderr
    assert address in stderr
    delays = [float(value) for value in re.findall(r"retrying in ([0-9.]+) s", stderr)]
    assert len(delays) == int(FAST_RETRY["BATCH_RETRY_ATTEMPTS"]) - 1
    initial = float(FAST_RETRY["BATCH_RETRY_INITIAL_DELAY"])
    maximum = float(FAST_RETRY["BATCH_RETRY_MAX_DELAY"])
    ceilings = [min(maximum, initial * 2**attempt) for attempt in range(len(delays))]
    for delay, ceiling in zip(delays, ceilings, strict=True):
        assert 0 <= delay <= ceiling + 0.005
    assert delays != [round(ceiling, 2) for ceiling in ceilings], "backoff has no jitter"
    assert elapsed < 15

    summary = run.summary()
    assert summary["status"] == "failed"
    assert summary["exit_code"] == 3
    assert address in summary["error"]
    assert summary["jobs"] == []


def test_connection_drops_retried_a_bounded_number_of_times(
    tmp_path: Path, batch_vault: BatchVault, proxy_for: ProxyFactory
) -> None:
    proxy = proxy_for(batch_vault.server)
    proxy.add_fault(Fault("drop", path_pattern=LOGIN_PATH))

    code, run = run_processor(proxied_env(batch_vault, proxy), batch_vault.password, tmp_path / "data")

    assert code == 3, run.stderr()
    assert proxy.count(LOGIN_PATH) == int(FAST_RETRY["BATCH_RETRY_ATTEMPTS"])
    assert proxy.addr in run.stderr()
    assert run.summary()["status"] == "failed"


@pytest.mark.parametrize("status", [500, 502, 503])
def test_transient_5xx_retried_and_batch_completes(
    tmp_path: Path, batch_vault: BatchVault, proxy_for: ProxyFactory, status: int
) -> None:
    names = seed_jobs(batch_vault, 5)
    proxy = proxy_for(batch_vault.server)
    # Two failures in a row on the first reads: fewer than the attempts allowed.
    proxy.add_fault(Fault("status", status=status, path_pattern=READ_PATH, times=2))
    proxy.add_fault(Fault("status", status=status, path_pattern=LOGIN_PATH, times=1))

    code, run = run_processor(
        proxied_env(batch_vault, proxy, BATCH_READ_CONCURRENCY="1"), batch_vault.password, tmp_path / "data"
    )

    assert code == 0, run.stderr()
    summary = run.summary()
    assert summary["status"] == "completed"
    assert summary["counts"]["succeeded"] == len(names)
    assert proxy.count(READ_PATH) == len(names) + 2
    assert proxy.count(LOGIN_PATH) == 2
    assert f"HTTP {status}" in run.stderr()
    assert summary["token"]["revoked"] is True
    assert_tokens_revoked(batch_vault, proxy)


@pytest.mark.parametrize("status", [500, 502])
def test_persistent_5xx_mid_batch_gives_partial(
    tmp_path: Path, batch_vault: BatchVault, proxy_for: ProxyFactory, status: int
) -> None:
    names = seed_jobs(batch_vault, 6)
    proxy = proxy_for(batch_vault.server)
    proxy.add_fault(Fault("status", status=status, path_pattern=READ_PATH, after=2))

    code, run = run_processor(
        proxied_env(batch_vault, proxy, BATCH_READ_CONCURRENCY="1"), batch_vault.password, tmp_path / "data"
    )

    assert code == 1, run.stderr()
    summary = run.summary()
    assert summary["status"] == "partial"
    by_status = {job["job"]: job["status"] for job in summary["jobs"]}
    assert sorted(by_status) == names
    assert [by_status[name] for name in names[:2]] == ["succeeded", "succeeded"]
    failed = [job for job in summary["jobs"] if job["status"] == "failed"]
    assert len(failed) == len(names) - 2
    for job in failed:
        assert f"HTTP {status}" in job["reason"] or "Vault is unavailable" in job["reason"]
    # Once the retries are used up, the other jobs fail at once, without retries each.
    assert proxy.count(READ_PATH) == 2 + int(FAST_RETRY["BATCH_RETRY_ATTEMPTS"])
    assert summary["token"]["revoked"] is True
    assert summary["token"]["revoke_error"] is None
    assert_tokens_revoked(batch_vault, proxy)


def test_list_failing_exits_3_and_revokes(
    tmp_path: Path, batch_vault: BatchVault, proxy_for: ProxyFactory
) -> None:
    seed_jobs(batch_vault, 2)
    proxy = proxy_for(batch_vault.server)
    proxy.add_fault(Fault("status", status=502, path_pattern=r"/v1/kv/metadata/jobs"))

    code, run = run_processor(proxied_env(batch_vault, proxy), batch_vault.password, tmp_path / "data")

    assert code == 3, run.stderr()
    assert proxy.count(r"/v1/kv/metadata/jobs") == int(FAST_RETRY["BATCH_RETRY_ATTEMPTS"])
    summary = run.summary()
    assert summary["status"] == "failed"
    assert "LIST kv/metadata/jobs failed after" in summary["error"]
    assert summary["jobs"] == []
    assert summary["token"]["revoked"] is True
    assert_tokens_revoked(batch_vault, proxy)


def test_sealed_mid_batch_gives_partial_and_records_revoke(
    tmp_path: Path, fresh_openbao: OpenBaoServer, proxy_for: ProxyFactory, runs: list[ProcessorRun]
) -> None:
    vault = seed_batch_namespace(fresh_openbao, NAMESPACE)
    names = seed_jobs(vault, 6)
    proxy = proxy_for(fresh_openbao)
    # Slow reads give the test time to seal the server after the second one.
    proxy.add_fault(Fault("delay", delay_seconds=0.3, path_pattern=READ_PATH))
    run = start_processor(
        proxied_env(vault, proxy, BATCH_READ_CONCURRENCY="1"), vault.password, tmp_path / "data"
    )
    runs.append(run)

    proxy.wait_for(READ_PATH, count=2)
    fresh_openbao.seal()
    code = run.wait()

    assert code == 1, run.stderr()
    summary = run.summary()
    assert summary["status"] == "partial"
    statuses = [job["status"] for job in summary["jobs"]]
    assert statuses.count("failed") >= len(names) - 2
    assert statuses.count("succeeded") + statuses.count("failed") == len(names)
    for job in summary["jobs"]:
        if job["status"] == "failed":
            assert "503" in job["reason"] or "Vault is unavailable" in job["reason"]
    # Vault is still sealed, so the revocation fails and the summary records that.
    assert proxy.count(REVOKE_PATH) >= 1
    assert summary["token"]["revoked"] is False
    assert "token revocation" in summary["token"]["revoke_error"]
    assert "token revocation failed" in run.stderr()


def test_vault_back_within_retries_completes(
    tmp_path: Path, fresh_openbao: OpenBaoServer, proxy_for: ProxyFactory, runs: list[ProcessorRun]
) -> None:
    vault = seed_batch_namespace(fresh_openbao, NAMESPACE)
    names = seed_jobs(vault, 4)
    proxy = proxy_for(fresh_openbao)
    down = proxy.add_fault(Fault("status", status=503, path_pattern=READ_PATH, after=1))
    run = start_processor(
        proxied_env(
            vault,
            proxy,
            BATCH_READ_CONCURRENCY="1",
            BATCH_RETRY_ATTEMPTS="8",
            BATCH_RETRY_INITIAL_DELAY="0.2",
            BATCH_RETRY_MAX_DELAY="0.4",
        ),
        vault.password,
        tmp_path / "data",
    )
    runs.append(run)

    proxy.wait_for(READ_PATH, count=3)
    proxy.clear_faults()
    code = run.wait()

    assert down.applied >= 2
    assert code == 0, run.stderr()
    summary = run.summary()
    assert summary["status"] == "completed"
    assert summary["counts"]["succeeded"] == len(names)
    assert_tokens_revoked(vault, proxy)


def dev_unseal_key(server: OpenBaoServer, timeout: float = 10.0) -> str:
    """Return the unseal key a dev server prints to its log once it has started."""
    assert server.workdir is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = re.search(r"Unseal Key: (\S+)", (server.workdir / "server.log").read_text())
        if found:
            return found.group(1)
        time.sleep(0.05)
    raise AssertionError(f"the dev server printed no unseal key in {timeout} s")


def test_sealed_then_unsealed_within_retries_completes(
    tmp_path: Path, fresh_openbao: OpenBaoServer, proxy_for: ProxyFactory, runs: list[ProcessorRun]
) -> None:
    unseal_key = dev_unseal_key(fresh_openbao)
    vault = seed_batch_namespace(fresh_openbao, NAMESPACE)
    names = seed_jobs(vault, 4)
    proxy = proxy_for(fresh_openbao)
    proxy.add_fault(Fault("delay", delay_seconds=0.3, path_pattern=READ_PATH, times=1))
    run = start_processor(
        proxied_env(
            vault,
            proxy,
            BATCH_READ_CONCURRENCY="1",
            BATCH_RETRY_ATTEMPTS="10",
            BATCH_RETRY_INITIAL_DELAY="0.2",
            BATCH_RETRY_MAX_DELAY="0.5",
        ),
        vault.password,
        tmp_path / "data",
    )
    runs.append(run)

    proxy.wait_for(READ_PATH, count=1)
    fresh_openbao.seal()
    run.wait_for_log("HTTP 503")
    fresh_openbao.request("PUT", "sys/unseal", {"key": unseal_key}, token=None)
    code = run.wait()

    assert code == 0, run.stderr()
    summary = run.summary()
    assert summary["status"] == "completed"
    assert summary["counts"]["succeeded"] == len(names)
    assert summary["token"]["revoked"] is True
    assert_tokens_revoked(vault, proxy)


def test_signal_during_retries_stops_waiting(tmp_path: Path, runs: list[ProcessorRun]) -> None:
    env = {
        "VAULT_ADDR": f"http://127.0.0.1:{free_port()}",
        "BATCH_RETRY_ATTEMPTS": "10",
        "BATCH_RETRY_INITIAL_DELAY": "30",
        "BATCH_RETRY_MAX_DELAY": "30",
    }
    run = start_processor(env, "unused-password", tmp_path / "data")
    runs.append(run)
    run.wait_for_log("retrying in")

    sent = time.monotonic()
    run.signal(signal.SIGTERM)
    code = run.wait(timeout=20)

    assert code == 128 + signal.SIGTERM, run.stderr()
    assert time.monotonic() - sent < 5
    summary = run.summary()
    assert summary["status"] == "aborted"
    assert summary["signal"] == "SIGTERM"


# -- credentials ---------------------------------------------------------------


def test_wrong_password_not_retried_exits_3(
    tmp_path: Path, batch_vault: BatchVault, proxy_for: ProxyFactory
) -> None:
    proxy = proxy_for(batch_vault.server)

    code, run = run_processor(proxied_env(batch_vault, proxy), "not-the-password", tmp_path / "data")

    assert code == 3, run.stderr()
    assert proxy.count(LOGIN_PATH) == 1
    message = run.stderr()
    assert "HTTP 400" in message
    assert "username" in message
    assert "password" in message
    assert "VAULT_NAMESPACE" in message
    assert "does not exist" not in message
    assert run.summary()["status"] == "failed"
    assert proxy.login_tokens() == []


@pytest.mark.parametrize(
    ("setting", "value", "expected"),
    [
        ("VAULT_NAMESPACE", "no-such-namespace", "namespace or the auth mount does not exist"),
        ("VAULT_NAMESPACE", "..", "no auth method mounted"),
        ("VAULT_AUTH_MOUNT", "no-such-userpass", "no auth method mounted"),
    ],
    ids=["missing-namespace", "namespace-without-userpass", "missing-auth-mount"],
)
def test_missing_namespace_or_mount_told_apart(
    tmp_path: Path,
    batch_vault: BatchVault,
    proxy_for: ProxyFactory,
    setting: str,
    value: str,
    expected: str,
) -> None:
    proxy = proxy_for(batch_vault.server)
    if setting == "VAULT_NAMESPACE":
        # ".." stands for the parent namespace, which exists but has no userpass.
        parent = batch_vault.namespace.rsplit("/", 1)[0]
        value = parent if value == ".." else f"{parent}/{value}"
    env = proxied_env(batch_vault, proxy, **{setting: value})

    code, run = run_processor(env, batch_vault.password, tmp_path / "data")

    assert code == 3, run.stderr()
    assert proxy.count(LOGIN_PATH) == 1
    message = run.stderr()
    assert expected in message
    assert "VAULT_PASSWORD_FILE" not in message
    assert run.summary()["status"] == "failed"


# -- token lifetime --------------------------------------------------------------


@pytest.mark.slow
def test_short_token_ttl_renewed_or_relogged(
    tmp_path: Path, openbao: OpenBaoServer, proxy_for: ProxyFactory
) -> None:
    namespace = f"ttl-{random.randrange(16**6):06x}/batch"  # noqa: S311 - a unique name, not a secret
    vault = seed_batch_namespace(openbao, namespace, token_ttl="2s", token_max_ttl="3s")
    names = seed_jobs(vault, 12)
    proxy = proxy_for(openbao)
    # Reads take 0.5 s each, one at a time: about 6 s, twice the max TTL.
    proxy.add_fault(Fault("delay", delay_seconds=0.5, path_pattern=READ_PATH))

    code, run = run_processor(
        proxied_env(vault, proxy, BATCH_READ_CONCURRENCY="1"), vault.password, tmp_path / "data"
    )

    assert code == 0, run.stderr()
    summary = run.summary()
    assert summary["counts"]["succeeded"] == len(names)
    assert summary["token"]["renewals"] >= 1
    assert summary["token"]["logins"] >= 2
    tokens = proxy.login_tokens()
    assert len(tokens) == summary["token"]["logins"]
    assert proxy.count(r"/v1/auth/token/renew-self") >= 1
    assert summary["token"]["revoked"] is True
    assert proxy.count(REVOKE_PATH) == len(tokens)
    assert_tokens_revoked(vault, proxy)


@pytest.mark.slow
def test_token_expiring_in_flight_replaced(
    tmp_path: Path, openbao: OpenBaoServer, proxy_for: ProxyFactory
) -> None:
    namespace = f"ttl-{random.randrange(16**6):06x}/batch"  # noqa: S311 - a unique name, not a secret
    vault = seed_batch_namespace(openbao, namespace, token_ttl="3s", token_max_ttl="3s")
    names = seed_jobs(vault, 3)
    proxy = proxy_for(openbao)
    # The read of job-001 leaves with the first token and reaches Vault after
    # that token has expired, so Vault denies it with 403.
    proxy.add_fault(Fault("delay", delay_seconds=3.5, path_pattern=r"/v1/kv/data/jobs/job-001", times=1))

    code, run = run_processor(proxied_env(vault, proxy), vault.password, tmp_path / "data")

    assert code == 0, run.stderr()
    assert "the token expired during the request; retrying with a new token" in run.stderr()
    summary = run.summary()
    assert summary["counts"]["succeeded"] == len(names)
    assert summary["token"]["logins"] == 2
    assert proxy.count(r"/v1/kv/data/jobs/job-001") == 2
    assert_tokens_revoked(vault, proxy)


# -- signals -------------------------------------------------------------------------


@pytest.mark.parametrize("number", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_mid_batch_aborts_and_revokes(
    tmp_path: Path,
    batch_vault: BatchVault,
    proxy_for: ProxyFactory,
    runs: list[ProcessorRun],
    number: signal.Signals,
) -> None:
    names = seed_jobs(batch_vault, 8, duration_seconds=30)
    proxy = proxy_for(batch_vault.server)
    run = start_processor(
        proxied_env(batch_vault, proxy, BATCH_TIME_SCALE="1", BATCH_CONCURRENCY="2"),
        batch_vault.password,
        tmp_path / "data",
    )
    runs.append(run)
    run.wait_for_log("job 'job-001' started")

    sent = time.monotonic()
    run.signal(number)
    code = run.wait(timeout=20)

    assert code == 128 + number, run.stderr()
    assert time.monotonic() - sent < 10
    summary = run.summary()
    assert summary["status"] == "aborted"
    assert summary["signal"] == number.name
    assert summary["counts"]["cancelled"] == len(names)
    assert summary["counts"]["succeeded"] == 0
    assert run.stderr().count("' started (priority") == 2, "a job started after the signal"
    for job in summary["jobs"]:
        assert number.name in job["reason"]
    assert summary["token"]["revoked"] is True
    assert_tokens_revoked(batch_vault, proxy)


def test_signal_while_reading_configs(
    tmp_path: Path, batch_vault: BatchVault, proxy_for: ProxyFactory, runs: list[ProcessorRun]
) -> None:
    names = seed_jobs(batch_vault, 6)
    proxy = proxy_for(batch_vault.server)
    proxy.add_fault(Fault("delay", delay_seconds=0.5, path_pattern=READ_PATH))
    run = start_processor(
        proxied_env(batch_vault, proxy, BATCH_READ_CONCURRENCY="1"), batch_vault.password, tmp_path / "data"
    )
    runs.append(run)
    proxy.wait_for(READ_PATH, count=1)

    run.signal(signal.SIGTERM)
    code = run.wait(timeout=20)

    assert code == 128 + signal.SIGTERM, run.stderr()
    assert proxy.count(READ_PATH) < len(names), "every configuration was read after the signal"
    summary = run.summary()
    assert summary["status"] == "aborted"
    assert summary["counts"]["cancelled"] == len(names)
    assert "' started (priority" not in run.stderr()
    assert summary["token"]["revoked"] is True
    assert_tokens_revoked(batch_vault, proxy)


# -- concurrent runs -----------------------------------------------------------------


def test_second_run_exits_5_first_undisturbed(
    tmp_path: Path, batch_vault: BatchVault, proxy_for: ProxyFactory, runs: list[ProcessorRun]
) -> None:
    # Long enough that the first run still holds the lock when the second starts.
    names = seed_jobs(batch_vault, 4, duration_seconds=3)
    proxy = proxy_for(batch_vault.server)
    env = proxied_env(batch_vault, proxy, BATCH_TIME_SCALE="1")
    first = start_processor(env, batch_vault.password, tmp_path / "data")
    runs.append(first)
    first.wait_for_log("job 'job-000' started")

    second_code, second = run_processor(
        env, batch_vault.password, tmp_path / "data", stderr_name="second-stderr.txt"
    )
    first_code = first.wait()

    assert second_code == 5, second.stderr()
    assert "another batch run holds" in second.stderr()
    assert proxy.count(LOGIN_PATH) == 1, "the second run contacted Vault"
    assert first_code == 0, first.stderr()
    summary = first.summary()
    assert summary["status"] == "completed"
    assert summary["counts"]["succeeded"] == len(names)


# -- results folder full or read-only ------------------------------------------------


@pytest.fixture
def small_results_dir(tmp_path: Path) -> Iterator[Path]:
    """A data folder whose results/ is a 32 KiB tmpfs, unmounted after the test."""
    data_dir = tmp_path / "data"
    results = data_dir / "results"
    results.mkdir(parents=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=32k,mode=0750", "tmpfs", str(results)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {mounted.stderr.strip()}")
    try:
        yield data_dir
    finally:
        subprocess.run(["umount", "-l", str(results)], check=False)


def test_results_folder_full_clear_error_token_revoked(
    small_results_dir: Path, batch_vault: BatchVault, proxy_for: ProxyFactory
) -> None:
    # Each result takes a 4 KiB page of the 32 KiB tmpfs: 40 jobs cannot fit.
    seed_jobs(batch_vault, 40)
    proxy = proxy_for(batch_vault.server)

    code, run = run_processor(
        proxied_env(batch_vault, proxy, BATCH_CONCURRENCY="1"), batch_vault.password, small_results_dir
    )

    assert code == 1, run.stderr()
    log = run.log()
    assert "No space left on device" in log
    assert re.search(r"cannot write \S+results/\S+\.json: No space left on device; starting no new jobs", log)
    assert log.count("No space left on device; starting no new jobs") == 1, "error repeated per job"
    assert re.search(r"\(\d+ result files not written\)", log)
    assert "batch aborted: 40 jobs" in log
    assert "token revoked: True; summary not written; exit 1" in log
    assert_tokens_revoked(batch_vault, proxy)
    leftovers = list(run.results_dir.glob(".*.tmp"))
    assert leftovers == []


def test_results_folder_read_only_mid_batch(
    small_results_dir: Path, batch_vault: BatchVault, proxy_for: ProxyFactory, runs: list[ProcessorRun]
) -> None:
    # Each job runs 2 s, so the remount lands while job-001 is still running.
    seed_jobs(batch_vault, 6, duration_seconds=2)
    proxy = proxy_for(batch_vault.server)
    run = start_processor(
        proxied_env(batch_vault, proxy, BATCH_TIME_SCALE="1", BATCH_CONCURRENCY="1"),
        batch_vault.password,
        small_results_dir,
    )
    runs.append(run)
    run.wait_for_log("job 'job-001' started")
    subprocess.run(["mount", "-o", "remount,ro", str(run.results_dir)], check=True)

    code = run.wait()

    assert code == 1, run.stderr()
    log = run.log()
    assert "Read-only file system; starting no new jobs" in log
    assert "cannot write the batch summary" in log
    assert "token revoked: True; summary not written; exit 1" in log
    started = log.count("' started (priority")
    assert started <= 3, "jobs kept starting after results could no longer be written"
    assert_tokens_revoked(batch_vault, proxy)


# -- SIGKILL at random moments -------------------------------------------------------


@pytest.mark.slow
def test_sigkill_loop_leaves_only_whole_json(
    tmp_path: Path, batch_vault: BatchVault, runs: list[ProcessorRun]
) -> None:
    seed_jobs(batch_vault, 30)
    data_dir = tmp_path / "data"
    # 10 ms per job, 4 at a time: the batch's write phase lasts about 0.1 s.
    short_jobs = {"BATCH_TIME_SCALE": "0.01"}
    chooser = random.Random(20240605)  # noqa: S311 - repeatable kill times, not a secret

    killed_mid_batch = 0
    for attempt in range(20):
        run = start_processor(batch_vault.env(), batch_vault.password, data_dir, extra_env=short_jobs)
        runs.append(run)
        # Even runs die at any moment from start-up on; odd ones while writing results.
        if attempt % 2 == 1:
            with contextlib.suppress(AssertionError):
                run.wait_for_log("found 30 jobs")
            time.sleep(chooser.uniform(0, 0.15))
        else:
            time.sleep(chooser.uniform(0.05, 0.8))
        run.signal(signal.SIGKILL)
        run.wait()
        for path in run.results_dir.glob("*.json"):
            try:
                json.loads(path.read_text("utf-8"))
            except ValueError:
                pytest.fail(f"run {attempt}: {path.name} is not whole JSON")
        stderr = run.stderr()
        if "found 30 jobs" in stderr and "token revoked:" not in stderr:
            killed_mid_batch += 1

    # Kills before the jobs were listed or after the summary prove nothing.
    assert killed_mid_batch >= 5, f"only {killed_mid_batch} of 20 runs were killed while processing jobs"
    code, last = run_processor(batch_vault.env(), batch_vault.password, data_dir)

    assert code == 0, last.stderr()
    assert list(last.results_dir.glob("*.tmp")) == []
    assert list(last.results_dir.glob(".*")) == []
    assert len(last.summaries()) >= 1


def test_failed_revocation_turns_exit_0_into_3(
    tmp_path: Path, batch_vault: BatchVault, proxy_for: ProxyFactory
) -> None:
    seed_jobs(batch_vault, 2)
    proxy = proxy_for(batch_vault.server)
    proxy.add_fault(Fault("status", status=503, path_pattern=REVOKE_PATH))

    code, run = run_processor(
        proxied_env(batch_vault, proxy, BATCH_RETRY_ATTEMPTS="2"), batch_vault.password, tmp_path / "data"
    )

    assert code == 3, run.stderr()
    summary = run.summary()
    assert summary["counts"]["succeeded"] == 2
    assert summary["exit_code"] == 3
    assert summary["token"]["revoked"] is False
    assert "token revocation failed" in run.stderr()
