"""Spotted intervals recognised by a trained model, and the timeline predict.py writes.

`timeline.json` is a list, in time order, of

    {"onset": frame, "apex": frame, "offset": frame, "start_s", "apex_s", "end_s", "kind": "micro"|"macro",
     "class": name, "probabilities": {class: p}, "score": spotting score or null, "shot": k}

with frames counted from 0 (the video's first frame, or a folder's first image in order) and seconds =
frame / fps. `timeline.csv` holds the same rows (one `p_<class>` column per class). `motion.png` plots the
spotter's motion signal over time with each interval shaded in its class's colour.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from datamodules.long_videos import MACRO, MICRO, MICRO_MAX_SECONDS
from datamodules.samples import Sample
from utils.atomic import atomic_write_bytes, atomic_write_json, atomic_write_text

TIMELINE_JSON, TIMELINE_CSV, MOTION_PNG = "timeline.json", "timeline.csv", "motion.png"


@dataclass(frozen=True)
class ShotFrames:
    """A FrameSource over one shot's cropped frames, numbered by their frame index in the whole video."""

    frames: tuple[np.ndarray, ...]
    start: int
    tag: str = ""

    @property
    def frame_numbers(self) -> tuple[int, ...]:
        return tuple(range(self.start, self.start + len(self.frames)))

    def read(self, number: int) -> np.ndarray:
        if not self.start <= number < self.start + len(self.frames):
            raise IndexError(
                f"frame {number} is not in this shot ({self.start}..{self.start + len(self.frames) - 1})"
            )
        return self.frames[number - self.start]

    def fingerprint(self) -> str:  # never cached: a user's video is computed once
        return f"video:{self.tag}:{self.start}:{len(self.frames)}"


@dataclass(frozen=True)
class TimelineEntry:
    onset: int
    apex: int
    offset: int
    fps: float
    kind: str
    label: str
    probabilities: dict[str, float]
    score: float | None
    shot: int

    def as_dict(self) -> dict:
        return {
            "onset": self.onset,
            "apex": self.apex,
            "offset": self.offset,
            "start_s": round(self.onset / self.fps, 4),
            "apex_s": round(self.apex / self.fps, 4),
            "end_s": round(self.offset / self.fps, 4),
            "kind": self.kind,
            "class": self.label,
            "probabilities": {c: round(float(p), 6) for c, p in self.probabilities.items()},
            "score": None if self.score is None else round(float(self.score), 6),
            "shot": self.shot,
        }


def kind_of(onset: int, offset: int, fps: float) -> str:
    """Micro when onset..offset lasts under MICRO_MAX_SECONDS, as the field draws the line."""
    return MICRO if (offset - onset + 1) / fps < MICRO_MAX_SECONDS else MACRO


def interval_sample(frames: ShotFrames, onset: int, apex: int, offset: int, fps: float, name: str) -> Sample:
    """One interval of a shot as a clip the feature pipeline takes (the same code path as a database clip)."""
    return Sample(
        sample_id=f"video/{name}/{onset}",
        dataset="video",
        subject=f"video/{name}",
        clip=f"{name}_{onset}",
        frames=frames,
        onset=onset,
        apex=apex,
        offset=offset,
        emotion="",
        fps=fps,
        source=name,
    )


def recognise(
    predictor, intervals: Sequence[tuple[ShotFrames, int, int, int, str, float | None, int]], fps, name
):
    """TimelineEntry per (frames, onset, apex, offset, kind, score, shot), classified by `predictor`."""
    if not intervals:
        return []
    samples = [interval_sample(f, on, ap, off, fps, name) for f, on, ap, off, _, _, _ in intervals]
    probabilities = predictor.predict(samples)
    entries = []
    for (_, onset, apex, offset, kind, score, shot), p in zip(intervals, probabilities, strict=True):
        entries.append(
            TimelineEntry(
                onset=onset,
                apex=apex,
                offset=offset,
                fps=fps,
                kind=kind,
                label=predictor.classes[int(np.argmax(p))],
                probabilities=dict(zip(predictor.classes, p.tolist(), strict=True)),
                score=score,
                shot=shot,
            )
        )
    return sorted(entries, key=lambda e: e.onset)


def write_timeline(entries: Sequence[TimelineEntry], classes: Sequence[str], out: Path) -> Path:
    """DIR/timeline.json and DIR/timeline.csv, each written atomically. Returns the JSON's path."""
    out.mkdir(parents=True, exist_ok=True)
    rows = [e.as_dict() for e in entries]
    atomic_write_json(out / TIMELINE_JSON, rows, what="timeline")
    buffer = io.StringIO()
    fields = ["onset", "apex", "offset", "start_s", "apex_s", "end_s", "kind", "class", "score", "shot"]
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(fields + [f"p_{c}" for c in classes])
    for row in rows:
        writer.writerow([row[f] for f in fields] + [row["probabilities"][c] for c in classes])
    atomic_write_text(out / TIMELINE_CSV, buffer.getvalue(), what="timeline")
    return out / TIMELINE_JSON


def plot_motion(
    traces: Sequence[tuple[int, np.ndarray, float | None]],
    entries: Sequence[TimelineEntry],
    fps: float,
    classes: Sequence[str],
    path: Path,
    title: str = "",
) -> Path:
    """The motion signal of each shot (start frame, signal, threshold) over time in seconds, with each
    interval shaded in its class's colour (micro solid, macro hatched)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    colours = dict(zip(classes, plt.get_cmap("tab10").colors, strict=False))
    fig, ax = plt.subplots(figsize=(12, 3.6), dpi=110)
    for k, (start, signal, threshold) in enumerate(traces):
        t = (start + np.arange(len(signal))) / fps
        ax.plot(t, signal, color="0.15", linewidth=0.9, label="motion" if k == 0 else None)
        if threshold is not None and len(t):
            ax.hlines(
                threshold,
                t[0],
                t[-1],
                colors="0.5",
                linestyles="--",
                linewidth=0.8,
                label="threshold" if k == 0 else None,
            )
    for e in entries:
        ax.axvspan(
            e.onset / fps,
            (e.offset + 1) / fps,
            color=colours.get(e.label, "0.6"),
            alpha=0.45 if e.kind == MICRO else 0.25,
            hatch=None if e.kind == MICRO else "//",
            linewidth=0,
        )
    handles, _ = ax.get_legend_handles_labels()
    handles += [Patch(color=colours[c], alpha=0.45, label=c) for c in classes]
    ax.legend(handles=handles, loc="upper right", fontsize=8, ncol=2 + len(classes))
    ax.set_xlabel("time (s)")
    ax.set_ylabel("motion")
    ax.set_title(title or "motion signal and spotted intervals (solid: micro, hatched: macro)", fontsize=10)
    ax.margins(x=0.01)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    atomic_write_bytes(path, buffer.getvalue(), what="motion plot")
    return path
