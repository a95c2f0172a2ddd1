"""The role against a real OpenBao server and the Nomad API double, up to a forced batch run.

One module fixture applies site.yml with the demo inventory four times: a
first run, a second run that must change nothing, a check run with a changed
job setting, and a run that forces one launch. The tests then read Nomad's
state, Vault and the host side of the volume.
"""

from __future__ import annotations

import json
import re
import secrets
import time
import urllib.error
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from support.nomad_double import NomadDouble
from support.nomad_double.client import NomadClient
from support.openbao import OpenBaoServer
from support.playbook import REPO_DIR, PlaybookRun, run_site

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

JOB_ID = "vault-batch-processor"
NAMESPACE = "admin/client_population/batch"
JOBS_DIR = REPO_DIR / "files" / "jobs"
# Scales the example jobs' 1 to 3 seconds of simulated work down to a fraction.
TIME_SCALE = "0.1"
# Service and batch token formats of Vault and OpenBao.
TOKEN_SHAPE = re.compile(r"\b(?:hvs|hvb|s|b)\.[A-Za-z0-9]{20,}")


@dataclass
class Deployment:
    """OpenBao, the Nomad double and the four runs of site.yml against them."""

    # repr=False keeps the root token and the password out of failure reports.
    server: OpenBaoServer = field(repr=False)
    nomad: NomadDouble
    password: str = field(repr=False)
    demo_dir: Path
    first: PlaybookRun
    second: PlaybookRun
    check: PlaybookRun
    forced: PlaybookRun

    @property
    def base_dir(self) -> Path:
        return self.demo_dir / "vault-clients"

    def run(
        self,
        *args: str,
        nomad_addr: str | None = None,
        nomad_token: str | None = None,
        password: str | None = None,
    ) -> PlaybookRun:
        return run_site(
            self.server.addr,
            self.server.root_token,
            self.demo_dir,
            password or self.password,
            "-e",
            f"vault_batch_client_time_scale={TIME_SCALE}",
            *args,
            nomad_addr=nomad_addr or self.nomad.addr,
            nomad_token=nomad_token,
        )

    def runs(self) -> dict[str, PlaybookRun]:
        return {"first": self.first, "second": self.second, "check": self.check, "forced": self.forced}


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    server = OpenBaoServer().start()
    nomad = NomadDouble(node_name="lil-pakalolo", data_dir=tmp_path_factory.mktemp("nomad")).start()
    try:
        demo = Deployment(
            server, nomad, "pw-" + secrets.token_urlsafe(18), tmp_path_factory.mktemp("demo"), *([None] * 4)
        )
        demo.first = demo.run("--diff", "-v")
        demo.second = demo.run("--diff", "-v")
        demo.check = demo.run("--check", "--diff", "-v", "-e", "vault_batch_client_nomad_cpu=321")
        demo.forced = demo.run("-v", "-e", "vault_batch_client_run_now=true")
        timings = ", ".join(f"{name} {run.seconds:.1f} s" for name, run in demo.runs().items())
        print(f"role runs: {timings}")
        yield demo
    finally:
        nomad.stop()
        server.stop()


def assert_secret_absent(secret: str, text: str, where: str) -> None:
    """Fail when `secret` occurs in `text`, naming only the place, never the value."""
    position = text.find(secret)
    if position != -1:
        pytest.fail(f"a secret value occurs in {where} at offset {position}", pytrace=False)


def read_job(deployment: Deployment) -> dict:
    return NomadClient(deployment.nomad.addr).get(f"/v1/job/{JOB_ID}").json()


def example_job_names() -> set[str]:
    return {path.relative_to(JOBS_DIR).with_suffix("").as_posix() for path in JOBS_DIR.rglob("*.json")}


def only_summary(deployment: Deployment) -> dict:
    summaries = sorted((deployment.base_dir / "results").glob("*_summary.json"))
    assert len(summaries) == 1, [path.name for path in summaries]
    return json.loads(summaries[0].read_text())


