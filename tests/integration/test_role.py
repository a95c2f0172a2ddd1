"""Run site.yml with the demo inventory against a real OpenBao server and read Vault back."""

from __future__ import annotations

import json
import secrets
import stat
import subprocess
import urllib.error
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import hcl2
import pytest

from support.nomad_double import NomadDouble
from support.openbao import OpenBaoServer, free_port
from support.playbook import REPO_DIR, PlaybookRun, run_site
from support.vault_seed import BATCH_POLICY

pytestmark = pytest.mark.integration

JOBS_DIR = REPO_DIR / "files" / "jobs"
NAMESPACE = "admin/client_population/batch"


def job_files() -> dict[str, dict]:
    return {
        path.relative_to(JOBS_DIR).with_suffix("").as_posix(): json.loads(path.read_text())
        for path in sorted(JOBS_DIR.rglob("*.json"))
    }


def login(server: OpenBaoServer, password: str) -> str:
    response = server.request(
        "POST",
        "auth/userpass/login/batch-processor",
        {"password": password},
        namespace=NAMESPACE,
        token=None,
    )
    return response["auth"]["client_token"]


@dataclass
class SeededRole:
    """A server that the role ran against twice, with both runs."""

    server: OpenBaoServer
    nomad: NomadDouble
    password: str
    base_dir: Path
    first: PlaybookRun
    second: PlaybookRun


@pytest.fixture(scope="module")
def seeded_role(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeededRole]:
    """Run the role twice against a server of this module's own.

    The server is module-scoped, not the function-scoped fresh_openbao,
    because each run installs the processor's virtual environment and the
    read-back tests can share one seeded server.
    """
    server = OpenBaoServer().start()
    nomad = NomadDouble(node_name="lil-pakalolo", data_dir=tmp_path_factory.mktemp("nomad")).start()
    try:
        demo_dir = tmp_path_factory.mktemp("demo")
        password = "pw-" + secrets.token_urlsafe(18)
        first = run_site(
            server.addr, server.root_token, demo_dir, password, "--diff", "-v", nomad_addr=nomad.addr
        )
        second = run_site(
            server.addr, server.root_token, demo_dir, password, "--diff", "-v", nomad_addr=nomad.addr
        )
        print(f"role run: first {first.seconds:.1f} s, second {second.seconds:.1f} s")
        yield SeededRole(server, nomad, password, demo_dir / "vault-clients", first, second)
    finally:
        nomad.stop()
        server.stop()


def test_role_first_run_changes(seeded_role: SeededRole) -> None:
    run = seeded_role.first
    assert run.returncode == 0, run.output[-4000:]
    assert run.recap()["changed"] > 0
    assert run.recap()["failed"] == 0


def test_role_second_run_is_idempotent(seeded_role: SeededRole) -> None:
    run = seeded_role.second
    assert run.returncode == 0, run.output[-4000:]
    assert run.recap()["changed"] == 0, run.stdout[-6000:]


def test_role_output_hides_secrets(seeded_role: SeededRole) -> None:
    secret_values = [
        seeded_role.password,
        seeded_role.server.root_token,
        "demo-not-a-real-token",
        "demo-not-a-real-password",
    ]
    for run in (seeded_role.first, seeded_role.second):
        for value in secret_values:
            assert value not in run.output


def test_role_diff_names_changed_job_keys(seeded_role: SeededRole) -> None:
    assert "kv/jobs/mail-digest: api_token" in seeded_role.first.stdout
    assert "kv/jobs/team/nightly: priority" in seeded_role.first.stdout


def test_policy_allows_read_and_list_only(seeded_role: SeededRole) -> None:
    response = seeded_role.server.request("GET", "sys/policies/acl/batch-job-policy", namespace=NAMESPACE)
    assert response["data"]["policy"].strip() == BATCH_POLICY.strip()


def test_user_token_reads_and_lists_jobs(seeded_role: SeededRole) -> None:
    server = seeded_role.server
    token = login(server, seeded_role.password)
    job = server.request("GET", "kv/data/jobs/nightly-backup-check", namespace=NAMESPACE, token=token)
    assert job["data"]["data"] == {"priority": "high", "enabled": True}
    listing = server.request("LIST", "kv/metadata/jobs", namespace=NAMESPACE, token=token)
    assert "team/" in listing["data"]["keys"]


