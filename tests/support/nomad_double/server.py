"""The HTTP side of the double: routes, ACL check, blocking queries and Nomad-style errors."""

from __future__ import annotations

import copy
import ipaddress
import json
import logging
import re
import tempfile
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from . import jobspec
from .errors import ApiError
from .state import CasConflict, ClusterState

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 10 * 1024 * 1024
DEFAULT_BLOCKING_WAIT_SECONDS = 300.0
TERMINAL_CLIENT_STATUSES = frozenset({"complete", "failed", "lost"})

Handler = Callable[["Request"], Any]


class Request:
    """One parsed API request: method, decoded path, query values and JSON body."""

    def __init__(self, method: str, raw_path: str, body: bytes, token: str | None) -> None:
        parts = urlsplit(raw_path)
        self.method = method
        self.path = unquote(parts.path)
        self.query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
        self.raw_body = body
        self.token = token
        self.match: re.Match[str] | None = None

    def json(self) -> dict[str, Any]:
        if not self.raw_body:
            raise ApiError(400, "Request body is empty")
        try:
            value = json.loads(self.raw_body)
        except json.JSONDecodeError as error:
            raise ApiError(400, f"Failed to decode request body: {error}") from None
        if not isinstance(value, dict):
            raise ApiError(400, "Failed to decode request body: expected a JSON object")
        return value

    @property
    def namespace(self) -> str:
        return self.query.get("namespace") or "default"

    def group(self, name: str) -> str:
        assert self.match is not None
        return self.match.group(name)


