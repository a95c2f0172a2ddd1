"""The role's Nomad modules: their logic, and their requests against the Nomad API double."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import nomad_host_volume
import nomad_job
import nomad_periodic_launch
import nomad_variable
import pytest
from ansible.module_utils.vault_batch_client_nomad import NomadClient, NomadError, escape_segment

from support.nomad_double import NomadDouble
from support.openbao import free_port

DESIRED_CAPABILITY = [{"AccessMode": "single-node-writer", "AttachmentMode": "file-system"}]


def connection(addr: str, token: str = "") -> dict:
    return {
        "addr": addr,
        "token": token,
        "namespace": "default",
        "ca_cert": None,
        "client_cert": None,
        "client_key": None,
        "validate_certs": True,
        "timeout": 5,
    }


@pytest.fixture
def nomad(tmp_path: Path) -> Iterator[NomadDouble]:
    double = NomadDouble(node_name="lil-pakalolo", data_dir=tmp_path / "nomad").start()
    try:
        yield double
    finally:
        double.stop()


def desired_volume(node_id: str, host_path: str = "/opt/nomad/vault-clients") -> dict:
    return {
        "Name": "vault-clients-lil-pakalolo",
        "Namespace": "default",
        "NodeID": node_id,
        "HostPath": host_path,
        "RequestedCapabilities": DESIRED_CAPABILITY,
    }


def test_client_reports_unreachable_nomad() -> None:
    client = NomadClient(connection(f"http://127.0.0.1:{free_port()}"))
    with pytest.raises(NomadError) as raised:
        client.get("/v1/agent/self")
    assert raised.value.status == 0
    assert "Nomad did not answer" in raised.value.describe("read the agent")


def test_client_reports_missing_token(tmp_path: Path) -> None:
    with NomadDouble(data_dir=tmp_path, acl_token="secret-token") as double:
        with pytest.raises(NomadError) as raised:
            NomadClient(connection(double.addr)).get("/v1/jobs")
        assert raised.value.status == 403
        assert "vault_batch_client_nomad_token" in raised.value.describe("list jobs")
        assert NomadClient(connection(double.addr, "secret-token")).get("/v1/jobs") == []


def test_escape_segment_escapes_slash() -> None:
    assert escape_segment("job/periodic-1") == "job%2Fperiodic-1"


def test_find_node_through_agent(nomad: NomadDouble) -> None:
    node = nomad_host_volume.find_node(NomadClient(connection(nomad.addr)), "agent", "lil-pakalolo")
    assert node["ID"] == nomad.node_id


def test_find_node_by_name(nomad: NomadDouble) -> None:
    node = nomad_host_volume.find_node(NomadClient(connection(nomad.addr)), "name", "lil-pakalolo")
    assert node["ID"] == nomad.node_id


@pytest.mark.parametrize(
    ("lookup", "message"), [("agent", "runs node 'lil-pakalolo'"), ("name", "no Nomad node")]
)
def test_find_node_rejects_other_name(nomad: NomadDouble, lookup: str, message: str) -> None:
    with pytest.raises(nomad_host_volume.VolumeError, match=message):
        nomad_host_volume.find_node(NomadClient(connection(nomad.addr)), lookup, "other-node")


def test_plan_volume_registers_missing(nomad: NomadDouble) -> None:
    node = nomad.state.node
    desired = desired_volume(node["ID"])
    assert nomad_host_volume.plan_volume(None, desired, node) == desired


def test_plan_volume_keeps_matching(nomad: NomadDouble) -> None:
    client = NomadClient(connection(nomad.addr))
    desired = desired_volume(nomad.node_id)
    client.request("PUT", "/v1/volume/host/register", {"Volume": desired})
    existing = nomad_host_volume.find_dynamic_volume(client, nomad.node_id, desired["Name"])
    assert existing is not None
    assert nomad_host_volume.plan_volume(existing, desired, nomad.state.node) is None


def test_plan_volume_updates_capability_by_id(nomad: NomadDouble) -> None:
    client = NomadClient(connection(nomad.addr))
    desired = desired_volume(nomad.node_id)
    reader = dict(
        desired,
        RequestedCapabilities=[{"AccessMode": "single-node-reader-only", "AttachmentMode": "file-system"}],
    )
    client.request("PUT", "/v1/volume/host/register", {"Volume": reader})
    existing = nomad_host_volume.find_dynamic_volume(client, nomad.node_id, desired["Name"])
    update = nomad_host_volume.plan_volume(existing, desired, nomad.state.node)
    assert update == dict(desired, ID=existing["ID"])
    client.request("PUT", "/v1/volume/host/register", {"Volume": update})
    (stored,) = nomad.state.volumes.values()
    assert stored["RequestedCapabilities"] == DESIRED_CAPABILITY


def test_plan_volume_rejects_other_path(nomad: NomadDouble) -> None:
    client = NomadClient(connection(nomad.addr))
    client.request("PUT", "/v1/volume/host/register", {"Volume": desired_volume(nomad.node_id, "/srv/other")})
    existing = nomad_host_volume.find_dynamic_volume(client, nomad.node_id, "vault-clients-lil-pakalolo")
    with pytest.raises(nomad_host_volume.VolumeError, match=r"points at '/srv/other'.*nomad volume delete"):
        nomad_host_volume.plan_volume(existing, desired_volume(nomad.node_id), nomad.state.node)


def test_plan_volume_rejects_static_name() -> None:
    node = {"Name": "lil-pakalolo", "HostVolumes": {"vault-clients-lil-pakalolo": {"Path": "/srv/x"}}}
    with pytest.raises(nomad_host_volume.VolumeError, match="static host volume"):
        nomad_host_volume.plan_volume(None, desired_volume("node-1"), node)


def test_check_static_accepts_matching_path() -> None:
    node = {"Name": "lil-pakalolo", "HostVolumes": {"v": {"Path": "/opt/nomad/vault-clients"}}}
    nomad_host_volume.check_static(node, "v", "/opt/nomad/vault-clients")


def test_check_static_missing_gives_snippet() -> None:
    with pytest.raises(nomad_host_volume.VolumeError, match=re.escape('host_volume "v" { path = "/opt/x"')):
        nomad_host_volume.check_static({"Name": "n", "HostVolumes": {}}, "v", "/opt/x")


def test_describe_volume_lists_fields() -> None:
    text = nomad_host_volume.describe_volume(desired_volume("node-1"))
    assert "host_path: /opt/nomad/vault-clients\n" in text
    assert "capability: single-node-writer / file-system\n" in text


def test_variable_diff_hides_values() -> None:
    before, after = nomad_variable.describe_items(
        ["other", "vault_password"], ["other", "vault_password"], ["vault_password"]
    )
    assert before == "other: (hidden)\nvault_password: (hidden, value changes)\n"
    assert after == "other: (hidden)\nvault_password: (hidden, new value)\n"


PLAN_DIFF = {
    "Type": "Edited",
    "ID": "vault-batch-processor",
    "Fields": None,
    "Objects": [
        {
            "Type": "Edited",
            "Name": "Periodic",
            "Fields": [
                {"Type": "Edited", "Name": "TimeZone", "Old": "Etc/UTC", "New": "Pacific/Honolulu"},
            ],
            "Objects": None,
        }
    ],
    "TaskGroups": [
        {"Type": "None", "Name": "unchanged", "Tasks": []},
        {
            "Type": "Edited",
            "Name": "processor",
            "Fields": None,
            "Objects": None,
            "Tasks": [
                {
                    "Type": "Edited",
                    "Name": "batch-processor",
                    "Annotations": ["forces create/destroy update"],
                    "Fields": [{"Type": "Added", "Name": "KillSignal", "Old": "", "New": "SIGTERM"}],
                    "Objects": None,
                }
            ],
        },
    ],
}


def test_render_plan_like_nomad_cli() -> None:
    assert nomad_job.render_plan(PLAN_DIFF) == (
        '+/- Job: "vault-batch-processor"\n'
        "+/- Periodic {\n"
        '  +/- TimeZone: "Etc/UTC" => "Pacific/Honolulu"\n'
        "}\n"
        '+/- Task Group: "processor"\n'
        '  +/- Task: "batch-processor" (forces create/destroy update)\n'
        '    + KillSignal: "SIGTERM"\n'
    )


def test_render_plan_empty_for_none() -> None:
    assert nomad_job.render_plan({"Type": "None", "ID": "x", "TaskGroups": []}) == ""


def test_failed_placements_keep_reasons() -> None:
    metric = {
        "ConstraintFiltered": {"missing compatible host volumes": 1},
        "NodesEvaluated": 1,
        "Scores": None,
    }
    assert nomad_job.describe_failed_placements({"processor": metric}) == {
        "processor": {"ConstraintFiltered": {"missing compatible host volumes": 1}, "NodesEvaluated": 1}
    }


def terminated(exit_code: int) -> dict:
    return {"Type": "Terminated", "ExitCode": exit_code, "Details": {"exit_code": str(exit_code)}}


@pytest.mark.parametrize("exit_code", [0, 1, 3])
def test_task_exit_reads_terminated_event(exit_code: int) -> None:
    allocation = {"TaskStates": {"batch-processor": {"Events": [{"Type": "Started"}, terminated(exit_code)]}}}
    assert nomad_periodic_launch.task_exit(allocation, "batch-processor")[0] == exit_code


def test_task_exit_without_exit_reports_last_event() -> None:
    event = {"Type": "Template", "DisplayMessage": "Missing: nomad.var.block(nomad/jobs/x@default.global)"}
    allocation = {"TaskStates": {"batch-processor": {"Events": [event]}}}
    assert nomad_periodic_launch.task_exit(allocation, "batch-processor") == (-1, event["DisplayMessage"])


def test_find_allocation_reports_blocked_launch() -> None:
    evaluation = {
        "ID": "eval-1",
        "JobID": "job/periodic-1",
        "Status": "complete",
        "FailedTGAllocs": {"processor": {"ConstraintFiltered": {"missing compatible host volumes": 1}}},
    }
    with pytest.raises(nomad_periodic_launch.LaunchError, match="missing compatible host volumes"):
        nomad_periodic_launch.find_allocation(None, evaluation, 0)  # type: ignore[arg-type]


def test_read_summary_picks_newest(tmp_path: Path) -> None:
    (tmp_path / "20261204T000000Z-aaaaaa_summary.json").write_text(
        '{"batch_id": "20261204T000000Z-aaaaaa", "status": "completed", "counts": {"total": 1},'
        ' "token": {"revoked": true}}'
    )
    summary = nomad_periodic_launch.read_summary(str(tmp_path), started=0)
    assert summary["batch_id"] == "20261204T000000Z-aaaaaa"
    assert summary["token_revoked"] is True
    assert nomad_periodic_launch.read_summary(None, started=0) == {}