def processor_tokens(server: OpenBaoServer) -> list[dict]:
    """Look up every token of the batch namespace and return those of the processor's user."""
    try:
        accessors = server.request("LIST", "auth/token/accessors", namespace=NAMESPACE)["data"]["keys"]
    except urllib.error.HTTPError as error:
        if error.code != 404:  # Vault returns 404 for a LIST with no keys
            raise
        return []
    found = []
    for accessor in accessors:
        token = server.request(
            "POST", "auth/token/lookup-accessor", {"accessor": accessor}, namespace=NAMESPACE
        )["data"]
        if (token.get("meta") or {}).get("username") == "batch-processor" or "batch-processor" in (
            token.get("display_name") or ""
        ):
            found.append(token)
    return found


def test_first_run_registers_everything(deployment: Deployment) -> None:
    run = deployment.first
    assert run.returncode == 0, run.output[-4000:]
    nomad = deployment.nomad
    (volume,) = nomad.state.volumes.values()
    assert volume["Name"] == "vault-clients-lil-pakalolo"
    assert volume["NodeID"] == nomad.node_id
    assert volume["HostPath"] == str(deployment.base_dir)
    assert volume["RequestedCapabilities"] == [
        {"AccessMode": "single-node-writer", "AttachmentMode": "file-system"}
    ]
    variable = nomad.state.read_variable("default", f"nomad/jobs/{JOB_ID}")
    assert variable is not None
    if variable["Items"]["vault_password"] != deployment.password:
        pytest.fail("the Nomad Variable does not hold the processor password", pytrace=False)


def test_second_run_changes_nothing(deployment: Deployment) -> None:
    run = deployment.second
    assert run.returncode == 0, run.output[-4000:]
    assert run.recap()["changed"] == 0, run.stdout[-6000:]


def test_registered_job_settings(deployment: Deployment) -> None:
    job = read_job(deployment)
    assert job["Type"] == "batch"
    assert job["Periodic"]["Enabled"] is True
    assert job["Periodic"]["ProhibitOverlap"] is True
    assert job["Periodic"]["TimeZone"] == "Pacific/Honolulu"
    (group,) = job["TaskGroups"]
    assert group["RestartPolicy"]["Attempts"] == 0
    assert group["ReschedulePolicy"]["Attempts"] == 0
    assert group["ReschedulePolicy"]["Unlimited"] is False
    (task,) = group["Tasks"]
    assert task["KillSignal"] == "SIGTERM"
    assert task["Env"]["VAULT_PASSWORD_FILE"] == "${NOMAD_SECRETS_DIR}/vault-password"


def test_check_diff_shows_plan_only(deployment: Deployment) -> None:
    run = deployment.check
    assert run.returncode == 0, run.output[-4000:]
    assert '+/- Job: "vault-batch-processor"' in run.stdout
    assert '+/- CPU: "200" => "321"' in run.stdout, run.stdout[-6000:]
    # The rendered job file and the registered job would change, nothing else.
    assert run.recap()["changed"] == 2, run.stdout[-6000:]
    job = read_job(deployment)
    assert job["TaskGroups"][0]["Tasks"][0]["Resources"]["CPU"] == 200
    assert job["Version"] == 0


def test_check_new_password_hides_value(deployment: Deployment) -> None:
    new_password = "pw-" + secrets.token_urlsafe(18)
    run = deployment.run("--check", "--diff", "-v", password=new_password)
    assert run.returncode == 0, run.output[-4000:]
    # The YAML callback wraps long messages, so the line may break between the two parts.
    assert "would write new values for" in run.stdout, run.stdout[-6000:]
    assert "vault_password (values hidden)" in run.stdout
    assert_secret_absent(new_password, run.output, "ansible output of the check run")
    assert_secret_absent(deployment.password, run.output, "ansible output of the check run")
    variable = deployment.nomad.state.read_variable("default", f"nomad/jobs/{JOB_ID}")
    assert variable is not None
    if variable["Items"]["vault_password"] != deployment.password:
        pytest.fail("check mode changed the Nomad Variable", pytrace=False)


