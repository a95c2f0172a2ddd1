"""The processor against a real OpenBao: the normal batch and the basic exits."""

from __future__ import annotations

import json
import signal
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from batch_processor import cli
from support.openbao import OpenBaoServer
from support.processor import processor_env, run_processor, start_processor
from support.vault_seed import BatchVault

pytestmark = pytest.mark.integration

EXAMPLE_JOBS = {
    "nightly-report": {"priority": "high"},
    "cache-warmup": {"priority": "medium", "duration_seconds": 0.5},
    "archive": {"priority": "low"},
    "legacy-export": {"priority": "low", "enabled": False},
    "flaky-import": {"priority": "medium", "simulate_failure": True},
    "broken": {"priority": "urgent"},
    "team/nightly": {"priority": "high", "api_key": "extra-key-value-never-copied"},
}


def seed(vault: BatchVault, jobs: dict[str, dict]) -> None:
    for name, data in jobs.items():
        vault.put_job(name, data)


def capture_tokens(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record the tokens the processor obtains when main() runs in this process."""
    tokens: list[str] = []
    original = cli.VaultSession

    class RecordingSession(original):  # type: ignore[misc, valid-type]
        def __init__(self, *args, **kwargs) -> None:
            keep = kwargs.get("on_new_token")

            def record(token: str) -> None:
                tokens.append(token)
                if keep:
                    keep(token)

            kwargs["on_new_token"] = record
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(cli, "VaultSession", RecordingSession)
    return tokens


def run_in_process(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> int:
    monkeypatch.setattr(cli, "current_environment", lambda: env)
    return cli.main(["run"])


def wait_for_first_start(data_dir: Path, timeout: float = 30) -> None:
    """Wait until the processor's log shows that a job has started."""
    log = data_dir / "logs" / "batch-processing.log"
    deadline = time.monotonic() + timeout
    while not (log.exists() and "started (priority" in log.read_text()):
        assert time.monotonic() < deadline, f"no job started within {timeout} s"
        time.sleep(0.05)


def test_batch_records_every_job(batch_vault: BatchVault, tmp_path: Path) -> None:
    seed(batch_vault, EXAMPLE_JOBS)
    run = run_processor(processor_env(batch_vault, tmp_path / "data", BATCH_TIME_SCALE="0.01"))

    assert run.returncode == 1  # one failed and one invalid job
    results = run.results()
    assert set(results) == set(EXAMPLE_JOBS)
    statuses = {name: result["status"] for name, result in results.items()}
    assert statuses == {
        "nightly-report": "succeeded",
        "cache-warmup": "succeeded",
        "archive": "succeeded",
        "legacy-export": "skipped",
        "flaky-import": "failed",
        "broken": "invalid",
        "team/nightly": "succeeded",
    }
    assert "priority must be one of high, medium, low" in results["broken"]["reason"]
    assert results["cache-warmup"]["simulated_seconds"] == 0.5
    assert results["team/nightly"]["kv_path"] == "kv/data/jobs/team/nightly"
    assert results["team/nightly"]["version"] == 1

    summary = run.summary()
    assert summary["status"] == "completed"
    assert summary["exit_code"] == 1
    assert summary["counts"] == {
        "total": 7,
        "succeeded": 4,
        "failed": 1,
        "skipped": 1,
        "invalid": 1,
        "cancelled": 0,
    }
    assert summary["token"]["revoked"] is True
    assert len(list(run.results_dir.iterdir())) == 8


def test_extra_keys_never_copied(batch_vault: BatchVault, tmp_path: Path) -> None:
    seed(batch_vault, EXAMPLE_JOBS)
    run = run_processor(processor_env(batch_vault, tmp_path / "data"))
    assert run.returncode == 1
    written = [path.read_text() for path in run.results_dir.iterdir()] + [run.log(), run.stderr]
    leaks = [index for index, text in enumerate(written) if "extra-key-value-never-copied" in text]
    assert leaks == []


def test_all_good_jobs_exit_0(batch_vault: BatchVault, tmp_path: Path) -> None:
    seed(batch_vault, {"a": {"priority": "high"}, "b": {"enabled": False}})
    run = run_processor(processor_env(batch_vault, tmp_path / "data"))
    assert run.returncode == 0
    assert run.summary()["status"] == "completed"


def test_token_revoked_after_run(
    batch_vault: BatchVault, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seed(batch_vault, {"a": {"priority": "high"}})
    tokens = capture_tokens(monkeypatch)
    assert run_in_process(monkeypatch, processor_env(batch_vault, tmp_path / "data")) == 0
    assert len(tokens) == 1
    assert batch_vault.token_works(tokens[0]) is False


def test_stray_tokens_ignored(
    openbao: OpenBaoServer, batch_vault: BatchVault, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seed(batch_vault, {"a": {"priority": "high"}})
    env_token = openbao.request("POST", "auth/token/create", {"ttl": "10m"}, namespace=batch_vault.namespace)
    file_token = openbao.request("POST", "auth/token/create", {"ttl": "10m"}, namespace=batch_vault.namespace)
    env = processor_env(batch_vault, tmp_path / "data", VAULT_TOKEN=env_token["auth"]["client_token"])
    Path(env["HOME"], ".vault-token").write_text(file_token["auth"]["client_token"])
    monkeypatch.setenv("HOME", env["HOME"])
    monkeypatch.setenv("VAULT_TOKEN", env["VAULT_TOKEN"])
    tokens = capture_tokens(monkeypatch)

    assert run_in_process(monkeypatch, env) == 0
    assert batch_vault.token_works(env_token["auth"]["client_token"]) is True
    assert batch_vault.token_works(file_token["auth"]["client_token"]) is True
    assert env_token["auth"]["client_token"] not in tokens
    assert batch_vault.token_works(tokens[0]) is False


def test_empty_folder_exits_4(batch_vault: BatchVault, tmp_path: Path) -> None:
    run = run_processor(processor_env(batch_vault, tmp_path / "data"))
    assert run.returncode == 4
    summary = run.summary()
    assert summary["counts"]["total"] == 0
    assert summary["token"]["revoked"] is True
    assert "no jobs found under kv/metadata/jobs" in run.stderr


def test_wrong_password_exits_3_without_retry(batch_vault: BatchVault, tmp_path: Path) -> None:
    env = processor_env(batch_vault, tmp_path / "data")
    Path(env["VAULT_PASSWORD_FILE"]).write_text("not-the-password\n")
    run = run_processor(env)
    assert run.returncode == 3
    assert "check the username and the password" in run.stderr
    assert "retrying" not in run.stderr
    summary = run.summary()
    assert summary["status"] == "failed"
    assert summary["token"]["revoked"] is None


def test_missing_namespace_named(batch_vault: BatchVault, tmp_path: Path) -> None:
    env = processor_env(batch_vault, tmp_path / "data", VAULT_NAMESPACE="admin/no-such-namespace")
    run = run_processor(env)
    assert run.returncode == 3
    assert "namespace not found" in run.stderr
    assert "check VAULT_NAMESPACE" in run.stderr


def test_sigterm_aborts_and_revokes(batch_vault: BatchVault, tmp_path: Path) -> None:
    seed(batch_vault, {f"job-{n:02d}": {"priority": "low", "duration_seconds": 30} for n in range(8)})
    env = processor_env(batch_vault, tmp_path / "data", BATCH_TIME_SCALE="1", BATCH_CONCURRENCY="2")
    process = start_processor(env)
    wait_for_first_start(tmp_path / "data")
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=20)

    assert process.returncode == 128 + signal.SIGTERM
    summary_files = list((tmp_path / "data" / "results").glob("*_summary.json"))
    summary = json.loads(summary_files[0].read_text())
    assert summary["status"] == "aborted"
    assert summary["signal"] == "SIGTERM"
    assert summary["counts"]["cancelled"] == 8
    assert summary["token"]["revoked"] is True
    assert len(list((tmp_path / "data" / "results").iterdir())) == 9
    assert "received SIGTERM" in stderr


def test_second_run_exits_5(batch_vault: BatchVault, tmp_path: Path) -> None:
    seed(batch_vault, {"slow": {"priority": "high", "duration_seconds": 3}})
    env = processor_env(batch_vault, tmp_path / "data", BATCH_TIME_SCALE="1")
    first = start_processor(env)
    wait_for_first_start(tmp_path / "data")
    second = run_processor(env)
    first.communicate(timeout=30)

    assert second.returncode == 5
    assert "another batch run holds" in second.stderr
    assert first.returncode == 0
    assert len(list((tmp_path / "data" / "results").glob("*_summary.json"))) == 1


def test_priority_order_with_one_worker(batch_vault: BatchVault, tmp_path: Path) -> None:
    seed(batch_vault, {"c-low": {"priority": "low"}, "b-medium": {}, "a-high": {"priority": "high"}})
    run = run_processor(processor_env(batch_vault, tmp_path / "data", BATCH_CONCURRENCY="1"))
    assert run.returncode == 0
    started = [
        line.split("job ")[1].split(" started")[0] for line in run.log().splitlines() if " started (" in line
    ]
    assert started == ["'a-high'", "'b-medium'", "'c-low'"]


def test_threads_do_not_outlive_run(
    batch_vault: BatchVault, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seed(batch_vault, {"a": {}})
    before = {thread.name for thread in threading.enumerate()}
    assert run_in_process(monkeypatch, processor_env(batch_vault, tmp_path / "data")) == 0
    after = {thread.name for thread in threading.enumerate()}
    assert after - before == set()


def test_deeply_nested_config_invalid_alone(
    openbao: OpenBaoServer, batch_vault: BatchVault, tmp_path: Path
) -> None:
    seed(batch_vault, {"plain": {"priority": "high"}})
    depth = 5000
    body = ('{"data": {"priority": "low", "x": ' + "[" * depth + "]" * depth + "}}").encode()
    request = urllib.request.Request(f"{openbao.addr}/v1/kv/data/jobs/deep", data=body, method="POST")  # noqa: S310
    request.add_header("X-Vault-Token", openbao.root_token)
    request.add_header("X-Vault-Namespace", batch_vault.namespace)
    urllib.request.urlopen(request, timeout=10).close()  # noqa: S310

    run = run_processor(processor_env(batch_vault, tmp_path / "data"))

    assert run.returncode == 1
    results = run.results()
    assert results["plain"]["status"] == "succeeded"
    assert results["deep"]["status"] == "invalid"
    assert "nested too deeply" in results["deep"]["reason"]
    assert run.summary()["status"] == "completed"


def test_repeated_sigterm_still_writes_summary(batch_vault: BatchVault, tmp_path: Path) -> None:
    seed(batch_vault, {f"job-{n}": {"duration_seconds": 30} for n in range(4)})
    env = processor_env(batch_vault, tmp_path / "data", BATCH_TIME_SCALE="1")
    process = start_processor(env)
    wait_for_first_start(tmp_path / "data")
    for _ in range(5):
        process.send_signal(signal.SIGTERM)
        time.sleep(0.05)
    process.communicate(timeout=20)

    assert process.returncode == 128 + signal.SIGTERM
    summaries = list((tmp_path / "data" / "results").glob("*_summary.json"))
    assert len(summaries) == 1
    assert json.loads(summaries[0].read_text())["status"] == "aborted"
    assert list((tmp_path / "data" / "results").glob(".*.tmp")) == []
