"""Writing synthetic clips as image files, shared by the per-database exporters."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import cv2
import numpy as np

from datamodules.readers.synthetic import SyntheticConfig, render_frame


def write_frames(
    config: SyntheticConfig,
    subject_index: int,
    clip_index: int,
    folder: Path,
    numbers: Sequence[int],
    name_of: Callable[[int], str],
    indices: Sequence[int] | None = None,
) -> list[Path]:
    """Render frames of one synthetic clip and save them as `folder / name_of(number)`.

    `numbers[i]` is the database frame number written for clip frame `indices[i]` (default: 0, 1, 2, ...),
    so an exporter can shift the numbering (CASME II `reg_img46.jpg`), leave frames out, or write a clip
    shorter than annotated. The image format follows the suffix of the name (.jpg at quality 95, .png, .bmp).
    """
    folder.mkdir(parents=True, exist_ok=True)
    indices = list(range(len(numbers))) if indices is None else list(indices)
    if len(indices) != len(numbers):
        raise ValueError(f"{len(numbers)} frame numbers for {len(indices)} frames")
    paths = []
    for number, index in zip(numbers, indices, strict=True):
        image = render_frame(config, subject_index, clip_index, index)
        if image.ndim == 3:
            image = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
        path = folder / name_of(number)
        params = [cv2.IMWRITE_JPEG_QUALITY, 95] if path.suffix.lower() in (".jpg", ".jpeg") else []
        if not cv2.imwrite(str(path), np.ascontiguousarray(image), params):
            raise OSError(f"could not write {path}")
        paths.append(path)
    return paths


def write_sheet(path: Path, lines: Sequence[Sequence], title: str = "Sheet1") -> None:
    """An annotation table as the owners ship it: .csv, or one .xlsx sheet named `title`. None is a blank
    cell; a row of blanks still takes up its row number (cells set one by one, not append())."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".csv":
        import csv

        with path.open("w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            for line in lines:
                writer.writerow(["" if v is None else v for v in line])
        return
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    sheet.title = title
    for r, line in enumerate(lines, start=1):
        for c, value in enumerate(line, start=1):
            if value is not None:
                sheet.cell(r, c).value = value
    book.save(path)
