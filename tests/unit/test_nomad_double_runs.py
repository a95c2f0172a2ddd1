"""Forced periodic launches in the double: real processes, templates, volumes and kills."""

from __future__ import annotations

import json
import stat
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from support.nomad_double import NomadDouble
from support.nomad_double.client import NomadClient, job_path
from support.nomad_double.runner import interpolate, rewrite_volume_paths

FIXTURE = Path(__file__).parent.parent / "fixtures" / "nomad" / "batch-processor.nomad.hcl"
JOB_ID = "vault-batch-processor"
TASK = "batch-processor"
PASSWORD = "correct-horse-battery"

# Writes what the task saw into the volume, as the processor writes its results.
REPORT_SCRIPT = textwrap.dedent(
    """
    import json, os, pathlib, stat
    data_dir = pathlib.Path(os.environ["BATCH_DATA_DIR"])
    password_file = pathlib.Path(os.environ["VAULT_PASSWORD_FILE"])
    report = {
        "env": dict(os.environ),
        "password": password_file.read_text(),
        "password_mode": oct(stat.S_IMODE(password_file.stat().st_mode)),
        "cwd": os.getcwd(),
    }
    (data_dir / "report.json").write_text(json.dumps(report))
    """
)


@pytest.fixture
def double(tmp_path: Path) -> Iterator[NomadDouble]:
    server = NomadDouble(node_name="lil-pakalolo", data_dir=tmp_path / "nomad").start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def client(double: NomadDouble) -> NomadClient:
    return NomadClient(double.addr)


@pytest.fixture
def volume_dir(double: NomadDouble, client: NomadClient, tmp_path: Path) -> Path:
    host_path = tmp_path / "vault-clients"
    host_path.mkdir()
    reply = client.put(
        "/v1/volume/host/register",
        {
            "Volume": {
                "Name": "vault-clients-lil-pakalolo",
                "NodeID": double.node_id,
                "HostPath": str(host_path),
                "RequestedCapabilities": [
                    {"AccessMode": "single-node-writer", "AttachmentMode": "file-system"}
                ],
            }
        },
    )
    assert reply.status == 200, reply.text
    return host_path


def job_running(client: NomadClient, script: str, **task_fields: Any) -> dict[str, Any]:
    """Parse the example job and make its task run `script` with this interpreter."""
    reply = client.post("/v1/jobs/parse", {"JobHCL": FIXTURE.read_text(), "Canonicalize": True})
    assert reply.status == 200, reply.text
    job = reply.json()
    task = job["TaskGroups"][0]["Tasks"][0]
    task["Config"] = {"command": sys.executable, "args": ["-c", script]}
    task.update(task_fields)
    return job


def register_and_force(client: NomadClient, job: dict[str, Any]) -> dict[str, Any]:
    """Register `job`, force a launch and return the launch's evaluation."""
    registered = client.post("/v1/jobs", {"Job": job})
    assert registered.status == 200, registered.text
    forced = client.post(f"/v1/job/{JOB_ID}/periodic/force")
    assert forced.status == 200, forced.text
    evaluation = client.get(f"/v1/evaluation/{forced.json()['EvalID']}")
    assert evaluation.status == 200
    return evaluation.json()


def only_allocation(client: NomadClient, evaluation: dict[str, Any]) -> dict[str, Any]:
    allocations = client.get(f"/v1/job/{job_path(evaluation['JobID'])}/allocations").json()
    assert len(allocations) == 1
    return allocations[0]


def event_types(allocation: dict[str, Any]) -> list[str]:
    return [event["Type"] for event in allocation["TaskStates"][TASK]["Events"]]


def wait_for_event(client: NomadClient, alloc_id: str, event_type: str) -> dict[str, Any]:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        allocation = client.get(f"/v1/allocation/{alloc_id}").json()
        if event_type in event_types(allocation):
            return allocation
        time.sleep(0.05)
    raise AssertionError(f"no {event_type} event on {alloc_id}: {event_types(allocation)}")


def set_password(client: NomadClient, path: str = f"nomad/jobs/{JOB_ID}") -> None:
    reply = client.put(f"/v1/var/{path}", {"Items": {"password": PASSWORD}})
    assert reply.status == 200, reply.text