class NomadApi:
    """Routes requests to the cluster state and shapes the JSON responses."""

    def __init__(self, state: ClusterState, acl_token: str | None) -> None:
        self.state = state
        self.acl_token = acl_token
        job = r"(?P<job>.+)"
        self.routes: list[tuple[str, re.Pattern[str], Handler]] = [
            ("GET", re.compile(r"/v1/agent/self"), self.agent_self),
            ("GET", re.compile(r"/v1/agent/health"), self.agent_health),
            ("GET", re.compile(r"/v1/status/leader"), lambda _r: "127.0.0.1:4647"),
            ("GET", re.compile(r"/v1/nodes"), self.list_nodes),
            ("GET", re.compile(r"/v1/node/(?P<id>[^/]+)"), self.get_node),
            ("PUT POST", re.compile(r"/v1/volume/host/register"), self.register_volume),
            ("GET", re.compile(r"/v1/volume/host/(?P<id>[^/]+)"), self.get_volume),
            ("DELETE", re.compile(r"/v1/volume/host/(?P<id>[^/]+)"), self.delete_volume),
            ("GET", re.compile(r"/v1/volumes"), self.list_volumes),
            ("GET", re.compile(r"/v1/vars"), self.list_variables),
            ("GET", re.compile(r"/v1/var/(?P<path>.+)"), self.get_variable),
            ("PUT POST", re.compile(r"/v1/var/(?P<path>.+)"), self.put_variable),
            ("DELETE", re.compile(r"/v1/var/(?P<path>.+)"), self.delete_variable),
            ("PUT POST", re.compile(r"/v1/jobs/parse"), self.parse_job),
            ("GET", re.compile(r"/v1/jobs"), self.list_jobs),
            ("PUT POST", re.compile(r"/v1/jobs"), self.register_job),
            ("PUT POST", re.compile(rf"/v1/job/{job}/plan"), self.plan_job),
            ("PUT POST", re.compile(rf"/v1/job/{job}/periodic/force"), self.force_periodic),
            ("GET", re.compile(rf"/v1/job/{job}/allocations"), self.job_allocations),
            ("GET", re.compile(rf"/v1/job/{job}/evaluations"), self.job_evaluations),
            ("GET", re.compile(rf"/v1/job/{job}"), self.get_job),
            ("PUT POST", re.compile(rf"/v1/job/{job}"), self.register_job),
            ("DELETE", re.compile(rf"/v1/job/{job}"), self.deregister_job),
            ("GET", re.compile(r"/v1/allocations"), self.list_allocations),
            ("PUT POST", re.compile(r"/v1/allocation/(?P<id>[^/]+)/stop"), self.stop_allocation),
            ("GET", re.compile(r"/v1/allocation/(?P<id>[^/]+)"), self.get_allocation),
            ("GET", re.compile(r"/v1/evaluations"), self.list_evaluations),
            ("GET", re.compile(r"/v1/evaluation/(?P<id>[^/]+)"), self.get_evaluation),
        ]

    # ------------------------------------------------------------ dispatch

    def handle(self, request: Request) -> Any:
        if self.acl_token is not None:
            if not request.token:
                raise ApiError(403, "Permission denied")
            if request.token != self.acl_token:
                raise ApiError(403, "ACL token not found")
        path_matched = False
        for methods, pattern, handler in self.routes:
            match = pattern.fullmatch(request.path)
            if match is None:
                continue
            path_matched = True
            if request.method in methods.split():
                request.match = match
                self._block_if_requested(request)
                return handler(request)
        if path_matched:
            raise ApiError(405, "Invalid method")
        raise ApiError(404, "Invalid URL path")

    def _block_if_requested(self, request: Request) -> None:
        if request.method != "GET" or "index" not in request.query:
            return
        try:
            index = int(request.query["index"])
        except ValueError:
            raise ApiError(400, f"Invalid index: {request.query['index']!r}") from None
        wait = DEFAULT_BLOCKING_WAIT_SECONDS
        if "wait" in request.query:
            try:
                wait = jobspec.parse_duration(request.query["wait"]) / 1e9
            except ValueError:
                raise ApiError(400, f"Invalid wait time: {request.query['wait']!r}") from None
        self.state.wait_for_index(index, wait)

    # ------------------------------------------------------------ agent and nodes

    def agent_self(self, _request: Request) -> dict[str, Any]:
        node = self.state.node
        return {
            "config": {
                "Region": "global",
                "Datacenter": node["Datacenter"],
                "NodeName": node["Name"],
                "Client": {"Enabled": True, "NodeClass": "", "NodePool": node["NodePool"]},
                "Server": {"Enabled": True},
                "ACL": {"Enabled": self.acl_token is not None},
                "Version": {"Version": "1.10.0", "VersionPrerelease": "", "VersionMetadata": ""},
            },
            "member": {
                "Name": f"{node['Name']}.global",
                "Addr": "127.0.0.1",
                "Port": 4648,
                "Status": "alive",
                "Tags": {"region": "global", "dc": node["Datacenter"], "role": "nomad"},
            },
            "stats": {
                "client": {
                    "node_id": node["ID"],
                    "known_servers": "127.0.0.1:4647",
                    "num_allocations": str(len(self.state.allocations)),
                    "last_heartbeat": "0",
                    "heartbeat_ttl": "15s",
                },
                "nomad": {"server": "true", "leader": "true", "bootstrap": "true"},
            },
        }

    def agent_health(self, _request: Request) -> dict[str, Any]:
        return {"client": {"ok": True, "message": "ok"}, "server": {"ok": True, "message": "ok"}}

    def _node_stub(self) -> dict[str, Any]:
        node = self.state.node
        keys = (
            "ID Datacenter Name NodeClass NodePool Drain SchedulingEligibility Status "
            "StatusDescription Drivers Attributes CreateIndex ModifyIndex"
        ).split()
        stub = {key: copy.deepcopy(node[key]) for key in keys}
        stub.update(Address="127.0.0.1", Version="1.10.0")
        return stub

    def list_nodes(self, request: Request) -> list[dict[str, Any]]:
        with self.state.lock:
            stubs = [self._node_stub()]
        prefix = request.query.get("prefix", "")
        stubs = [stub for stub in stubs if stub["ID"].startswith(prefix)]
        if "filter" in request.query:
            stubs = [stub for stub in stubs if evaluate_filter(request.query["filter"], stub)]
        return stubs

    def get_node(self, request: Request) -> dict[str, Any]:
        with self.state.lock:
            if request.group("id") != self.state.node["ID"]:
                raise ApiError(404, "node not found")
            return copy.deepcopy(self.state.node)

    # ------------------------------------------------------------ host volumes

    def register_volume(self, request: Request) -> dict[str, Any]:
        return self.state.register_volume(request.json())

    def get_volume(self, request: Request) -> dict[str, Any]:
        with self.state.lock:
            volume = self.state.volumes.get(request.group("id"))
            if volume is None:
                raise ApiError(404, "volume not found")
            return copy.deepcopy(volume)

    def delete_volume(self, request: Request) -> dict[str, Any]:
        with self.state.lock:
            volume = self.state.volumes.pop(request.group("id"), None)
            if volume is None:
                raise ApiError(404, "volume not found")
            self.state.node["HostVolumes"].pop(volume["Name"], None)
            return {"Index": self.state.bump()}

    def list_volumes(self, request: Request) -> list[dict[str, Any]]:
        volume_type = request.query.get("type", "csi")
        if volume_type == "csi":
            return []
        if volume_type != "host":
            raise ApiError(400, f"unsupported volume type: {volume_type}")
        node_id = request.query.get("node_id", "")
        with self.state.lock:
            return [
                self.state.volume_stub(volume)
                for volume in self.state.volumes.values()
                if not node_id or volume["NodeID"] == node_id
            ]

    # ------------------------------------------------------------ variables

    def get_variable(self, request: Request) -> dict[str, Any]:
        variable = self.state.read_variable(request.namespace, request.group("path"))
        if variable is None:
            raise ApiError(404, "variable not found")
        return variable

    def put_variable(self, request: Request) -> Any:
        try:
            return self.state.put_variable(
                request.namespace, request.group("path"), request.json(), _cas(request)
            )
        except CasConflict as conflict:
            raise ConflictResponse(conflict.current) from None

    def delete_variable(self, request: Request) -> None:
        try:
            self.state.delete_variable(request.namespace, request.group("path"), _cas(request))
        except CasConflict as conflict:
            raise ConflictResponse(conflict.current) from None

    def list_variables(self, request: Request) -> list[dict[str, Any]]:
        return self.state.list_variables(request.namespace, request.query.get("prefix", ""))

    # ------------------------------------------------------------ jobs

    def parse_job(self, request: Request) -> dict[str, Any]:
        body = request.json()
        source = body.get("JobHCL")
        if not isinstance(source, str) or not source.strip():
            raise ApiError(400, "Job spec is empty")
        job = jobspec.parse_hcl(source)
        return jobspec.canonicalize(job) if body.get("Canonicalize") else job

    @staticmethod
    def _job_from_body(request: Request) -> dict[str, Any]:
        body = request.json()
        job = body.get("Job")
        if not isinstance(job, dict):
            raise ApiError(400, "Job must be specified")
        if request.match is not None and "job" in request.match.groupdict():
            if job.get("ID") != request.group("job"):
                raise ApiError(400, "Job ID does not match name")
        return body

    def register_job(self, request: Request) -> dict[str, Any]:
        body = self._job_from_body(request)
        job = body["Job"]
        if body.get("EnforceIndex"):
            expected = int(body.get("JobModifyIndex") or 0)
            with self.state.lock:
                current = self.state.jobs.get((job.get("Namespace") or "default", job.get("ID")))
                actual = current["JobModifyIndex"] if current else 0
            if expected != actual:
                raise ApiError(
                    400,
                    f"Enforcing job modify index {expected}: job exists with conflicting "
                    f"job modify index: {actual}",
                )
        return self.state.register_job(job)

    def plan_job(self, request: Request) -> dict[str, Any]:
        body = self._job_from_body(request)
        return self.state.plan_job(body["Job"], bool(body.get("Diff")))

    def get_job(self, request: Request) -> dict[str, Any]:
        return self.state.get_job(request.namespace, request.group("job"))

    def list_jobs(self, request: Request) -> list[dict[str, Any]]:
        prefix = request.query.get("prefix", "")
        with self.state.lock:
            return [
                _job_stub(job, self.state.allocations.values())
                for (namespace, job_id), job in sorted(self.state.jobs.items())
                if request.namespace in {"*", namespace} and job_id.startswith(prefix)
            ]

    def deregister_job(self, request: Request) -> dict[str, Any]:
        purge = request.query.get("purge") == "true"
        return self.state.deregister_job(request.namespace, request.group("job"), purge)

    def force_periodic(self, request: Request) -> dict[str, Any]:
        return self.state.force_periodic(request.namespace, request.group("job"))

    def job_allocations(self, request: Request) -> list[dict[str, Any]]:
        self.state.get_job(request.namespace, request.group("job"))
        with self.state.lock:
            return [
                _allocation_stub(allocation)
                for allocation in self.state.allocations.values()
                if allocation["JobID"] == request.group("job")
            ]

    def job_evaluations(self, request: Request) -> list[dict[str, Any]]:
        self.state.get_job(request.namespace, request.group("job"))
        with self.state.lock:
            return [
                copy.deepcopy(evaluation)
                for evaluation in self.state.evaluations.values()
                if evaluation["JobID"] == request.group("job")
            ]

    # ------------------------------------------------------------ allocations and evals

    def list_allocations(self, _request: Request) -> list[dict[str, Any]]:
        with self.state.lock:
            return [_allocation_stub(a) for a in self.state.allocations.values()]

    def get_allocation(self, request: Request) -> dict[str, Any]:
        with self.state.lock:
            allocation = self.state.allocations.get(request.group("id"))
            if allocation is None:
                raise ApiError(404, "alloc not found")
            full = copy.deepcopy(allocation)
            job = self.state.jobs.get((allocation["Namespace"], allocation["JobID"]))
            full["Job"] = copy.deepcopy(job)
            return full

    def stop_allocation(self, request: Request) -> dict[str, Any]:
        return self.state.stop_allocation(request.group("id"))

    def list_evaluations(self, _request: Request) -> list[dict[str, Any]]:
        with self.state.lock:
            return [copy.deepcopy(e) for e in self.state.evaluations.values()]

    def get_evaluation(self, request: Request) -> dict[str, Any]:
        with self.state.lock:
            evaluation = self.state.evaluations.get(request.group("id"))
            if evaluation is None:
                raise ApiError(404, "eval not found")
            return copy.deepcopy(evaluation)


