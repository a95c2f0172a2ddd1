"""One batch: list, read, schedule by priority, process and record every job.

Every job listed ends with exactly one result file unless results/ itself
cannot be written (full or read-only): a job whose configuration could not be
read is `failed`, one that breaks the schema is `invalid`, one not started
when the batch is stopped is `cancelled`.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from batch_processor import SCHEMA_VERSION
from batch_processor.files import fsync_folder, write_json_atomic
from batch_processor.jobs import InvalidJobConfig, JobConfig, safe_file_stem, validate_job_config
from batch_processor.vault import NotFound, VaultError, VaultSession, VaultUnavailable

logger = logging.getLogger(__name__)

POLL_SECONDS = 0.2


class JobStatus(StrEnum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"
    INVALID = "invalid"
    CANCELLED = "cancelled"


class BatchStatus(StrEnum):
    COMPLETED = "completed"  # every job listed reached an end state of its own
    PARTIAL = "partial"  # Vault became unavailable, so some jobs could not run
    ABORTED = "aborted"  # stopped by a signal or a write error before the end
    FAILED = "failed"  # nothing ran: login or listing failed


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def new_batch_id() -> str:
    """Return an id that sorts by start time: UTC timestamp plus random suffix."""
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(3)


@dataclass
class Job:
    """A listed job and, once read, its configuration or the reason it has none."""

    name: str
    kv_path: str
    version: int | None = None
    config: JobConfig | None = None
    status: JobStatus | None = None  # set early for jobs that will not run
    reason: str | None = None
    vault_unavailable: bool = False


@dataclass
class JobOutcome:
    """The end state of one job, as recorded in the summary."""

    job: str
    status: JobStatus
    result_file: str | None
    reason: str | None


@dataclass
class BatchContext:
    """Everything the workers share during one batch."""

    batch_id: str
    results_dir: Path
    time_scale: float
    cancel: threading.Event
    stop_reason: list[str] = field(default_factory=list)
    # One message per result file that could not be written, in order.
    write_error: list[str] = field(default_factory=list)
    write_lock: threading.Lock = field(default_factory=threading.Lock)


def result_path(results_dir: Path, job_name: str, batch_id: str) -> Path:
    return results_dir / f"{safe_file_stem(job_name)}_{batch_id}.json"


def summary_path(results_dir: Path, batch_id: str) -> Path:
    return results_dir / f"{batch_id}_summary.json"


def read_configs(
    session: VaultSession,
    jobs: list[Job],
    mount: str,
    folder: str,
    concurrency: int,
    cancel: threading.Event,
) -> None:
    """Read and validate each job's configuration in place, `concurrency` at a time."""

    def read_one(job: Job) -> None:
        if cancel.is_set():
            return
        try:
            secret = session.read_job(mount, folder, job.name)
        except NotFound:
            job.status, job.reason = (
                JobStatus.SKIPPED,
                "configuration not found: deleted after listing",
            )
            return
        except VaultUnavailable as error:
            job.status, job.reason, job.vault_unavailable = JobStatus.FAILED, str(error), True
            return
        except VaultError as error:
            job.status, job.reason = JobStatus.FAILED, str(error)
            return
        job.version = secret.version
        if secret.destroyed:
            job.status, job.reason = (
                JobStatus.SKIPPED,
                f"latest version {secret.version} is destroyed",
            )
            return
        if secret.deleted:
            job.status, job.reason = (
                JobStatus.SKIPPED,
                f"latest version {secret.version} is deleted",
            )
            return
        try:
            job.config = validate_job_config(secret.data)
        except InvalidJobConfig as error:
            job.status, job.reason = JobStatus.INVALID, str(error)

    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="read") as pool:
        for _ in pool.map(read_one, jobs):
            pass


def _result_document(
    context: BatchContext,
    job: Job,
    status: JobStatus,
    reason: str | None,
    started_at: str | None,
    elapsed: float | None,
) -> dict[str, Any]:
    config = job.config
    return {
        "schema_version": SCHEMA_VERSION,
        "batch_id": context.batch_id,
        "job": job.name,
        "kv_path": job.kv_path,
        "version": job.version,
        "status": str(status),
        "reason": reason,
        "priority": config.priority if config else None,
        "enabled": config.enabled if config else None,
        "simulated_seconds": config.duration_seconds if config else None,
        "time_scale": context.time_scale,
        "started_at": started_at,
        "finished_at": utc_now(),
        "elapsed_seconds": round(elapsed, 3) if elapsed is not None else None,
    }


