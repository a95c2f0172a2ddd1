#!/usr/bin/python
"""Ansible module: force one launch of a Nomad periodic job and wait for its allocation."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: nomad_periodic_launch
short_description: Force one launch of a periodic job and report how its batch ended
description:
  - Forces a launch of the periodic job O(job_id), as C(nomad job periodic
    force) does, waits up to O(timeout) seconds for the launch's allocation to
    finish and returns its client status and the task's exit code.
  - Exit status 1 of the processor (a job of the batch failed or was
    invalid) is a normal batch outcome; it fails the task only with
    O(fail_on_job_failure). Any other non-zero status, an allocation that
    could not be placed, or the timeout fails the task.
  - In check mode nothing is launched and the task reports a change.
options:
  job_id:
    description: ID of the registered periodic job.
    type: str
    required: true
  task:
    description: Name of the task whose exit code is the batch's outcome.
    type: str
    default: batch-processor
  wait_timeout:
    description: Seconds to wait for the allocation to be placed and to finish.
    type: int
    default: 600
  results_dir:
    description: Host folder of the processor's results; when set, the batch summary written by this launch is returned.
    type: path
  fail_on_job_failure:
    description: Whether exit status 1 (a job failed or was invalid) fails the task.
    type: bool
    default: false
  addr:
    description: Nomad HTTP API address, for example C(https://127.0.0.1:4646).
    type: str
    required: true
  token:
    description: Nomad ACL token, sent in the C(X-Nomad-Token) header; empty when ACLs are off.
    type: str
    default: ""
  namespace:
    description: Nomad namespace of the job.
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
    support: none
notes:
  - "ACL capabilities: C(submit-job) and C(read-job) in the job's namespace."
  - A launch that outlives O(wait_timeout) keeps running; the module does not stop it.
"""

EXAMPLES = r"""
- name: Run the batch once now
  nomad_periodic_launch:
    addr: http://127.0.0.1:4646
    job_id: vault-batch-processor
    wait_timeout: 900
"""

RETURN = r"""
eval_id:
  description: ID of the launch's evaluation.
  returned: success
  type: str
launched_job_id:
  description: ID of the child job, C(<job id>/periodic-<unix time>).
  returned: success
  type: str
allocation_id:
  description: ID of the launch's allocation.
  returned: success
  type: str
client_status:
  description: Final client status of the allocation, C(complete) or C(failed).
  returned: success
  type: str
exit_code:
  description: Exit code of O(task); -1 when the task never ran to an exit.
  returned: success
  type: int
outcome:
  description: What the exit code means for the batch.
  returned: success
  type: str
summary:
  description: Status, counts and token revocation of the batch summary this launch wrote; empty when not found.
  returned: success
  type: dict
"""

import json
import time
from pathlib import Path
from typing import Any

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.vault_batch_client_nomad import (
    NomadClient,
    NomadError,
    connection_argument_spec,
    escape_segment,
)

TERMINAL_CLIENT_STATUSES = frozenset({"complete", "failed", "lost"})
TERMINAL_EVALUATION_STATUSES = frozenset({"complete", "failed", "canceled", "blocked"})
POLL_SECONDS = 0.5

# The processor's exit statuses, as its README documents them.
EXIT_MEANINGS = {
    0: "every job succeeded or was skipped",
    1: "a job failed, was invalid or was cancelled, or the batch was partial",
    2: "usage or configuration error",
    3: "Vault login or connection failed",
    4: "no job configurations found",
    5: "another run holds the lock on the data folder",
    130: "stopped by SIGINT",
    143: "stopped by SIGTERM",
}


class LaunchError(Exception):
    """A launch that did not run to an exit code; the message states why."""


def wait_blocking(client: NomadClient, path: str, index: int, deadline: float) -> Any:
    """GET `path` as a blocking query past `index`, bounded by `deadline`.

    https://developer.hashicorp.com/nomad/api-docs#blocking-queries
    """
    remaining = max(1, int(deadline - time.monotonic()))
    # The sleep keeps the loop from spinning when the index moves for unrelated writes.
    time.sleep(POLL_SECONDS)
    return client.get(path, {"index": index, "wait": f"{min(remaining, 30)}s"})


def wait_for_evaluation(client: NomadClient, eval_id: str, deadline: float) -> dict[str, Any]:
    """Return the launch's evaluation once the scheduler is done with it."""
    # https://developer.hashicorp.com/nomad/api-docs/evaluations#read-evaluation
    path = f"/v1/evaluation/{escape_segment(eval_id)}"
    evaluation = client.get(path)
    while evaluation.get("Status") not in TERMINAL_EVALUATION_STATUSES:
        if time.monotonic() > deadline:
            raise LaunchError(
                f"evaluation {eval_id} is still {evaluation.get('Status')} after the wait timeout"
            )
        evaluation = wait_blocking(client, path, int(evaluation.get("ModifyIndex") or 0), deadline)
    return evaluation