class ConflictResponse(Exception):
    """A 409 reply whose body is the current variable, as Nomad sends on a cas conflict."""

    def __init__(self, current: dict[str, Any] | None) -> None:
        super().__init__("cas conflict")
        self.current = current


def _cas(request: Request) -> int | None:
    if "cas" not in request.query:
        return None
    try:
        return int(request.query["cas"])
    except ValueError:
        raise ApiError(400, f"Invalid cas value: {request.query['cas']!r}") from None


def _allocation_stub(allocation: dict[str, Any]) -> dict[str, Any]:
    keys = (
        "ID EvalID Name Namespace NodeID NodeName JobID JobVersion TaskGroup DesiredStatus "
        "DesiredDescription ClientStatus ClientDescription TaskStates CreateIndex ModifyIndex "
        "CreateTime ModifyTime"
    ).split()
    return {key: copy.deepcopy(allocation.get(key)) for key in keys}


def _job_stub(job: dict[str, Any], allocations: Any) -> dict[str, Any]:
    summary: dict[str, dict[str, int]] = {}
    for group in job["TaskGroups"]:
        counts = dict.fromkeys(("Queued", "Starting", "Running", "Complete", "Failed", "Lost"), 0)
        for allocation in allocations:
            if allocation["JobID"] != job["ID"] or allocation["TaskGroup"] != group["Name"]:
                continue
            status = allocation["ClientStatus"]
            key = {"pending": "Starting", "running": "Running"}.get(status, status.capitalize())
            counts[key] = counts.get(key, 0) + 1
        summary[group["Name"]] = counts
    return {
        "ID": job["ID"],
        "ParentID": job.get("ParentID") or "",
        "Name": job["Name"],
        "Namespace": job["Namespace"],
        "Datacenters": job["Datacenters"],
        "Type": job["Type"],
        "Priority": job["Priority"],
        "Periodic": job.get("Periodic") is not None,
        "ParameterizedJob": False,
        "Stop": job.get("Stop", False),
        "Status": job["Status"],
        "StatusDescription": "",
        "Version": job["Version"],
        "JobSummary": {"JobID": job["ID"], "Namespace": job["Namespace"], "Summary": summary},
        "CreateIndex": job["CreateIndex"],
        "ModifyIndex": job["ModifyIndex"],
        "JobModifyIndex": job["JobModifyIndex"],
        "SubmitTime": job["SubmitTime"],
    }


