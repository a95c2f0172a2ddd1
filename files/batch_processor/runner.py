"""One batch: list, read, schedule by priority, process and record every job.

Every job listed ends with exactly one result file, unless results/ itself
cannot be written because it is full or read-only. A job whose configuration
could not be read is `failed`, one that breaks the schema is `invalid`, and
one not started when the batch is stopped is `cancelled`.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import secrets
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from batch_processor import SCHEMA_VERSION
from batch_processor.files import GroupCommitter, fsync_folder, write_json_atomic
from batch_processor.jobs import InvalidJobConfig, JobConfig, safe_file_stem, validate_job_config
from batch_processor.vault import KvSecret, NotFound, VaultError, VaultSession, VaultUnavailable

logger = logging.getLogger(__name__)

UNAVAILABLE_LOG_LIMIT = 3
POLL_SECONDS = 0.2
# Threads that write temporary result files while the next jobs work. A
# GroupCommitter flushes them to disk later, so these threads wait only for
# their own writes. A thread costs little, so this is not tuned to any machine.
RESULT_WRITERS = 16


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
    unavailable_failures: int = 0
    # Names of result files that were reported but could not be made durable.
    unwritten: set[str] = field(default_factory=set)
    # Flushes result files in groups while `schedule` runs. Without one, each
    # result file is flushed on its own.
    committer: GroupCommitter | None = None


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
        secret = _fetch_config(session, mount, folder, job)
        if secret is not None:
            _apply_config(job, secret)

    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="read") as pool:
        for _ in pool.map(read_one, jobs):
            pass


def _fetch_config(session: VaultSession, mount: str, folder: str, job: Job) -> KvSecret | None:
    """Read one job's secret; on failure set the job's status and reason and return None."""
    try:
        return session.read_job(mount, folder, job.name)
    except NotFound:
        job.status, job.reason = JobStatus.SKIPPED, "configuration not found: deleted after listing"
    except VaultUnavailable as error:
        job.status, job.reason, job.vault_unavailable = JobStatus.FAILED, str(error), True
    except VaultError as error:
        job.status, job.reason = JobStatus.FAILED, str(error)
    except RecursionError:
        # The JSON decoder gives up on data nested thousands of levels deep.
        job.status, job.reason = JobStatus.INVALID, "configuration is nested too deeply to decode"
    except ValueError as error:
        # Vault stores JSON that Python cannot decode, such as integers of
        # more than 4,300 digits.
        job.status, job.reason = JobStatus.INVALID, f"configuration cannot be decoded: {type(error).__name__}"
    except Exception as error:
        # One job's unexpected error must not cost the other jobs their results.
        logger.exception("job %r: reading its configuration raised %s", job.name, type(error).__name__)
        job.status = JobStatus.FAILED
        job.reason = f"internal error reading the configuration: {type(error).__name__}"
    return None


def _apply_config(job: Job, secret: KvSecret) -> None:
    """Validate a read secret into the job's configuration, or mark why the job will not run."""
    job.version = secret.version
    if secret.destroyed:
        job.status, job.reason = JobStatus.SKIPPED, f"latest version {secret.version} is destroyed"
    elif secret.deleted:
        job.status, job.reason = JobStatus.SKIPPED, f"latest version {secret.version} is deleted"
    else:
        try:
            job.config = validate_job_config(secret.data)
        except InvalidJobConfig as error:
            job.status, job.reason = JobStatus.INVALID, str(error)


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
    """Write the job's result file and log its end state.

    With a committer, the file reaches its final name only when its group is
    flushed, so the log line can come first. A failure there is logged then.
    """
    path = result_path(context.results_dir, job.name, context.batch_id)
    document = _result_document(context, job, status, reason, started_at, elapsed)
    try:
        if context.committer is not None:
            context.committer.write(path, document)
        else:
            write_json_atomic(path, document)
    except OSError as error:
        note_write_error(context, path, error)
        return JobOutcome(job.name, status, None, reason)
    log = (
        logger.warning
        if status in (JobStatus.FAILED, JobStatus.INVALID, JobStatus.CANCELLED)
        else logger.info
    )
    if job.vault_unavailable:
        # When Vault is down every remaining job fails for the same reason:
        # log the first few and count the rest.
        with context.write_lock:
            context.unavailable_failures += 1
            quiet = context.unavailable_failures > UNAVAILABLE_LOG_LIMIT
        if quiet:
            return JobOutcome(job.name, status, path.name, reason)
    log("job %r %s%s", job.name, status, f": {reason}" if reason else "")
    return JobOutcome(job.name, status, path.name, reason)


def note_write_error(context: BatchContext, path: Path, error: OSError) -> None:
    """Record that the result file `path` could not be written, and cancel the batch."""
    message = f"cannot write {path}: {error.strerror or error}"
    with context.write_lock:
        context.write_error.append(message)
        context.unwritten.add(path.name)
        first = len(context.write_error) == 1
    # A full or read-only folder fails every later write too: log the
    # first failure, and the batch summary gives the count.
    if first:
        logger.error("%s; starting no new jobs", message)
    else:
        logger.debug("%s", message)
    # A batch that cannot record its results must not start more work.
    context.cancel.set()


@dataclass(frozen=True)
class JobStart:
    """The start of one job: UTC time for the result file, monotonic time for the elapsed seconds."""

    started_at: str
    monotonic: float


