"""The HTTP client a VaultSession builds: TLS and proxy settings, without a server."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from batch_processor.vault import ConnectionSettings, RetryPolicy, VaultSession


def make_session(addr: str, verify: bool | str) -> VaultSession:
    return VaultSession(ConnectionSettings(addr=addr, verify=verify), RetryPolicy(), threading.Event())


@pytest.mark.parametrize("verify", [False, "/etc/vault/ca.pem"])
def test_client_keeps_verify_setting(verify: bool | str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    client = make_session("https://vault.example:8200", verify).client
    assert client.adapter._kwargs["verify"] == verify
    assert client.session.verify == verify


def test_client_reads_ca_bundle_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bundle = tmp_path / "bundle.pem"
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(bundle))
    client = make_session("https://vault.example:8200", True).client
    assert client.adapter._kwargs["verify"] == str(bundle)


def test_client_resolves_proxy_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    client = make_session("https://vault.example:8200", True).client
    assert client.session.trust_env is False
    assert client.adapter._kwargs["proxies"].get("https") == "http://proxy.example:3128"


def test_client_honours_no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    monkeypatch.setenv("NO_PROXY", "vault.example")
    client = make_session("https://vault.example:8200", True).client
    assert not client.adapter._kwargs["proxies"].get("https")


def test_plain_http_skips_ca_bundle(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tmp_path / "bundle.pem"))
    client = make_session("http://127.0.0.1:8200", True).client
    assert client.adapter._kwargs["verify"] is True
