"""Sample validation and frame reading: each bad input gets an error naming what is wrong."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest

from datamodules.readers.synthetic import SyntheticConfig, synthetic_samples
from datamodules.samples import (
    FrameFolder,
    FrameReadError,
    Sample,
    SampleError,
    check_unique_ids,
    validate_sample,
)


def _folder_sample(tmp_path: Path, numbers=(10, 11, 12, 13)) -> Sample:
    paths = []
    for n in numbers:
        p = tmp_path / f"img{n}.jpg"
        cv2.imwrite(str(p), np.full((8, 8), n, np.uint8))
        paths.append(p)
    return Sample(
        "casme2/sub01/EP01",
        "casme2",
        "casme2/sub01",
        "EP01",
        FrameFolder(tuple(paths), tuple(numbers)),
        onset=10,
        apex=12,
        offset=13,
        emotion="happiness",
        source="coding.xlsx row 3",
    )


def test_frame_folder_reads_by_frame_number(tmp_path):
    s = _folder_sample(tmp_path)
    assert s.frames.read(12).shape == (8, 8)
    assert abs(int(s.frames.read(12).mean()) - 12) <= 1


def test_missing_frame_file_is_named(tmp_path):
    s = _folder_sample(tmp_path)
    (tmp_path / "img12.jpg").unlink()
    with pytest.raises(FrameReadError, match="missing frame file: .*img12.jpg"):
        s.frames.read(12)


def test_unreadable_image_is_named(tmp_path):
    s = _folder_sample(tmp_path)
    (tmp_path / "img11.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(SampleError, match="unreadable image.*img11.jpg"):
        s.frames.read(11)


def test_frame_outside_folder(tmp_path):
    s = _folder_sample(tmp_path)
    with pytest.raises(SampleError, match="frame 99 is not in"):
        s.frames.read(99)


def test_onset_after_apex_names_sample_and_row(tmp_path):
    s = replace(_folder_sample(tmp_path), onset=13, apex=12, offset=13)
    with pytest.raises(
        SampleError, match=r"casme2/sub01/EP01 \(coding.xlsx row 3\): onset 13 is after the apex 12"
    ):
        validate_sample(s)


def test_other_inconsistencies(tmp_path):
    s = _folder_sample(tmp_path)
    with pytest.raises(SampleError, match="apex 14 is after offset 13"):
        validate_sample(replace(s, apex=14))
    with pytest.raises(SampleError, match="outside the frames present"):
        validate_sample(replace(s, offset=20, apex=None))
    with pytest.raises(SampleError, match="not qualified"):
        validate_sample(replace(s, subject="sub01"))
    with pytest.raises(SampleError, match="onset 14 is after offset 13"):
        validate_sample(replace(s, onset=14, apex=None))


def test_duplicate_ids():
    s = synthetic_samples(SyntheticConfig(num_subjects=1, clips_per_subject=1))[0]
    with pytest.raises(SampleError, match="duplicate sample_id"):
        check_unique_ids([s, s])


def test_empty_frame_file_is_named_as_empty(tmp_path):
    s = _folder_sample(tmp_path)
    (tmp_path / "img11.jpg").write_bytes(b"")
    with pytest.raises(FrameReadError, match=r"unreadable image \(empty file\).*img11.jpg"):
        s.frames.read(11)
