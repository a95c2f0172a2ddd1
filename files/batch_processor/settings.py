"""Command line and environment: every option has a flag and a variable.

A flag wins over its variable, the variable over the default. The password
has no flag on purpose, because a process's arguments are readable by every
user of the host; it comes from VAULT_PASSWORD_FILE or VAULT_PASSWORD.
"""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from batch_processor import __version__

DEFAULT_DATA_DIR = "/opt/vault-clients"
MAX_CONCURRENCY = 256
MAX_PASSWORD_FILE_BYTES = 4096


class UsageError(ValueError):
    """Bad flags, environment or files; the message names the value and the fix."""


@dataclass(frozen=True)
class Option:
    """One setting: its flag, environment variable, default and help text."""

    dest: str
    flag: str
    env: str
    default: str | None
    help: str
    metavar: str


OPTIONS = (
    Option("vault_addr", "--vault-addr", "VAULT_ADDR", None, "Vault address, e.g. https://vault.example:8200 (required)", "URL"),
    Option("namespace", "--namespace", "VAULT_NAMESPACE", None, "namespace of the userpass mount and the KV mount (default: none)", "PATH"),
    Option("cacert", "--ca-cert", "VAULT_CACERT", None, "PEM file with the CA that signed Vault's certificate (default: system trust)", "FILE"),
    Option("skip_verify", "--skip-verify", "VAULT_SKIP_VERIFY", "false", "do not verify Vault's TLS certificate: true or false (default: false)", "BOOL"),
    Option("username", "--username", "VAULT_USERNAME", "batch-processor", "userpass user (default: batch-processor)", "NAME"),
    Option("auth_mount", "--auth-mount", "VAULT_AUTH_MOUNT", "userpass", "path of the userpass auth method (default: userpass)", "PATH"),
    Option("password_file", "--password-file", "VAULT_PASSWORD_FILE", None, "file whose first line is the password; wins over VAULT_PASSWORD, which has no flag", "FILE"),
    Option("data_dir", "--data-dir", "BATCH_DATA_DIR", DEFAULT_DATA_DIR, f"folder that holds logs/ and results/ (default: {DEFAULT_DATA_DIR})", "DIR"),
    Option("kv_mount", "--kv-mount", "BATCH_KV_MOUNT", "kv", "KV v2 mount (default: kv)", "PATH"),
    Option("jobs_path", "--jobs-path", "BATCH_JOBS_PATH", "jobs", "folder of job configurations in the KV mount (default: jobs)", "PATH"),
    Option("time_scale", "--time-scale", "BATCH_TIME_SCALE", "1.0", "multiplier on simulated work; 0 means no sleeping (default: 1.0)", "FACTOR"),
    Option("concurrency", "--concurrency", "BATCH_CONCURRENCY", "4", f"jobs processed at once, highest priority first, 1 to {MAX_CONCURRENCY} (default: 4)", "N"),
    Option("read_concurrency", "--read-concurrency", "BATCH_READ_CONCURRENCY", "8", f"job configurations read from Vault at once, 1 to {MAX_CONCURRENCY} (default: 8)", "N"),
    Option("request_timeout", "--request-timeout", "BATCH_REQUEST_TIMEOUT", "10", "seconds to wait for one Vault response (default: 10)", "SECONDS"),
    Option("retry_attempts", "--retry-attempts", "BATCH_RETRY_ATTEMPTS", "5", "attempts per Vault request when Vault is unreachable or returns 429 or 5xx (default: 5)", "N"),
    Option("retry_initial_delay", "--retry-initial-delay", "BATCH_RETRY_INITIAL_DELAY", "0.5", "seconds before the first retry; doubles each time, with jitter (default: 0.5)", "SECONDS"),
    Option("retry_max_delay", "--retry-max-delay", "BATCH_RETRY_MAX_DELAY", "8", "maximum seconds between two retries (default: 8)", "SECONDS"),
    Option("log_level", "--log-level", "BATCH_LOG_LEVEL", "INFO", "DEBUG, INFO, WARNING or ERROR (default: INFO)", "LEVEL"),
)  # fmt: skip

_TRUE = {"1", "t", "true", "yes", "on"}
_FALSE = {"", "0", "f", "false", "no", "off"}
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