def record(
    context: BatchContext,
    job: Job,
    status: JobStatus,
    reason: str | None,
    started_at: str | None = None,
    elapsed: float | None = None,
) -> JobOutcome:
    """Write the job's result file and log its end state."""
    path = result_path(context.results_dir, job.name, context.batch_id)
    document = _result_document(context, job, status, reason, started_at, elapsed)
    try:
        write_json_atomic(path, document)
    except OSError as error:
        message = f"cannot write {path}: {error.strerror or error}"
        with context.write_lock:
            context.write_error.append(message)
            first = len(context.write_error) == 1
        # A full or read-only folder fails every later write too: log the
        # first failure, and the batch summary gives the count.
        if first:
            logger.error("job %r: %s; starting no new jobs", job.name, message)
        else:
            logger.debug("job %r: %s", job.name, message)
        # A batch that cannot record its results must not start more work.
        context.cancel.set()
        return JobOutcome(job.name, status, None, reason)
    log = (
        logger.warning
        if status in (JobStatus.FAILED, JobStatus.INVALID, JobStatus.CANCELLED)
        else logger.info
    )
    log("job %r %s%s", job.name, status, f": {reason}" if reason else "")
    return JobOutcome(job.name, status, path.name, reason)


def process(context: BatchContext, job: Job) -> JobOutcome:
    """Simulate the work of one job whose configuration is valid."""
    config = job.config
    assert config is not None  # noqa: S101 - callers pass only jobs with a configuration
    started_at = utc_now()
    started = time.monotonic()
    if context.cancel.is_set():
        return record(context, job, JobStatus.CANCELLED, _cancel_reason(context, started=False))
    if not config.enabled:
        return record(context, job, JobStatus.SKIPPED, "enabled is false", started_at, 0.0)
    logger.info("job %r started (priority %s)", job.name, config.priority)
    seconds = config.duration_seconds * context.time_scale
    if seconds > 0 and context.cancel.wait(seconds):
        elapsed = time.monotonic() - started
        return record(
            context,
            job,
            JobStatus.CANCELLED,
            _cancel_reason(context, started=True),
            started_at,
            elapsed,
        )
    elapsed = time.monotonic() - started
    if config.simulate_failure:
        return record(context, job, JobStatus.FAILED, "simulate_failure is true", started_at, elapsed)
    return record(context, job, JobStatus.SUCCEEDED, None, started_at, elapsed)


def _cancel_reason(context: BatchContext, *, started: bool) -> str:
    cause = context.stop_reason[0] if context.stop_reason else "the batch was stopped"
    return f"{cause}; {'stopped while running' if started else 'not started'}"


def schedule(context: BatchContext, jobs: list[Job], concurrency: int) -> list[JobOutcome]:
    """Record jobs that will not run, then run the rest highest priority first.

    The pool's queue is first in, first out, so submitting in priority order
    means no job starts before every job of a higher priority has started.
    """
    outcomes: list[JobOutcome] = []
    runnable: list[Job] = []
    for job in jobs:
        if job.config is None:
            status = job.status or JobStatus.FAILED
            if job.status is None and context.cancel.is_set():
                status, job.reason = JobStatus.CANCELLED, _cancel_reason(context, started=False)
            outcomes.append(record(context, job, status, job.reason or "configuration was not read"))
        else:
            runnable.append(job)
    runnable.sort(key=lambda job: (job.config.rank if job.config else 0, job.name))

    pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="job")
    pending: dict[Future[JobOutcome], Job] = {pool.submit(process, context, job): job for job in runnable}
    try:
        while pending:
            done, _ = wait(pending, timeout=POLL_SECONDS, return_when=FIRST_COMPLETED)
            for future in done:
                job = pending.pop(future)
                if future.cancelled():
                    outcomes.append(
                        record(
                            context,
                            job,
                            JobStatus.CANCELLED,
                            _cancel_reason(context, started=False),
                        )
                    )
                    continue
                error = future.exception()
                if error is not None:
                    logger.error("job %r raised %s: %s", job.name, type(error).__name__, error)
                    outcomes.append(
                        record(
                            context,
                            job,
                            JobStatus.FAILED,
                            f"internal error: {type(error).__name__}",
                        )
                    )
                else:
                    outcomes.append(future.result())
            if context.cancel.is_set():
                for future in pending:
                    future.cancel()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return outcomes


def batch_status(outcomes: list[JobOutcome], jobs: list[Job], context: BatchContext) -> BatchStatus:
    if context.stop_reason or context.write_error:
        return BatchStatus.ABORTED
    if any(job.vault_unavailable for job in jobs):
        return BatchStatus.PARTIAL
    return BatchStatus.COMPLETED


def count_outcomes(outcomes: list[JobOutcome]) -> dict[str, int]:
    counts = {str(status): 0 for status in JobStatus}
    for outcome in outcomes:
        counts[str(outcome.status)] += 1
    counts["total"] = len(outcomes)
    return counts


def write_summary(results_dir: Path, batch_id: str, document: dict[str, Any]) -> Path:
    path = summary_path(results_dir, batch_id)
    write_json_atomic(path, document)
    fsync_folder(results_dir)
    return path