def test_user_token_cannot_write_kv(seeded_role: SeededRole) -> None:
    server = seeded_role.server
    token = login(server, seeded_role.password)
    with pytest.raises(urllib.error.HTTPError) as raised:
        server.request(
            "POST", "kv/data/jobs/intruder", {"data": {"priority": "high"}}, namespace=NAMESPACE, token=token
        )
    assert raised.value.code == 403


def test_user_token_cannot_read_outside_jobs(seeded_role: SeededRole) -> None:
    server = seeded_role.server
    server.request("POST", "kv/data/other/thing", {"data": {"a": 1}}, namespace=NAMESPACE)
    token = login(server, seeded_role.password)
    with pytest.raises(urllib.error.HTTPError) as raised:
        server.request("GET", "kv/data/other/thing", namespace=NAMESPACE, token=token)
    assert raised.value.code == 403


def test_user_token_ttl_matches_role(seeded_role: SeededRole) -> None:
    user = seeded_role.server.request("GET", "auth/userpass/users/batch-processor", namespace=NAMESPACE)
    assert user["data"]["token_ttl"] == 3600
    assert user["data"]["token_max_ttl"] == 4 * 3600
    assert user["data"]["token_policies"] == ["batch-job-policy"]


def test_kv_entries_match_job_files(seeded_role: SeededRole) -> None:
    for name, data in job_files().items():
        stored = seeded_role.server.request("GET", f"kv/data/jobs/{name}", namespace=NAMESPACE)
        assert stored["data"]["data"] == data, name
        assert stored["data"]["metadata"]["version"] == 1, name


def test_host_folders_modes(seeded_role: SeededRole) -> None:
    base = seeded_role.base_dir
    expected = {base: 0o755, base / "scripts": 0o755, base / "logs": 0o750, base / "results": 0o750}
    for path, mode in expected.items():
        assert stat.S_IMODE(path.stat().st_mode) == mode, path
    for path in [base, *base.rglob("*")]:
        if path.is_dir() and not path.is_symlink():
            assert not path.stat().st_mode & stat.S_IWOTH, path
    assert not (base / "results").stat().st_mode & stat.S_IROTH