def find_allocation(client: NomadClient, evaluation: dict[str, Any], deadline: float) -> dict[str, Any]:
    """Return the allocation the evaluation placed, or raise LaunchError with the scheduler's reasons."""
    failed = evaluation.get("FailedTGAllocs")
    if failed or evaluation.get("Status") != "complete":
        reasons = {
            group: metric.get("ConstraintFiltered") or metric.get("DimensionExhausted") or metric
            for group, metric in (failed or {}).items()
        }
        raise LaunchError(
            f"the launch {evaluation.get('JobID')} was not placed (evaluation {evaluation['ID']} "
            f"{evaluation.get('Status')}): {json.dumps(reasons)}; check the host volume and the node constraint"
        )
    # https://developer.hashicorp.com/nomad/api-docs/jobs#list-job-allocations
    path = f"/v1/job/{escape_segment(evaluation['JobID'])}/allocations"
    while True:
        stubs = [stub for stub in client.get(path) or [] if stub.get("EvalID") == evaluation["ID"]]
        if stubs:
            return stubs[0]
        if time.monotonic() > deadline:
            raise LaunchError(f"evaluation {evaluation['ID']} placed no allocation within the wait timeout")
        time.sleep(POLL_SECONDS)


def wait_for_allocation(client: NomadClient, alloc_id: str, deadline: float) -> dict[str, Any]:
    # https://developer.hashicorp.com/nomad/api-docs/allocations#read-allocation
    path = f"/v1/allocation/{escape_segment(alloc_id)}"
    allocation = client.get(path)
    while allocation.get("ClientStatus") not in TERMINAL_CLIENT_STATUSES:
        if time.monotonic() > deadline:
            raise LaunchError(
                f"allocation {alloc_id} is still {allocation.get('ClientStatus')} after the wait timeout; "
                f"it keeps running: follow it with 'nomad alloc status {alloc_id}'"
            )
        allocation = wait_blocking(client, path, int(allocation.get("ModifyIndex") or 0), deadline)
    return allocation


def task_exit(allocation: dict[str, Any], task: str) -> tuple[int, str]:
    """Return the task's exit code (-1 when it never exited) and the message of its last event."""
    state = (allocation.get("TaskStates") or {}).get(task) or {}
    events = state.get("Events") or []
    for event in reversed(events):
        if event.get("Type") == "Terminated":
            details = event.get("Details") or {}
            code = details.get("exit_code", event.get("ExitCode", -1))
            return int(code), event.get("DisplayMessage") or ""
    last = events[-1] if events else {}
    return -1, last.get("DisplayMessage") or last.get("Message") or "no task events"


def read_summary(results_dir: str | None, started: float) -> dict[str, Any]:
    """Return the key fields of the newest batch summary written since `started`."""
    if not results_dir:
        return {}
    folder = Path(results_dir)
    candidates = [path for path in folder.glob("*_summary.json") if path.stat().st_mtime >= started - 1]
    if not candidates:
        return {}
    newest = max(candidates, key=lambda path: path.stat().st_mtime)
    try:
        summary = json.loads(newest.read_text())
    except (OSError, ValueError):
        return {"file": str(newest), "error": "unreadable"}
    return {
        "file": str(newest),
        "batch_id": summary.get("batch_id"),
        "status": summary.get("status"),
        "counts": summary.get("counts"),
        "token_revoked": (summary.get("token") or {}).get("revoked"),
    }


def run_module() -> None:
    module = AnsibleModule(
        argument_spec=connection_argument_spec(
            job_id={"type": "str", "required": True},
            task={"type": "str", "default": "batch-processor"},
            wait_timeout={"type": "int", "default": 600},
            results_dir={"type": "path"},
            fail_on_job_failure={"type": "bool", "default": False},
        ),
        supports_check_mode=True,
    )
    params = module.params
    job_id = params["job_id"]
    if module.check_mode:
        module.exit_json(changed=True, msg=f"check mode: job {job_id} would be launched once")

    client = NomadClient(params)
    started = time.time()
    deadline = time.monotonic() + params["wait_timeout"]
    result: dict[str, Any] = {"changed": True, "eval_id": "", "launched_job_id": "", "allocation_id": ""}
    try:
        # https://developer.hashicorp.com/nomad/api-docs/jobs#force-new-periodic-instance
        forced = client.request("POST", f"/v1/job/{escape_segment(job_id)}/periodic/force")
        result["eval_id"] = forced["EvalID"]
        evaluation = wait_for_evaluation(client, forced["EvalID"], deadline)
        result["launched_job_id"] = evaluation.get("JobID", "")
        stub = find_allocation(client, evaluation, deadline)
        result["allocation_id"] = stub["ID"]
        allocation = wait_for_allocation(client, stub["ID"], deadline)
    except NomadError as error:
        module.fail_json(msg=error.describe(f"launch job {job_id}"), status=error.status, **result)
    except LaunchError as error:
        module.fail_json(msg=str(error), **result)

    exit_code, last_message = task_exit(allocation, params["task"])
    meaning = EXIT_MEANINGS.get(exit_code, "unknown exit status") if exit_code >= 0 else last_message
    result.update(
        client_status=allocation["ClientStatus"],
        exit_code=exit_code,
        outcome=meaning,
        summary=read_summary(params["results_dir"], started),
    )
    message = (
        f"launch {result['launched_job_id']} allocation {stub['ID'][:8]}: {allocation['ClientStatus']}, "
        f"exit code {exit_code} ({meaning})"
    )
    if exit_code == 0 or (exit_code == 1 and not params["fail_on_job_failure"]):
        module.exit_json(msg=message, **result)
    module.fail_json(msg=f"{message}; read its log with 'nomad alloc logs -stderr {stub['ID']}'", **result)


def main() -> None:
    run_module()


if __name__ == "__main__":
    main()
