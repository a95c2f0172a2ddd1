"""Flags, environment variables and their checks."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from batch_processor.settings import UsageError, build_parser, resolve_settings

BASE_ENV = {"VAULT_ADDR": "http://127.0.0.1:8200", "VAULT_PASSWORD": "from-env"}


def resolve(argv: list[str], env: dict[str, str]):
    return resolve_settings(build_parser().parse_args(["run", *argv]), env)


def test_defaults_follow_contract() -> None:
    settings = resolve([], BASE_ENV)
    assert settings.username == "batch-processor"
    assert settings.data_dir == Path("/opt/vault-clients")
    assert settings.kv_mount == "kv"
    assert settings.jobs_path == "jobs"
    assert settings.time_scale == 1.0
    assert settings.concurrency == 4
    assert settings.namespace is None
    assert settings.verify is True


def test_flag_wins_over_environment() -> None:
    env = {**BASE_ENV, "BATCH_CONCURRENCY": "2", "VAULT_NAMESPACE": "from/env"}
    settings = resolve(["--concurrency", "8", "--namespace", "/admin/x/"], env)
    assert settings.concurrency == 8
    assert settings.namespace == "admin/x"


def test_password_file_wins(tmp_path: Path) -> None:
    password_file = tmp_path / "password"
    password_file.write_text("from-file\nignored second line\n")
    settings = resolve([], {**BASE_ENV, "VAULT_PASSWORD_FILE": str(password_file)})
    assert settings.password == "from-file"


def test_password_hidden_in_repr() -> None:
    settings = resolve([], BASE_ENV)
    assert "from-env" not in repr(settings)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"VAULT_PASSWORD": "x"}, "missing Vault address: set VAULT_ADDR"),
        ({"VAULT_ADDR": "vault:8200", "VAULT_PASSWORD": "x"}, "invalid VAULT_ADDR 'vault:8200'"),
        ({"VAULT_ADDR": "http://v:1"}, "missing password: set VAULT_PASSWORD_FILE"),
        ({**BASE_ENV, "BATCH_TIME_SCALE": "fast"}, "invalid BATCH_TIME_SCALE 'fast': expected a number"),
        ({**BASE_ENV, "BATCH_TIME_SCALE": "-1"}, "invalid BATCH_TIME_SCALE '-1': must be between 0 and 1000"),
        ({**BASE_ENV, "BATCH_TIME_SCALE": "nan"}, "expected a finite number"),
        ({**BASE_ENV, "BATCH_CONCURRENCY": "0"}, "invalid BATCH_CONCURRENCY '0'"),
        ({**BASE_ENV, "BATCH_CONCURRENCY": "2.5"}, "invalid BATCH_CONCURRENCY '2.5'"),
        ({**BASE_ENV, "BATCH_DATA_DIR": "relative/dir"}, "use an absolute path"),
        ({**BASE_ENV, "BATCH_JOBS_PATH": "../secret"}, "invalid BATCH_JOBS_PATH"),
        ({**BASE_ENV, "VAULT_SKIP_VERIFY": "maybe"}, "invalid VAULT_SKIP_VERIFY 'maybe'"),
        ({**BASE_ENV, "VAULT_CACERT": "/no/such/ca.pem"}, "file not found"),
        ({**BASE_ENV, "BATCH_LOG_LEVEL": "LOUD"}, "invalid BATCH_LOG_LEVEL"),
        ({**BASE_ENV, "VAULT_PASSWORD_FILE": "/no/such/file"}, "cannot read the password file"),
        (
            {**BASE_ENV, "BATCH_RETRY_INITIAL_DELAY": "5", "BATCH_RETRY_MAX_DELAY": "1"},
            "must not be less than BATCH_RETRY_INITIAL_DELAY",
        ),
    ],
)
def test_bad_setting_names_value_and_fix(env: dict[str, str], message: str) -> None:
    with pytest.raises(UsageError, match=message.replace("(", r"\(").replace("?", r"\?")):
        resolve([], env)


def test_bad_flag_named_by_flag() -> None:
    with pytest.raises(UsageError, match="invalid --concurrency 'many'"):
        resolve(["--concurrency", "many"], BASE_ENV)


def test_empty_password_file_rejected(tmp_path: Path) -> None:
    password_file = tmp_path / "password"
    password_file.write_text("\n")
    with pytest.raises(UsageError, match="is empty"):
        resolve([], {**BASE_ENV, "VAULT_PASSWORD_FILE": str(password_file)})


def test_oversized_password_file_rejected(tmp_path: Path) -> None:
    password_file = tmp_path / "password"
    password_file.write_bytes(b"x" * 5000)
    with pytest.raises(UsageError, match="larger than 4096 bytes"):
        resolve([], {**BASE_ENV, "VAULT_PASSWORD_FILE": str(password_file)})


def test_skip_verify_overrides_ca(tmp_path: Path) -> None:
    settings = resolve([], {**BASE_ENV, "VAULT_SKIP_VERIFY": "true"})
    assert settings.verify is False
    ca = tmp_path / "ca.pem"
    ca.write_text("pem")
    assert resolve([], {**BASE_ENV, "VAULT_CACERT": str(ca)}).verify == str(ca)


def test_parser_has_no_password_flag() -> None:
    help_text = build_parser()._subparsers._group_actions[0].choices["run"].format_help()
    assert "--password " not in help_text
    assert "VAULT_PASSWORD_FILE" in help_text


@pytest.mark.parametrize(
    ("address", "message"),
    [
        ("http://[::1", "invalid VAULT_ADDR 'http://\\[::1'"),
        ("http://127.0.0.1:99999", "invalid VAULT_ADDR 'http://127.0.0.1:99999'"),
        ("http://127.0.0.1:notaport", "invalid VAULT_ADDR"),
        ("http://127.0.0.1:0", "invalid VAULT_ADDR"),
    ],
)
def test_malformed_address_is_usage_error(address: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        resolve([], {**BASE_ENV, "VAULT_ADDR": address})


def test_address_with_credentials_rejected() -> None:
    with pytest.raises(UsageError, match="contains credentials") as caught:
        resolve([], {**BASE_ENV, "VAULT_ADDR": "http://admin:topsecret@127.0.0.1:8200"})
    assert "topsecret" not in str(caught.value)


def test_fractional_concurrency_needs_integer() -> None:
    with pytest.raises(UsageError, match=r"invalid BATCH_CONCURRENCY '4\.0': expected an integer"):
        resolve([], {**BASE_ENV, "BATCH_CONCURRENCY": "4.0"})


def test_password_fifo_rejected(tmp_path: Path) -> None:
    fifo = tmp_path / "password"
    os.mkfifo(fifo)
    with pytest.raises(UsageError, match="is not a regular file"):
        resolve([], {**BASE_ENV, "VAULT_PASSWORD_FILE": str(fifo)})


def test_password_file_bad_utf8_rejected(tmp_path: Path) -> None:
    password_file = tmp_path / "password"
    password_file.write_bytes(b"\xff\xfe\n")
    with pytest.raises(UsageError, match="is not valid UTF-8"):
        resolve([], {**BASE_ENV, "VAULT_PASSWORD_FILE": str(password_file)})