def test_processor_installed_with_venv(seeded_role: SeededRole) -> None:
    scripts = seeded_role.base_dir / "scripts"
    assert (scripts / "batch_processor" / "__main__.py").is_file()
    assert not list(scripts.joinpath("batch_processor").rglob("__pycache__"))
    completed = subprocess.run(
        [
            str(scripts / "venv" / "bin" / "python"),
            "-c",
            "from importlib.metadata import version; print(version('hvac'))",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.strip() == "2.4.0"


def test_nomad_job_file_structure(seeded_role: SeededRole) -> None:
    path = seeded_role.base_dir / "scripts" / "vault-batch-processor.nomad.hcl"
    text = path.read_text()
    assert seeded_role.password not in text
    assert text.startswith("# Ansible managed")

    options = hcl2.SerializationOptions(strip_string_quotes=True, explicit_blocks=False)
    job = hcl2.loads(text, serialization_options=options)["job"][0]["vault-batch-processor"]
    assert job["type"] == "batch"
    periodic = job["periodic"][0]
    assert periodic["crons"] == ["0 2 * * *"]
    assert periodic["time_zone"] == "Pacific/Honolulu"
    assert periodic["prohibit_overlap"] is True
    assert job["constraint"][0]["attribute"] == "${node.unique.name}"
    assert job["constraint"][0]["value"] == "lil-pakalolo"

    group = job["group"][0]["processor"]
    assert group["restart"][0]["attempts"] == 0
    assert group["reschedule"][0] == {"attempts": 0, "unlimited": False}
    volume = group["volume"][0]["vault-clients"]
    assert volume["source"] == "vault-clients-lil-pakalolo"
    assert volume["access_mode"] == "single-node-writer"
    assert volume["attachment_mode"] == "file-system"

    # The demo inventory uses raw_exec, which mounts no volumes: the task
    # uses the host folders and has no volume_mount.
    base_dir = str(seeded_role.base_dir)
    task = group["task"][0]["batch-processor"]
    assert task["driver"] == "raw_exec"
    assert task["config"][0]["command"] == f"{base_dir}/scripts/venv/bin/python"
    assert task["config"][0]["args"] == ["-m", "batch_processor", "run"]
    assert "volume_mount" not in task
    assert task["kill_signal"] == "SIGTERM"
    assert task["kill_timeout"] == "45s"
    env = task["env"][0]
    assert env["VAULT_NAMESPACE"] == NAMESPACE
    assert env["VAULT_PASSWORD_FILE"] == "${NOMAD_SECRETS_DIR}/vault-password"
    assert env["PYTHONPATH"] == f"{base_dir}/scripts"
    assert env["BATCH_DATA_DIR"] == base_dir
    assert "VAULT_PASSWORD" not in env
    template = task["template"][0]
    assert template["destination"] == "secrets/vault-password"
    assert 'nomadVar "nomad/jobs/vault-batch-processor"' in template["data"]


def test_role_updates_changed_password(
    fresh_openbao: OpenBaoServer, nomad_double: NomadDouble, tmp_path: Path
) -> None:
    old_password = "old-" + secrets.token_urlsafe(12)
    new_password = "new-" + secrets.token_urlsafe(12)
    tags = ("--tags", "vault_batch_client_preflight,vault_batch_client_vault")
    first = run_site(
        fresh_openbao.addr,
        fresh_openbao.root_token,
        tmp_path,
        old_password,
        *tags,
        nomad_addr=nomad_double.addr,
    )
    assert first.returncode == 0, first.output[-4000:]

    second = run_site(
        fresh_openbao.addr,
        fresh_openbao.root_token,
        tmp_path,
        new_password,
        *tags,
        "--diff",
        nomad_addr=nomad_double.addr,
    )
    assert second.returncode == 0, second.output[-4000:]
    assert second.recap()["changed"] == 1
    assert new_password not in second.output
    assert login(fresh_openbao, new_password)
    with pytest.raises(urllib.error.HTTPError):
        login(fresh_openbao, old_password)


def test_check_mode_changes_nothing(
    fresh_openbao: OpenBaoServer, nomad_double: NomadDouble, tmp_path: Path
) -> None:
    run = run_site(
        fresh_openbao.addr,
        fresh_openbao.root_token,
        tmp_path,
        "pw-" + secrets.token_hex(8),
        "--check",
        "--diff",
        nomad_addr=nomad_double.addr,
    )
    assert run.returncode == 0, run.output[-4000:]
    assert run.recap()["changed"] > 0
    assert not (tmp_path / "vault-clients").exists()
    with pytest.raises(urllib.error.HTTPError) as raised:
        fresh_openbao.request("LIST", "sys/namespaces")
    assert raised.value.code == 404, "check mode created a namespace"


def test_check_mode_on_seeded_vault_predicts_nothing(seeded_role: SeededRole, tmp_path: Path) -> None:
    server = seeded_role.server
    run = run_site(
        server.addr,
        server.root_token,
        seeded_role.base_dir.parent,
        seeded_role.password,
        "--check",
        "--diff",
        nomad_addr=seeded_role.nomad.addr,
    )
    assert run.returncode == 0, run.output[-4000:]
    assert run.recap()["changed"] == 0, run.stdout[-6000:]


@pytest.mark.parametrize(
    ("extra_vars", "message"),
    [
        ({"vault_batch_client_base_dir": "relative/dir"}, "vault_batch_client_base_dir must be an absolute"),
        ({"vault_batch_client_processor_password": ""}, "vault_batch_client_processor_password is empty"),
        ({"vault_batch_client_processor_token_ttl": "1 day"}, "vault_batch_client_processor_token_ttl"),
        ({"vault_batch_client_vault_namespace": "bad name"}, "must be namespace paths"),
        ({"vault_batch_client_nomad_driver": "docker"}, "vault_batch_client_nomad_driver"),
        ({"vault_batch_client_vault_token": ""}, "vault_batch_client_vault_token must be set"),
        (
            {"vault_batch_client_vault_addr": "127.0.0.1:8200"},
            "vault_batch_client_vault_addr must be an http",
        ),
        ({"vault_batch_client_files_dir": "/nonexistent"}, "vault_batch_client_files_dir must point at"),
        ({"vault_batch_client_nomad_kill_timeout": "45"}, "vault_batch_client_nomad_kill_timeout must be"),
        ({"vault_batch_client_nomad_crons": ["not a cron"]}, "'not a cron': expected 5 fields"),
        ({"vault_batch_client_nomad_crons": ["61 2 * * *"]}, "minute field: 61 is outside 0-59"),
        ({"vault_batch_client_nomad_time_zone": "Mars/Olympus"}, "time zone 'Mars/Olympus' was not found"),
        ({"vault_batch_client_processor_password": "short-pw"}, "openssl rand -base64 32"),
    ],
)
def test_bad_input_stops_in_preflight(
    openbao: OpenBaoServer, nomad_double: NomadDouble, tmp_path: Path, extra_vars: dict, message: str
) -> None:
    vars_file = tmp_path / "vars.json"
    vars_file.write_text(json.dumps(extra_vars))
    run = run_site(
        openbao.addr,
        openbao.root_token,
        tmp_path,
        "pw-" + secrets.token_hex(8),
        "-e",
        f"@{vars_file}",
        nomad_addr=nomad_double.addr,
    )
    assert run.returncode != 0
    assert message in run.output, run.output[-3000:]
    assert run.recap()["changed"] == 0
    assert not (tmp_path / "vault-clients").exists()


def test_unreachable_vault_stops_in_preflight(nomad_double: NomadDouble, tmp_path: Path) -> None:
    run = run_site(
        f"http://127.0.0.1:{free_port()}",
        "unused",
        tmp_path,
        "pw-" + secrets.token_hex(8),
        nomad_addr=nomad_double.addr,
    )
    assert run.returncode != 0
    assert "is not ready" in run.output, run.output[-3000:]
    assert not (tmp_path / "vault-clients").exists()


def test_rejected_token_stops_in_preflight(
    openbao: OpenBaoServer, nomad_double: NomadDouble, tmp_path: Path
) -> None:
    run = run_site(
        openbao.addr, "not-a-token", tmp_path, "pw-" + secrets.token_hex(8), nomad_addr=nomad_double.addr
    )
    assert run.returncode != 0
    assert "Vault rejected vault_batch_client_vault_token" in run.output, run.output[-3000:]
    assert "not-a-token" not in run.output


def test_missing_parent_namespace_stops_in_preflight(
    openbao: OpenBaoServer, nomad_double: NomadDouble, tmp_path: Path
) -> None:
    vars_file = tmp_path / "vars.json"
    vars_file.write_text(
        json.dumps(
            {
                "vault_batch_client_vault_parent_namespace": "absent-" + secrets.token_hex(4),
                "vault_batch_client_vault_create_parent_namespace": False,
            }
        )
    )
    run = run_site(
        openbao.addr,
        openbao.root_token,
        tmp_path,
        "pw-" + secrets.token_hex(8),
        "-e",
        f"@{vars_file}",
        nomad_addr=nomad_double.addr,
    )
    assert run.returncode != 0
    assert "was not found: create it, or set vault_batch_client_vault_create_parent_namespace" in run.output
    assert not (tmp_path / "vault-clients").exists()


def test_invalid_job_file_stops_in_preflight(
    openbao: OpenBaoServer, nomad_double: NomadDouble, tmp_path: Path
) -> None:
    jobs_dir = tmp_path / "jobs"
    (jobs_dir / "team").mkdir(parents=True)
    (jobs_dir / "good.json").write_text('{"priority": "low"}')
    broken = jobs_dir / "team" / "broken.json"
    broken.write_text('{"priority": ')
    run = run_site(
        openbao.addr,
        openbao.root_token,
        tmp_path,
        "pw-" + secrets.token_hex(8),
        "-e",
        f"vault_batch_client_jobs_dir={jobs_dir}",
        nomad_addr=nomad_double.addr,
    )
    assert run.returncode != 0
    assert f"cannot read {broken}" in run.output, run.output[-3000:]
    assert run.recap()["changed"] == 0
    assert not (tmp_path / "vault-clients").exists()
    with pytest.raises(urllib.error.HTTPError):
        openbao.request("GET", "kv/data/jobs/good", namespace=NAMESPACE)