@dataclass(frozen=True)
class Settings:
    """The validated settings of one run."""

    vault_addr: str
    namespace: str | None
    verify: bool | str
    username: str
    auth_mount: str
    password: str
    data_dir: Path
    kv_mount: str
    jobs_path: str
    time_scale: float
    concurrency: int
    read_concurrency: int
    request_timeout: float
    retry_attempts: int
    retry_initial_delay: float
    retry_max_delay: float
    log_level: str

    def __repr__(self) -> str:
        # The password must never reach a log line or a traceback.
        return f"Settings(vault_addr={self.vault_addr!r}, namespace={self.namespace!r}, password=<hidden>)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python3 -m batch_processor",
        description="Process the job configurations stored in Vault KV v2 and write a JSON "
        "result per job and a batch summary.",
        epilog="Exit status: 0 every job succeeded or was skipped; 1 a job failed, was invalid "
        "or was cancelled, the batch was partial, or an internal error occurred; 2 usage or configuration error; 3 Vault login or connection failed; "
        "4 no jobs found; 5 another run holds the lock; 130 or 143 stopped by SIGINT or SIGTERM. "
        "A token that could not be revoked turns 0 into 3.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = commands.add_parser(
        "run",
        help="run one batch",
        description="Log in to Vault with userpass, process every job configuration and "
        "revoke the token. Each option falls back to the environment variable shown.",
    )
    for option in OPTIONS:
        run.add_argument(
            option.flag,
            dest=option.dest,
            metavar=option.metavar,
            default=None,
            help=f"{option.help} [env {option.env}]",
        )
    validate = commands.add_parser(
        "validate",
        help="check job configuration files against the schema",
        description="Check JSON files of job configurations, as they would be stored in KV, "
        "without contacting Vault. Exits 1 if any file is invalid.",
    )
    validate.add_argument("files", nargs="+", type=Path, metavar="FILE")
    return parser


def _raw(args: argparse.Namespace, env: Mapping[str, str], option: Option) -> str | None:
    value = getattr(args, option.dest)
    if value is not None:
        return str(value)
    value = env.get(option.env)
    if value is not None and value.strip() != "":
        return value.strip()
    return option.default


def _source(args: argparse.Namespace, option: Option) -> str:
    return option.flag if getattr(args, option.dest) is not None else option.env


def _parse_bool(text: str, name: str) -> bool:
    lowered = text.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise UsageError(f"invalid {name} {text!r}: use true or false")


def _parse_number(
    text: str,
    name: str,
    convert: Callable[[str], Any],
    minimum: float,
    maximum: float | None = None,
) -> Any:
    try:
        value = convert(text)
    except ValueError:
        kind = "an integer" if convert is int else "a number"
        raise UsageError(f"invalid {name} {text!r}: expected {kind}") from None
    if isinstance(value, float) and not math.isfinite(value):
        raise UsageError(f"invalid {name} {text!r}: expected a finite number")
    if value < minimum or (maximum is not None and value > maximum):
        bound = f"between {minimum:g} and {maximum:g}" if maximum is not None else f"at least {minimum:g}"
        raise UsageError(f"invalid {name} {text!r}: must be {bound}")
    return value


def _kv_path(text: str, name: str) -> str:
    stripped = text.strip("/")
    parts = stripped.split("/")
    if not stripped or any(part in ("", ".", "..") for part in parts):
        raise UsageError(f"invalid {name} {text!r}: use a path such as 'kv' or 'jobs/nightly'")
    return stripped


def read_password(password_file: str | None, env: Mapping[str, str]) -> str:
    """Return the password from the file (first line) or VAULT_PASSWORD."""
    if password_file:
        path = Path(password_file)
        # A FIFO or device would block or never end; only a regular file is read.
        if path.exists() and not path.is_file():
            raise UsageError(
                f"the password file {path} is not a regular file; point VAULT_PASSWORD_FILE at one"
            )
        try:
            with path.open("rb") as handle:
                raw = handle.read(MAX_PASSWORD_FILE_BYTES + 1)
        except OSError as error:
            raise UsageError(
                f"cannot read the password file {path}: {error.strerror}; "
                "check VAULT_PASSWORD_FILE and the file's mode"
            ) from None
        if len(raw) > MAX_PASSWORD_FILE_BYTES:
            raise UsageError(
                f"the password file {path} is larger than {MAX_PASSWORD_FILE_BYTES} bytes; "
                "it must hold the password alone"
            )
        try:
            text = raw.decode("utf-8", errors="strict")
        except UnicodeDecodeError:
            raise UsageError(
                f"the password file {path} is not valid UTF-8; write the password as text"
            ) from None
        password = text.split("\n", 1)[0].rstrip("\r")
        if not password:
            raise UsageError(f"the password file {path} is empty; write the password on its first line")
        return password
    password = env.get("VAULT_PASSWORD", "")
    if not password:
        raise UsageError(
            "missing password: set VAULT_PASSWORD_FILE to a file that contains it "
            "(or VAULT_PASSWORD in the environment)"
        )
    return password


