"""Hostile or broken job configurations in KV, and stray tokens in the environment.

The processor must keep every result inside results/, name each job exactly,
reject bad configurations one job at a time and never copy a job's own
secrets into results or logs.
"""

from __future__ import annotations

import contextlib
import secrets
import time
import urllib.error
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import quote

import pytest

from support.fault_proxy import FaultProxy
from support.live_processor import ProcessorRun, files_below, find_secret, run_processor
from support.vault_seed import BatchVault

pytestmark = pytest.mark.integration

HOSTILE_NAMES = [
    "...",
    "..x",
    "..",
    "a\\b",
    "what?now",
    "hash#tag",
    "p%2Fq",
    "p%2fq",
    "with space",
    " leading-space",
    "trailing-space ",
    "ünïcödé-名前",
    ".hidden",
    ".",
    "x" * 210,
    "x" * 211,
    "team/nightly/report",
    "team_nightly_report",
    "a_b",
    "a b",
    "a?b",
    "a%b",
    "tab\there",
    "job.json",
    "CON",
]


@pytest.fixture
def proxy(batch_vault: BatchVault) -> Iterator[FaultProxy]:
    started = FaultProxy(upstream=batch_vault.server.addr).start()
    yield started
    started.stop()


def list_job_names(vault: BatchVault, folder: str = "") -> list[str]:
    """Walk kv/metadata/jobs/ with the root token and return every secret's name."""
    path = f"kv/metadata/jobs/{quote(folder)}".rstrip("/")
    try:
        keys = vault.server.request("LIST", path, namespace=vault.namespace)["data"]["keys"]
    except urllib.error.HTTPError as error:
        if error.code == 404:
            return []
        raise
    names: list[str] = []
    for key in keys:
        if key.endswith("/"):
            names.extend(list_job_names(vault, folder + key))
        else:
            names.append(folder + key)
    return names


def written_files(run: ProcessorRun) -> list[Path]:
    return files_below(run.data_dir)


def assert_inside(folder: Path, paths: list[Path]) -> None:
    root = folder.resolve()
    for path in paths:
        assert path.resolve().is_relative_to(root), f"{path} is outside {root}"


def test_hostile_names_map_to_distinct_files(tmp_path: Path, batch_vault: BatchVault) -> None:
    for name in HOSTILE_NAMES:
        # Vault rejects or rewrites a few names ("." and ".." among them), so
        # the expected names are the ones Vault lists afterwards.
        with contextlib.suppress(urllib.error.HTTPError):
            batch_vault.put_job(name, {"priority": "high"})
    stored = list_job_names(batch_vault)
    assert len(stored) >= len(HOSTILE_NAMES) - 3, f"Vault stored only {stored!r}"

    code, run = run_processor(batch_vault.env(), batch_vault.password, tmp_path / "data")

    assert code == 0, run.stderr()
    results = run.job_results()
    assert sorted(result["job"] for result in results) == sorted(stored)
    for result in results:
        assert result["status"] == "succeeded", result["job"]
    result_files = [path for path in run.results_dir.iterdir() if not path.name.endswith("_summary.json")]
    assert len(result_files) == len(stored), "two job names share one result file"
    for path in result_files:
        assert not path.name.startswith(".")
        assert "/" not in path.name
        assert "\\" not in path.name
        assert len(path.name.encode()) <= 255
    assert_inside(run.results_dir, result_files)
    outside = [
        path for path in written_files(run) if path.parent not in (run.results_dir, run.log_path.parent)
    ]
    assert [path.name for path in outside] == [".batch.lock"]
    summary = run.summary()
    assert sorted(job["job"] for job in summary["jobs"]) == sorted(stored)
    for job in summary["jobs"]:
        assert (run.results_dir / job["result_file"]).is_file()


def test_missing_jobs_folder_exits_4(tmp_path: Path, batch_vault: BatchVault) -> None:
    # Nothing was ever written below jobs/, so LIST returns 404.
    code, run = run_processor(batch_vault.env(), batch_vault.password, tmp_path / "data")

    assert code == 4, run.stderr()
    assert "no jobs found under kv/metadata/jobs" in run.stderr()
    summary = run.summary()
    assert summary["jobs"] == []
    assert summary["exit_code"] == 4
    assert summary["token"]["revoked"] is True