FILTER_TERM = re.compile(r'\s*(?P<field>[A-Za-z0-9_.]+)\s*(?P<op>==|!=)\s*"(?P<value>[^"]*)"\s*')


def evaluate_filter(expression: str, item: dict[str, Any]) -> bool:
    """Evaluate a filter of `Field == "value"` terms joined by `and`, a subset of go-bexpr."""
    terms = re.split(r"\s+and\s+", expression.strip())
    for term in terms:
        match = FILTER_TERM.fullmatch(term)
        if match is None:
            raise ApiError(400, f"failed to read filter expression: unsupported term {term!r}")
        value: Any = item
        for part in match.group("field").split("."):
            value = value.get(part) if isinstance(value, dict) else None
        equal = _text(value) == match.group("value")
        if equal != (match.group("op") == "=="):
            return False
    return True


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


class _HttpHandler(BaseHTTPRequestHandler):
    server: _DoubleHttpServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s %s", self.address_string(), format % args)

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY_BYTES:
            self._send(413, b"Request body too large", "text/plain")
            return
        body = self.rfile.read(length) if length else b""
        token = self.headers.get("X-Nomad-Token")
        authorization = self.headers.get("Authorization", "")
        if not token and authorization.startswith("Bearer "):
            token = authorization.removeprefix("Bearer ").strip()
        request = Request(self.command, self.path, body, token)
        api = self.server.api
        try:
            result = api.handle(request)
        except ApiError as error:
            if error.status >= 500:
                logger.error("%s %s: %s", self.command, request.path, error.message)
            self._send(error.status, error.message.encode(), "text/plain; charset=utf-8")
            return
        except ConflictResponse as conflict:
            self._send(409, json.dumps(conflict.current).encode(), "application/json")
            return
        except Exception as error:  # a bug in the double becomes a logged 500 reply
            logger.exception("%s %s failed", self.command, request.path)
            self._send(500, f"internal error in the Nomad double: {error}".encode(), "text/plain")
            return
        self._send(200, json.dumps(result).encode(), "application/json")

    def _send(self, status: int, payload: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("X-Nomad-Index", str(self.server.api.state.index))
        self.send_header("X-Nomad-KnownLeader", "true")
        self.send_header("X-Nomad-LastContact", "0")
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_PUT = do_POST = do_DELETE = _serve


class _DoubleHttpServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], api: NomadApi) -> None:
        super().__init__(address, _HttpHandler)
        self.api = api


