"""The double's cluster state: one client node, host volumes, variables, jobs, evals, allocations.

Every write takes the state lock and raises the Raft-like index, and readers
can block on that index the way Nomad's blocking queries (`?index=`) do.

Placement follows Nomad's scheduler for the checks a single-node batch job
meets: datacenters, constraints, the task driver, and host volumes. A group
that requests a host volume the node does not have is not placed. The reason
appears as `ConstraintFiltered: {"missing compatible host volumes": 1}` in the
plan's `FailedTGAllocs` and in the evaluation of a forced launch, while the
register itself succeeds. Nomad behaves the same way, because the server
accepts the job and only the scheduler checks volumes at placement.
"""

from __future__ import annotations

import copy
import logging
import re
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import diff, jobspec
from .errors import ApiError
from .runner import AllocationRunner, now_ns, rfc3339

logger = logging.getLogger(__name__)

VARIABLE_PATH = re.compile(r"^[a-zA-Z0-9\-_~/]{1,128}$")
ACCESS_MODES = {
    "single-node-reader-only",
    "single-node-writer",
    "single-node-single-writer",
    "single-node-multi-writer",
}
ATTACHMENT_MODES = {"file-system", "block-device"}
DRIVERS = ("exec", "raw_exec")
FILTER_HOST_VOLUMES = "missing compatible host volumes"
FILTER_DRIVERS = "missing drivers"


def new_id() -> str:
    return str(uuid.uuid4())