def test_emptied_jobs_folder_exits_4(tmp_path: Path, batch_vault: BatchVault) -> None:
    batch_vault.put_job("only", {"priority": "low"})
    batch_vault.server.request("DELETE", "kv/metadata/jobs/only", namespace=batch_vault.namespace)

    code, run = run_processor(batch_vault.env(), batch_vault.password, tmp_path / "data")

    assert code == 4, run.stderr()
    assert run.summary()["jobs"] == []


def test_subfolders_walked_and_named(tmp_path: Path, batch_vault: BatchVault) -> None:
    names = ["top", "team/a", "team/deeper/b", "other/c"]
    for name in names:
        batch_vault.put_job(name, {"priority": "medium"})

    code, run = run_processor(batch_vault.env(), batch_vault.password, tmp_path / "data")

    assert code == 0, run.stderr()
    results = {result["job"]: result for result in run.job_results()}
    assert sorted(results) == sorted(names)
    assert results["team/deeper/b"]["kv_path"] == "kv/data/jobs/team/deeper/b"
    assert [path for path in run.results_dir.iterdir() if path.is_dir()] == []


def test_deleted_and_destroyed_versions_skipped(tmp_path: Path, batch_vault: BatchVault) -> None:
    batch_vault.put_job("soft-deleted", {"priority": "high"})
    batch_vault.put_job("soft-deleted", {"priority": "low"})
    batch_vault.delete_latest("soft-deleted")
    batch_vault.put_job("destroyed", {"priority": "high"})
    batch_vault.destroy_versions("destroyed", [1])
    batch_vault.put_job("healthy", {"priority": "high"})

    code, run = run_processor(batch_vault.env(), batch_vault.password, tmp_path / "data")

    assert code == 0, run.stderr()
    results = {result["job"]: result for result in run.job_results()}
    assert results["healthy"]["status"] == "succeeded"
    assert results["soft-deleted"]["status"] == "skipped"
    assert results["soft-deleted"]["reason"] == "latest version 2 is deleted"
    assert results["soft-deleted"]["version"] == 2
    assert results["destroyed"]["status"] == "skipped"
    assert results["destroyed"]["reason"] == "latest version 1 is destroyed"


WRONG_TYPES = {
    "priority-number": ({"priority": 1}, "priority must be one of high, medium, low"),
    "priority-unknown": ({"priority": "urgent"}, "priority must be one of high, medium, low"),
    "priority-null": ({"priority": None}, "priority must be one of high, medium, low"),
    "enabled-string": ({"enabled": "true"}, "enabled must be a boolean"),
    "enabled-number": ({"enabled": 1}, "enabled must be a boolean"),
    "failure-string": ({"simulate_failure": "false"}, "simulate_failure must be a boolean"),
    "failure-list": ({"simulate_failure": [True]}, "simulate_failure must be a boolean"),
    "duration-string": ({"duration_seconds": "5"}, "duration_seconds must be a number"),
    "duration-bool": ({"duration_seconds": True}, "duration_seconds must be a number"),
    "duration-negative": ({"duration_seconds": -1}, "duration_seconds must be between 0 and"),
    "duration-huge": ({"duration_seconds": 1e300}, "duration_seconds must be between 0 and"),
    "duration-object": ({"duration_seconds": {"s": 1}}, "duration_seconds must be a number"),
    "data-null": (None, "configuration must be a JSON object, got null"),
}


def test_wrong_types_give_invalid_per_job(tmp_path: Path, batch_vault: BatchVault) -> None:
    for name, (data, _) in WRONG_TYPES.items():
        batch_vault.put_job(name, data)
    batch_vault.put_job("valid", {"priority": "low", "duration_seconds": 0})

    code, run = run_processor(batch_vault.env(), batch_vault.password, tmp_path / "data")

    assert code == 1, run.stderr()
    results = {result["job"]: result for result in run.job_results()}
    assert results["valid"]["status"] == "succeeded"
    for name, (_, expected) in WRONG_TYPES.items():
        assert results[name]["status"] == "invalid", name
        assert expected in results[name]["reason"], name
    summary = run.summary()
    assert summary["status"] == "completed"
    assert summary["counts"]["invalid"] == len(WRONG_TYPES)


