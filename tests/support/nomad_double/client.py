"""A minimal HTTP client for tests that talk to the Nomad API double (or a real agent)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote


@dataclass
class Response:
    """Status, raw body and, for JSON replies, the decoded value."""

    status: int
    text: str
    headers: dict[str, str]

    def json(self) -> Any:
        return json.loads(self.text)


@dataclass
class NomadClient:
    """Send requests to `addr` with an optional ACL token; never raises on HTTP errors."""

    addr: str
    token: str | None = None
    timeout: float = 30.0

    def request(self, method: str, path: str, body: Any = None) -> Response:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(  # noqa: S310 - tests build loopback http URLs only
            self.addr + path, data=data, method=method
        )
        if self.token is not None:
            request.add_header("X-Nomad-Token", self.token)
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as reply:  # noqa: S310
                return Response(reply.status, reply.read().decode(), dict(reply.headers))
        except urllib.error.HTTPError as error:
            return Response(error.code, error.read().decode(), dict(error.headers))

    def get(self, path: str) -> Response:
        return self.request("GET", path)

    def put(self, path: str, body: Any = None) -> Response:
        return self.request("PUT", path, body if body is not None else {})

    def post(self, path: str, body: Any = None) -> Response:
        return self.request("POST", path, body if body is not None else {})

    def delete(self, path: str) -> Response:
        return self.request("DELETE", path)


def job_path(job_id: str) -> str:
    """Escape a job ID for a URL path; launched periodic jobs contain a slash."""
    return quote(job_id, safe="")