def start(job: Job) -> JobStart:
    """Stamp and log the start of a job whose configuration is valid.

    Only the dispatcher calls this, one job at a time in priority order, so
    the started_at values and the log lines show the order the jobs started in.
    """
    config = job.config
    assert config is not None  # noqa: S101 - callers pass only jobs with a configuration
    started = JobStart(utc_now(), time.monotonic())
    if config.enabled:
        logger.info("job %r started (priority %s)", job.name, config.priority)
    return started


def process(
    context: BatchContext, job: Job, started: JobStart, work_done: Callable[[], None] = lambda: None
) -> JobOutcome:
    """Simulate the work of one job that `start` has stamped, call `work_done`, then record it."""
    try:
        status, reason, elapsed = _simulate(context, job, started)
    finally:
        work_done()
    return record(context, job, status, reason, started.started_at, elapsed)


def _simulate(context: BatchContext, job: Job, started: JobStart) -> tuple[JobStatus, str | None, float]:
    """Sleep for the job's scaled duration; return its status, reason and elapsed seconds."""
    config = job.config
    assert config is not None  # noqa: S101 - callers pass only jobs with a configuration
    if not config.enabled:
        return JobStatus.SKIPPED, "enabled is false", 0.0
    seconds = config.duration_seconds * context.time_scale
    if seconds > 0 and context.cancel.wait(seconds):
        return (
            JobStatus.CANCELLED,
            _cancel_reason(context, started=True),
            time.monotonic() - started.monotonic,
        )
    elapsed = time.monotonic() - started.monotonic
    if config.simulate_failure:
        return JobStatus.FAILED, "simulate_failure is true", elapsed
    return JobStatus.SUCCEEDED, None, elapsed


def _cancel_reason(context: BatchContext, *, started: bool) -> str:
    cause = context.stop_reason[0] if context.stop_reason else "the batch was stopped"
    return f"{cause}; {'stopped while running' if started else 'not started'}"


def schedule(context: BatchContext, jobs: list[Job], concurrency: int) -> list[JobOutcome]:
    """Record jobs that will not run, then run the rest highest priority first.

    The calling thread is the only dispatcher. It starts the next job in
    priority order only when fewer than `concurrency` jobs are working. So no
    job starts before every job of a higher priority has started, and the
    start times and log lines show that order. Every result file is durable
    when this returns, and an outcome names only a result file that is.
    """
    context.committer = GroupCommitter(
        context.results_dir, lambda path, error: note_write_error(context, path, error)
    )
    try:
        outcomes = _run_jobs(context, jobs, concurrency)
    finally:
        context.committer.close()
        context.committer = None
    return [
        replace(outcome, result_file=None) if outcome.result_file in context.unwritten else outcome
        for outcome in outcomes
    ]


def _run_jobs(context: BatchContext, jobs: list[Job], concurrency: int) -> list[JobOutcome]:
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

    # A job takes one of `concurrency` work slots while it works, and gives
    # it back before its result is written. The extra threads write results
    # meanwhile, so the next job does not wait for the result file.
    work_slots = threading.BoundedSemaphore(concurrency)
    threads = concurrency + RESULT_WRITERS
    finished: queue.SimpleQueue[Future[JobOutcome]] = queue.SimpleQueue()
    pending: dict[Future[JobOutcome], Job] = {}

    def collect(future: Future[JobOutcome]) -> None:
        outcomes.append(_collect(context, pending.pop(future), future))

    def wait_for_slot() -> bool:
        """Collect finished jobs until a work slot and a thread are free; False once cancelled."""
        while not context.cancel.is_set():
            with contextlib.suppress(queue.Empty):
                while True:
                    collect(finished.get_nowait())
            if len(pending) >= threads:
                with contextlib.suppress(queue.Empty):
                    collect(finished.get(timeout=POLL_SECONDS))
            elif work_slots.acquire(timeout=POLL_SECONDS):
                # A running job frees its slot as soon as the cancel event is set,
                # so the event must be checked again after the slot is taken.
                if not context.cancel.is_set():
                    return True
                work_slots.release()
        return False

    pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="job")
    try:
        for index, job in enumerate(runnable):
            if not wait_for_slot():
                reason = _cancel_reason(context, started=False)
                outcomes.extend(
                    record(context, waiting, JobStatus.CANCELLED, reason) for waiting in runnable[index:]
                )
                break
            future = pool.submit(process, context, job, start(job), work_slots.release)
            pending[future] = job
            future.add_done_callback(finished.put)
        # Running jobs stop on their own when they see the cancel event.
        while pending:
            with contextlib.suppress(queue.Empty):
                collect(finished.get(timeout=POLL_SECONDS))
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    if context.unavailable_failures > UNAVAILABLE_LOG_LIMIT:
        logger.warning(
            "%d more jobs failed because Vault is unavailable",
            context.unavailable_failures - UNAVAILABLE_LOG_LIMIT,
        )
    return outcomes


def _collect(context: BatchContext, job: Job, future: Future[JobOutcome]) -> JobOutcome:
    """Return the outcome of a finished future, recording cancelled and crashed jobs."""
    if future.cancelled():
        return record(context, job, JobStatus.CANCELLED, _cancel_reason(context, started=False))
    error = future.exception()
    if error is not None:
        logger.error("job %r raised %s: %s", job.name, type(error).__name__, error)
        return record(context, job, JobStatus.FAILED, f"internal error: {type(error).__name__}")
    return future.result()


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
