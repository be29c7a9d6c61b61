"""The one record every database reader produces, and the checks every reader shares.

A `Sample` is one micro-expression clip: who (dataset-qualified subject), what (source emotion word and
action units), when (onset/apex/offset as the database's own frame numbers) and where its frames come from
(a `FrameSource`). Readers never hand out bare ints for subjects: CASME II `sub06` and SAMM `006` are
`casme2/sub06` and `samm/006`.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np


class SampleError(ValueError):
    """A clip or annotation row that cannot be used as it is; the message names the file/row and the fault."""


class FrameReadError(SampleError):
    """A frame file is missing, empty or not a decodable picture; the message names its path. Lenient mode
    drops the clip with this reason; strict mode stops on it."""


@runtime_checkable
class FrameSource(Protocol):
    """Where a clip's frames come from: a folder of images on disk, or a generator that renders them.

    `frame_numbers` are the database's own frame numbers (the ones onset/apex/offset use), ascending.
    `read(n)` returns frame n as uint8, (H, W) grayscale or (H, W, 3) RGB.
    `fingerprint()` changes whenever the pixels could have changed; the feature cache keys on it.
    """

    frame_numbers: tuple[int, ...]

    def read(self, number: int) -> np.ndarray: ...

    def fingerprint(self) -> str: ...


@dataclass(frozen=True)
class FrameFolder:
    """Frames stored as image files; `paths[i]` holds frame `frame_numbers[i]`."""

    paths: tuple[Path, ...]
    frame_numbers: tuple[int, ...]

    def __post_init__(self) -> None:
        if len(self.paths) != len(self.frame_numbers):
            raise SampleError(f"{len(self.paths)} frame paths but {len(self.frame_numbers)} frame numbers")

    def path_of(self, number: int) -> Path:
        try:
            return self.paths[self.frame_numbers.index(number)]
        except ValueError:
            first, last = self.frame_numbers[0], self.frame_numbers[-1]
            folder = self.paths[0].parent if self.paths else "?"
            raise SampleError(f"frame {number} is not in {folder} (frames {first}..{last})") from None

    def read(self, number: int) -> np.ndarray:
        import cv2  # deferred: a config error should not pay for importing OpenCV

        path = self.path_of(number)
        if not path.is_file():
            raise FrameReadError(f"missing frame file: {path}")
        try:
            image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        except cv2.error as err:  # OpenCV raises for some malformed headers instead of returning None
            raise FrameReadError(f"unreadable image ({err.msg.strip()}): {path}") from err
        if image is None:
            kind = "empty file" if path.stat().st_size == 0 else "not a decodable picture"
            raise FrameReadError(f"unreadable image ({kind}): {path}")
        if image.ndim == 3:
            image = cv2.cvtColor(image[..., :3], cv2.COLOR_BGR2RGB)
        if image.dtype != np.uint8:
            image = cv2.normalize(image, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
        return image

    def fingerprint(self) -> str:
        # Path, size and modification time of every frame: cheap, and changes when a file is replaced.
        digest = hashlib.sha256()
        for path in self.paths:
            try:
                stat = os.stat(path)
                digest.update(f"{path}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
            except FileNotFoundError:
                digest.update(f"{path}|missing\n".encode())
        return digest.hexdigest()


@dataclass(frozen=True)
class Sample:
    """One clip. Frame numbers are the database's own numbering; `apex` is None where it is not annotated."""

    sample_id: str  # "<dataset>/<subject>/<clip>", e.g. "casme2/sub01/EP02_01f"
    dataset: str  # "casme2", "samm", "smic", "synthetic", ...
    subject: str  # dataset-qualified: "casme2/sub01"
    clip: str  # the clip's own name in its database: "EP02_01f"
    frames: FrameSource = field(repr=False, compare=False)
    onset: int
    apex: int | None
    offset: int
    emotion: str  # the source database's own word ("happiness", "Other", "ne", ...)
    action_units: tuple[str, ...] = ()  # parsed, laterality kept: ("1", "2", "L10")
    fps: float = 200.0
    source: str = ""  # annotation file and row, for error messages: "CASME2-coding-20140508.xlsx row 12"

    @property
    def frame_count(self) -> int:
        return self.offset - self.onset + 1


def validate_sample(sample: Sample) -> None:
    """Raise `SampleError` naming the sample (and annotation row) if its frame numbers are inconsistent."""
    where = f"{sample.sample_id}" + (f" ({sample.source})" if sample.source else "")
    if not sample.subject.startswith(f"{sample.dataset}/"):
        raise SampleError(
            f"{where}: subject {sample.subject!r} is not qualified by dataset {sample.dataset!r}"
        )
    if sample.onset > sample.offset:
        raise SampleError(f"{where}: onset {sample.onset} is after offset {sample.offset}")
    if sample.apex is not None:
        if sample.apex < sample.onset:
            raise SampleError(f"{where}: onset {sample.onset} is after the apex {sample.apex}")
        if sample.apex > sample.offset:
            raise SampleError(f"{where}: apex {sample.apex} is after offset {sample.offset}")
    numbers = sample.frames.frame_numbers
    if not numbers:
        raise SampleError(f"{where}: no frames")
    if list(numbers) != sorted(numbers):
        raise SampleError(f"{where}: frame numbers are not ascending")
    if sample.onset < numbers[0] or sample.offset > numbers[-1]:
        raise SampleError(
            f"{where}: annotated frames {sample.onset}..{sample.offset} are outside the frames present "
            f"({numbers[0]}..{numbers[-1]})"
        )


def check_unique_ids(samples: Sequence[Sample]) -> None:
    seen: set[str] = set()
    for sample in samples:
        if sample.sample_id in seen:
            raise SampleError(f"duplicate sample_id {sample.sample_id!r}")
        seen.add(sample.sample_id)