def test_forced_launch_runs_task_to_complete(double, client, volume_dir):
    set_password(client)
    evaluation = register_and_force(client, job_running(client, REPORT_SCRIPT))

    assert evaluation["Status"] == "complete"
    assert evaluation["TriggeredBy"] == "periodic-job"
    assert evaluation["JobID"].startswith(f"{JOB_ID}/periodic-")
    stub = only_allocation(client, evaluation)
    allocation = double.wait_for_allocation(stub["ID"], timeout=30)

    assert allocation["ClientStatus"] == "complete"
    assert allocation["NodeID"] == double.node_id
    assert allocation["NodeName"] == "lil-pakalolo"
    state = allocation["TaskStates"][TASK]
    assert state["State"] == "dead"
    assert state["Failed"] is False
    assert event_types(allocation) == ["Received", "Task Setup", "Started", "Terminated"]
    assert state["Events"][-1]["ExitCode"] == 0

    report = json.loads((volume_dir / "report.json").read_text())
    env = report["env"]
    assert report["password"] == PASSWORD
    assert report["password_mode"] == "0o400"
    assert env["BATCH_DATA_DIR"] == str(volume_dir)
    assert env["PYTHONPATH"] == f"{volume_dir}/scripts"
    assert env["NOMAD_JOB_ID"] == evaluation["JobID"]
    assert env["NOMAD_JOB_PARENT_ID"] == JOB_ID
    assert env["NOMAD_ALLOC_ID"] == allocation["ID"]
    alloc_dir = double.data_dir / "alloc" / allocation["ID"]
    assert env["NOMAD_SECRETS_DIR"] == str(alloc_dir / TASK / "secrets")
    assert env["VAULT_PASSWORD_FILE"] == str(alloc_dir / TASK / "secrets" / "vault-password")
    assert env["NOMAD_TASK_DIR"] == str(alloc_dir / TASK / "local")
    assert env["NOMAD_ALLOC_DIR"] == str(alloc_dir / "alloc")
    assert report["cwd"] == str(alloc_dir / TASK)

    child = client.get(f"/v1/job/{job_path(evaluation['JobID'])}").json()
    assert child["ParentID"] == JOB_ID
    assert child["Status"] == "dead"
    assert child["Periodic"] is None


@pytest.mark.parametrize("destination", ["secrets/vault-password", "${NOMAD_SECRETS_DIR}/vault-password"])
def test_template_destination_inside_task(double, client, volume_dir, destination):
    set_password(client)
    job = job_running(client, REPORT_SCRIPT)
    job["TaskGroups"][0]["Tasks"][0]["Templates"][0]["DestPath"] = destination

    evaluation = register_and_force(client, job)
    allocation = double.wait_for_allocation(only_allocation(client, evaluation)["ID"], timeout=30)

    assert allocation["ClientStatus"] == "complete"
    rendered = double.data_dir / "alloc" / allocation["ID"] / TASK / "secrets" / "vault-password"
    assert rendered.is_file()
    assert json.loads((volume_dir / "report.json").read_text())["password"] == PASSWORD


def test_secret_never_in_job_or_alloc_json(double, client, volume_dir):
    set_password(client)
    evaluation = register_and_force(client, job_running(client, REPORT_SCRIPT))
    allocation = double.wait_for_allocation(only_allocation(client, evaluation)["ID"])

    assert allocation["ClientStatus"] == "complete"
    for path in (
        f"/v1/job/{JOB_ID}",
        f"/v1/job/{job_path(evaluation['JobID'])}",
        f"/v1/allocation/{allocation['ID']}",
        "/v1/jobs",
        f"/v1/job/{job_path(evaluation['JobID'])}/allocations",
    ):
        assert PASSWORD not in client.get(path).text, path


