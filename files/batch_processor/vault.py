"""Vault access: userpass login, KV v2 listing and reads, renewal and revocation.

Every call goes through one retry policy: connection errors and the responses
of a Vault that is down, sealed or overloaded (429, 500, 502, 503, 504) are
retried with exponential backoff and full jitter. Client errors (400, 403,
404) are final. Once a call has exhausted its retries, the session is marked
unavailable and later calls fail at once, so a batch of thousands of jobs
does not wait through the backoff for each one.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit

import hvac
import hvac.exceptions
import hvac.utils
import requests
import requests.adapters
import urllib3
import urllib3.exceptions

logger = logging.getLogger(__name__)

T = TypeVar("T")

RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})
MAX_FOLDER_DEPTH = 16
# A token is renewed once this share of its lease has passed.
RENEW_AT_FRACTION = 2 / 3
# A request denied this close to its token's expiry (or later) is taken to
# have failed because the token expired in flight, not because of the policy.
EXPIRY_MARGIN_SECONDS = 1.0


class VaultError(Exception):
    """A Vault call failed; the message is safe to log and names the path."""


class VaultUnavailable(VaultError):
    """Vault could not be reached or kept returning 5xx after all retries."""


class LoginFailed(VaultError):
    """The userpass login was rejected; retrying would not help."""


class NotFound(VaultError):
    """The path does not exist (or its latest version is deleted)."""


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded retries with exponential backoff and full jitter."""

    attempts: int = 5
    initial_delay: float = 0.5
    max_delay: float = 8.0

    def delays(self) -> Iterator[float]:
        """Yield the sleep before each retry: random in [0, min(max, initial * 2^n)]."""
        for attempt in range(self.attempts - 1):
            ceiling = min(self.max_delay, self.initial_delay * (2**attempt))
            yield random.uniform(0, ceiling)  # noqa: S311 - jitter, not cryptography


@dataclass
class ConnectionSettings:
    """Vault's address, namespace and TLS trust for one session."""

    addr: str
    namespace: str | None = None
    verify: bool | str = True
    timeout: float = 10.0
    pool_size: int = 16


@dataclass
class KvSecret:
    """One KV v2 secret read: its data and the version it came from."""

    data: Any
    version: int | None
    deleted: bool = False
    destroyed: bool = False


def describe_error(error: BaseException) -> str:
    """Summarize an hvac or requests error without the response body.

    hvac puts the whole response body into some messages, and a KV response
    body carries a job's configuration, so only the status and Vault's own
    error strings are kept.
    """
    if isinstance(error, hvac.exceptions.VaultError):
        status = getattr(error, "status_code", None) or _status_of(error)
        errors = error.errors if isinstance(error.errors, list) else []
        # Vault joins several errors into one multi-line string: keep one line.
        text = "; ".join(" ".join(item.split()) for item in errors if isinstance(item, str))
        label = f"HTTP {status}" if status else type(error).__name__
        return f"{label}: {text}" if text else label
    if isinstance(error, requests.exceptions.ConnectionError):
        return "connection failed"
    if isinstance(error, requests.exceptions.Timeout):
        return "request timed out"
    return type(error).__name__


_STATUS_BY_CLASS: dict[type[Exception], int] = {
    hvac.exceptions.InvalidRequest: 400,
    hvac.exceptions.Unauthorized: 401,
    hvac.exceptions.Forbidden: 403,
    hvac.exceptions.InvalidPath: 404,
    hvac.exceptions.RateLimitExceeded: 429,
    hvac.exceptions.InternalServerError: 500,
    hvac.exceptions.BadGateway: 502,
    hvac.exceptions.VaultDown: 503,
}


def _status_of(error: BaseException) -> int | None:
    status = getattr(error, "status_code", None)
    if isinstance(status, int):
        return status
    for cls, code in _STATUS_BY_CLASS.items():
        if isinstance(error, cls):
            return code
    return None


def _is_retryable(error: BaseException) -> bool:
    if isinstance(error, (requests.exceptions.ConnectionError, requests.exceptions.Timeout)):
        return True
    # hvac raises UnexpectedError, without the status, for codes it does not
    # map (504 among them); those are all server-side or proxy failures.
    if isinstance(error, hvac.exceptions.UnexpectedError):
        return True
    return _status_of(error) in RETRYABLE_STATUS


