"""Entry point: `python3 -m batch_processor run` and `validate`.

This module turns every domain error into a message and an exit status; the
statuses are listed in the parser's epilog and in the README.
"""

from __future__ import annotations

import contextlib
import json
import logging
import logging.handlers
import os
import queue
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from types import FrameType
from typing import Any

from batch_processor import SCHEMA_VERSION, __version__
from batch_processor.files import (
    DataDirError,
    LockHeld,
    RunLock,
    prepare_data_dir,
    remove_stale_temp_files,
)
from batch_processor.jobs import InvalidJobConfig, validate_job_config
from batch_processor.runner import (
    BatchContext,
    BatchStatus,
    Job,
    JobOutcome,
    JobStatus,
    batch_status,
    count_outcomes,
    new_batch_id,
    read_configs,
    schedule,
    utc_now,
    write_summary,
)
from batch_processor.settings import (
    Settings,
    UsageError,
    build_parser,
    current_environment,
    resolve_settings,
)
from batch_processor.vault import (
    ConnectionSettings,
    LoginFailed,
    RetryPolicy,
    VaultError,
    VaultSession,
)

logger = logging.getLogger("batch_processor")

EXIT_OK = 0
EXIT_JOB_FAILED = 1
EXIT_USAGE = 2
EXIT_VAULT = 3
EXIT_NO_JOBS = 4
EXIT_LOCKED = 5

LOG_FILE_NAME = "batch-processing.log"
LOG_FILE_MODE = 0o640
LOG_MAX_BYTES = 10 * 1024 * 1024
LOG_BACKUPS = 5
LOG_FORMAT = "%(asctime)s %(levelname)s [%(batch_id)s] %(name)s: %(message)s"
REDACTED = "<redacted>"
PRIVATE_UMASK = 0o027


class _BatchIdFilter(logging.Filter):
    """Adds the current batch id to every record, "-" before one exists."""

    def __init__(self) -> None:
        super().__init__()
        self.batch_id = "-"

    def filter(self, record: logging.LogRecord) -> bool:
        record.batch_id = self.batch_id
        return True


class _SecretFilter(logging.Filter):
    """Replaces the password and tokens in a record's message as a last line of defence.

    The code never logs them on purpose; this catches a library or exception
    text that might.
    """

    def __init__(self, secrets: Callable[[], Iterable[str]]) -> None:
        super().__init__()
        self._secrets = secrets

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = message
        for secret in self._secrets():
            if secret and secret in cleaned:
                cleaned = cleaned.replace(secret, REDACTED)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if record.exc_info:
            # Tracebacks are formatted later, out of reach: keep the type only.
            error = record.exc_info[1]
            record.msg = f"{record.getMessage()} ({type(error).__name__})"
            record.args, record.exc_info, record.exc_text = None, None, None
        return True


class _OnceFormatter(logging.Formatter):
    """A formatter that formats each record once, however many handlers output it.

    RotatingFileHandler formats a record once more to decide on rotation, so
    without this each record would be formatted three times.
    """

    def format(self, record: logging.LogRecord) -> str:
        cached: tuple[_OnceFormatter, str] | None = getattr(record, "_batch_formatted", None)
        if cached is not None and cached[0] is self:
            return cached[1]
        text = super().format(record)
        record._batch_formatted = (self, text)
        return text


class _InProcessQueueHandler(logging.handlers.QueueHandler):
    """A queue handler whose records stay in this process.

    The base class formats each record for pickling, which the listener
    does anyway. This one only merges the arguments into the message, so a
    later change to an argument cannot change the line.
    """

    def __init__(self) -> None:
        super().__init__(queue.SimpleQueue())
        self.listener: logging.handlers.QueueListener | None = None

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        record.msg = record.getMessage()
        record.args = None
        return record

    def close(self) -> None:
        """Write every queued record, then stop the listener and close its handlers."""
        if self.listener is not None:
            self.listener.stop()
            for handler in self.listener.handlers:
                handler.close()
            self.listener = None
        super().close()