def test_forced_run_reports_outcome(deployment: Deployment) -> None:
    run = deployment.forced
    assert run.returncode == 0, run.output[-4000:]
    assert "exit code 1 (a job failed" in run.stdout, run.stdout[-4000:]
    assert "token revoked: True" in run.stdout


def test_forced_run_writes_one_result_per_job(deployment: Deployment) -> None:
    summary = only_summary(deployment)
    results = sorted((deployment.base_dir / "results").glob(f"*_{summary['batch_id']}.json"))
    recorded = [json.loads(path.read_text())["job"] for path in results if "_summary" not in path.name]
    assert sorted(recorded) == sorted(example_job_names())


def test_forced_run_summary_counts(deployment: Deployment) -> None:
    summary = only_summary(deployment)
    assert summary["status"] == "completed"
    assert summary["exit_code"] == 1
    counts = summary["counts"]
    assert counts["total"] == len(example_job_names())
    assert counts["failed"] == 1
    assert counts["invalid"] == 1
    assert counts["skipped"] == 1
    assert counts["cancelled"] == 0
    assert counts["succeeded"] == counts["total"] - 3
    assert summary["token"]["revoked"] is True


def test_forced_run_revokes_token(deployment: Deployment) -> None:
    assert processor_tokens(deployment.server) == []


def test_password_absent_everywhere(deployment: Deployment) -> None:
    secret_values = {
        "processor password": deployment.password,
        "Vault root token": deployment.server.root_token,
    }
    places = {
        "registered job JSON": json.dumps(read_job(deployment)),
        "rendered job file": (deployment.base_dir / "scripts" / f"{JOB_ID}.nomad.hcl").read_text(),
    }
    for name, run in deployment.runs().items():
        places[f"ansible output of the {name} run"] = run.output
    for path in sorted((deployment.base_dir / "logs").glob("*")):
        places[f"processor log {path.name}"] = path.read_text()
    for path in sorted((deployment.base_dir / "results").glob("*.json")):
        places[f"result {path.name}"] = path.read_text()
    for path in sorted(deployment.nomad.data_dir.glob("alloc/*/alloc/logs/*")):
        places[f"task log {path.name}"] = path.read_text()
    assert any(name.startswith("task log") for name in places)
    for secret_name, secret in secret_values.items():
        for where, text in places.items():
            assert_secret_absent(secret, text, f"{where} ({secret_name})")


def find_task_process(alloc_id: str, timeout: float) -> int | None:
    """Return the PID of the process whose environment carries the allocation ID."""
    marker = f"NOMAD_ALLOC_ID={alloc_id}".encode()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for environ in Path("/proc").glob("[0-9]*/environ"):
            try:
                if marker in environ.read_bytes().split(b"\0"):
                    return int(environ.parent.name)
            except OSError:
                continue
        time.sleep(0.05)
    return None