def test_nonzero_exit_fails_allocation(double, client, volume_dir):
    set_password(client)
    evaluation = register_and_force(client, job_running(client, "import sys; sys.exit(3)"))
    allocation = double.wait_for_allocation(only_allocation(client, evaluation)["ID"])

    assert allocation["ClientStatus"] == "failed"
    state = allocation["TaskStates"][TASK]
    assert state["Failed"] is True
    assert event_types(allocation)[-2:] == ["Terminated", "Not Restarting"]
    terminated = state["Events"][-2]
    assert terminated["ExitCode"] == 3
    assert terminated["DisplayMessage"] == "Exit Code: 3"
    assert state["Events"][-1]["FailsTask"] is True


def test_restart_attempts_rerun_task(double, client, volume_dir):
    set_password(client)
    job = job_running(client, "import sys; sys.exit(1)")
    job["TaskGroups"][0]["RestartPolicy"].update(Attempts=1, Delay=0)
    job["TaskGroups"][0]["Tasks"][0]["RestartPolicy"].update(Attempts=1, Delay=0)

    evaluation = register_and_force(client, job)
    allocation = double.wait_for_allocation(only_allocation(client, evaluation)["ID"])

    assert allocation["ClientStatus"] == "failed"
    assert allocation["TaskStates"][TASK]["Restarts"] == 1
    assert event_types(allocation).count("Started") == 2
    assert "Restarting" in event_types(allocation)


def test_missing_volume_blocks_launch(client):
    set_password(client)

    evaluation = register_and_force(client, job_running(client, REPORT_SCRIPT))

    assert evaluation["FailedTGAllocs"]["processor"]["ConstraintFiltered"] == {
        "missing compatible host volumes": 1
    }
    assert evaluation["BlockedEval"]
    blocked = client.get(f"/v1/evaluation/{evaluation['BlockedEval']}").json()
    assert blocked["Status"] == "blocked"
    assert client.get(f"/v1/job/{job_path(evaluation['JobID'])}/allocations").json() == []


def test_unknown_template_function_fails_alloc(double, client, volume_dir):
    job = job_running(client, REPORT_SCRIPT)
    job["TaskGroups"][0]["Tasks"][0]["Templates"][0]["EmbeddedTmpl"] = '{{ secret "kv/x" }}'

    evaluation = register_and_force(client, job)
    allocation = double.wait_for_allocation(only_allocation(client, evaluation)["ID"])

    assert allocation["ClientStatus"] == "failed"
    last = allocation["TaskStates"][TASK]["Events"][-1]
    assert last["Type"] == "Killing"
    assert 'function "secret" not defined' in last["DisplayMessage"]
    assert "Started" not in event_types(allocation)
    assert not (volume_dir / "report.json").exists()


def test_variable_of_other_job_denied(double, client, volume_dir):
    set_password(client, "nomad/jobs/someone-else")
    job = job_running(client, REPORT_SCRIPT)
    job["TaskGroups"][0]["Tasks"][0]["Templates"][0]["EmbeddedTmpl"] = (
        '{{ with nomadVar "nomad/jobs/someone-else" }}{{ .password }}{{ end }}'
    )

    evaluation = register_and_force(client, job)
    allocation = double.wait_for_allocation(only_allocation(client, evaluation)["ID"])

    assert allocation["ClientStatus"] == "failed"
    assert "Permission denied" in allocation["TaskStates"][TASK]["Events"][-1]["DisplayMessage"]


def test_group_and_task_variables_readable(double, client, volume_dir):
    set_password(client, f"nomad/jobs/{JOB_ID}/processor/{TASK}")
    job = job_running(client, REPORT_SCRIPT)
    job["TaskGroups"][0]["Tasks"][0]["Templates"][0]["EmbeddedTmpl"] = (
        f'{{{{ with nomadVar "nomad/jobs/{JOB_ID}/processor/{TASK}" }}}}{{{{ .password }}}}{{{{ end }}}}'
    )

    evaluation = register_and_force(client, job)
    allocation = double.wait_for_allocation(only_allocation(client, evaluation)["ID"])

    assert allocation["ClientStatus"] == "complete"
    assert json.loads((volume_dir / "report.json").read_text())["password"] == PASSWORD