def configure_logging(
    logs_dir: Path | None, level: str, secrets: Callable[[], Iterable[str]]
) -> _BatchIdFilter:
    """Send the package's records to stderr and, when given, to the rotating log file.

    The threads that log only queue their records, and one listener thread
    writes them to both outputs in the order they were queued. So the
    threads do not wait for each other's writes. `close_logging` writes
    every queued record before it returns.
    """
    close_logging()
    # LOG_FORMAT uses neither the caller's source position nor thread or
    # process ids, so records skip collecting them. With _srcfile None,
    # logging (Python 3.11, logging/__init__.py) never calls findCaller.
    # These switches are global, and this process logs only through here.
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    batch_filter = _BatchIdFilter()
    secret_filter = _SecretFilter(secrets)
    formatter = _OnceFormatter(LOG_FORMAT, datefmt="%Y-%m-%dT%H:%M:%S%z")
    formatter.converter = time.gmtime
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if logs_dir is not None:
        log_file = logs_dir / LOG_FILE_NAME
        handlers.append(
            logging.handlers.RotatingFileHandler(
                log_file, maxBytes=LOG_MAX_BYTES, backupCount=LOG_BACKUPS, encoding="utf-8"
            )
        )
        # The umask covers new files only; a log left by an older version
        # may still be readable by everyone.
        with contextlib.suppress(OSError):
            os.chmod(log_file, LOG_FILE_MODE)
    for handler in handlers:
        handler.setFormatter(formatter)
    # Both filters run in the thread that logs: the batch id must be the one
    # current when the record was made, and the secret filter must see the
    # exception before the record leaves that thread.
    queue_handler = _InProcessQueueHandler()
    queue_handler.addFilter(batch_filter)
    queue_handler.addFilter(secret_filter)
    queue_handler.listener = logging.handlers.QueueListener(queue_handler.queue, *handlers)
    queue_handler.listener.start()
    logger.addHandler(queue_handler)
    logger.setLevel(level)
    logger.propagate = False
    return batch_filter


def close_logging() -> None:
    """Remove and close the package's handlers, writing every queued record first."""
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command given in `argv` and return the process exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_request:
        return int(exit_request.code or 0)
    if args.command == "validate":
        return validate_files(args.files)
    return run(args, current_environment())


def validate_files(paths: Sequence[Path]) -> int:
    """Check job configuration files offline; print one line per file."""
    status = EXIT_OK
    for path in paths:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except OSError as error:
            print(f"{path}: cannot read: {error.strerror}", file=sys.stderr)
            status = EXIT_USAGE
            continue
        except (ValueError, RecursionError) as error:
            # ValueError covers malformed JSON, bad UTF-8 and integers too long to convert.
            print(
                f"{path}: invalid JSON: {error if not isinstance(error, RecursionError) else 'nested too deeply'}"
            )
            status = max(status, EXIT_JOB_FAILED)
            continue
        try:
            config = validate_job_config(data)
        except InvalidJobConfig as error:
            print(f"{path}: invalid: {error}")
            status = max(status, EXIT_JOB_FAILED)
            continue
        print(
            f"{path}: valid (priority {config.priority}, enabled {str(config.enabled).lower()}, "
            f"{config.duration_seconds:g} s)"
        )
    return status


def run(args: Any, env: Mapping[str, str]) -> int:
    """Check the settings and the data folder, take the lock and run one batch."""
    try:
        settings = resolve_settings(args, env)
    except UsageError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE

    # Results and logs name jobs and paths in Vault: every file and folder
    # this run creates (log file, rotated logs, lock file) stays closed to
    # other users, whatever umask Nomad starts the task with.
    previous_umask = os.umask(PRIVATE_UMASK)
    try:
        return _run_with_settings(settings)
    finally:
        os.umask(previous_umask)


def _run_with_settings(settings: Settings) -> int:
    known_secrets: list[str] = [settings.password]
    try:
        logs_dir, results_dir = prepare_data_dir(settings.data_dir)
    except DataDirError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    try:
        batch_filter = configure_logging(logs_dir, settings.log_level, lambda: known_secrets)
    except OSError as error:
        print(
            f"error: cannot open the log file in {logs_dir}: {error.strerror or error}; "
            "it must be a regular file the task user can write",
            file=sys.stderr,
        )
        return EXIT_USAGE

    lock = RunLock(settings.data_dir)
    try:
        lock.acquire()
    except LockHeld as error:
        logger.error("%s", error)
        close_logging()
        return EXIT_LOCKED
    except OSError as error:
        logger.error("cannot open the lock file in %s: %s", settings.data_dir, error.strerror or error)
        close_logging()
        return EXIT_USAGE
    try:
        return run_batch(settings, results_dir, batch_filter, known_secrets)
    finally:
        lock.release()
        close_logging()


