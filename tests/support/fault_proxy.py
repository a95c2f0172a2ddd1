"""A loopback HTTP proxy that sits in front of OpenBao and injects faults.

Tests point the processor's VAULT_ADDR at the proxy and switch it, while the
processor runs, to respond with an error status, to drop connections or to
delay requests. Each fault can start after a number of requests and can be
limited to paths that match a regular expression.

The proxy also keeps, in memory only, the `auth.client_token` of every
successful login response and the X-Vault-Token of every request, so tests
can check which tokens the processor obtained, used and revoked. Nothing is
written to disk.
"""

from __future__ import annotations

import http.client
import json
import re
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

# Request headers that describe the hop between two peers, not the request.
_HOP_HEADERS = frozenset({"connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade"})


@dataclass
class Fault:
    """One injected fault.

    action is "status" (respond with `status` and a Vault-style error body),
    "drop" (close the connection without a response) or "delay" (wait
    `delay_seconds`, then forward). The fault applies to requests whose path
    matches `path_pattern`, from the one after the first `after` matching
    requests on, at most `times` times (None: no limit).
    """

    action: str
    status: int = 503
    delay_seconds: float = 0.0
    path_pattern: str = ""
    after: int = 0
    times: int | None = None
    seen: int = 0
    applied: int = 0

    def claim(self, path: str) -> bool:
        """Count a request to `path`; return True when the fault applies to it."""
        if self.path_pattern and not re.search(self.path_pattern, path):
            return False
        self.seen += 1
        if self.seen <= self.after:
            return False
        if self.times is not None and self.applied >= self.times:
            return False
        self.applied += 1
        return True


@dataclass
class RequestRecord:
    """The method, path and outcome of one request that reached the proxy."""

    method: str
    path: str
    status: int | None
    fault: str | None


@dataclass
class FaultProxy:
    """A threaded HTTP proxy on 127.0.0.1 that forwards to `upstream`."""

    upstream: str
    requests: list[RequestRecord] = field(default_factory=list)
    tokens: list[str] = field(default_factory=list)
    request_tokens: set[str] = field(default_factory=set)
    _faults: list[Fault] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None

    @property
    def addr(self) -> str:
        assert self._server is not None, "start the proxy first"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FaultProxy:
        proxy = self

        class Handler(_ProxyHandler):
            owner = proxy

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="fault-proxy", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def add_fault(self, fault: Fault) -> Fault:
        with self._lock:
            self._faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    @contextmanager
    def fault(self, fault: Fault) -> Iterator[Fault]:
        """Apply `fault` inside the `with` block only."""
        self.add_fault(fault)
        try:
            yield fault
        finally:
            with self._lock:
                if fault in self._faults:
                    self._faults.remove(fault)

    def count(self, pattern: str, method: str | None = None) -> int:
        """Return how many requests whose path matches `pattern` reached the proxy."""
        with self._lock:
            return sum(
                1
                for record in self.requests
                if re.search(pattern, record.path) and (method is None or record.method == method)
            )

    def wait_for(self, pattern: str, count: int = 1, timeout: float = 20.0) -> None:
        """Block until `count` requests matching `pattern` arrived; raise TimeoutError otherwise."""
        deadline = time.monotonic() + timeout
        while self.count(pattern) < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"fewer than {count} requests matched {pattern!r} in {timeout} s")
            time.sleep(0.02)

    def login_tokens(self) -> list[str]:
        """Return the tokens handed out by login responses, in order."""
        with self._lock:
            return list(self.tokens)

    # Called from handler threads.

    def _pick_fault(self, path: str) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.claim(path):
                    return fault
        return None

    def _record(self, method: str, path: str, status: int | None, fault: str | None) -> None:
        with self._lock:
            self.requests.append(RequestRecord(method, path, status, fault))

    def _remember_request_token(self, token: str) -> None:
        with self._lock:
            self.request_tokens.add(token)

    def _remember_token(self, token: str) -> None:
        with self._lock:
            if token and token not in self.tokens:
                self.tokens.append(token)


class _ProxyHandler(BaseHTTPRequestHandler):
    owner: FaultProxy
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        """Keep the test output free of one line per request."""

    def _forward(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        path = self.path
        sent_token = self.headers.get("X-Vault-Token")
        if sent_token:
            self.owner._remember_request_token(sent_token)
        fault = self.owner._pick_fault(path)
        if fault is not None and fault.action == "drop":
            self.owner._record(self.command, path, None, "drop")
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        if fault is not None and fault.action == "status":
            self.owner._record(self.command, path, fault.status, "status")
            self._answer(fault.status, {"errors": [f"injected fault: HTTP {fault.status}"]})
            return
        if fault is not None and fault.action == "delay":
            time.sleep(fault.delay_seconds)

        upstream = urlsplit(self.owner.upstream)
        connection = http.client.HTTPConnection(upstream.hostname, upstream.port, timeout=60)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_HEADERS}
        try:
            connection.request(self.command, path, body=body, headers=headers)
            response = connection.getresponse()
            payload = response.read()
        except OSError:
            # The upstream server is stopped: behave like it, close the connection.
            self.owner._record(self.command, path, None, "upstream down")
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        finally:
            connection.close()
        self.owner._record(self.command, path, response.status, fault.action if fault else None)
        if "/login/" in path and response.status == 200:
            self._capture_login_token(payload)
        self.send_response(response.status)
        for key, value in response.getheaders():
            if key.lower() not in _HOP_HEADERS and key.lower() != "content-length":
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _capture_login_token(self, payload: bytes) -> None:
        try:
            token = json.loads(payload)["auth"]["client_token"]
        except (ValueError, KeyError, TypeError):
            return
        self.owner._remember_token(token)

    def _answer(self, status: int, document: dict[str, Any]) -> None:
        payload = json.dumps(document).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = _forward
    do_POST = _forward
    do_PUT = _forward
    do_DELETE = _forward
    do_LIST = _forward