def resolve_settings(args: argparse.Namespace, env: Mapping[str, str]) -> Settings:
    """Combine flags, environment and defaults into checked Settings."""
    raw = {option.dest: _raw(args, env, option) for option in OPTIONS}
    names = {option.dest: _source(args, option) for option in OPTIONS}

    vault_addr = raw["vault_addr"]
    if not vault_addr:
        raise UsageError(
            "missing Vault address: set VAULT_ADDR or --vault-addr, e.g. https://vault.example:8200"
        )
    try:
        parts = urlsplit(vault_addr)
        port = parts.port
    except ValueError as error:
        raise UsageError(
            f"invalid {names['vault_addr']} {vault_addr!r}: {error}; use e.g. https://vault.example:8200"
        ) from None
    if parts.username is not None or parts.password is not None:
        raise UsageError(
            f"invalid {names['vault_addr']}: it contains credentials; remove the user:password@ part"
        )
    if parts.scheme not in ("http", "https") or not parts.hostname or port == 0:
        raise UsageError(
            f"invalid {names['vault_addr']} {vault_addr!r}: expected http:// or https:// and a host, "
            "e.g. https://vault.example:8200"
        )

    verify: bool | str = True
    if _parse_bool(raw["skip_verify"] or "", names["skip_verify"]):
        verify = False
    elif raw["cacert"]:
        cacert = Path(raw["cacert"])
        if not cacert.is_file():
            raise UsageError(f"invalid {names['cacert']} {str(cacert)!r}: file not found")
        verify = str(cacert)

    data_dir = Path(raw["data_dir"] or DEFAULT_DATA_DIR)
    if not data_dir.is_absolute():
        raise UsageError(f"invalid {names['data_dir']} {str(data_dir)!r}: use an absolute path")

    log_level = (raw["log_level"] or "INFO").upper()
    if log_level not in LOG_LEVELS:
        raise UsageError(
            f"invalid {names['log_level']} {raw['log_level']!r}: use one of {', '.join(LOG_LEVELS)}"
        )

    namespace = raw["namespace"].strip("/") if raw["namespace"] else None
    username = raw["username"] or ""
    if not username or "/" in username:
        raise UsageError(f"invalid {names['username']} {username!r}: a userpass user name has no '/'")

    retry_initial = _parse_number(raw["retry_initial_delay"] or "", names["retry_initial_delay"], float, 0)
    retry_max = _parse_number(raw["retry_max_delay"] or "", names["retry_max_delay"], float, 0)
    if retry_max < retry_initial:
        raise UsageError(
            f"invalid {names['retry_max_delay']} {retry_max:g}: must not be less than "
            f"{names['retry_initial_delay']} ({retry_initial:g})"
        )

    return Settings(
        vault_addr=vault_addr.rstrip("/"),
        namespace=namespace or None,
        verify=verify,
        username=username,
        auth_mount=_kv_path(raw["auth_mount"] or "", names["auth_mount"]),
        password=read_password(raw["password_file"], env),
        data_dir=data_dir,
        kv_mount=_kv_path(raw["kv_mount"] or "", names["kv_mount"]),
        jobs_path=_kv_path(raw["jobs_path"] or "", names["jobs_path"]),
        time_scale=_parse_number(raw["time_scale"] or "", names["time_scale"], float, 0, 1000),
        concurrency=_parse_number(raw["concurrency"] or "", names["concurrency"], int, 1, MAX_CONCURRENCY),
        read_concurrency=_parse_number(
            raw["read_concurrency"] or "", names["read_concurrency"], int, 1, MAX_CONCURRENCY
        ),
        request_timeout=_parse_number(
            raw["request_timeout"] or "", names["request_timeout"], float, 0.1, 3600
        ),
        retry_attempts=_parse_number(raw["retry_attempts"] or "", names["retry_attempts"], int, 1, 100),
        retry_initial_delay=retry_initial,
        retry_max_delay=retry_max,
        log_level=log_level,
    )


def current_environment() -> dict[str, str]:
    return dict(os.environ)