def test_missing_variable_waits_until_written(double, client, volume_dir):
    evaluation = register_and_force(client, job_running(client, REPORT_SCRIPT))
    alloc_id = only_allocation(client, evaluation)["ID"]

    waiting = wait_for_event(client, alloc_id, "Template")
    message = waiting["TaskStates"][TASK]["Events"][-1]["DisplayMessage"]
    set_password(client)
    allocation = double.wait_for_allocation(alloc_id)

    assert waiting["ClientStatus"] == "pending"
    assert message == f"Missing: nomad.var.block(nomad/jobs/{JOB_ID}@default.global)"
    assert allocation["ClientStatus"] == "complete"


GRACEFUL_SCRIPT = textwrap.dedent(
    """
    import os, pathlib, signal, sys, time
    marker = pathlib.Path(os.environ["BATCH_DATA_DIR"]) / "stopped"
    def stop(number, frame):
        marker.write_text(str(number))
        sys.exit(0)
    signal.signal(signal.SIGTERM, stop)
    (pathlib.Path(os.environ["BATCH_DATA_DIR"]) / "started").write_text("yes")
    time.sleep(60)
    """
)

STUBBORN_SCRIPT = textwrap.dedent(
    """
    import os, pathlib, signal, time
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    (pathlib.Path(os.environ["BATCH_DATA_DIR"]) / "started").write_text("yes")
    time.sleep(60)
    """
)


def wait_for_file(path: Path) -> None:
    deadline = time.monotonic() + 10
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.02)


def test_job_stop_sends_kill_signal(double, client, volume_dir):
    set_password(client)
    evaluation = register_and_force(client, job_running(client, GRACEFUL_SCRIPT))
    alloc_id = only_allocation(client, evaluation)["ID"]
    wait_for_file(volume_dir / "started")

    stopped = client.delete(f"/v1/job/{job_path(evaluation['JobID'])}")
    allocation = double.wait_for_allocation(alloc_id, timeout=10)

    assert stopped.status == 200
    assert (volume_dir / "stopped").read_text() == "15"  # SIGTERM, from kill_signal
    assert allocation["DesiredStatus"] == "stop"
    assert allocation["ClientStatus"] == "complete"
    assert event_types(allocation)[-3:] == ["Killing", "Terminated", "Killed"]
    assert allocation["TaskStates"][TASK]["Events"][-3]["KillTimeout"] == 45_000_000_000


def test_kill_timeout_then_sigkill(double, client, volume_dir):
    set_password(client)
    job = job_running(client, STUBBORN_SCRIPT, KillTimeout=500_000_000)
    evaluation = register_and_force(client, job)
    alloc_id = only_allocation(client, evaluation)["ID"]
    wait_for_file(volume_dir / "started")

    started = time.monotonic()
    reply = client.post(f"/v1/allocation/{alloc_id}/stop")
    allocation = double.wait_for_allocation(alloc_id, timeout=10)
    elapsed = time.monotonic() - started

    assert reply.status == 200
    assert 0.4 < elapsed < 5
    terminated = allocation["TaskStates"][TASK]["Events"][-2]
    assert terminated["Type"] == "Terminated"
    assert terminated["Signal"] == 9
    assert allocation["ClientStatus"] == "complete"


def test_parent_stop_keeps_launched_child(double, client, volume_dir):
    set_password(client)
    evaluation = register_and_force(client, job_running(client, GRACEFUL_SCRIPT))
    alloc_id = only_allocation(client, evaluation)["ID"]
    wait_for_file(volume_dir / "started")

    client.delete(f"/v1/job/{JOB_ID}")
    time.sleep(0.3)
    running = client.get(f"/v1/allocation/{alloc_id}").json()

    assert running["ClientStatus"] == "running"
    assert running["DesiredStatus"] == "run"


