"""main(): help, validate, usage errors, the lock and log redaction."""

from __future__ import annotations

import json
import logging
import stat
from pathlib import Path

import pytest

from batch_processor import cli
from batch_processor.files import RunLock
from batch_processor.settings import OPTIONS


def test_help_lists_every_variable(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["run", "--help"]) == 0
    output = capsys.readouterr().out
    for option in OPTIONS:
        assert option.env in output
        assert option.flag in output


def test_top_level_help_lists_exit_statuses(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--help"]) == 0
    output = " ".join(capsys.readouterr().out.split())
    assert "4 no jobs found" in output
    assert "5 another run holds the lock" in output


def test_unknown_command_is_usage_error() -> None:
    assert cli.main(["explode"]) == 2


def test_validate_reports_each_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = tmp_path / "good.json"
    good.write_text(json.dumps({"priority": "high"}))
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"priority": "urgent"}))
    broken = tmp_path / "broken.json"
    broken.write_text("{")
    assert cli.main(["validate", str(good)]) == 0
    assert cli.main(["validate", str(good), str(bad), str(broken)]) == 1
    output = capsys.readouterr().out
    assert f"{good}: valid (priority high" in output
    assert f"{bad}: invalid: priority must be one of" in output
    assert f"{broken}: invalid JSON" in output


def test_validate_missing_file_is_usage_error(tmp_path: Path) -> None:
    assert cli.main(["validate", str(tmp_path / "absent.json")]) == 2


def test_run_without_address_is_usage_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(cli, "current_environment", lambda: {"VAULT_PASSWORD": "x"})
    assert cli.main(["run"]) == 2
    assert "missing Vault address" in capsys.readouterr().err


def test_unusable_data_dir_is_usage_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "logs").write_text("a file where the logs folder belongs")
    env = {"VAULT_ADDR": "http://127.0.0.1:9", "VAULT_PASSWORD": "x", "BATCH_DATA_DIR": str(tmp_path)}
    monkeypatch.setattr(cli, "current_environment", lambda: env)
    assert cli.main(["run"]) == 2
    assert f"{tmp_path / 'logs'} exists but is not a folder" in capsys.readouterr().err


def test_held_lock_exits_5(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env = {"VAULT_ADDR": "http://127.0.0.1:9", "VAULT_PASSWORD": "x", "BATCH_DATA_DIR": str(tmp_path)}
    monkeypatch.setattr(cli, "current_environment", lambda: env)
    holder = RunLock(tmp_path)
    holder.acquire()
    try:
        assert cli.main(["run"]) == 5
    finally:
        holder.release()
    log = (tmp_path / "logs" / "batch-processing.log").read_text()
    assert "another batch run holds" in log
    assert list((tmp_path / "results").iterdir()) == []


def test_secret_filter_redacts_messages(tmp_path: Path) -> None:
    secrets = ["s3cr3t-password", "hvs.token-value"]
    cli.configure_logging(tmp_path, "INFO", lambda: secrets)
    try:
        log = logging.getLogger("batch_processor.test")
        log.info("login with %s", "s3cr3t-password")
        log.warning("token hvs.token-value expired")
        try:
            raise RuntimeError("hvs.token-value in a traceback")
        except RuntimeError:
            log.exception("failed")
    finally:
        cli.close_logging()
    text = (tmp_path / "batch-processing.log").read_text()
    assert "s3cr3t-password" not in text
    assert "hvs.token-value" not in text
    assert text.count("<redacted>") == 2
    assert "failed (RuntimeError)" in text


def test_existing_log_made_private(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env = {"VAULT_ADDR": "http://127.0.0.1:9", "VAULT_PASSWORD": "x", "BATCH_DATA_DIR": str(tmp_path)}
    monkeypatch.setattr(cli, "current_environment", lambda: env)
    log_file = tmp_path / "logs" / "batch-processing.log"
    log_file.parent.mkdir()
    log_file.write_text("written by an older version\n")
    log_file.chmod(0o644)
    holder = RunLock(tmp_path)
    holder.acquire()
    try:
        assert cli.main(["run"]) == 5
    finally:
        holder.release()
    assert stat.S_IMODE(log_file.stat().st_mode) == 0o640


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[" * 100_000 + "]" * 100_000, "invalid JSON: nested too deeply"),
        ('{"duration_seconds": ' + "9" * 5000 + "}", "invalid JSON"),
        ('{"duration_seconds": ' + "9" * 400 + "}", "invalid: duration_seconds must be between 0 and 86400"),
    ],
)
def test_validate_hostile_json_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, message: str
) -> None:
    hostile = tmp_path / "hostile.json"
    hostile.write_text(text)
    good = tmp_path / "good.json"
    good.write_text("{}")
    assert cli.main(["validate", str(hostile), str(good)]) == 1
    output = capsys.readouterr().out
    assert message in output
    assert f"{good}: valid" in output


def test_log_path_folder_is_usage_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "logs" / "batch-processing.log").mkdir(parents=True)
    env = {"VAULT_ADDR": "http://127.0.0.1:9", "VAULT_PASSWORD": "x", "BATCH_DATA_DIR": str(tmp_path)}
    monkeypatch.setattr(cli, "current_environment", lambda: env)
    assert cli.main(["run"]) == 2
    assert "cannot open the log file" in capsys.readouterr().err
