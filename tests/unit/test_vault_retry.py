"""The retry policy and error descriptions, without a server."""

from __future__ import annotations

import threading

import hvac.exceptions
import pytest
import requests

from batch_processor.vault import (
    ConnectionSettings,
    RetryPolicy,
    VaultSession,
    VaultUnavailable,
    describe_error,
)


def make_session(attempts: int = 4) -> VaultSession:
    return VaultSession(
        ConnectionSettings(addr="http://127.0.0.1:9"),
        RetryPolicy(attempts=attempts, initial_delay=0.001, max_delay=0.004),
        threading.Event(),
    )


def test_delays_grow_and_stay_bounded() -> None:
    policy = RetryPolicy(attempts=8, initial_delay=0.5, max_delay=4.0)
    for _ in range(50):
        delays = list(policy.delays())
        assert len(delays) == 7
        ceilings = [min(4.0, 0.5 * 2**n) for n in range(7)]
        assert all(0 <= delay <= ceiling for delay, ceiling in zip(delays, ceilings, strict=True))


def test_retryable_error_then_success() -> None:
    session = make_session()
    calls = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise hvac.exceptions.VaultDown("Vault is sealed")
        return "ok"

    assert session.call("GET x", flaky) == "ok"
    assert len(calls) == 3


@pytest.mark.parametrize(
    "error",
    [
        hvac.exceptions.InvalidRequest("invalid username or password"),
        hvac.exceptions.Forbidden("permission denied"),
        hvac.exceptions.InvalidPath("not found"),
    ],
)
def test_client_errors_are_not_retried(error: Exception) -> None:
    session = make_session()
    calls = []

    def failing() -> None:
        calls.append(1)
        raise error

    with pytest.raises(type(error)):
        session.call("GET x", failing)
    assert len(calls) == 1


def test_exhausted_retries_mark_session_unavailable() -> None:
    session = make_session(attempts=3)
    calls = []

    def down() -> None:
        calls.append(1)
        raise requests.exceptions.ConnectionError("refused")

    with pytest.raises(
        VaultUnavailable, match=r"GET x failed after 3 attempts: connection failed at http://127.0.0.1:9"
    ):
        session.call("GET x", down)
    assert len(calls) == 3
    with pytest.raises(VaultUnavailable, match="skipped, Vault is unavailable"):
        session.call("GET y", down)
    assert len(calls) == 3


def test_cancel_stops_retrying() -> None:
    session = make_session(attempts=50)
    session.cancel.set()
    with pytest.raises(VaultUnavailable, match="cancelled while retrying"):
        session.call("GET x", lambda: (_ for _ in ()).throw(hvac.exceptions.BadGateway("bad gateway")))


def test_describe_error_drops_response_body() -> None:
    body = '{"data": {"data": {"api_key": "do-not-log"}}}'
    error = hvac.exceptions.InvalidPath(body, errors=None, method="get", url="http://v/kv")
    assert "do-not-log" not in describe_error(error)
    assert describe_error(error) == "HTTP 404"
    denied = hvac.exceptions.Forbidden(errors=["permission denied"])
    assert describe_error(denied) == "HTTP 403: permission denied"