class VaultSession:
    """One processor run's connection to Vault and the tokens it obtained."""

    def __init__(
        self,
        settings: ConnectionSettings,
        retry: RetryPolicy,
        cancel: threading.Event,
        on_new_token: Callable[[str], None] | None = None,
    ) -> None:
        self.settings = settings
        self._on_new_token = on_new_token
        self.retry = retry
        self.cancel = cancel
        self.unavailable_reason: str | None = None
        self.tokens: list[str] = []
        self.logins = 0
        self.renewals = 0
        self._username = ""
        self._password = ""
        self._mount = "userpass"
        self._lease_seconds = 0.0
        self._renewable = False
        self._issued_at = 0.0
        self._token_lock = threading.Lock()
        # Serializes renewals and new logins between the keeper and the readers.
        self._refresh_lock = threading.Lock()
        self._keeper: threading.Thread | None = None
        self._stop_keeper = threading.Event()
        self._fast_pool: tuple[Any, str] | None = None
        self.client = self._new_client(token="")

    def _new_client(self, token: str) -> hvac.Client:
        # The token is always passed explicitly: with token=None hvac would
        # fall back to VAULT_TOKEN or ~/.vault-token.
        session = requests.Session()
        adapter = requests.adapters.HTTPAdapter(
            pool_connections=1, pool_maxsize=self.settings.pool_size, max_retries=0
        )
        session.mount("http://", adapter)
        session.mount("https://", adapter)

        # With trust_env on, requests looks up the proxy variables, the CA
        # bundle variables and ~/.netrc again for every request, which costs
        # more CPU than a loopback request itself. The proxies and the CA
        # bundle are resolved once here instead; ~/.netrc is not read at all,
        # because Vault authenticates by token.
        environment = session.merge_environment_settings(
            self.settings.addr, {}, None, self.settings.verify, None
        )
        session.trust_env = False
        session.proxies = environment["proxies"]
        verify = environment["verify"]
        if urlsplit(self.settings.addr).scheme == "http" and isinstance(verify, str):
            # Plain HTTP has no certificate to check, but requests would still
            # stat a CA bundle path on every request.
            verify = True
        # hvac takes `verify` from the session it is given and ignores its own
        # argument then, so the session must carry it.
        session.verify = verify

        return hvac.Client(
            url=self.settings.addr,
            token=token,
            namespace=self.settings.namespace,
            verify=verify,
            proxies=environment["proxies"],
            timeout=self.settings.timeout,
            session=session,
        )

    # -- retries ---------------------------------------------------------

    def call(
        self,
        request: str,
        operation: Callable[[], T],
        *,
        retry: RetryPolicy | None = None,
        mark_unavailable: bool = True,
    ) -> T:
        """Run one Vault request with the retry policy; `request` names it in errors.

        `retry` replaces the session's policy for this call. With
        `mark_unavailable` false, running out of attempts fails this call
        only and leaves the session usable for the others.
        """
        if self.unavailable_reason is not None:
            raise VaultUnavailable(f"{request}: skipped, Vault is unavailable ({self.unavailable_reason})")
        policy = retry or self.retry
        delays = policy.delays()
        while True:
            try:
                return operation()
            except (hvac.exceptions.VaultError, requests.exceptions.RequestException) as error:
                if not _is_retryable(error):
                    raise
                delay = next(delays, None)
                reason = describe_error(error)
                if delay is None:
                    if mark_unavailable:
                        self.unavailable_reason = f"{reason} at {self.settings.addr}"
                    raise VaultUnavailable(
                        f"{request} failed after {policy.attempts} attempts: {reason} at {self.settings.addr}"
                    ) from error
                logger.warning("%s: %s, retrying in %.2f s", request, reason, delay)
                if self.cancel.wait(delay):
                    raise VaultUnavailable(f"{request}: cancelled while retrying ({reason})") from error

    # -- login and token lifetime -----------------------------------------

    def login(self, username: str, password: str, mount: str = "userpass") -> None:
        """Log in with userpass inside the namespace and start keeping the token alive."""
        self._username, self._password, self._mount = username, password, mount
        self._login()
        self._keeper = threading.Thread(target=self._keep_token, name="token-keeper", daemon=True)
        self._keeper.start()

    def _login(self) -> None:
        where = f"namespace {self.settings.namespace!r}" if self.settings.namespace else "the root namespace"
        request = f"userpass login of {self._username!r} at auth/{self._mount} in {where}"
        login_client = self._new_client(token="")
        try:
            response = self.call(
                request,
                lambda: login_client.auth.userpass.login(
                    self._username, self._password, mount_point=self._mount, use_token=False
                ),
            )
        except hvac.exceptions.InvalidRequest as error:
            # Vault returns 400 both for a wrong password and for a user that
            # does not exist in this namespace's userpass mount.
            raise LoginFailed(
                f"{request} was rejected ({describe_error(error)}); check the username and "
                "the password (VAULT_PASSWORD_FILE or VAULT_PASSWORD), and that the user exists in VAULT_NAMESPACE"
            ) from error
        except hvac.exceptions.InvalidPath as error:
            raise LoginFailed(
                f"{request} failed ({describe_error(error)}); the namespace or the auth "
                "mount does not exist: check VAULT_NAMESPACE"
            ) from error
        except hvac.exceptions.Forbidden as error:
            raise LoginFailed(
                f"{request} was denied ({describe_error(error)}); Vault returns 403 for a login "
                "path with no auth method mounted: check VAULT_NAMESPACE and that userpass "
                f"is enabled at auth/{self._mount}"
            ) from error
        except hvac.exceptions.VaultError as error:
            raise LoginFailed(f"{request} failed ({describe_error(error)})") from error
        finally:
            login_client.adapter.close()
        auth = response["auth"]
        token = auth["client_token"]
        if self._on_new_token is not None:
            self._on_new_token(token)
        with self._token_lock:
            self.tokens.append(token)
            self.client.token = token
            self._lease_seconds = float(auth.get("lease_duration") or 0)
            self._renewable = bool(auth.get("renewable"))
            self._issued_at = time.monotonic()
        self.logins += 1
        logger.info(
            "logged in as %s (token lease %.0f s, renewable: %s)",
            self._username,
            self._lease_seconds,
            self._renewable,
        )

    def _keep_token(self) -> None:
        """Renew the token before it expires, or log in again when it cannot be renewed."""
        while True:
            with self._token_lock:
                lease, issued = self._lease_seconds, self._issued_at
            if lease <= 0:
                return  # a token without a TTL never expires
            wait = max(0.05, issued + lease * RENEW_AT_FRACTION - time.monotonic())
            if self._stop_keeper.wait(wait):
                return
            try:
                self._renew_or_login(lease)
            except VaultError as error:
                logger.error("token renewal failed: %s", error)
                if self._stop_keeper.wait(min(5.0, max(lease / 10, 0.1))):
                    return

    def _renew_or_login(self, previous_lease: float) -> None:
        with self._refresh_lock:
            self._renew_or_login_locked(previous_lease)

    def _renew_or_login_locked(self, previous_lease: float) -> None:
        renewed_lease = 0.0
        if self._renewable:
            # One attempt, and a failure does not mark Vault unavailable: a
            # token past its max TTL makes OpenBao return 500 ("past the max
            # TTL, cannot renew"), which only a new login can fix. The login
            # below has the full retry policy, so an outage is still noticed.
            try:
                response = self.call(
                    "token renewal",
                    self.client.auth.token.renew_self,
                    retry=RetryPolicy(attempts=1),
                    mark_unavailable=False,
                )
                renewed_lease = float(response["auth"].get("lease_duration") or 0)
            except (hvac.exceptions.VaultError, VaultError) as error:
                reason = (
                    describe_error(error) if isinstance(error, hvac.exceptions.VaultError) else str(error)
                )
                logger.warning("token renewal failed (%s); logging in again", reason)
        # A renewal that comes back shorter has hit the token's max TTL. Riding
        # out the rest would leave requests in flight little margin, and only
        # a new login gives more time, so log in again now.
        if renewed_lease >= previous_lease:
            with self._token_lock:
                self._lease_seconds = renewed_lease
                self._issued_at = time.monotonic()
            self.renewals += 1
            logger.info("token renewed (lease %.0f s)", renewed_lease)
            return
        self._login()

    def _replace_expired_token(self, used_token: str) -> bool:
        """Log in again if `used_token` has expired; return True when a newer token is ready."""
        with self._refresh_lock:
            if self.client.token != used_token:
                return True
            with self._token_lock:
                lease, issued = self._lease_seconds, self._issued_at
            if lease <= 0 or time.monotonic() < issued + lease - EXPIRY_MARGIN_SECONDS:
                return False
            self._login()
            return True

    def call_with_token(self, request: str, operation: Callable[[], T]) -> T:
        """Run `operation` like call(), once more with a new token if the token expired in flight.

        A request sent just before its token expires can reach Vault after
        and be denied with 403 although the policy allows it.
        """
        used_token = self.client.token
        try:
            return self.call(request, operation)
        except hvac.exceptions.Forbidden:
            if not self._replace_expired_token(used_token):
                raise
        logger.info("%s: the token expired during the request; retrying with a new token", request)
        return self.call(request, operation)

    def stop_keeper(self) -> None:
        self._stop_keeper.set()
        if self._keeper is not None:
            self._keeper.join(timeout=5)

    def revoke_tokens(self) -> tuple[bool, str | None]:
        """Revoke every token this session obtained; return (all revoked, first error)."""
        self.stop_keeper()
        first_error: str | None = None
        revoked_all = True
        # Revocation must be tried even after the session was marked
        # unavailable: Vault may be back by now.
        self.unavailable_reason = None
        for token in self.tokens:
            client = self._new_client(token=token)
            try:
                self.call("token revocation", client.auth.token.revoke_self)
            except hvac.exceptions.Forbidden:
                # An expired or already revoked token is rejected with 403:
                # it can no longer be used either way.
                logger.info("token was already expired or revoked")
            except VaultError as error:
                revoked_all = False
                first_error = first_error or str(error)
            except hvac.exceptions.VaultError as error:
                revoked_all = False
                first_error = first_error or f"token revocation failed: {describe_error(error)}"
            finally:
                client.adapter.close()
        if revoked_all and self.tokens:
            logger.info("revoked %d token(s)", len(self.tokens))
        self.client.token = ""
        self._password = ""
        return revoked_all, first_error

    # -- KV v2 ---------------------------------------------------------------

    def list_jobs(self, mount: str, folder: str) -> tuple[list[str], list[str]]:
        """List job names below `folder`, walking subfolders.

        Returns (job names relative to `folder`, subfolders skipped for
        depth). A folder that does not exist lists as empty.
        """
        names: list[str] = []
        skipped: list[str] = []
        pending: list[tuple[str, int]] = [("", 0)]
        while pending:
            prefix, depth = pending.pop()
            path = f"{folder}/{prefix}".rstrip("/")
            try:
                response = self.call_with_token(
                    f"LIST {mount}/metadata/{path}",
                    lambda path=path: self.client.secrets.kv.v2.list_secrets(path=path, mount_point=mount),
                )
            except hvac.exceptions.InvalidPath:
                continue
            except hvac.exceptions.Forbidden as error:
                raise VaultError(
                    f"LIST {mount}/metadata/{path} was denied ({describe_error(error)}); "
                    "the policy must grant list on it"
                ) from error
            except hvac.exceptions.VaultError as error:
                raise VaultError(f"LIST {mount}/metadata/{path} failed ({describe_error(error)})") from error
            keys = (response.get("data") or {}).get("keys") or []
            for key in keys:
                if not isinstance(key, str) or not key:
                    continue
                if key.endswith("/"):
                    if depth + 1 >= MAX_FOLDER_DEPTH:
                        skipped.append(prefix + key)
                    else:
                        pending.append((prefix + key, depth + 1))
                else:
                    names.append(prefix + key)
        names.sort()
        return names, skipped

    def read_job(self, mount: str, folder: str, name: str) -> KvSecret:
        """Read the latest version of one job configuration."""
        path = f"{folder}/{name}"
        request = f"GET {mount}/data/{path}"

        def read() -> dict[str, Any]:
            document = self._get_json(
                hvac.utils.format_url("/v1/{mount}/data/{path}", mount=mount, path=path)
            )
            if document is not None:
                return document
            # A redirect or an unexpected body: let hvac and requests handle it.
            return self.client.secrets.kv.v2.read_secret_version(
                path=path, mount_point=mount, raise_on_deleted_version=False
            )

        try:
            response = self.call_with_token(request, read)
        except hvac.exceptions.InvalidPath as error:
            # KV v2 returns 404 for a deleted or destroyed latest version but
            # still sends its metadata. hvac returns that body for a deleted
            # version only and raises for a destroyed one.
            response = error.json if isinstance(error.json, dict) else {}
            if not isinstance((response.get("data") or {}).get("metadata"), dict):
                raise NotFound(f"{request}: not found") from error
        except hvac.exceptions.Forbidden as error:
            raise VaultError(f"{request} was denied ({describe_error(error)})") from error
        except hvac.exceptions.VaultError as error:
            raise VaultError(f"{request} failed ({describe_error(error)})") from error
        data = response.get("data") or {}
        metadata = data.get("metadata") or {}
        version = metadata.get("version")
        return KvSecret(
            data=data.get("data"),
            version=version if isinstance(version, int) else None,
            deleted=bool(metadata.get("deletion_time")),
            destroyed=bool(metadata.get("destroyed")),
        )

    def _get_json(self, api_path: str) -> dict[str, Any] | None:
        """GET `api_path` straight through urllib3 and return the JSON body of a 200.

        A status of 400 or more raises the hvac exception that hvac would
        raise, with the same body. Any other status (a redirect, say) or a
        body that is not a JSON object returns None, and the caller repeats
        the request through hvac.

        hvac and requests spend about twice the client CPU of urllib3 on each
        request (bench/client_cpu.py). The reads of a batch are most of its
        requests, so they skip both. The connection pool is the one requests
        built for this address, with the same TLS and proxy settings.
        Connection errors are raised as the requests exceptions that the
        retry policy expects.
        """
        pool, url_prefix = self._read_pool()
        headers = {"X-Vault-Request": "true", "X-Vault-Token": self.client.token}
        if self.settings.namespace:
            headers["X-Vault-Namespace"] = self.settings.namespace
        try:
            response = pool.urlopen(
                "GET",
                url_prefix + api_path,
                headers=headers,
                retries=False,
                redirect=False,
                assert_same_host=False,
                timeout=urllib3.Timeout(connect=self.settings.timeout, read=self.settings.timeout),
            )
        except urllib3.exceptions.NewConnectionError as error:
            # Checked first: urllib3 2 derives it from ConnectTimeoutError.
            raise requests.exceptions.ConnectionError(str(error)) from error
        except urllib3.exceptions.TimeoutError as error:
            raise requests.exceptions.Timeout(str(error)) from error
        except urllib3.exceptions.HTTPError as error:
            raise requests.exceptions.ConnectionError(str(error)) from error
        text = response.data.decode("utf-8", errors="replace")
        document: Any = None
        if response.status == 200 or response.headers.get("Content-Type") == "application/json":
            try:
                document = json.loads(text)
            except ValueError:
                document = None
        if response.status >= 400:
            errors = document.get("errors") if isinstance(document, dict) else None
            hvac.utils.raise_for_error(
                "get",
                url_prefix + api_path,
                response.status,
                None if errors is not None else text,
                errors=errors,
                text=text,
                json=document,
            )
        if response.status != 200 or not isinstance(document, dict):
            return None
        return document

    def _read_pool(self) -> tuple[Any, str]:
        """Return the urllib3 pool requests uses for this address, and the prefix its URLs need."""
        with self._token_lock:
            if self._fast_pool is None:
                session = self.client.session
                base = requests.Request("GET", f"{self.settings.addr}/v1/").prepare()
                adapter = session.get_adapter(base.url)
                assert isinstance(adapter, requests.adapters.HTTPAdapter)  # noqa: S101 - mounted in _new_client
                proxies = self.client.adapter._kwargs.get("proxies") or {}
                pool = adapter.get_connection_with_tls_context(base, session.verify, proxies=proxies)
                # Through an HTTP proxy the request line carries the whole URL.
                request_url = adapter.request_url(base, proxies)
                self._fast_pool = (pool, request_url[: -len("/v1/")])
            return self._fast_pool

    def close(self) -> None:
        self.client.adapter.close()