class ClusterState:
    """All state behind the HTTP API, guarded by one lock."""

    def __init__(self, node_name: str, data_dir: Path, http_addr: str = "") -> None:
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)
        self.index = 1
        self.data_dir = data_dir

        created = now_ns()
        self.node: dict[str, Any] = {
            "ID": new_id(),
            "Name": node_name,
            "Datacenter": "dc1",
            "NodePool": "default",
            "NodeClass": "",
            "Status": "ready",
            "StatusDescription": "",
            "SchedulingEligibility": "eligible",
            "Drain": False,
            "HTTPAddr": http_addr,
            "TLSEnabled": False,
            "Attributes": {
                "unique.hostname": node_name,
                "kernel.name": "linux",
                "os.name": "debian",
                "driver.exec": "1",
                "driver.raw_exec": "1",
                "nomad.version": "1.10.0",
            },
            "Meta": {},
            "Drivers": {
                name: {"Detected": True, "Healthy": True, "HealthDescription": "Healthy"} for name in DRIVERS
            },
            "HostVolumes": {},
            "CreateIndex": 1,
            "ModifyIndex": 1,
            "StatusUpdatedAt": created // 1_000_000_000,
        }

        self.volumes: dict[str, dict[str, Any]] = {}
        self.variables: dict[tuple[str, str], dict[str, Any]] = {}
        self.jobs: dict[tuple[str, str], dict[str, Any]] = {}
        self.evaluations: dict[str, dict[str, Any]] = {}
        self.allocations: dict[str, dict[str, Any]] = {}
        self.runners: dict[str, AllocationRunner] = {}

    # ------------------------------------------------------------ indexes

    def bump(self) -> int:
        """Raise the index after a write and wake blocking queries; call with the lock held."""
        self.index += 1
        self.changed.notify_all()
        return self.index

    def wait_for_index(self, index: int, timeout: float) -> None:
        """Block until the state index exceeds `index` or `timeout` seconds pass."""
        deadline = time.monotonic() + timeout
        with self.changed:
            while self.index <= index:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return
                self.changed.wait(remaining)

    def notify(self) -> None:
        """Record a change made by an allocation runner."""
        with self.changed:
            self.refresh_job_status()
            self.bump()

    # ------------------------------------------------------------ host volumes

    def register_volume(self, body: dict[str, Any]) -> dict[str, Any]:
        volume = body.get("Volume")
        if not isinstance(volume, dict):
            raise ApiError(400, "missing volume definition")
        name = volume.get("Name") or ""
        namespace = volume.get("Namespace") or "default"
        node_id = volume.get("NodeID") or ""
        host_path = volume.get("HostPath") or ""
        problems = []
        if not name:
            problems.append("missing name")
        if not node_id:
            problems.append("node ID is required to register a volume")
        elif node_id != self.node["ID"]:
            raise ApiError(400, f"node {node_id!r} not found")
        if not host_path:
            problems.append("missing host path")
        elif not host_path.startswith("/"):
            problems.append(f"host path {host_path!r} must be an absolute path")
        capabilities = volume.get("RequestedCapabilities") or []
        if not capabilities:
            problems.append("must include at least one capability block")
        for capability in capabilities:
            if capability.get("AccessMode") not in ACCESS_MODES:
                problems.append(f"invalid access mode: {capability.get('AccessMode')!r}")
            if capability.get("AttachmentMode") not in ATTACHMENT_MODES:
                problems.append(f"invalid attachment mode: {capability.get('AttachmentMode')!r}")
        if problems:
            raise ApiError(400, "; ".join(problems))

        with self.lock:
            requested_id = volume.get("ID") or ""
            same_name = [
                existing
                for existing in self.volumes.values()
                if existing["Name"] == name
                and existing["NodeID"] == node_id
                and existing["Namespace"] == namespace
            ]
            if requested_id:
                current = self.volumes.get(requested_id)
                if current is None:
                    raise ApiError(404, f"no such volume: {requested_id}")
                if current["NodeID"] != node_id:
                    raise ApiError(400, "node ID cannot be updated")
            elif same_name:
                raise ApiError(
                    400,
                    f'a volume with name "{name}" already exists on node {node_id}; send its ID to update it',
                )
            else:
                current = None

            index = self.bump()
            stored = copy.deepcopy(volume)
            stored.update(
                ID=requested_id or new_id(),
                Namespace=namespace,
                NodePool=self.node["NodePool"],
                PluginID=volume.get("PluginID") or "",
                State="ready",
                CreateIndex=current["CreateIndex"] if current else index,
                CreateTime=current["CreateTime"] if current else now_ns(),
                ModifyIndex=index,
                ModifyTime=now_ns(),
                CapacityBytes=volume.get("CapacityBytes") or 0,
                Constraints=volume.get("Constraints"),
                Parameters=volume.get("Parameters"),
            )
            self.volumes[stored["ID"]] = stored
            self.node["HostVolumes"][name] = {
                "Name": name,
                "Path": host_path,
                "ReadOnly": False,
                "ID": stored["ID"],
            }
            self.node["ModifyIndex"] = index
            logger.info("host volume %s registered as %s at %s", name, stored["ID"], host_path)
            return {"Volume": copy.deepcopy(stored), "Warnings": ""}

    def volume_stub(self, volume: dict[str, Any]) -> dict[str, Any]:
        keys = (
            "Namespace ID Name PluginID NodePool NodeID CapacityBytes State "
            "CreateIndex CreateTime ModifyIndex ModifyTime"
        ).split()
        return {key: volume.get(key) for key in keys}

    # ------------------------------------------------------------ variables

    def read_variable(self, namespace: str, path: str) -> dict[str, Any] | None:
        with self.lock:
            found = self.variables.get((namespace, path))
            return copy.deepcopy(found) if found else None

    def put_variable(
        self, namespace: str, path: str, body: dict[str, Any], cas: int | None
    ) -> dict[str, Any]:
        if not VARIABLE_PATH.match(path) or path.startswith("/") or "//" in path:
            raise ApiError(400, f'invalid path "{path}"')
        items = body.get("Items")
        if not isinstance(items, dict) or not items:
            raise ApiError(400, "variable missing Items")
        for key, value in items.items():
            if not isinstance(value, str):
                raise ApiError(400, f"variable item {key!r} must be a string")
        if body.get("Path") not in {None, "", path}:
            raise ApiError(400, "variable path in the body does not match the URL")
        with self.lock:
            current = self.variables.get((namespace, path))
            self._check_cas(current, cas)
            index = self.bump()
            now = now_ns()
            stored = {
                "Namespace": namespace,
                "Path": path,
                "Items": dict(items),
                "CreateIndex": current["CreateIndex"] if current else index,
                "CreateTime": current["CreateTime"] if current else now,
                "ModifyIndex": index,
                "ModifyTime": now,
            }
            self.variables[(namespace, path)] = stored
            return copy.deepcopy(stored)

    def delete_variable(self, namespace: str, path: str, cas: int | None) -> None:
        with self.lock:
            current = self.variables.get((namespace, path))
            self._check_cas(current, cas)
            if current is not None:
                del self.variables[(namespace, path)]
                self.bump()

    @staticmethod
    def _check_cas(current: dict[str, Any] | None, cas: int | None) -> None:
        if cas is None:
            return
        current_index = current["ModifyIndex"] if current else 0
        if cas != current_index:
            # Nomad rejects a check-and-set conflict with 409 and returns the current variable.
            raise CasConflict(current)

    def list_variables(self, namespace: str, prefix: str) -> list[dict[str, Any]]:
        with self.lock:
            return [
                {key: value for key, value in variable.items() if key != "Items"}
                for (space, path), variable in sorted(self.variables.items())
                if namespace in {"*", space} and path.startswith(prefix)
            ]

    def task_can_read(self, job: dict[str, Any], group: str, task: str, path: str) -> bool:
        """Apply Nomad's implicit workload policy: a task reads its own job's variables."""
        job_id = job.get("ParentID") or job["ID"]
        allowed = {
            "nomad/jobs",
            f"nomad/jobs/{job_id}",
            f"nomad/jobs/{job_id}/{group}",
            f"nomad/jobs/{job_id}/{group}/{task}",
        }
        return path in allowed

    # ------------------------------------------------------------ placement

    def place(self, job: dict[str, Any], group: dict[str, Any]) -> dict[str, Any] | None:
        """Check whether `group` fits the node; return an AllocationMetric when it does not."""
        node = self.node
        filtered: dict[str, int] = {}
        datacenters = job.get("Datacenters") or ["*"]
        if not any(re.fullmatch(dc.replace("*", ".*"), node["Datacenter"]) for dc in datacenters):
            return _metric(nodes_evaluated=0, nodes_in_pool=1, filtered={}, class_filtered=True)
        constraints = [*(job.get("Constraints") or []), *(group.get("Constraints") or [])]
        for task in group.get("Tasks") or []:
            constraints.extend(task.get("Constraints") or [])
        for constraint in constraints:
            if not self._constraint_holds(constraint):
                key = f"{constraint['LTarget']} {constraint['Operand']} {constraint['RTarget']}"
                filtered[key.strip()] = 1
                return _metric(1, 1, filtered)
        for task in group.get("Tasks") or []:
            if task["Driver"] not in node["Drivers"]:
                return _metric(1, 1, {FILTER_DRIVERS: 1})
        if self.group_volume_paths(job, group) is None:
            return _metric(1, 1, {FILTER_HOST_VOLUMES: 1})
        return None

    def group_volume_paths(self, job: dict[str, Any], group: dict[str, Any]) -> dict[str, str] | None:
        """Map each host volume of `group` to its host path, or return None when one is missing."""
        paths: dict[str, str] = {}
        namespace = job.get("Namespace") or "default"
        for name, request in (group.get("Volumes") or {}).items():
            if request.get("Type") != "host":
                return None  # NOTE: the double has no CSI plugins, so CSI volumes never place.
            found = None
            for volume in self.volumes.values():
                if volume["Name"] != request["Source"] or volume["Namespace"] != namespace:
                    continue
                if _capability_fits(volume, request):
                    found = volume
            if found is None:
                return None
            paths[name] = found["HostPath"]
        return paths

    def _constraint_holds(self, constraint: dict[str, Any]) -> bool:
        left = self._resolve_target(constraint.get("LTarget") or "")
        right = self._resolve_target(constraint.get("RTarget") or "")
        operand = constraint.get("Operand") or "="
        check = CONSTRAINT_CHECKS.get(operand)
        if check is None:
            # NOTE: version, semver, ordering and distinct_property are not evaluated: never placed.
            logger.warning("constraint operand %s is not evaluated by the double", operand)
            return False
        return check(left, right)

    def _resolve_target(self, target: str) -> str | None:
        match = re.fullmatch(r"\$\{(.+)\}", target)
        if not match:
            return target
        reference = match.group(1)
        node = self.node
        values = {
            "node.unique.id": node["ID"],
            "node.unique.name": node["Name"],
            "node.datacenter": node["Datacenter"],
            "node.class": node["NodeClass"],
            "node.pool": node["NodePool"],
        }
        if reference in values:
            return values[reference]
        if reference.startswith("attr."):
            return node["Attributes"].get(reference.removeprefix("attr."))
        if reference.startswith("meta."):
            return node["Meta"].get(reference.removeprefix("meta."))
        return None

    # ------------------------------------------------------------ jobs

    def get_job(self, namespace: str, job_id: str) -> dict[str, Any]:
        with self.lock:
            job = self.jobs.get((namespace, job_id))
            if job is None:
                raise ApiError(404, "job not found")
            return copy.deepcopy(job)

    def plan_job(self, job: dict[str, Any], want_diff: bool) -> dict[str, Any]:
        job = jobspec.canonicalize(job)
        jobspec.validate(job)
        with self.lock:
            existing = self.jobs.get((job["Namespace"], job["ID"]))
            job_diff = diff.diff_jobs(existing, job)
            failed: dict[str, Any] = {}
            updates: dict[str, Any] = {}
            for group in job["TaskGroups"]:
                metric = self.place(job, group)
                group_diff = next(g for g in job_diff["TaskGroups"] if g["Name"] == group["Name"])
                changed = group_diff["Type"] != "None"
                updates[group["Name"]] = {
                    "Place": group["Count"] if changed and metric is None else 0,
                    "Ignore": 0 if changed else group["Count"],
                    "InPlaceUpdate": 0,
                    "DestructiveUpdate": 0,
                    "Stop": 0,
                    "Migrate": 0,
                    "Canary": 0,
                    "Preemptions": 0,
                    "Reconnect": 0,
                }
                if metric is not None:
                    failed[group["Name"]] = metric
            response: dict[str, Any] = {
                "Annotations": {"DesiredTGUpdates": updates, "PreemptedAllocs": None},
                "FailedTGAllocs": failed or None,
                "JobModifyIndex": existing["JobModifyIndex"] if existing else 0,
                "CreatedEvals": None,
                "Diff": job_diff if want_diff else None,
                # NOTE: cron specs are not evaluated, so the next launch stays the zero time.
                "NextPeriodicLaunch": rfc3339(None),
                "Warnings": "",
                "Index": self.index,
            }
            return response

    def register_job(self, job: dict[str, Any]) -> dict[str, Any]:
        job = jobspec.canonicalize(job)
        jobspec.validate(job)
        with self.lock:
            key = (job["Namespace"], job["ID"])
            existing = self.jobs.get(key)
            index = self.bump()
            if existing is not None and not diff.spec_changed(existing, job):
                existing["ModifyIndex"] = index
                return self._register_response(existing, "", index)
            job["Version"] = existing["Version"] + 1 if existing else 0
            job["CreateIndex"] = existing["CreateIndex"] if existing else index
            job["ModifyIndex"] = index
            job["JobModifyIndex"] = index
            job["SubmitTime"] = now_ns()
            job["Stable"] = False
            job["Status"] = "running" if job.get("Periodic") else "pending"
            job["Stop"] = False
            self.jobs[key] = job
            logger.info("job %s registered at version %s", job["ID"], job["Version"])
            eval_id = ""
            if not job.get("Periodic"):
                eval_id = self._evaluate(job, "job-register")
            return self._register_response(job, eval_id, index)

    @staticmethod
    def _register_response(job: dict[str, Any], eval_id: str, index: int) -> dict[str, Any]:
        # Nomad creates no evaluation for a periodic job: its launches get their own.
        return {
            "EvalID": eval_id,
            "EvalCreateIndex": index if eval_id else 0,
            "JobModifyIndex": job["JobModifyIndex"],
            "Warnings": "",
            "Index": index,
            "LastIndex": index,
            "KnownLeader": False,
            "LastContact": 0,
            "RequestTime": 0,
            "NextToken": "",
        }

    def force_periodic(self, namespace: str, job_id: str) -> dict[str, Any]:
        with self.lock:
            parent = self.jobs.get((namespace, job_id))
            if parent is None:
                raise ApiError(404, "job not found")
            if not parent.get("Periodic") or parent.get("Stop"):
                raise ApiError(400, "can't force run non-periodic job")
            launch = int(time.time())
            while (namespace, f"{job_id}/periodic-{launch}") in self.jobs:
                launch += 1
            child = copy.deepcopy(parent)
            index = self.bump()
            child.update(
                ID=f"{job_id}/periodic-{launch}",
                Name=f"{job_id}/periodic-{launch}",
                ParentID=job_id,
                Periodic=None,
                Status="pending",
                Version=0,
                CreateIndex=index,
                ModifyIndex=index,
                JobModifyIndex=index,
                SubmitTime=now_ns(),
            )
            self.jobs[(namespace, child["ID"])] = child
            logger.info("periodic job %s forced: launched %s", job_id, child["ID"])
            eval_id = self._evaluate(child, "periodic-job")
            return {"EvalID": eval_id, "EvalCreateIndex": self.index, "Index": self.index}

    def _evaluate(self, job: dict[str, Any], triggered_by: str) -> str:
        """Create an evaluation for `job`, place its groups and start allocations; lock held."""
        index = self.bump()
        evaluation = {
            "ID": new_id(),
            "Namespace": job["Namespace"],
            "Priority": job["Priority"],
            "Type": job["Type"],
            "TriggeredBy": triggered_by,
            "JobID": job["ID"],
            "JobModifyIndex": job["JobModifyIndex"],
            "NodeID": "",
            "Status": "complete",
            "StatusDescription": "",
            "FailedTGAllocs": None,
            "BlockedEval": "",
            "QueuedAllocations": {},
            "CreateIndex": index,
            "ModifyIndex": index,
            "CreateTime": now_ns(),
            "ModifyTime": now_ns(),
        }
        failed: dict[str, Any] = {}
        for group in job["TaskGroups"]:
            metric = self.place(job, group)
            if metric is not None:
                failed[group["Name"]] = metric
                evaluation["QueuedAllocations"][group["Name"]] = group["Count"]
                continue
            evaluation["QueuedAllocations"][group["Name"]] = 0
            for alloc_index in range(group["Count"]):
                self._start_allocation(job, group, evaluation["ID"], alloc_index)
        if failed:
            evaluation["FailedTGAllocs"] = failed
            blocked = dict(evaluation, ID=new_id(), Status="blocked", TriggeredBy="queued-allocs")
            blocked["PreviousEval"] = evaluation["ID"]
            blocked["FailedTGAllocs"] = None
            self.evaluations[blocked["ID"]] = blocked
            evaluation["BlockedEval"] = blocked["ID"]
            logger.warning("job %s: placement failed: %s", job["ID"], failed)
        self.evaluations[evaluation["ID"]] = evaluation
        return evaluation["ID"]

    def _start_allocation(
        self, job: dict[str, Any], group: dict[str, Any], eval_id: str, alloc_index: int
    ) -> None:
        index = self.bump()
        alloc_id = new_id()
        allocation = {
            "ID": alloc_id,
            "Namespace": job["Namespace"],
            "EvalID": eval_id,
            "Name": f"{job['ID']}.{group['Name']}[{alloc_index}]",
            "NodeID": self.node["ID"],
            "NodeName": self.node["Name"],
            "JobID": job["ID"],
            "JobVersion": job["Version"],
            "TaskGroup": group["Name"],
            "DesiredStatus": "run",
            "DesiredDescription": "",
            "ClientStatus": "pending",
            "ClientDescription": "No tasks have started",
            "TaskStates": {
                task["Name"]: {
                    "State": "pending",
                    "Failed": False,
                    "Restarts": 0,
                    "LastRestart": rfc3339(None),
                    "StartedAt": None,
                    "FinishedAt": None,
                    "Events": [],
                }
                for task in group["Tasks"]
            },
            "CreateIndex": index,
            "ModifyIndex": index,
            "AllocModifyIndex": index,
            "CreateTime": now_ns(),
            "ModifyTime": now_ns(),
        }
        self.allocations[alloc_id] = allocation
        paths = self.group_volume_paths(job, group) or {}
        runner = AllocationRunner(
            allocation=allocation,
            job=job,
            group=group,
            alloc_dir=self.data_dir / "alloc" / alloc_id,
            node=self.node,
            volume_host_paths=paths,
            read_variable=lambda path, task: self._read_for_task(job, group["Name"], task, path),
            on_change=self.notify,
            lock=self.lock,
        )
        self.runners[alloc_id] = runner
        job["Status"] = "running"
        runner.start()

    def _read_for_task(self, job: dict[str, Any], group: str, task: str, path: str) -> dict[str, str] | None:
        if not self.task_can_read(job, group, task, path):
            raise PermissionError(f"nomad.var.block({path}@default.global): Permission denied")
        variable = self.read_variable(job["Namespace"], path)
        return variable["Items"] if variable else None

    def deregister_job(self, namespace: str, job_id: str, purge: bool) -> dict[str, Any]:
        with self.lock:
            job = self.jobs.get((namespace, job_id))
            if job is None:
                raise ApiError(404, "job not found")
            index = self.bump()
            job["Stop"] = True
            job["Status"] = "dead"
            job["ModifyIndex"] = index
            job["JobModifyIndex"] = index
            # Stopping a periodic parent ends its schedule; launched children keep running.
            for allocation in self.allocations.values():
                if allocation["JobID"] == job_id and allocation["DesiredStatus"] == "run":
                    self._stop_allocation(allocation, "alloc not needed due to job update")
            if purge:
                del self.jobs[(namespace, job_id)]
            eval_id = self._evaluate_stop(job)
            return {
                "EvalID": eval_id,
                "EvalCreateIndex": index,
                "JobModifyIndex": index,
                "Index": index,
            }

    def _evaluate_stop(self, job: dict[str, Any]) -> str:
        index = self.bump()
        evaluation = {
            "ID": new_id(),
            "Namespace": job["Namespace"],
            "Priority": job["Priority"],
            "Type": job["Type"],
            "TriggeredBy": "job-deregister",
            "JobID": job["ID"],
            "JobModifyIndex": job["JobModifyIndex"],
            "Status": "complete",
            "CreateIndex": index,
            "ModifyIndex": index,
            "CreateTime": now_ns(),
            "ModifyTime": now_ns(),
        }
        self.evaluations[evaluation["ID"]] = evaluation
        return evaluation["ID"]

    def stop_allocation(self, alloc_id: str) -> dict[str, Any]:
        with self.lock:
            allocation = self.allocations.get(alloc_id)
            if allocation is None:
                raise ApiError(404, "alloc not found")
            self._stop_allocation(allocation, "alloc is being stopped by user")
            job = self.jobs.get((allocation["Namespace"], allocation["JobID"]))
            eval_id = self._evaluate_stop(job) if job else ""
            return {"EvalID": eval_id, "Index": self.index}

    def _stop_allocation(self, allocation: dict[str, Any], reason: str) -> None:
        allocation["DesiredStatus"] = "stop"
        allocation["DesiredDescription"] = reason
        allocation["ModifyIndex"] = self.bump()
        runner = self.runners.get(allocation["ID"])
        if runner is not None:
            runner.stop()

    def refresh_job_status(self) -> None:
        """Mark launched jobs dead once all their allocations are terminal; lock held."""
        for job in self.jobs.values():
            if job.get("Periodic") or job["Status"] != "running":
                continue
            allocations = [a for a in self.allocations.values() if a["JobID"] == job["ID"]]
            if allocations and all(a["ClientStatus"] in {"complete", "failed", "lost"} for a in allocations):
                job["Status"] = "dead"

    def shutdown(self, timeout: float) -> None:
        """Stop every running allocation and wait up to `timeout` seconds for each."""
        with self.lock:
            runners = list(self.runners.values())
            for runner in runners:
                runner.stop()
        for runner in runners:
            runner.join(timeout)