def test_running_processor_hides_secrets(deployment: Deployment) -> None:
    server = deployment.server
    # duration_seconds is scaled by TIME_SCALE, so this job keeps the batch running for about 4 s.
    server.request(
        "POST",
        "kv/data/jobs/slow-report",
        {"data": {"priority": "low", "duration_seconds": 40}},
        namespace=NAMESPACE,
    )
    try:
        client = NomadClient(deployment.nomad.addr)
        eval_id = client.post(f"/v1/job/{JOB_ID}/periodic/force").json()["EvalID"]
        (allocation,) = deployment.nomad.allocations_for_evaluation(eval_id)
        pid = find_task_process(allocation["ID"], timeout=10)
        assert pid is not None, "the batch process did not start"
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
        environ = Path(f"/proc/{pid}/environ").read_bytes().decode(errors="replace")
        assert "batch_processor" in cmdline
        for where, text in {"cmdline": cmdline, "environ": environ}.items():
            assert_secret_absent(deployment.password, text, f"/proc/<pid>/{where}")
            assert_secret_absent(server.root_token, text, f"/proc/<pid>/{where}")
            found = TOKEN_SHAPE.search(text)
            assert found is None, (
                f"a token-shaped value occurs in /proc/<pid>/{where} at offset {found.start()}"
            )
        assert not [entry for entry in environ.split("\0") if entry.startswith("VAULT_TOKEN=")]
        # While the batch runs its token exists, which shows that the lookup below can find one.
        deadline = time.monotonic() + 5
        while not processor_tokens(server) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert processor_tokens(server), "no token of batch-processor found while the batch runs"
        finished = deployment.nomad.wait_for_allocation(allocation["ID"], timeout=60)
        assert finished["ClientStatus"] == "failed"  # exit status 1: the example failure jobs
    finally:
        server.request("DELETE", "kv/metadata/jobs/slow-report", namespace=NAMESPACE)
    assert processor_tokens(server) == []


def test_volume_with_other_path_fails(deployment: Deployment, tmp_path: Path) -> None:
    run = run_site(
        deployment.server.addr,
        deployment.server.root_token,
        tmp_path,
        deployment.password,
        nomad_addr=deployment.nomad.addr,
    )
    assert run.returncode != 0
    assert f"points at '{deployment.base_dir}', not '{tmp_path / 'vault-clients'}'" in run.output, run.output[
        -3000:
    ]
    assert "nomad volume delete -type host" in run.output
    (volume,) = deployment.nomad.state.volumes.values()
    assert volume["HostPath"] == str(deployment.base_dir)


def test_static_volume_job_requests_no_mode(deployment: Deployment) -> None:
    run = deployment.run(
        "--check",
        "--diff",
        "--tags",
        "vault_batch_client_nomad",
        "-e",
        "vault_batch_client_nomad_volume_mode=static",
    )
    assert run.returncode == 0, run.output[-4000:]
    assert 'AccessMode: "single-node-writer"' in run.stdout, run.stdout[-4000:]
    assert 'AttachmentMode: "file-system"' in run.stdout
    assert (
        read_job(deployment)["TaskGroups"][0]["Volumes"]["vault-clients"]["AccessMode"]
        == "single-node-writer"
    )


def test_static_volume_missing_fails(deployment: Deployment, nomad_double: NomadDouble) -> None:
    run = deployment.run("-e", "vault_batch_client_nomad_volume_mode=static", nomad_addr=nomad_double.addr)
    assert run.returncode != 0
    assert "has no host volume 'vault-clients-lil-pakalolo'" in run.output, run.output[-3000:]
    assert f'host_volume "vault-clients-lil-pakalolo" {{ path = "{deployment.base_dir}"' in run.output
    assert nomad_double.state.volumes == {}
    assert nomad_double.state.jobs == {}


def test_acl_token_required(deployment: Deployment, tmp_path: Path) -> None:
    acl_token = "acl-" + secrets.token_urlsafe(18)
    nomad = NomadDouble(node_name="lil-pakalolo", data_dir=tmp_path / "nomad", acl_token=acl_token).start()
    try:
        without = deployment.run(nomad_addr=nomad.addr)
        assert without.returncode != 0
        assert "rejected the request with HTTP status 403" in without.output, without.output[-3000:]
        assert "no ACL token was given, so export NOMAD_TOKEN" in without.output
        assert without.recap()["changed"] == 0

        with_token = deployment.run("-v", nomad_addr=nomad.addr, nomad_token=acl_token)
        assert with_token.returncode == 0, with_token.output[-4000:]
        assert_secret_absent(acl_token, with_token.output, "ansible output with the ACL token")
        assert len(nomad.state.volumes) == 1
        assert (("default", JOB_ID)) in nomad.state.jobs
    finally:
        nomad.stop()
