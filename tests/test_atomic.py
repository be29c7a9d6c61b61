"""Atomic writes: files follow the umask, every write error names the final file, no temporary survives."""

from __future__ import annotations

import errno
import io
import os
import shutil
import stat
import subprocess

import pytest

import utils.atomic as atomic_module
from utils.atomic import WriteError, atomic_file, atomic_write_bytes, atomic_write_json, atomic_write_text

NO_SPACE = f"No space left on device [Errno {errno.ENOSPC}]"


def mode_of(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077], ids=["022", "002", "077"])
def test_files_get_the_permissions_the_umask_allows(tmp_path, umask):
    old = os.umask(umask)
    try:
        atomic_write_json(tmp_path / "run.json", {"a": 1})
        assert mode_of(tmp_path / "run.json") == 0o666 & ~umask
        # Replacing a file gives the new one the same mode, not mkstemp's 0600.
        atomic_write_text(tmp_path / "run.json", "{}\n")
        assert mode_of(tmp_path / "run.json") == 0o666 & ~umask
        assert (tmp_path / "run.json").read_text() == "{}\n"
    finally:
        os.umask(old)
    assert os.listdir(tmp_path) == ["run.json"]


def test_failed_fsync_names_the_file_and_keeps_the_old_one(tmp_path, monkeypatch):
    target = tmp_path / "runs" / "x" / "run.json"
    atomic_write_text(target, "old\n")

    def full_disk(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(atomic_module.os, "fsync", full_disk)
    with pytest.raises(OSError) as caught:
        atomic_write_text(target, "new\n", what="run record")
    assert isinstance(caught.value, WriteError) and caught.value.errno == errno.ENOSPC
    assert str(caught.value) == f"cannot write {target} (run record): {NO_SPACE}"
    assert os.listdir(target.parent) == ["run.json"] and target.read_text() == "old\n"


class FullDiskFile(io.FileIO):
    def write(self, data):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_failed_write_names_the_file_and_leaves_no_temporary(tmp_path, monkeypatch):
    monkeypatch.setattr(atomic_module.os, "fdopen", lambda fd, mode: FullDiskFile(fd, mode))
    target = tmp_path / "predictions" / "fold_000.csv"
    with pytest.raises(WriteError) as caught:
        atomic_write_bytes(target, b"id,true,pred\n")
    # No `what`: the message just leaves it out.
    assert str(caught.value) == f"cannot write {target}: {NO_SPACE}"
    assert caught.value.errno == errno.ENOSPC and caught.value.filename == str(target)
    assert os.listdir(target.parent) == []


def test_error_raised_in_the_block_is_a_write_error(tmp_path):
    target = tmp_path / "features.npz"
    expected = rf"^cannot write {target} \(feature cache\): disk full$"
    with pytest.raises(WriteError, match=expected), atomic_file(target, what="feature cache") as handle:
        handle.write(b"half")
        raise OSError("disk full")
    assert os.listdir(tmp_path) == []


def test_failed_rename_names_the_final_file_not_the_temporary(tmp_path, monkeypatch):
    def refuse(src, dst):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), src)

    monkeypatch.setattr(atomic_module.os, "replace", refuse)
    target = tmp_path / "summary.json"
    with pytest.raises(WriteError) as caught:
        atomic_write_json(target, {}, what="summary")
    assert str(caught.value) == f"cannot write {target} (summary): Permission denied [Errno {errno.EACCES}]"
    assert ".tmp" not in str(caught.value)
    assert os.listdir(tmp_path) == []


def test_temporary_that_cannot_be_created_names_the_final_file(tmp_path, monkeypatch):
    real_open = os.open

    def read_only(path, flags, mode=0o777, **kwargs):
        if flags & os.O_CREAT:
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), path)
        return real_open(path, flags, mode, **kwargs)

    monkeypatch.setattr(atomic_module.os, "open", read_only)
    target = tmp_path / "results.md"
    expected = rf"^cannot write {target} \(report\): Read-only file system \[Errno {errno.EROFS}\]$"
    with pytest.raises(WriteError, match=expected):
        atomic_write_text(target, "# results\n", what="report")
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("below", ["", "runs/x"])
def test_parent_that_is_a_file_is_named(tmp_path, below):
    blocker = tmp_path / "out"
    blocker.write_text("not a folder")
    target = blocker / below / "run.json"
    with pytest.raises(WriteError) as caught:
        atomic_write_json(target, {}, what="run record")
    assert caught.value.errno == errno.ENOTDIR
    assert str(caught.value) == (
        f"cannot write {target} (run record): {blocker} is a file, not a folder [Errno {errno.ENOTDIR}]"
    )
    assert blocker.read_text() == "not a folder"


def test_full_filesystem_names_the_file(tmp_path):
    """A real full disk: a 300 KiB tmpfs, and a 1 MB file written to it."""
    if shutil.which("mount") is None or shutil.which("umount") is None:
        pytest.skip("no mount/umount command here")
    small = tmp_path / "small"
    small.mkdir()
    mount = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=300k", "tmpfs", str(small)], capture_output=True, text=True
    )
    if mount.returncode != 0:
        pytest.skip(f"mounting a tmpfs is not permitted here: {mount.stderr.strip() or mount.returncode}")
    try:
        target = small / "cache" / "features.npz"
        with pytest.raises(WriteError) as caught:
            atomic_write_bytes(target, bytes(1_000_000), what="feature cache")
        assert caught.value.errno == errno.ENOSPC
        assert str(caught.value) == f"cannot write {target} (feature cache): {NO_SPACE}"
        assert os.listdir(target.parent) == []
    finally:
        if subprocess.run(["umount", str(small)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(small)], capture_output=True)