class _SignalCatcher:
    """Turns SIGTERM and SIGINT into a cancellation of the batch."""

    def __init__(self, context: BatchContext) -> None:
        self.context = context
        self.signal_number: int | None = None
        self._previous: dict[int, Any] = {}

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for number in (signal.SIGTERM, signal.SIGINT):
            self._previous[number] = signal.signal(number, self._handle)

    def restore(self) -> None:
        # After a signal, more usually follow (a supervisor repeating
        # SIGTERM, a second Ctrl-C). The handler stays so they cannot kill
        # the process between the summary and the exit with 128 + n.
        if self.signal_number is not None:
            return
        for number, handler in self._previous.items():
            signal.signal(number, handler)

    def _handle(self, number: int, _frame: FrameType | None) -> None:
        if self.signal_number is None:
            self.signal_number = number
            name = signal.Signals(number).name
            self.context.stop_reason.append(f"batch stopped by {name}")
            logger.warning("received %s: starting no new jobs, cancelling running ones", name)
        self.context.cancel.set()


def run_batch(
    settings: Settings,
    results_dir: Path,
    batch_filter: _BatchIdFilter,
    known_secrets: list[str],
) -> int:
    """Log in, process every job, then revoke the token and write the summary on every path."""
    context = BatchContext(
        batch_id=new_batch_id(),
        results_dir=results_dir,
        time_scale=settings.time_scale,
        cancel=threading.Event(),
    )
    catcher = _SignalCatcher(context)
    catcher.install()
    try:
        return _run_batch(settings, results_dir, batch_filter, known_secrets, context, catcher)
    finally:
        # Restored only once the summary is written: until then a second
        # SIGTERM or SIGINT must reach the handler, not end the process.
        catcher.restore()


