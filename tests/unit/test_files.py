"""Atomic JSON writes, stale temporary files and the run lock."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from batch_processor import files
from batch_processor.files import (
    DataDirError,
    GroupCommitter,
    LockHeld,
    RunLock,
    prepare_data_dir,
    remove_stale_temp_files,
    write_json_atomic,
)


def test_atomic_write_replaces_whole_file(tmp_path: Path) -> None:
    target = tmp_path / "result.json"
    write_json_atomic(target, {"n": 1})
    write_json_atomic(target, {"n": 2, "text": "ünï"})
    assert json.loads(target.read_text(encoding="utf-8")) == {"n": 2, "text": "ünï"}
    assert list(tmp_path.iterdir()) == [target]


def test_atomic_write_sets_private_mode(tmp_path: Path) -> None:
    target = tmp_path / "result.json"
    write_json_atomic(target, {})
    assert stat.S_IMODE(target.stat().st_mode) == 0o640


def test_failed_write_leaves_old_file_and_no_temp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "result.json"
    write_json_atomic(target, {"version": "old"})

    def failing_fsync(_descriptor: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(files.os, "fsync", failing_fsync)
    with pytest.raises(OSError, match="No space left"):
        write_json_atomic(target, {"version": "new"})
    assert json.loads(target.read_text()) == {"version": "old"}
    assert [path.name for path in tmp_path.iterdir()] == ["result.json"]


def test_unserializable_document_writes_nothing(tmp_path: Path) -> None:
    with pytest.raises(TypeError):
        write_json_atomic(tmp_path / "x.json", {"bad": object()})
    assert list(tmp_path.iterdir()) == []


def test_group_commit_renames_after_flush(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    renamed: list[str] = []
    flushed_before_rename: list[bool] = []
    flushes = 0
    real_replace = os.replace

    def counting_flush(self: GroupCommitter, group: list[tuple[str, Path]]) -> None:
        nonlocal flushes
        flushes += 1

    def recording_replace(source: str, target: Path) -> None:
        flushed_before_rename.append(flushes > 0)
        renamed.append(Path(target).name)
        real_replace(source, target)

    monkeypatch.setattr(GroupCommitter, "_flush_data", counting_flush)
    monkeypatch.setattr(files.os, "replace", recording_replace)
    errors: list[tuple[Path, OSError]] = []
    with GroupCommitter(
        tmp_path, lambda path, error: errors.append((path, error)), max_delay=10
    ) as committer:
        for index in range(5):
            committer.write(tmp_path / f"r{index}.json", {"n": index})
    assert errors == []
    assert sorted(renamed) == [f"r{index}.json" for index in range(5)]
    assert all(flushed_before_rename)
    assert flushes == 1, "one flush for the whole group"
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted(renamed)
    assert json.loads((tmp_path / "r3.json").read_text()) == {"n": 3}
    assert stat.S_IMODE((tmp_path / "r3.json").stat().st_mode) == 0o640


def test_group_commit_splits_at_max_files(tmp_path: Path) -> None:
    with GroupCommitter(tmp_path, lambda path, error: None, max_files=2) as committer:
        for index in range(5):
            committer.write(tmp_path / f"r{index}.json", {"n": index})
    assert sorted(path.name for path in tmp_path.iterdir()) == [f"r{index}.json" for index in range(5)]


def test_group_commit_falls_back_to_fsync(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[int] = []
    monkeypatch.setattr(files, "_syncfs", None)
    real_fsync = os.fsync

    def recording_fsync(descriptor: int) -> None:
        synced.append(descriptor)
        real_fsync(descriptor)

    monkeypatch.setattr(files.os, "fsync", recording_fsync)
    with GroupCommitter(tmp_path, lambda path, error: None, max_delay=10) as committer:
        for index in range(3):
            committer.write(tmp_path / f"r{index}.json", {"n": index})
    assert len(synced) == 4, "each of 3 files, then the folder"
    assert len(list(tmp_path.iterdir())) == 3


@pytest.mark.parametrize(
    ("release", "expected"),
    [("5.7.19", False), ("5.8.0", True), ("6.18.44-fc-v1272", True), ("unknown", False)],
)
def test_syncfs_needs_linux_5_8(monkeypatch: pytest.MonkeyPatch, release: str, expected: bool) -> None:
    uname = os.uname()
    monkeypatch.setattr(
        files.os,
        "uname",
        lambda: os.uname_result((uname.sysname, uname.nodename, release, uname.version, uname.machine)),
    )
    assert (files._load_syncfs() is not None) is expected


def test_group_commit_flush_error_removes_group(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def failing_flush(self: GroupCommitter, group: list[tuple[str, Path]]) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(GroupCommitter, "_flush_data", failing_flush)
    errors: list[tuple[Path, OSError]] = []
    with GroupCommitter(
        tmp_path, lambda path, error: errors.append((path, error)), max_delay=10
    ) as committer:
        committer.write(tmp_path / "a.json", {})
        committer.write(tmp_path / "b.json", {})
    assert sorted(path.name for path, _error in errors) == ["a.json", "b.json"]
    assert all(error.errno == 5 for _path, error in errors)
    assert list(tmp_path.iterdir()) == [], "no final name and no temporary file"


def test_group_commit_write_error_removes_temp(tmp_path: Path) -> None:
    with GroupCommitter(tmp_path, lambda path, error: None) as committer:
        with pytest.raises(TypeError):
            committer.write(tmp_path / "x.json", {"bad": object()})
    assert list(tmp_path.iterdir()) == []


def test_stale_temp_files_removed(tmp_path: Path) -> None:
    (tmp_path / ".a.json.abc.tmp").write_text("{")
    (tmp_path / ".b.json.def.tmp").write_text("")
    keep = tmp_path / "a.json"
    keep.write_text("{}")
    assert remove_stale_temp_files(tmp_path) == 2
    assert list(tmp_path.iterdir()) == [keep]


def test_prepare_creates_private_folders(tmp_path: Path) -> None:
    logs, results = prepare_data_dir(tmp_path / "data")
    assert logs.is_dir()
    assert results.is_dir()
    for folder in (logs, results):
        mode = stat.S_IMODE(folder.stat().st_mode)
        assert mode & stat.S_IWOTH == 0
        assert mode & stat.S_IROTH == 0


def test_prepare_rejects_file_in_place_of_folder(tmp_path: Path) -> None:
    (tmp_path / "results").write_text("not a folder")
    with pytest.raises(DataDirError, match="results"):
        prepare_data_dir(tmp_path)


def test_second_lock_is_rejected(tmp_path: Path) -> None:
    first = RunLock(tmp_path)
    first.acquire()
    try:
        with pytest.raises(LockHeld, match=r"another batch run holds .*\.batch\.lock"):
            RunLock(tmp_path).acquire()
    finally:
        first.release()
    again = RunLock(tmp_path)
    again.acquire()
    again.release()
    assert (tmp_path / ".batch.lock").read_text().strip() == str(os.getpid())


def test_lock_refuses_symlink(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("important data\n")
    (tmp_path / ".batch.lock").symlink_to(victim)
    with pytest.raises(OSError, match="is a symlink"):
        RunLock(tmp_path).acquire()
    assert victim.read_text() == "important data\n"


def test_stale_cleanup_skips_folders(tmp_path: Path) -> None:
    (tmp_path / ".odd.tmp").mkdir()
    assert remove_stale_temp_files(tmp_path) == 0
    assert (tmp_path / ".odd.tmp").is_dir()


def test_prepare_names_file_in_place_of_folder(tmp_path: Path) -> None:
    (tmp_path / "results").write_text("")
    with pytest.raises(DataDirError, match="results exists but is not a folder"):
        prepare_data_dir(tmp_path)
