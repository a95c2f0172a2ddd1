"""The double's HTTP API on a loopback port: nodes, volumes, variables, jobs, plan and ACL."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from support.nomad_double import NomadDouble
from support.nomad_double.client import NomadClient

FIXTURE = Path(__file__).parent.parent / "fixtures" / "nomad" / "batch-processor.nomad.hcl"
JOB_ID = "vault-batch-processor"
VOLUME_NAME = "vault-clients-lil-pakalolo"


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


def volume_body(double: NomadDouble, host_path: Path, **overrides: Any) -> dict[str, Any]:
    volume = {
        "Name": VOLUME_NAME,
        "Namespace": "default",
        "NodeID": double.node_id,
        "HostPath": str(host_path),
        "RequestedCapabilities": [{"AccessMode": "single-node-writer", "AttachmentMode": "file-system"}],
    }
    volume.update(overrides)
    return {"Volume": volume}


def parsed_fixture(client: NomadClient) -> dict[str, Any]:
    reply = client.post("/v1/jobs/parse", {"JobHCL": FIXTURE.read_text(), "Canonicalize": True})
    assert reply.status == 200, reply.text
    return reply.json()


# ------------------------------------------------------------ agent and nodes


def test_agent_self_names_local_node(double, client):
    reply = client.get("/v1/agent/self")

    assert reply.status == 200
    body = reply.json()
    assert body["config"]["NodeName"] == "lil-pakalolo"
    assert body["config"]["Client"]["Enabled"] is True
    assert body["stats"]["client"]["node_id"] == double.node_id
    assert reply.headers["Content-Type"] == "application/json"


def test_nodes_list_and_read(double, client):
    nodes = client.get("/v1/nodes").json()

    assert len(nodes) == 1
    assert nodes[0]["ID"] == double.node_id
    assert nodes[0]["Name"] == "lil-pakalolo"
    assert nodes[0]["Datacenter"] == "dc1"
    assert nodes[0]["Status"] == "ready"
    node = client.get(f"/v1/node/{double.node_id}").json()
    assert node["Name"] == "lil-pakalolo"
    assert node["Drivers"]["exec"]["Healthy"] is True


def test_nodes_filter_expression(client):
    matching = client.get("/v1/nodes?filter=Name%20%3D%3D%20%22lil-pakalolo%22").json()
    other = client.get("/v1/nodes?filter=Name%20%3D%3D%20%22elsewhere%22").json()
    broken = client.get("/v1/nodes?filter=Name%20~%20x")

    assert [node["Name"] for node in matching] == ["lil-pakalolo"]
    assert other == []
    assert broken.status == 400


def test_unknown_node_is_404(client):
    reply = client.get("/v1/node/00000000-0000-0000-0000-000000000000")

    assert reply.status == 404
    assert reply.text == "node not found"


def test_unknown_endpoint_is_404(client):
    reply = client.get("/v1/operator/nothing")

    assert reply.status == 404
    assert reply.headers["Content-Type"].startswith("text/plain")


def test_wrong_method_is_405(client):
    reply = client.delete("/v1/nodes")

    assert reply.status == 405


def test_double_binds_loopback_only(tmp_path):
    with pytest.raises(ValueError, match="loopback only"):
        NomadDouble(data_dir=tmp_path, host="0.0.0.0")  # noqa: S104 - the case under test


# ------------------------------------------------------------ host volumes


def test_volume_register_read_and_list(double, client, tmp_path):
    reply = client.put("/v1/volume/host/register", volume_body(double, tmp_path))

    assert reply.status == 200, reply.text
    volume = reply.json()["Volume"]
    assert volume["ID"]
    assert volume["State"] == "ready"
    assert volume["HostPath"] == str(tmp_path)
    read = client.get(f"/v1/volume/host/{volume['ID']}").json()
    assert read["Name"] == VOLUME_NAME
    listed = client.get("/v1/volumes?type=host").json()
    assert [stub["ID"] for stub in listed] == [volume["ID"]]
    node = client.get(f"/v1/node/{double.node_id}").json()
    assert node["HostVolumes"][VOLUME_NAME]["Path"] == str(tmp_path)


def test_volume_update_needs_id(double, client, tmp_path):
    first = client.put("/v1/volume/host/register", volume_body(double, tmp_path)).json()["Volume"]
    other_path = tmp_path / "moved"

    duplicate = client.put("/v1/volume/host/register", volume_body(double, other_path))
    update = client.put("/v1/volume/host/register", volume_body(double, other_path, ID=first["ID"]))

    assert duplicate.status == 400
    assert "already exists" in duplicate.text
    assert update.status == 200, update.text
    assert update.json()["Volume"]["ID"] == first["ID"]
    assert update.json()["Volume"]["HostPath"] == str(other_path)
    assert update.json()["Volume"]["ModifyIndex"] > first["ModifyIndex"]
    assert len(client.get("/v1/volumes?type=host").json()) == 1


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"NodeID": "no-such-node"}, "not found"),
        ({"HostPath": "relative/path"}, "must be an absolute path"),
        ({"HostPath": ""}, "missing host path"),
        ({"RequestedCapabilities": []}, "at least one capability"),
        (
            {"RequestedCapabilities": [{"AccessMode": "many", "AttachmentMode": "file-system"}]},
            "invalid access mode",
        ),
    ],
)
def test_volume_register_rejects_invalid(double, client, tmp_path, overrides, message):
    reply = client.put("/v1/volume/host/register", volume_body(double, tmp_path, **overrides))

    assert reply.status == 400
    assert message in reply.text


def test_unknown_volume_is_404(client):
    assert client.get("/v1/volume/host/missing").status == 404


# ------------------------------------------------------------ variables


def test_variable_put_get_list_delete(client):
    path = f"/v1/var/nomad/jobs/{JOB_ID}"

    written = client.put(path, {"Items": {"password": "hunter2"}})
    read = client.get(path)
    listed = client.get("/v1/vars?prefix=nomad/jobs").json()
    deleted = client.delete(path)

    assert written.status == 200, written.text
    assert read.json()["Items"] == {"password": "hunter2"}
    assert read.json()["ModifyIndex"] == written.json()["ModifyIndex"]
    assert [entry["Path"] for entry in listed] == [f"nomad/jobs/{JOB_ID}"]
    assert "Items" not in listed[0]
    assert deleted.status == 200
    assert client.get(path).status == 404


def test_variable_check_and_set(client):
    path = f"/v1/var/nomad/jobs/{JOB_ID}"

    created = client.put(f"{path}?cas=0", {"Items": {"password": "one"}})
    index = created.json()["ModifyIndex"]
    second_create = client.put(f"{path}?cas=0", {"Items": {"password": "two"}})
    stale = client.put(f"{path}?cas={index - 1}", {"Items": {"password": "two"}})
    current = client.put(f"{path}?cas={index}", {"Items": {"password": "two"}})
    stale_delete = client.delete(f"{path}?cas={index}")

    assert created.status == 200
    assert second_create.status == 409
    assert second_create.json()["Items"] == {"password": "one"}
    assert stale.status == 409
    assert current.status == 200
    assert current.json()["ModifyIndex"] > index
    assert stale_delete.status == 409
    assert client.get(path).json()["Items"] == {"password": "two"}


@pytest.mark.parametrize(
    "body",
    [{}, {"Items": {}}, {"Items": {"n": 3}}, {"Items": ["a"]}],
)
def test_variable_rejects_bad_items(client, body):
    reply = client.put("/v1/var/nomad/jobs/x", body)

    assert reply.status == 400


def test_variable_rejects_bad_path(client):
    reply = client.put("/v1/var/nomad/jobs/bad%20path", {"Items": {"a": "b"}})

    assert reply.status == 400
    assert "invalid path" in reply.text


# ------------------------------------------------------------ ACL


def test_acl_rejects_missing_and_wrong_token(tmp_path):
    with NomadDouble(data_dir=tmp_path, acl_token="secret-token") as server:
        anonymous = NomadClient(server.addr).get("/v1/agent/self")
        wrong = NomadClient(server.addr, token="guess").get("/v1/jobs")
        unknown_path = NomadClient(server.addr).get("/v1/nothing")
        right = NomadClient(server.addr, token="secret-token").get("/v1/agent/self")

    assert anonymous.status == 403
    assert anonymous.text == "Permission denied"
    assert wrong.status == 403
    assert wrong.text == "ACL token not found"
    assert unknown_path.status == 403
    assert right.status == 200
    assert right.json()["config"]["ACL"]["Enabled"] is True


# ------------------------------------------------------------ parse, plan, register


def test_parse_endpoint_returns_job(client):
    job = parsed_fixture(client)

    assert job["ID"] == JOB_ID
    assert job["Periodic"]["Specs"] == ["0 2 * * *"]
    assert job["TaskGroups"][0]["Tasks"][0]["KillTimeout"] == 45_000_000_000


def test_parse_endpoint_rejects_unknown_attribute(client):
    text = FIXTURE.read_text().replace('driver = "exec"', 'driver = "exec"\n      foo = "bar"')

    reply = client.post("/v1/jobs/parse", {"JobHCL": text})

    assert reply.status == 400
    assert 'Unsupported argument; An argument named "foo" is not expected here.' in reply.text
    assert reply.headers["Content-Type"].startswith("text/plain")


def test_parse_endpoint_rejects_empty_body(client):
    assert client.post("/v1/jobs/parse", {"JobHCL": ""}).status == 400
    assert client.request("POST", "/v1/jobs/parse", None).status == 400


def test_plan_of_new_job_is_added(double, client, tmp_path):
    client.put("/v1/volume/host/register", volume_body(double, tmp_path))
    job = parsed_fixture(client)

    plan = client.post(f"/v1/job/{JOB_ID}/plan", {"Job": job, "Diff": True}).json()

    assert plan["Diff"]["Type"] == "Added"
    assert plan["FailedTGAllocs"] is None
    assert plan["JobModifyIndex"] == 0


def test_plan_none_then_edited(double, client, tmp_path):
    client.put("/v1/volume/host/register", volume_body(double, tmp_path))
    job = parsed_fixture(client)
    registered = client.post("/v1/jobs", {"Job": job})
    assert registered.status == 200, registered.text

    unchanged = client.post(f"/v1/job/{JOB_ID}/plan", {"Job": job, "Diff": True}).json()
    edited_job = copy.deepcopy(job)
    edited_job["Periodic"]["Specs"] = ["0 3 * * *"]
    edited_job["TaskGroups"][0]["Tasks"][0]["Resources"]["MemoryMB"] = 512
    edited = client.post(f"/v1/job/{JOB_ID}/plan", {"Job": edited_job, "Diff": True}).json()

    assert unchanged["Diff"]["Type"] == "None"
    assert unchanged["Diff"]["TaskGroups"][0]["Type"] == "None"
    assert unchanged["JobModifyIndex"] == registered.json()["JobModifyIndex"]
    assert edited["Diff"]["Type"] == "Edited"
    periodic = next(o for o in edited["Diff"]["Objects"] if o["Name"] == "Periodic")
    assert {"Added", "Deleted"} == {field["Type"] for field in periodic["Fields"]}
    assert {field["New"] for field in periodic["Fields"]} >= {"0 3 * * *"}
    task_diff = edited["Diff"]["TaskGroups"][0]["Tasks"][0]
    assert task_diff["Type"] == "Edited"
    resources = next(o for o in task_diff["Objects"] if o["Name"] == "Resources")
    assert resources["Fields"] == [
        {"Type": "Edited", "Name": "MemoryMB", "Old": "256", "New": "512", "Annotations": None}
    ]


def test_plan_reports_missing_host_volume(client):
    job = parsed_fixture(client)

    plan = client.post(f"/v1/job/{JOB_ID}/plan", {"Job": job, "Diff": True}).json()

    failed = plan["FailedTGAllocs"]["processor"]
    assert failed["ConstraintFiltered"] == {"missing compatible host volumes": 1}
    assert plan["Annotations"]["DesiredTGUpdates"]["processor"]["Place"] == 0


def test_plan_reports_unmet_node_constraint(double, client, tmp_path):
    client.put("/v1/volume/host/register", volume_body(double, tmp_path))
    job = parsed_fixture(client)
    job["Constraints"][0]["RTarget"] = "another-node"

    plan = client.post(f"/v1/job/{JOB_ID}/plan", {"Job": job}).json()

    filtered = plan["FailedTGAllocs"]["processor"]["ConstraintFiltered"]
    assert filtered == {"${node.unique.name} = another-node": 1}
    assert plan["Diff"] is None


def test_register_bumps_version_on_change_only(double, client, tmp_path):
    client.put("/v1/volume/host/register", volume_body(double, tmp_path))
    job = parsed_fixture(client)

    first = client.post("/v1/jobs", {"Job": job}).json()
    same = client.put(f"/v1/job/{JOB_ID}", {"Job": job}).json()
    version_after_same = client.get(f"/v1/job/{JOB_ID}").json()["Version"]
    job["TaskGroups"][0]["Tasks"][0]["Env"]["BATCH_TIME_SCALE"] = "0"
    changed = client.post("/v1/jobs", {"Job": job}).json()
    stored = client.get(f"/v1/job/{JOB_ID}").json()

    assert first["EvalID"] == ""  # periodic jobs get evaluations per launch only
    assert version_after_same == 0
    assert same["JobModifyIndex"] == first["JobModifyIndex"]
    assert changed["JobModifyIndex"] > first["JobModifyIndex"]
    assert stored["Version"] == 1
    assert stored["Status"] == "running"
    assert stored["TaskGroups"][0]["Tasks"][0]["Env"]["BATCH_TIME_SCALE"] == "0"


def test_register_enforce_index(double, client, tmp_path):
    job = parsed_fixture(client)

    wrong = client.post("/v1/jobs", {"Job": job, "EnforceIndex": True, "JobModifyIndex": 7})
    right = client.post("/v1/jobs", {"Job": job, "EnforceIndex": True, "JobModifyIndex": 0})

    assert wrong.status == 400
    assert "conflicting job modify index" in wrong.text
    assert right.status == 200


def test_register_succeeds_without_volume(client):
    # Nomad accepts the job; placement, not registration, needs the volume.
    job = parsed_fixture(client)

    reply = client.post("/v1/jobs", {"Job": job})

    assert reply.status == 200


def test_register_rejects_invalid_job(client):
    job = parsed_fixture(client)
    job["Type"] = "service"

    reply = client.post("/v1/jobs", {"Job": job})

    assert reply.status == 400
    assert "Periodic can only be used with batch or sysbatch jobs" in reply.text


def test_register_rejects_id_mismatch(client):
    job = parsed_fixture(client)

    reply = client.put("/v1/job/other-name", {"Job": job})

    assert reply.status == 400
    assert reply.text == "Job ID does not match name"


def test_job_list_read_and_delete(client):
    job = parsed_fixture(client)
    client.post("/v1/jobs", {"Job": job})

    listed = client.get("/v1/jobs").json()
    deleted = client.delete(f"/v1/job/{JOB_ID}")
    after_stop = client.get(f"/v1/job/{JOB_ID}").json()
    purged = client.delete(f"/v1/job/{JOB_ID}?purge=true")

    assert [stub["ID"] for stub in listed] == [JOB_ID]
    assert listed[0]["Periodic"] is True
    assert deleted.status == 200
    assert deleted.json()["EvalID"]
    assert after_stop["Stop"] is True
    assert purged.status == 200
    assert client.get(f"/v1/job/{JOB_ID}").status == 404
    assert client.delete(f"/v1/job/{JOB_ID}").text == "job not found"


def test_force_on_non_periodic_job_rejected(client):
    job = parsed_fixture(client)
    job["Periodic"] = None

    client.post("/v1/jobs", {"Job": job})
    reply = client.post(f"/v1/job/{JOB_ID}/periodic/force")

    assert reply.status == 400
    assert "non-periodic" in reply.text


def test_blocking_query_waits_for_change(client):
    index = int(client.get("/v1/jobs").headers["X-Nomad-Index"])
    job = parsed_fixture(client)
    writer = threading.Timer(0.3, lambda: client.post("/v1/jobs", {"Job": job}))
    writer.start()

    started = time.monotonic()
    reply = client.get(f"/v1/jobs?index={index}&wait=10s")
    elapsed = time.monotonic() - started
    writer.join()

    assert 0.2 < elapsed < 5
    assert [stub["ID"] for stub in reply.json()] == [JOB_ID]
    assert int(reply.headers["X-Nomad-Index"]) > index


# ------------------------------------------------------------ standalone


def test_standalone_module_serves_and_stops(tmp_path):
    tests_dir = Path(__file__).parent.parent
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "support.nomad_double",
            "--port",
            "0",
            "--node-name",
            "standalone-node",
            "--data-dir",
            str(tmp_path),
        ],
        cwd=tests_dir,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(tests_dir)},
    )
    try:
        assert process.stdout is not None
        ready = process.stdout.readline()
        assert ready.startswith("nomad double ready addr=http://127.0.0.1:"), ready
        addr = ready.split("addr=")[1].split()[0]
        node_id = ready.split("node_id=")[1].strip()
        body = NomadClient(addr).get("/v1/agent/self").json()
        assert body["config"]["NodeName"] == "standalone-node"
        assert body["stats"]["client"]["node_id"] == node_id
    finally:
        process.terminate()
        process.wait(10)
    assert process.returncode == 0
