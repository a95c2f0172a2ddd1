"""Atomic JSON files, the run lock and the data folder layout."""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import json
import logging
import os
import queue
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

logger = logging.getLogger(__name__)

RESULT_FILE_MODE = 0o640
FOLDER_MODE = 0o750
LOCK_FILE_NAME = ".batch.lock"
TEMP_SUFFIX = ".tmp"


class DataDirError(OSError):
    """The data folder or one of its subfolders cannot be used."""


class LockHeld(RuntimeError):
    """Another processor run holds the lock on the data folder."""


def prepare_data_dir(data_dir: Path) -> tuple[Path, Path]:
    """Create logs/ and results/ if missing and check both are writable.

    Returns (logs_dir, results_dir). Raises DataDirError naming the folder.
    """
    folders = (data_dir / "logs", data_dir / "results")
    for folder in folders:
        if folder.exists() and not folder.is_dir():
            raise DataDirError(f"{folder} exists but is not a folder; remove it or set BATCH_DATA_DIR")
        try:
            folder.mkdir(mode=FOLDER_MODE, parents=True, exist_ok=True)
        except OSError as error:
            raise DataDirError(
                f"cannot create {folder}: {error.strerror}; create it or set BATCH_DATA_DIR"
            ) from error
        if not os.access(folder, os.W_OK | os.X_OK):
            raise DataDirError(
                f"{folder} is not writable by uid {os.geteuid()}; "
                "fix its owner or mode, or set BATCH_DATA_DIR"
            )
    return folders[0], folders[1]


def remove_stale_temp_files(folder: Path) -> int:
    """Delete temporary files left by a run that was killed mid-write.

    Call only while holding the run lock: no other run can be writing then.
    """
    removed = 0
    for path in folder.glob(f".*{TEMP_SUFFIX}"):
        # Only regular files can be ours; anything else is left for the operator.
        if path.is_symlink() or not path.is_file():
            continue
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
            removed += 1
    if removed:
        logger.warning("removed %d temporary files left by an interrupted run in %s", removed, folder)
    return removed


def write_json_atomic(path: Path, document: Any, *, mode: int = RESULT_FILE_MODE) -> None:
    """Write `document` to `path` so readers see either the old file or the whole new one.

    The JSON goes to a temporary file in the same folder, is flushed to disk
    and then renamed over `path`. On any error the temporary file is removed.
    """
    temp_name = _write_temp_file(path, document, mode=mode, fsync=True)
    try:
        os.replace(temp_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp_name)
        raise


def _write_temp_file(path: Path, document: Any, *, mode: int, fsync: bool) -> str:
    """Write `document` as JSON to a new temporary file next to `path`; return its name.

    The data reaches the disk before this returns only when `fsync` is true.
    On any error the temporary file is removed.
    """
    payload = (json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode()
    descriptor, temp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TEMP_SUFFIX)
    try:
        try:
            os.fchmod(descriptor, mode)
            view = memoryview(payload)
            while view:
                view = view[os.write(descriptor, view) :]
            if fsync:
                os.fsync(descriptor)
        finally:
            os.close(descriptor)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp_name)
        raise
    return temp_name


def fsync_folder(folder: Path) -> None:
    """Flush a folder's entries to disk so completed renames survive a crash."""
    descriptor = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


# Before Linux 5.8, syncfs(2) fails only for a bad descriptor and loses
# write-back errors (syncfs(2) man page), so it cannot prove the data is on disk.
SYNCFS_MIN_KERNEL = (5, 8)


def _kernel_version() -> tuple[int, int]:
    """Return the running Linux kernel's (major, minor), or (0, 0) when unknown."""
    parts = os.uname().release.split(".")
    try:
        return int(parts[0]), int(parts[1].split("-")[0])
    except (IndexError, ValueError):
        return 0, 0


def _load_syncfs() -> Callable[[int], int] | None:
    """Return libc's syncfs(2), or None where it is missing or reports no write-back errors."""
    if _kernel_version() < SYNCFS_MIN_KERNEL:
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        syncfs: Callable[[int], int] = libc.syncfs
    except (OSError, AttributeError):
        return None
    return syncfs


_syncfs = _load_syncfs()