class NomadDouble:
    """A Nomad agent (server and one client node) serving the HTTP API on a loopback port.

    `start()` binds the port and returns self; `stop()` stops running tasks
    and the server. `node_id` and `node_name` identify the simulated client.
    """

    def __init__(
        self,
        node_name: str = "lil-pakalolo",
        *,
        data_dir: Path | None = None,
        acl_token: str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        kill_wait_seconds: float = 60.0,
    ) -> None:
        if not ipaddress.ip_address(host).is_loopback:
            raise ValueError(f"the Nomad double listens on loopback only, not {host}")
        self._temporary: tempfile.TemporaryDirectory[str] | None = None
        if data_dir is None:
            self._temporary = tempfile.TemporaryDirectory(prefix="nomad-double-")
            data_dir = Path(self._temporary.name)
        self.data_dir = Path(data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.host = host
        self.port = port
        self.acl_token = acl_token
        self.kill_wait_seconds = kill_wait_seconds
        self.state = ClusterState(node_name, self.data_dir)
        self._server: _DoubleHttpServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def addr(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def node_id(self) -> str:
        return str(self.state.node["ID"])

    @property
    def node_name(self) -> str:
        return str(self.state.node["Name"])

    def start(self) -> NomadDouble:
        self._server = _DoubleHttpServer((self.host, self.port), NomadApi(self.state, self.acl_token))
        self.port = int(self._server.server_address[1])
        self.state.node["HTTPAddr"] = f"{self.host}:{self.port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            args=(0.05,),
            name="nomad-double-http",
            daemon=True,
        )
        self._thread.start()
        logger.info("Nomad double listening on %s (node %s)", self.addr, self.node_name)
        return self

    def stop(self) -> None:
        self.state.shutdown(self.kill_wait_seconds)
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None
        if self._temporary is not None:
            self._temporary.cleanup()
            self._temporary = None
        logger.info("Nomad double stopped")

    def __enter__(self) -> NomadDouble:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def wait_for_allocation(self, alloc_id: str, timeout: float = 30.0) -> dict[str, Any]:
        """Wait until an allocation's ClientStatus is terminal and return the allocation."""
        deadline = time.monotonic() + timeout
        while True:
            with self.state.lock:
                allocation = self.state.allocations.get(alloc_id)
                if allocation is None:
                    raise KeyError(f"allocation {alloc_id} not found")
                if allocation["ClientStatus"] in TERMINAL_CLIENT_STATUSES:
                    return copy.deepcopy(allocation)
                index = self.state.index
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(
                    f"allocation {alloc_id} still {allocation['ClientStatus']} after {timeout}s"
                )
            self.state.wait_for_index(index, min(remaining, 1.0))

    def allocations_for_evaluation(self, eval_id: str) -> list[dict[str, Any]]:
        """Return the allocations an evaluation placed, such as the one of a forced launch."""
        with self.state.lock:
            return [copy.deepcopy(a) for a in self.state.allocations.values() if a["EvalID"] == eval_id]
