"""Inputs too large for memory, served from a file a batch at a time.

ELRCN's 224x224 x 9 steps x 5 channels is about 4 GB for the composite's 442 clips; held in RAM whole, with
the per-sample cache entries being read and the batches being built, a sequence experiment would need two
or three times that. A `DiskArray` is a float32 .npy file of all the rows of one input, written once from
the feature cache's checksummed per-sample entries (which stay the source of truth) and read with
positioned reads (`os.pread`), one row per read. It is not memory-mapped on purpose: the pages of a mapped
file count towards the process's resident memory once touched, so an epoch over a mapped 4 GB file shows
as 4 GB of RSS and can push other jobs out; with positioned reads only the rows of the current batch are
resident (the kernel's page cache still keeps recently read rows, which is free memory, not the process's).

Rows are taken with `array[index_array]` (what `datamodules.datamodule.take` does), so a DiskArray stands
wherever a (N, ...) tensor does in a FeatureSet. `subset(rows)` is a view of some rows (the data module
drops unreadable samples that way) and copies nothing. The file belongs to the array that created it and
is deleted when that array is garbage-collected or the process exits; copies sent to DataLoader workers
(pickled) reopen the file and never delete it.
"""

from __future__ import annotations

import contextlib
import math
import os
import weakref
from pathlib import Path

import numpy as np


def _remove(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


class DiskArray:
    """A float32 (N, ...) array in a .npy file, read a row at a time; see the module docstring."""

    dtype = np.dtype(np.float32)

    def __init__(self, path: str | os.PathLike[str], rows: np.ndarray | None = None) -> None:
        """Open an existing .npy file of float32 (read only). `rows`: which of its rows this array shows."""
        self.path = Path(path)
        with open(self.path, "rb") as handle:
            version = np.lib.format.read_magic(handle)
            read_header = {
                (1, 0): np.lib.format.read_array_header_1_0,
                (2, 0): np.lib.format.read_array_header_2_0,
            }.get(version)
            if read_header is None:
                raise ValueError(f"{path}: .npy format version {version} is not supported")
            shape, fortran, dtype = read_header(handle)
            self._offset = handle.tell()
        if fortran or np.dtype(dtype) != self.dtype or len(shape) < 1:
            raise ValueError(f"{self.path} is not a C-ordered float32 array file (shape {shape}, {dtype})")
        self._file_rows = shape[0]
        self._row_shape = tuple(shape[1:])
        self._row_bytes = math.prod(self._row_shape) * self.dtype.itemsize
        self._rows = np.arange(shape[0]) if rows is None else np.asarray(rows, dtype=np.int64)
        self._fd: int | None = None
        self._owner = False

    @classmethod
    def create(cls, path: str | os.PathLike[str], shape: tuple[int, ...]) -> DiskArray:
        """A new zero-filled file of `shape` (sparse until written), owned by the returned array."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "xb") as handle:
            descr = np.lib.format.dtype_to_descr(cls.dtype)
            header = {"descr": descr, "fortran_order": False, "shape": tuple(shape)}
            np.lib.format.write_array_header_1_0(handle, header)
            handle.truncate(handle.tell() + math.prod(shape) * cls.dtype.itemsize)
        array = cls(path)
        array._owner = True
        # Delete the file with the array, or at exit at the latest; a killed process leaves it behind in
        # the cache's streams/ folder (named by its pid, so a later run can see whose it was).
        array._finalizer = weakref.finalize(array, _remove, str(path))
        return array

    # The NumPy-like surface a FeatureSet and the data module use.
    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self._rows), *self._row_shape)

    @property
    def ndim(self) -> int:
        return 1 + len(self._row_shape)

    @property
    def nbytes(self) -> int:
        return len(self._rows) * self._row_bytes

    def __len__(self) -> int:
        return len(self._rows)

    def _descriptor(self) -> int:
        if self._fd is None:
            self._fd = os.open(self.path, os.O_RDWR if self._owner else os.O_RDONLY)
        return self._fd

    def write(self, index: int, row: np.ndarray) -> None:
        """Store row `index` (of the file; only the creating array writes)."""
        if not self._owner:
            raise PermissionError(f"{self.path} is read only for this array")
        row = np.ascontiguousarray(row, dtype=self.dtype)
        if row.shape != self._row_shape:
            raise ValueError(f"row of shape {row.shape} for an array of rows {self._row_shape}")
        os.pwrite(self._descriptor(), row.tobytes(), self._offset + int(index) * self._row_bytes)

    def __setitem__(self, index: int, row: np.ndarray) -> None:
        self.write(int(self._rows[index]), row)

    def __getitem__(self, index) -> np.ndarray:
        """Rows `index` (an int, a slice or an integer array) as a new in-memory float32 array."""
        if isinstance(index, int | np.integer):
            return self._read(np.array([self._rows[index]]))[0]
        return self._read(np.atleast_1d(self._rows[index]))

    def _read(self, file_rows: np.ndarray) -> np.ndarray:
        out = np.empty((len(file_rows), *self._row_shape), dtype=self.dtype)
        fd = self._descriptor()
        for position, row in enumerate(file_rows.tolist()):
            data = os.pread(fd, self._row_bytes, self._offset + row * self._row_bytes)
            if len(data) != self._row_bytes:
                raise OSError(f"{self.path}: row {row} is cut short ({len(data)} of {self._row_bytes} bytes)")
            out[position] = np.frombuffer(data, dtype=self.dtype).reshape(self._row_shape)
        return out

    def subset(self, rows) -> DiskArray:
        """A view of rows `rows` of this array (same file; the owner keeps the file alive)."""
        view = DiskArray.__new__(DiskArray)
        view.__dict__.update(self.__getstate__())
        view._rows = self._rows[np.asarray(rows, dtype=np.int64)]
        view._parent = self  # keeps the owner, and so the file, alive as long as the view
        return view

    def chunks(self, rows: np.ndarray | None = None, size: int = 64):
        """Rows (all, or `rows`) in order, `size` at a time: for statistics over more than memory holds."""
        rows = np.arange(len(self)) if rows is None else np.asarray(rows)
        for start in range(0, len(rows), size):
            yield self[rows[start : start + size]]

    # Pickling (DataLoader workers): the path and the rows; the copy reads its own descriptor, owns nothing.
    def __getstate__(self) -> dict:
        state = {k: v for k, v in self.__dict__.items() if k not in ("_fd", "_finalizer", "_parent")}
        state.update(_fd=None, _owner=False)
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)

    def __del__(self) -> None:
        if getattr(self, "_fd", None) is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)

    def __repr__(self) -> str:
        return f"DiskArray({str(self.path)!r}, shape={self.shape})"