def test_job_secrets_never_in_results_or_logs(tmp_path: Path, batch_vault: BatchVault) -> None:
    job_secrets = {name: f"job-secret-{name}-{secrets.token_hex(12)}" for name in ("plain", "nested", "bad")}
    batch_vault.put_job("plain", {"priority": "high", "api_key": job_secrets["plain"]})
    batch_vault.put_job(
        "nested", {"priority": "low", "credentials": {"list": [job_secrets["nested"]], "user": "x"}}
    )
    # An invalid configuration: its reason must name the field, not echo the other values.
    batch_vault.put_job("bad", {"priority": "urgent", "password": job_secrets["bad"]})
    big_value = "B" * (1024 * 1024)
    batch_vault.put_job("megabyte", {"priority": "high", "blob": big_value})

    code, run = run_processor(batch_vault.env(), batch_vault.password, tmp_path / "data")

    assert code == 1, run.stderr()
    statuses = {result["job"]: result["status"] for result in run.job_results()}
    assert statuses == {
        "plain": "succeeded",
        "nested": "succeeded",
        "bad": "invalid",
        "megabyte": "succeeded",
    }
    written = [*written_files(run), run.stderr_path]
    for name, secret in job_secrets.items():
        assert find_secret(secret, written) is None, f"secret of job {name!r} was copied"
    assert find_secret("B" * 64, written) is None, "the 1 MB value was copied"
    for path in run.results_dir.iterdir():
        assert path.stat().st_size < 16 * 1024, path.name


@pytest.mark.slow
def test_ten_thousand_jobs(tmp_path: Path, batch_vault: BatchVault) -> None:
    names = [f"bulk/{index:05d}" for index in range(10_000)]
    with ThreadPoolExecutor(max_workers=32) as pool:
        list(pool.map(lambda name: batch_vault.put_job(name, {"priority": "high"}), names))

    started = time.monotonic()
    code, run = run_processor(
        {**batch_vault.env(), "BATCH_READ_CONCURRENCY": "32", "BATCH_CONCURRENCY": "32"},
        batch_vault.password,
        tmp_path / "data",
    )
    elapsed = time.monotonic() - started

    assert code == 0, run.stderr()[-3000:]
    summary = run.summary()
    assert summary["counts"]["total"] == len(names)
    assert summary["counts"]["succeeded"] == len(names)
    result_count = sum(1 for path in run.results_dir.iterdir() if not path.name.endswith("_summary.json"))
    assert result_count == len(names)
    assert elapsed < 120


def test_stray_vault_tokens_ignored_and_left_valid(
    tmp_path: Path, batch_vault: BatchVault, proxy: FaultProxy
) -> None:
    batch_vault.put_job("one", {"priority": "high"})

    def child_token() -> str:
        created = batch_vault.server.request(
            "POST",
            "auth/token/create",
            {"policies": ["batch-job-policy"], "ttl": "10m"},
            namespace=batch_vault.namespace,
        )
        return created["auth"]["client_token"]

    env_token, file_token = child_token(), child_token()
    home = tmp_path / "home"
    home.mkdir()
    (home / ".vault-token").write_text(file_token, encoding="utf-8")
    env = {**batch_vault.env(), "VAULT_ADDR": proxy.addr, "VAULT_TOKEN": env_token}

    code, run = run_processor(env, batch_vault.password, tmp_path / "data", home=home)

    assert code == 0, run.stderr()
    summary = run.summary()
    assert summary["token"]["logins"] == 1
    assert summary["token"]["revoked"] is True
    assert batch_vault.token_works(env_token), "the processor revoked VAULT_TOKEN"
    assert batch_vault.token_works(file_token), "the processor revoked ~/.vault-token"
    written = [*written_files(run), run.stderr_path]
    assert find_secret(env_token, written) is None
    assert find_secret(file_token, written) is None
    assert env_token not in proxy.request_tokens, "the processor sent VAULT_TOKEN to Vault"
    assert file_token not in proxy.request_tokens, "the processor sent ~/.vault-token to Vault"
    assert proxy.request_tokens == set(proxy.login_tokens())
