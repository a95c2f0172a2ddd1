"""The Nomad modules' HTTP client over mutual TLS, against a local HTTPS server with throwaway certificates."""

from __future__ import annotations

import json
import shutil
import ssl
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from ansible.module_utils.vault_batch_client_nomad import NomadClient, NomadError

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Create a CA, a server certificate for 127.0.0.1 and a client certificate signed by it."""
    folder = tmp_path_factory.mktemp("tls")
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=test-ca",
            "-keyout", "ca.key", "-out", "ca.pem", cwd=folder)  # fmt: skip
    for name, extension in (
        ("server", "subjectAltName=IP:127.0.0.1"),
        ("client", "extendedKeyUsage=clientAuth"),
    ):
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}",
                "-keyout", f"{name}.key", "-out", f"{name}.csr", cwd=folder)  # fmt: skip
        (folder / f"{name}.ext").write_text(extension + "\n")
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
                "-days", "1", "-extfile", f"{name}.ext", "-out", f"{name}.pem", cwd=folder)  # fmt: skip
    return folder


class _AgentHandler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        payload = json.dumps({"peer": self.connection.getpeercert()["subject"][0][0][1]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *_args: object) -> None:
        pass


@pytest.fixture(scope="module")
def https_addr(certificates: Path) -> Iterator[str]:
    """Serve HTTPS on a loopback port that requires a client certificate signed by the test CA."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certificates / "server.pem", certificates / "server.key")
    context.load_verify_locations(certificates / "ca.pem")
    context.verify_mode = ssl.CERT_REQUIRED
    server = ThreadingHTTPServer(("127.0.0.1", 0), _AgentHandler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def params(addr: str, certificates: Path, **overrides: object) -> dict:
    values = {
        "addr": addr,
        "token": "",
        "namespace": "default",
        "ca_cert": str(certificates / "ca.pem"),
        "client_cert": str(certificates / "client.pem"),
        "client_key": str(certificates / "client.key"),
        "validate_certs": True,
        "timeout": 5,
    }
    values.update(overrides)
    return values


def test_tls_client_certificate_accepted(https_addr: str, certificates: Path) -> None:
    assert NomadClient(params(https_addr, certificates)).get("/v1/agent/self") == {"peer": "client"}


def test_tls_unknown_ca_rejected(https_addr: str, certificates: Path) -> None:
    with pytest.raises(NomadError) as raised:
        NomadClient(params(https_addr, certificates, ca_cert=None)).get("/v1/agent/self")
    assert raised.value.status == 0
    assert "CERTIFICATE_VERIFY_FAILED" in raised.value.message


def test_tls_validation_off_skips_ca(https_addr: str, certificates: Path) -> None:
    client = NomadClient(params(https_addr, certificates, ca_cert=None, validate_certs=False))
    assert client.get("/v1/agent/self") == {"peer": "client"}


def test_tls_without_client_certificate_fails(https_addr: str, certificates: Path) -> None:
    with pytest.raises(NomadError) as raised:
        NomadClient(params(https_addr, certificates, client_cert=None, client_key=None)).get("/v1/agent/self")
    assert raised.value.status == 0
