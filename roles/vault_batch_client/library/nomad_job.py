#!/usr/bin/python
"""Ansible module: parse, plan and register a Nomad job from its HCL source."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: nomad_job
short_description: Register a Nomad job when its plan shows a change
description:
  - Sends O(job_hcl) to Nomad's parse endpoint, plans the parsed job with a
    diff, and registers it only when the diff type is not C(None), so an
    unchanged job leaves the task C(ok) and the job's version alone.
  - The diff shown with C(--diff), in check mode too, is the plan's diff
    rendered like C(nomad job plan) prints it.
  - Registration enforces the job modify index that the plan saw, so a job
    changed by someone else in between makes the module fail.
options:
  job_hcl:
    description: The job specification in HCL2, as C(nomad job run) reads it.
    type: str
    required: true
  addr:
    description: Nomad HTTP API address, for example C(https://127.0.0.1:4646).
    type: str
    required: true
  token:
    description: Nomad ACL token, sent in the C(X-Nomad-Token) header; empty when ACLs are off.
    type: str
    default: ""
  namespace:
    description: Nomad namespace of the job; the job's own C(namespace) attribute wins.
    type: str
    default: default
  ca_cert:
    description: CA bundle that signs the Nomad server certificate.
    type: path
  client_cert:
    description: Client certificate for Nomad's mutual TLS.
    type: path
  client_key:
    description: Private key of O(client_cert).
    type: path
  validate_certs:
    description: Whether to verify the Nomad server certificate.
    type: bool
    default: true
  timeout:
    description: Seconds to wait for each Nomad response.
    type: int
    default: 30
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
notes:
  - "ACL capabilities: C(submit-job) and C(read-job) in the job's namespace."
  - HCL2 variables are not passed; render values into the HCL before.
"""

EXAMPLES = r"""
- name: Register the batch job
  nomad_job:
    addr: http://127.0.0.1:4646
    job_hcl: "{{ lookup('ansible.builtin.file', 'batch.nomad.hcl') }}"
"""

RETURN = r"""
job_id:
  description: ID of the job.
  returned: success
  type: str
diff_type:
  description: Type of the plan's job diff, C(Added), C(Edited) or C(None).
  returned: success
  type: str
plan:
  description: The plan's diff rendered as text, empty when nothing changes.
  returned: success
  type: str
failed_placements:
  description: Task groups the plan could not place, with Nomad's reasons.
  returned: success
  type: dict
job_modify_index:
  description: Job modify index after registration; the plan's index when nothing was registered.
  returned: success
  type: int
"""

import json
from typing import Any

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.vault_batch_client_nomad import (
    NomadClient,
    NomadError,
    connection_argument_spec,
    escape_segment,
)

MARKERS = {"Added": "+", "Deleted": "-", "Edited": "+/-", "None": ""}


def render_field(field: dict[str, Any], indent: str) -> str:
    kind = field.get("Type", "None")
    name = field.get("Name", "")
    old, new = json.dumps(field.get("Old", "")), json.dumps(field.get("New", ""))
    if kind == "Added":
        return f"{indent}+ {name}: {new}"
    if kind == "Deleted":
        return f"{indent}- {name}: {old}"
    return f"{indent}+/- {name}: {old} => {new}"


def render_object(diff: dict[str, Any], indent: str) -> list[str]:
    marker = MARKERS.get(diff.get("Type", "None"), "")
    prefix = f"{marker} " if marker else ""
    lines = [f"{indent}{prefix}{diff.get('Name', '')} {{"]
    lines.extend(render_body(diff, indent + "  "))
    lines.append(f"{indent}}}")
    return lines


def render_body(diff: dict[str, Any], indent: str) -> list[str]:
    lines = [render_field(field, indent) for field in diff.get("Fields") or []]
    for child in diff.get("Objects") or []:
        lines.extend(render_object(child, indent))
    return lines