def _run_batch(
    settings: Settings,
    results_dir: Path,
    batch_filter: _BatchIdFilter,
    known_secrets: list[str],
    context: BatchContext,
    catcher: _SignalCatcher,
) -> int:
    batch_id = context.batch_id
    batch_filter.batch_id = batch_id
    started = time.monotonic()
    started_at = utc_now()
    remove_stale_temp_files(results_dir)

    session = VaultSession(
        ConnectionSettings(
            addr=settings.vault_addr,
            namespace=settings.namespace,
            verify=settings.verify,
            timeout=settings.request_timeout,
            pool_size=max(settings.read_concurrency, 4),
        ),
        RetryPolicy(settings.retry_attempts, settings.retry_initial_delay, settings.retry_max_delay),
        context.cancel,
        on_new_token=known_secrets.append,
    )
    summary: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "batch_id": batch_id,
        "processor_version": __version__,
        "started_at": started_at,
        "vault": {
            "addr": settings.vault_addr,
            "namespace": settings.namespace,
            "username": settings.username,
            "kv_mount": settings.kv_mount,
            "jobs_path": settings.jobs_path,
        },
        "settings": {"time_scale": settings.time_scale, "concurrency": settings.concurrency},
        "skipped_folders": [],
        "error": None,
        "signal": None,
    }
    logger.info(
        "batch started: processor %s, Vault %s, namespace %s, %s/%s, concurrency %d, time scale %g",
        __version__,
        settings.vault_addr,
        settings.namespace or "(root)",
        settings.kv_mount,
        settings.jobs_path,
        settings.concurrency,
        settings.time_scale,
    )

    outcomes: list[JobOutcome] = []
    status = BatchStatus.FAILED
    exit_code = EXIT_VAULT
    try:
        status, exit_code, outcomes = _process_jobs(settings, session, context, summary)
    except LoginFailed as error:
        summary["error"] = str(error)
        logger.error("%s", error)
    except VaultError as error:
        summary["error"] = str(error)
        logger.error("%s", error)
    except Exception as error:
        # The summary and the revocation below must still happen.
        summary["error"] = f"internal error: {type(error).__name__}"
        logger.exception("batch failed with an internal error")
        status, exit_code = BatchStatus.FAILED, EXIT_JOB_FAILED
    finally:
        revoked, revoke_error = session.revoke_tokens() if session.tokens else (None, None)
        session.close()

    if catcher.signal_number is not None:
        summary["signal"] = signal.Signals(catcher.signal_number).name
        status = BatchStatus.ABORTED
        exit_code = 128 + catcher.signal_number
    elif context.write_error:
        unwritten = len(context.write_error)
        summary["error"] = f"{context.write_error[0]} ({unwritten} result files not written)"
        logger.error("%s", summary["error"])
        status, exit_code = BatchStatus.ABORTED, EXIT_JOB_FAILED
    if revoke_error:
        logger.error("token revocation failed: %s", revoke_error)
        # A token left alive is a Vault failure the operator must see, even
        # when every job succeeded.
        if exit_code == EXIT_OK:
            exit_code = EXIT_VAULT

    summary.update(
        {
            "status": str(status),
            "exit_code": exit_code,
            "finished_at": utc_now(),
            "duration_seconds": round(time.monotonic() - started, 3),
            "counts": count_outcomes(outcomes),
            "jobs": [
                {
                    "job": o.job,
                    "status": str(o.status),
                    "result_file": o.result_file,
                    "reason": o.reason,
                }
                for o in sorted(outcomes, key=lambda outcome: outcome.job)
            ],
            "token": {
                "revoked": revoked,
                "revoke_error": revoke_error,
                "logins": session.logins,
                "renewals": session.renewals,
            },
        }
    )
    summary_name = _write_summary_file(results_dir, batch_id, summary)
    if summary_name is None and exit_code == EXIT_OK:
        exit_code = EXIT_JOB_FAILED
    # This line is the only record of the batch when the summary could not be written.
    counts = summary["counts"]
    logger.info(
        "batch %s: %d jobs, %d succeeded, %d failed, %d skipped, %d invalid, %d cancelled; "
        "token revoked: %s; summary %s; exit %d",
        status,
        counts["total"],
        counts["succeeded"],
        counts["failed"],
        counts["skipped"],
        counts["invalid"],
        counts["cancelled"],
        revoked,
        summary_name or "not written",
        exit_code,
    )
    return exit_code


def _write_summary_file(results_dir: Path, batch_id: str, summary: dict[str, Any]) -> str | None:
    """Write the summary; return its file name, or None after logging why it failed."""
    try:
        return write_summary(results_dir, batch_id, summary).name
    except OSError as error:
        logger.error("cannot write the batch summary to %s: %s", results_dir, error.strerror or error)
        return None


def _process_jobs(
    settings: Settings, session: VaultSession, context: BatchContext, summary: dict[str, Any]
) -> tuple[BatchStatus, int, list[JobOutcome]]:
    """Log in, list, read and run the jobs; return the batch status, exit status and outcomes."""
    session.login(settings.username, settings.password, settings.auth_mount)
    names, skipped_folders = session.list_jobs(settings.kv_mount, settings.jobs_path)
    summary["skipped_folders"] = skipped_folders
    for folder in skipped_folders:
        logger.warning("folder %r is nested too deep and was not listed", folder)
    if context.cancel.is_set():
        return BatchStatus.ABORTED, EXIT_JOB_FAILED, []
    if not names:
        logger.warning(
            "no jobs found under %s/metadata/%s; seed job configurations there",
            settings.kv_mount,
            settings.jobs_path,
        )
        return BatchStatus.COMPLETED, EXIT_NO_JOBS, []

    logger.info("found %d jobs", len(names))
    jobs = [Job(name=name, kv_path=f"{settings.kv_mount}/data/{settings.jobs_path}/{name}") for name in names]
    read_configs(
        session, jobs, settings.kv_mount, settings.jobs_path, settings.read_concurrency, context.cancel
    )
    outcomes = schedule(context, jobs, settings.concurrency)
    status = batch_status(outcomes, jobs, context)
    every_job_ok = all(outcome.status in (JobStatus.SUCCEEDED, JobStatus.SKIPPED) for outcome in outcomes)
    exit_code = EXIT_OK if every_job_ok and status is BatchStatus.COMPLETED else EXIT_JOB_FAILED
    return status, exit_code, outcomes