def test_stopped_double_kills_running_task(tmp_path):
    host_path = tmp_path / "volume"
    host_path.mkdir()
    with NomadDouble(data_dir=tmp_path / "nomad", kill_wait_seconds=10) as server:
        client = NomadClient(server.addr)
        client.put(
            "/v1/volume/host/register",
            {
                "Volume": {
                    "Name": "vault-clients-lil-pakalolo",
                    "NodeID": server.node_id,
                    "HostPath": str(host_path),
                    "RequestedCapabilities": [
                        {"AccessMode": "single-node-writer", "AttachmentMode": "file-system"}
                    ],
                }
            },
        )
        set_password(client)
        evaluation = register_and_force(client, job_running(client, GRACEFUL_SCRIPT))
        alloc_id = only_allocation(client, evaluation)["ID"]
        wait_for_file(host_path / "started")
    assert (host_path / "stopped").read_text() == "15"
    assert server.state.allocations[alloc_id]["ClientStatus"] == "complete"


def test_task_logs_written(double, client, volume_dir):
    set_password(client)
    script = "print('to stdout'); import sys; print('to stderr', file=sys.stderr)"
    evaluation = register_and_force(client, job_running(client, script))
    allocation = double.wait_for_allocation(only_allocation(client, evaluation)["ID"])

    logs = double.data_dir / "alloc" / allocation["ID"] / "alloc" / "logs"
    assert (logs / f"{TASK}.stdout.0").read_text() == "to stdout\n"
    assert (logs / f"{TASK}.stderr.0").read_text() == "to stderr\n"
    secrets = double.data_dir / "alloc" / allocation["ID"] / TASK / "secrets"
    assert stat.S_IMODE(secrets.stat().st_mode) == 0o700


def test_missing_command_fails_with_driver_failure(double, client, volume_dir):
    set_password(client)
    job = job_running(client, "")
    job["TaskGroups"][0]["Tasks"][0]["Config"] = {"command": "/nonexistent/binary"}

    evaluation = register_and_force(client, job)
    allocation = double.wait_for_allocation(only_allocation(client, evaluation)["ID"])

    assert allocation["ClientStatus"] == "failed"
    assert "Driver Failure" in event_types(allocation)


def test_raw_exec_ignores_volume_mount(double, client, volume_dir):
    # Nomad accepts a volume_mount on a raw_exec task but mounts nothing, so
    # the destination must reach the task unchanged.
    script = (
        "import json, os, pathlib; "
        "pathlib.Path(os.environ['NOMAD_ALLOC_DIR'], 'env.json').write_text(json.dumps(dict(os.environ)))"
    )
    set_password(client)
    job = job_running(client, script, Driver="raw_exec")
    assert job["TaskGroups"][0]["Tasks"][0]["VolumeMounts"], "the fixture task must have a volume_mount"

    evaluation = register_and_force(client, job)
    allocation = double.wait_for_allocation(only_allocation(client, evaluation)["ID"], timeout=30)

    assert allocation["ClientStatus"] == "complete"
    env = json.loads((double.data_dir / "alloc" / allocation["ID"] / "alloc" / "env.json").read_text())
    assert env["BATCH_DATA_DIR"] == "/opt/vault-clients"
    assert env["PYTHONPATH"] == "/opt/vault-clients/scripts"
    assert not list(volume_dir.iterdir())


# ------------------------------------------------------------ path mapping


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("/opt/vault-clients", "/srv/vc"),
        ("/opt/vault-clients/logs/run.log", "/srv/vc/logs/run.log"),
        ("--data=/opt/vault-clients/results", "--data=/srv/vc/results"),
        ("/opt/vault-clients:/other", "/srv/vc:/other"),
        ("/opt/vault-clients-old/x", "/opt/vault-clients-old/x"),
        ("/data/opt/vault-clients", "/data/opt/vault-clients"),
        ("relative/opt/vault-clients", "relative/opt/vault-clients"),
    ],
)
def test_volume_destination_rewritten(text, expected):
    assert rewrite_volume_paths(text, {"/opt/vault-clients": "/srv/vc"}) == expected


def test_interpolate_node_and_env():
    node = {"ID": "n-1", "Name": "lil-pakalolo", "Datacenter": "dc1", "Attributes": {}}
    env = {"NOMAD_TASK_DIR": "/alloc/t/local"}

    text = "${node.unique.name}:${node.datacenter}:${NOMAD_TASK_DIR}:${meta.x}:${unknown.y}"

    assert interpolate(text, env, node) == "lil-pakalolo:dc1:/alloc/t/local:${meta.x}:${unknown.y}"
