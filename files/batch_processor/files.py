"""Atomic JSON files, the run lock and the data folder layout."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import logging
import os
import tempfile
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
    payload = json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    descriptor, temp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TEMP_SUFFIX)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            os.fchmod(handle.fileno(), mode)
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp_name)
        raise


def fsync_folder(folder: Path) -> None:
    """Flush a folder's entries to disk so completed renames survive a crash."""
    descriptor = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


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