class CasConflict(Exception):
    """A variable write whose `cas` index does not match; carries the current variable."""

    def __init__(self, current: dict[str, Any] | None) -> None:
        super().__init__("cas conflict")
        self.current = current


def _set_contains(left: str | None, right: str | None) -> bool:
    have = {part.strip() for part in (left or "").split(",")}
    return all(part.strip() in have for part in (right or "").split(","))


CONSTRAINT_CHECKS: dict[str, Callable[[str | None, str | None], bool]] = {
    "=": lambda left, right: left is not None and left == right,
    "==": lambda left, right: left is not None and left == right,
    "is": lambda left, right: left is not None and left == right,
    "!=": lambda left, right: left != right,
    "not": lambda left, right: left != right,
    "regexp": lambda left, right: left is not None and re.search(right or "", left) is not None,
    "is_set": lambda left, _right: left is not None,
    "is_not_set": lambda left, _right: left is None,
    "set_contains": _set_contains,
    "distinct_hosts": lambda _left, _right: True,  # one node: every allocation is distinct
}


def _capability_fits(volume: dict[str, Any], request: dict[str, Any]) -> bool:
    capabilities = volume.get("RequestedCapabilities") or []
    access = request.get("AccessMode") or ""
    attachment = request.get("AttachmentMode") or ""
    for capability in capabilities:
        if access and capability.get("AccessMode") != access:
            continue
        if attachment and capability.get("AttachmentMode") != attachment:
            continue
        return True
    return False


def _metric(
    nodes_evaluated: int,
    nodes_in_pool: int,
    filtered: dict[str, int],
    class_filtered: bool = False,
) -> dict[str, Any]:
    return {
        "NodesEvaluated": nodes_evaluated,
        "NodesFiltered": nodes_evaluated if filtered else 0,
        "NodesInPool": nodes_in_pool,
        "NodesAvailable": {"dc1": 1},
        "ClassFiltered": None,
        "ConstraintFiltered": filtered or None,
        "NodesExhausted": 0,
        "ClassExhausted": None,
        "DimensionExhausted": None,
        "QuotaExhausted": None,
        "Scores": None,
        "CoalescedFailures": 0,
        "AllocationTime": 0,
        "DatacentersFiltered": 1 if class_filtered else 0,
    }