def render_plan(diff: dict[str, Any] | None) -> str:
    """Render a plan's JobDiff in the layout of `nomad job plan`; unchanged parts are left out."""
    if not diff or diff.get("Type", "None") == "None":
        return ""
    lines = [f"{MARKERS[diff['Type']]} Job: {json.dumps(diff.get('ID', ''))}"]
    lines.extend(render_body(diff, ""))
    for group in diff.get("TaskGroups") or []:
        if group.get("Type", "None") == "None":
            continue
        lines.append(f"{MARKERS[group['Type']]} Task Group: {json.dumps(group.get('Name', ''))}")
        lines.extend(render_body(group, "  "))
        for task in group.get("Tasks") or []:
            if task.get("Type", "None") == "None":
                continue
            annotations = ", ".join(task.get("Annotations") or [])
            suffix = f" ({annotations})" if annotations else ""
            lines.append(f"  {MARKERS[task['Type']]} Task: {json.dumps(task.get('Name', ''))}{suffix}")
            lines.extend(render_body(task, "    "))
    return "".join(f"{line}\n" for line in lines)


def describe_failed_placements(failed: dict[str, Any] | None) -> dict[str, Any]:
    """Reduce the plan's FailedTGAllocs to the reasons a reader needs, per task group."""
    reasons: dict[str, Any] = {}
    for group, metric in (failed or {}).items():
        reasons[group] = {
            key: metric.get(key)
            for key in ("ConstraintFiltered", "ClassFiltered", "DimensionExhausted", "NodesEvaluated")
            if metric.get(key)
        }
    return reasons


def run_module() -> None:
    module = AnsibleModule(
        argument_spec=connection_argument_spec(job_hcl={"type": "str", "required": True}),
        supports_check_mode=True,
    )
    client = NomadClient(module.params)
    try:
        # https://developer.hashicorp.com/nomad/api-docs/jobs#parse-job
        job = client.request(
            "POST", "/v1/jobs/parse", {"JobHCL": module.params["job_hcl"], "Canonicalize": True}
        )
    except NomadError as error:
        module.fail_json(msg=error.describe("parse the job specification"), status=error.status)
    job_id = job["ID"]
    client.namespace = job.get("Namespace") or client.namespace

    try:
        # https://developer.hashicorp.com/nomad/api-docs/jobs#create-job-plan
        plan = client.request(
            "POST",
            f"/v1/job/{escape_segment(job_id)}/plan",
            {"Job": job, "Diff": True, "PolicyOverride": False},
        )
    except NomadError as error:
        module.fail_json(msg=error.describe(f"plan job {job_id}"), status=error.status)
    diff = plan.get("Diff") or {}
    diff_type = diff.get("Type", "None")
    failed = describe_failed_placements(plan.get("FailedTGAllocs"))
    for group, reasons in failed.items():
        module.warn(f"the plan of job {job_id} cannot place task group {group}: {json.dumps(reasons)}")
    if plan.get("Warnings"):
        module.warn(f"Nomad warns about job {job_id}: {plan['Warnings']}")

    job_modify_index = int(plan.get("JobModifyIndex") or 0)
    changed = diff_type != "None"
    if changed and not module.check_mode:
        try:
            # https://developer.hashicorp.com/nomad/api-docs/jobs#create-job
            registered = client.request(
                "POST",
                "/v1/jobs",
                {
                    "Job": job,
                    "EnforceIndex": True,
                    "JobModifyIndex": job_modify_index,
                    "PolicyOverride": False,
                },
            )
        except NomadError as error:
            module.fail_json(msg=error.describe(f"register job {job_id}"), status=error.status)
        job_modify_index = int(registered.get("JobModifyIndex") or 0)
        if registered.get("Warnings"):
            module.warn(f"Nomad registered job {job_id} with warnings: {registered['Warnings']}")

    text = render_plan(diff)
    module.exit_json(
        changed=changed,
        job_id=job_id,
        diff_type=diff_type,
        plan=text,
        failed_placements=failed,
        job_modify_index=job_modify_index,
        diff={"prepared": text},
    )


def main() -> None:
    run_module()


if __name__ == "__main__":
    main()
