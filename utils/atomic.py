"""Atomic file writes: readers see the old file or the complete new one, never a torn one.

Every file a later run trusts (cached features, fold predictions, run.json, reports) is written through
here: a temporary file in the same folder, flushed and fsynced, then `os.replace`d over the final name; the
temporary never outlives a failure.

Permissions: files get what the process umask allows (0o666 & ~umask: 0644 under umask 022, 0664 under 002),
as `open(path, "w")` would give, so a shared cache or run folder stays readable by the group. The umask is
never read: the temporary is created with mode 0o666 and the kernel applies the umask (and a folder's default
ACL) itself. Reading it would need `os.umask` to set it and set it back, which races with other threads
creating files in between, and /proc/self/status exists on Linux only.

Errors: any OSError while creating the folder, creating the temporary, writing, fsyncing or renaming is
raised as `WriteError` (an OSError, errno kept) naming the final path and what it holds, e.g.
`cannot write runs/x/run.json (run record): No space left on device [Errno 28]`.
"""

from __future__ import annotations

import errno
import json
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import BinaryIO

# As tempfile.mkstemp opens its files, less the 0o600 mode.
_TEMP_FLAGS = (
    os.O_WRONLY
    | os.O_CREAT
    | os.O_EXCL
    | getattr(os, "O_NOFOLLOW", 0)
    | getattr(os, "O_CLOEXEC", 0)
    | getattr(os, "O_BINARY", 0)
)


class WriteError(OSError):
    """Writing `filename` (which holds `what`) failed; `errno` and `strerror` are the cause's."""

    def __init__(self, code: int | None, strerror: str, filename: str, what: str = "") -> None:
        super().__init__(code, strerror, filename)
        self.what = what

    def __str__(self) -> str:
        what = f" ({self.what})" if self.what else ""
        code = f" [Errno {self.errno}]" if self.errno is not None else ""
        return f"cannot write {self.filename}{what}: {self.strerror}{code}"


def _file_in_the_way(folder: Path) -> Path | None:
    """The outermost existing component of `folder` that is not a folder, if any."""
    for component in (*reversed(folder.parents), folder):
        try:
            if component.exists() and not component.is_dir():
                return component
        except OSError:  # e.g. a folder we may not search: then we cannot tell, and say what failed
            return None
    return None


def _write_error(path: Path, what: str, error: OSError, folder_stage: bool = False) -> WriteError:
    if folder_stage or error.errno == errno.ENOTDIR:
        blocker = _file_in_the_way(path.parent)
        if blocker is not None:
            return WriteError(errno.ENOTDIR, f"{blocker} is a file, not a folder", str(path), what)
    # An OSError built from a message alone (no errno) still says what went wrong.
    strerror = error.strerror if error.strerror else str(error)
    return WriteError(error.errno, strerror, str(path), what)


def _create_temp(path: Path) -> tuple[int, str]:
    for _ in range(100):
        tmp = str(path.parent / f".{path.name}.{secrets.token_hex(4)}.tmp")
        try:
            return os.open(tmp, _TEMP_FLAGS, 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "no unused temporary file name", str(path.parent))


def _fsync_dir(folder: Path) -> None:
    # Makes the rename itself durable; not possible (nor needed) on every platform.
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextmanager
def atomic_file(path: str | os.PathLike[str], *, what: str = "") -> Iterator[BinaryIO]:
    """A binary file handle that becomes `path` only if the block finishes without an exception.

    `what` says what the file holds ("run record", "feature cache") for error messages. An OSError raised
    in the block is taken as a failure to write and raised, like every other, as `WriteError`.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise _write_error(path, what, error, folder_stage=True) from error
    try:
        fd, tmp = _create_temp(path)
    except OSError as error:
        raise _write_error(path, what, error) from error
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as error:
        # Never let a failure to clean up hide the failure itself.
        with suppress(OSError):
            os.unlink(tmp)
        if isinstance(error, OSError) and not isinstance(error, WriteError):
            raise _write_error(path, what, error) from error
        raise
    _fsync_dir(path.parent)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes, *, what: str = "") -> None:
    with atomic_file(path, what=what) as handle:
        handle.write(data)


def atomic_write_text(path: str | os.PathLike[str], text: str, *, what: str = "") -> None:
    atomic_write_bytes(path, text.encode("utf-8"), what=what)


def atomic_write_json(path: str | os.PathLike[str], obj: object, *, what: str = "") -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, default=str) + "\n", what=what)