class GroupCommitter:
    """Write JSON files atomically and durably, flushing them to disk in groups.

    `write` puts each document in a temporary file without fsync and queues
    it. A committer thread takes a group of queued files: up to `max_files`,
    or those queued within `max_delay` seconds of the first. It flushes their
    data with one syncfs(2) of the folder's file system, renames each to its
    final name and then fsyncs the folder once. So a file is visible under
    its final name only once its data is on disk, as with `write_json_atomic`,
    at the cost of one disk flush per group instead of one per file. Where
    syncfs is missing, fails with ENOSYS or runs on a Linux older than 5.8,
    each file of the group is fsynced instead.

    A file whose flush or rename fails is removed and passed to `on_error`,
    which runs on the committer thread. `close` commits every queued file
    before it returns.

    NOTE: syncfs flushes every dirty file of that file system, other
    programs' files included, so a busy disk makes each group slower. It
    also reports a write-back error of any of those files, and such an error
    fails the whole group.
    """

    def __init__(
        self,
        folder: Path,
        on_error: Callable[[Path, OSError], None],
        *,
        max_files: int = 256,
        max_delay: float = 0.05,
        mode: int = RESULT_FILE_MODE,
    ) -> None:
        self.folder = folder
        self._on_error = on_error
        self._max_files = max_files
        self._max_delay = max_delay
        self._mode = mode
        self._use_syncfs = _syncfs is not None
        # syncfs reports the write-back errors since the last syncfs call on
        # the same descriptor, so this one stays open for the committer's life.
        self._folder_descriptor = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        self._queue: queue.SimpleQueue[tuple[str, Path] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="commit", daemon=True)
        self._thread.start()

    def write(self, path: Path, document: Any) -> None:
        """Write `document` to a temporary file and queue its rename to `path`.

        Raises OSError when the temporary file cannot be written, and then
        removes it. Later errors go to `on_error`.
        """
        temp_name = _write_temp_file(path, document, mode=self._mode, fsync=False)
        self._queue.put((temp_name, path))

    def close(self) -> None:
        """Commit every queued file, then stop the committer thread."""
        self._queue.put(None)
        self._thread.join()
        os.close(self._folder_descriptor)

    def __enter__(self) -> GroupCommitter:
        return self

    def __exit__(self, *_exc_info: object) -> None:
        self.close()

    def _run(self) -> None:
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is None:
                break
            group = [first]
            deadline = time.monotonic() + self._max_delay
            while len(group) < self._max_files:
                remaining = deadline - time.monotonic()
                try:
                    item = self._queue.get(timeout=remaining) if remaining > 0 else self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stopping = True
                    break
                group.append(item)
            self._commit(group)

    def _commit(self, group: list[tuple[str, Path]]) -> None:
        try:
            self._flush_data(group)
        except OSError as error:
            for temp_name, path in group:
                self._discard(temp_name, path, error)
            return
        renamed: list[Path] = []
        for temp_name, path in group:
            try:
                os.replace(temp_name, path)
            except OSError as error:
                self._discard(temp_name, path, error)
            else:
                renamed.append(path)
        try:
            os.fsync(self._folder_descriptor)
        except OSError as error:
            # The files are whole, but their renames may not survive a crash.
            for path in renamed:
                self._on_error(path, error)

    def _flush_data(self, group: list[tuple[str, Path]]) -> None:
        """Put the data of every temporary file in `group` on disk."""
        if self._use_syncfs and _syncfs is not None:
            if _syncfs(self._folder_descriptor) == 0:
                return
            code = ctypes.get_errno()
            if code != errno.ENOSYS:
                raise OSError(code, os.strerror(code))
            self._use_syncfs = False
        for temp_name, _path in group:
            descriptor = os.open(temp_name, os.O_RDONLY)
            try:
                os.fsync(descriptor)
            finally:
                os.close(descriptor)

    def _discard(self, temp_name: str, path: Path, error: OSError) -> None:
        # An unlink error must not stop the committer thread, and the next
        # run removes a temporary file left here.
        with contextlib.suppress(OSError):
            os.unlink(temp_name)
        self._on_error(path, error)


class RunLock:
    """An exclusive, non-blocking flock on `<data dir>/.batch.lock`.

    The kernel drops the lock when the process exits, however it exits, so
    a killed run never leaves a stale lock behind.
    """

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / LOCK_FILE_NAME
        self._handle: TextIO | None = None

    def acquire(self) -> None:
        # O_NOFOLLOW: a symlink planted at the lock path must not make the
        # processor truncate the file it points to.
        try:
            descriptor = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o640)
        except OSError as error:
            if error.errno == errno.ELOOP:
                raise OSError(error.errno, f"{self.path} is a symlink; remove it") from error
            raise
        handle = os.fdopen(descriptor, "r+", encoding="utf-8")
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as error:
            handle.close()
            raise LockHeld(
                f"another batch run holds {self.path}; wait for it to finish "
                "(Nomad's prohibit_overlap prevents this for scheduled runs)"
            ) from error
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        self._handle = handle

    def release(self) -> None:
        if self._handle is not None:
            fcntl.flock(self._handle.fileno(), fcntl.LOCK_UN)
            self._handle.close()
            self._handle = None
