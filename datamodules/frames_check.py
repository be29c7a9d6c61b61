"""Decode every frame a clip's features could use, so that an unreadable frame shows before training does.

A reader only lists a clip's frame files; a corrupt, empty or deleted one surfaces when the features are
computed, deep inside `train.py`. `verify_frames` reads each kept clip's frames onset..offset (the apex and
every frame an apex spotter may read among them) and drops, or in strict mode refuses, each clip with a
frame that cannot be decoded, naming the file. Frames are decoded on a few threads (OpenCV releases the GIL).
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

from datamodules.readers.base import ReadResult
from datamodules.samples import FrameReadError, Sample


def frames_in_use(sample: Sample) -> list[int]:
    """The frame numbers of the clip present on disk within onset..offset: all any feature may read."""
    return [n for n in sample.frames.frame_numbers if sample.onset <= n <= sample.offset]


def unreadable_frame(sample: Sample) -> str | None:
    """Why the first frame of `sample` that cannot be read fails (naming its file), or None if all decode."""
    for number in frames_in_use(sample):
        try:
            sample.frames.read(number)
        except FrameReadError as err:  # names the file already
            return str(err)
        except Exception as err:  # a frame source's own failure: name the file (or the frame) ourselves
            return f"frame {number} cannot be read ({type(err).__name__}: {err}): {_where(sample, number)}"
    return None


def _where(sample: Sample, number: int) -> str:
    try:
        return str(sample.frames.path_of(number))  # FrameFolder
    except Exception:  # a rendered source (no files), or no such frame
        return f"frame {number} of {sample.sample_id}"


def verify_frames(
    read: ReadResult, strict: bool, progress: bool = False, workers: int | None = None
) -> ReadResult:
    """`read` without the clips that have an unreadable frame, each one added to a copy of its report's drops
    (sample id, the reason naming the file, the annotation row `sample.source`).

    strict: the first such clip (in reading order) raises `ReaderError` naming the file instead.
    progress: a tqdm bar over the clips. workers: decoding threads (default: CPUs, at most 8).
    """
    from tqdm import tqdm

    report = replace(
        read.report,
        strict=strict,
        repairs=list(read.report.repairs),
        drops=list(read.report.drops),
        notes=list(read.report.notes),
    )
    kept: list[Sample] = []
    pool = ThreadPoolExecutor(max_workers=workers or min(8, os.cpu_count() or 1))
    try:
        faults = pool.map(unreadable_frame, read.samples)  # in order: strict mode stops at the first
        with tqdm(total=len(read.samples), desc="frames", unit="clip", disable=not progress) as bar:
            for sample, fault in zip(read.samples, faults, strict=True):
                if fault is None:
                    kept.append(sample)
                else:
                    report.drop(sample.sample_id, fault, sample.source)
                bar.update()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return ReadResult(kept, report)
