"""The MEGC spotting metric (MEGC2020 onwards) and the reports of a spotting run (spot.py).

Metric. A spotted interval is a true positive when its IoU with a ground-truth interval of the same kind
is at least 0.5 (exactly 0.5 counts), the IoU of two inclusive frame intervals being
    |A ∩ B| / |A ∪ B|,   |[a, b]| = b - a + 1 frames.
Each ground truth is matched to at most one detection and each detection to at most one ground truth,
greedily by IoU (highest first; on a tie the higher score, then the earlier detection, then the earlier
ground truth), so a second detection of an expression already found is a false positive. Detections of
kind micro are matched against micro ground truths only, macro against macro. TP/FP/FN are counted per
video and summed over the database before precision, recall and F1 are computed (pooled, never an
average of per-video scores): F1 = 2 TP / (2 TP + FP + FN), which is 2PR / (P + R) wherever both exist.
"overall" pools the micro and macro counts. A score whose denominator is 0 (no detections: precision; no
ground truth: recall; neither: F1) is reported as 0.0, as the challenge's scripts do.

`Match` pairs a true-positive detection with its ground truth (emotion and action units included), so a
recognition step can be scored on the correctly spotted intervals only (spot-then-recognise).

Run directory of spot.py (written by `write_spotting_reports`, rescored by `evaluate_spotting_run`):

    detections.csv   video_id, onset, apex, offset, kind, score: one row per detection, the video's own
                     frame numbers. This is the file that is scored: evaluate.py rescoring a run reads it,
                     so the detections of another spotter can be scored against the same ground truth.
    spotting.json    the settings, every video (id, subject, fps, frames, ground truth, detections,
                     thresholds), the metrics and the matched pairs
    results.md       the metrics table and one row per video
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from datamodules.long_videos import KINDS, MACRO, MICRO, Interval
from evaluation.predictions import EvaluationError
from spotting.detections import Detection
from utils.atomic import atomic_write_json, atomic_write_text

IOU_THRESHOLD = 0.5  # MEGC2020-MEGC2023 spotting
# Exact ties (IoU of exactly 0.5) must pass: compare inter >= t * union with room for float rounding only.
_IOU_SLACK = 1e-9

DETECTIONS_CSV = "detections.csv"
SPOTTING_JSON = "spotting.json"
RESULTS_MD = "results.md"
DETECTION_COLUMNS = ("video_id", "onset", "apex", "offset", "kind", "score")
RUN_KIND = "spotting"  # spotting.json "run": tells a spotting run from a recognition run
RUN_FORMAT = 1


class Spanned(Protocol):
    onset: int
    offset: int
    kind: str


def interval_iou(a: tuple[int, int], b: tuple[int, int]) -> float:
    """IoU of two inclusive frame intervals (onset, offset); 0.0 when they do not overlap."""
    inter = min(a[1], b[1]) - max(a[0], b[0]) + 1
    if inter <= 0:
        return 0.0
    union = (a[1] - a[0] + 1) + (b[1] - b[0] + 1) - inter
    return inter / union


def _passes(a: tuple[int, int], b: tuple[int, int], threshold: float) -> bool:
    inter = min(a[1], b[1]) - max(a[0], b[0]) + 1
    if inter <= 0:
        return False
    union = (a[1] - a[0] + 1) + (b[1] - b[0] + 1) - inter
    return inter >= threshold * union - _IOU_SLACK


@dataclass(frozen=True)
class Counts:
    """Pooled TP/FP/FN of one kind (or of both, "overall")."""

    tp: int = 0
    fp: int = 0
    fn: int = 0

    def __add__(self, other: Counts) -> Counts:
        return Counts(self.tp + other.tp, self.fp + other.fp, self.fn + other.fn)

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 0.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 0.0

    @property
    def f1(self) -> float:
        denominator = 2 * self.tp + self.fp + self.fn
        return 2 * self.tp / denominator if denominator else 0.0

    def to_dict(self) -> dict:
        return {
            "tp": self.tp,
            "fp": self.fp,
            "fn": self.fn,
            "precision": self.precision,
            "recall": self.recall,
            "f1": self.f1,
        }


@dataclass(frozen=True)
class Match:
    """A true positive: detection `detection_index` of the video matched ground truth `truth_index`."""

    video_id: str
    detection: Spanned
    truth: Spanned
    iou: float
    detection_index: int
    truth_index: int


@dataclass
class VideoScore:
    """One video's counts per kind, its matches, and what was left unmatched (FP detections, FN truths)."""

    video_id: str
    counts: dict[str, Counts]
    matches: list[Match]
    false_positives: list[int]  # indices into the video's detections
    missed: list[int]  # indices into the video's ground truths

    @property
    def overall(self) -> Counts:
        return sum(self.counts.values(), Counts())


def match_video(
    detections: Sequence[Spanned],
    truths: Sequence[Spanned],
    video_id: str = "",
    iou_threshold: float = IOU_THRESHOLD,
) -> VideoScore:
    """Match one video's detections to its ground truth (see the module doc): counts per kind and pairs."""
    for what, items in (("detection", detections), ("ground truth", truths)):
        for i, item in enumerate(items):
            if item.kind not in KINDS:
                raise ValueError(
                    f"{video_id or 'video'}: {what} {i} has kind {item.kind!r}, expected {KINDS}"
                )
    pairs = []
    for i, det in enumerate(detections):
        for j, truth in enumerate(truths):
            if det.kind != truth.kind:
                continue
            a, b = (det.onset, det.offset), (truth.onset, truth.offset)
            if _passes(a, b, iou_threshold):
                pairs.append((-interval_iou(a, b), -float(getattr(det, "score", 0.0)), i, j))
    pairs.sort()
    used_det: set[int] = set()
    used_truth: set[int] = set()
    matches = []
    for neg_iou, _, i, j in pairs:
        if i in used_det or j in used_truth:
            continue
        used_det.add(i)
        used_truth.add(j)
        matches.append(Match(video_id, detections[i], truths[j], -neg_iou, i, j))
    matches.sort(key=lambda m: m.detection_index)
    counts = {}
    for kind in KINDS:
        tp = sum(1 for m in matches if m.truth.kind == kind)
        n_det = sum(1 for d in detections if d.kind == kind)
        n_truth = sum(1 for t in truths if t.kind == kind)
        counts[kind] = Counts(tp, n_det - tp, n_truth - tp)
    return VideoScore(
        video_id=video_id,
        counts=counts,
        matches=matches,
        false_positives=[i for i in range(len(detections)) if i not in used_det],
        missed=[j for j in range(len(truths)) if j not in used_truth],
    )


@dataclass
class SpottingScores:
    """Pooled spotting scores of a database: per kind, overall, and each video's part."""

    per_kind: dict[str, Counts]
    videos: list[VideoScore] = field(default_factory=list)
    iou_threshold: float = IOU_THRESHOLD

    @property
    def overall(self) -> Counts:
        return sum(self.per_kind.values(), Counts())

    @property
    def matches(self) -> list[Match]:
        return [m for video in self.videos for m in video.matches]

    def to_dict(self) -> dict:
        """JSON-ready: {"micro": {...}, "macro": {...}, "overall": {...}, "iou_threshold", "videos"}."""
        out = {kind: self.per_kind[kind].to_dict() for kind in KINDS}
        out["overall"] = self.overall.to_dict()
        out["iou_threshold"] = self.iou_threshold
        out["videos"] = len(self.videos)
        return out


def spotting_scores(
    videos: Iterable[tuple[str, Sequence[Spanned], Sequence[Spanned]]], iou_threshold: float = IOU_THRESHOLD
) -> SpottingScores:
    """Pool (video_id, detections, ground truths) triples into the database's scores (module doc)."""
    scored = [match_video(dets, truths, video_id, iou_threshold) for video_id, dets, truths in videos]
    per_kind = {kind: sum((v.counts[kind] for v in scored), Counts()) for kind in KINDS}
    return SpottingScores(per_kind=per_kind, videos=scored, iou_threshold=iou_threshold)


# --- the spotting run directory ---------------------------------------------------------------------------


@dataclass
class SpottedVideo:
    """What spot.py keeps of one video: who and what it is, its ground truth and what was spotted in it."""

    video_id: str
    dataset: str
    subject: str
    fps: float
    num_frames: int
    first_frame: int
    truths: list[Interval]
    detections: list[Detection]
    notes: dict = field(default_factory=dict)  # thresholds, face box, stride: per-video facts for the report


def is_spotting_run(run_dir: str | Path) -> bool:
    """True for a directory spot.py wrote (its spotting.json says so)."""
    path = Path(run_dir) / SPOTTING_JSON
    if not path.is_file():
        return False
    try:
        return json.loads(path.read_text(encoding="utf-8")).get("run") == RUN_KIND
    except (OSError, ValueError, AttributeError):
        return True  # a spotting.json that cannot be read is still a spotting run; reading it names the fault


def _truth_dict(t: Interval) -> dict:
    return {
        "onset": t.onset,
        "apex": t.apex,
        "offset": t.offset,
        "kind": t.kind,
        "emotion": t.emotion,
        "action_units": list(t.action_units),
        "source": t.source,
    }


def detections_csv_text(videos: Sequence[SpottedVideo]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(DETECTION_COLUMNS)
    for video in videos:
        for d in video.detections:
            writer.writerow([video.video_id, d.onset, d.apex, d.offset, d.kind, f"{d.score:.6g}"])
    return buffer.getvalue()


def read_detections_csv(path: str | Path, video_ids: Sequence[str]) -> dict[str, list[Detection]]:
    """detections.csv back as {video_id: [Detection]}; a row that is malformed or names a video the run
    did not spot is an EvaluationError naming the file and line."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise EvaluationError(f"{path}: missing (the detections of the spotting run)") from None
    rows = list(csv.reader(io.StringIO(text)))
    if not rows or tuple(c.strip() for c in rows[0]) != DETECTION_COLUMNS:
        got = ",".join(rows[0]) if rows else "an empty file"
        raise EvaluationError(f"{path}: line 1: expected the header {','.join(DETECTION_COLUMNS)}, got {got}")
    known = set(video_ids)
    out: dict[str, list[Detection]] = {v: [] for v in video_ids}
    for line, row in enumerate(rows[1:], start=2):
        if not row or all(not c.strip() for c in row):
            continue
        if len(row) != len(DETECTION_COLUMNS):
            raise EvaluationError(
                f"{path}: line {line}: expected {len(DETECTION_COLUMNS)} fields, got {len(row)}"
            )
        video_id, onset, apex, offset, kind, score = (c.strip() for c in row)
        if video_id not in known:
            raise EvaluationError(f"{path}: line {line}: video {video_id!r} is not one of the run's videos")
        try:
            detection = Detection(int(onset), int(apex), int(offset), kind, float(score or 0.0))
        except ValueError as err:
            raise EvaluationError(f"{path}: line {line}: {err}") from None
        out[video_id].append(detection)
    return out


def _video_dict(video: SpottedVideo, score: VideoScore) -> dict:
    return {
        "video_id": video.video_id,
        "dataset": video.dataset,
        "subject": video.subject,
        "fps": video.fps,
        "num_frames": video.num_frames,
        "first_frame": video.first_frame,
        "ground_truth": [_truth_dict(t) for t in video.truths],
        "detections": [d.to_dict() for d in video.detections],
        "counts": {kind: score.counts[kind].to_dict() for kind in KINDS},
        "notes": video.notes,
    }


def _match_dict(match: Match) -> dict:
    return {
        "video_id": match.video_id,
        "iou": match.iou,
        "detection_index": match.detection_index,
        "truth_index": match.truth_index,
        "detection": match.detection.to_dict(),
        "truth": _truth_dict(match.truth),
    }


def score_videos(videos: Sequence[SpottedVideo], iou_threshold: float = IOU_THRESHOLD) -> SpottingScores:
    return spotting_scores(((v.video_id, v.detections, v.truths) for v in videos), iou_threshold)


def format_spotting_table(scores: SpottingScores) -> str:
    """Plain-text metrics table for a terminal: micro, macro, overall rows of TP/FP/FN/P/R/F1."""
    lines = [f"{'':<8}  {'TP':>5}  {'FP':>5}  {'FN':>5}  {'P':>6}  {'R':>6}  {'F1':>6}"]
    rows = [(kind, scores.per_kind[kind]) for kind in KINDS] + [("overall", scores.overall)]
    for name, c in rows:
        lines.append(
            f"{name:<8}  {c.tp:>5d}  {c.fp:>5d}  {c.fn:>5d}  {c.precision:6.4f}  {c.recall:6.4f}  {c.f1:6.4f}"
        )
    lines.append(
        f"{len(scores.videos)} videos; a detection counts when IoU >= {scores.iou_threshold:g} with a ground "
        "truth of its kind (MEGC)"
    )
    return "\n".join(lines)


def spotting_markdown(videos: Sequence[SpottedVideo], scores: SpottingScores, title: str = "") -> str:
    """results.md of a spotting run: pooled scores per kind, then one row per video."""
    out = [f"# Spotting: {title or 'MERLin spotting run'}", ""]
    out.append(
        f"MEGC spotting metric: a detection is a true positive when its IoU with a ground-truth interval of "
        f"the same kind is >= {scores.iou_threshold:g}; each ground truth matches at most one detection. "
        f"TP/FP/FN are summed over the {len(videos)} videos, then turned into precision, recall and F1."
    )
    out += [
        "",
        "| Kind | TP | FP | FN | Precision | Recall | F1 |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, c in [(kind, scores.per_kind[kind]) for kind in KINDS] + [("overall", scores.overall)]:
        out.append(f"| {name} | {c.tp} | {c.fp} | {c.fn} | {c.precision:.4f} | {c.recall:.4f} | {c.f1:.4f} |")
    out += [
        "",
        "## Per video",
        "",
        "| Video | Frames | fps | GT micro | GT macro | Det micro | Det macro | TP micro | TP macro |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for video, score in zip(videos, scores.videos, strict=True):
        gt = {k: sum(1 for t in video.truths if t.kind == k) for k in KINDS}
        det = {k: sum(1 for d in video.detections if d.kind == k) for k in KINDS}
        out.append(
            f"| {video.video_id} | {video.num_frames} | {video.fps:g} | {gt[MICRO]} | {gt[MACRO]} | "
            f"{det[MICRO]} | {det[MACRO]} | {score.counts[MICRO].tp} | {score.counts[MACRO].tp} |"
        )
    return "\n".join(out) + "\n"


def write_spotting_reports(
    run_dir: str | Path,
    videos: Sequence[SpottedVideo],
    settings: Mapping,
    title: str = "",
    iou_threshold: float = IOU_THRESHOLD,
    write_detections: bool = True,
) -> SpottingScores:
    """Score `videos` and write detections.csv, spotting.json and results.md (each atomically) into run_dir.

    detections.csv is written first and spotting.json last: a run directory whose spotting.json exists
    holds the detections it describes. write_detections=False (rescoring) leaves detections.csv as it is.
    """
    run_dir = Path(run_dir)
    scores = score_videos(videos, iou_threshold)
    if write_detections:
        atomic_write_text(run_dir / DETECTIONS_CSV, detections_csv_text(videos), what="spotted intervals")
    atomic_write_text(run_dir / RESULTS_MD, spotting_markdown(videos, scores, title), what="spotting report")
    record = {
        "run": RUN_KIND,
        "format": RUN_FORMAT,
        "title": title,
        "settings": dict(settings),
        "metrics": scores.to_dict(),
        "videos": [_video_dict(v, s) for v, s in zip(videos, scores.videos, strict=True)],
        "matches": [_match_dict(m) for m in scores.matches],
    }
    atomic_write_json(run_dir / SPOTTING_JSON, record, what="spotting record")
    return scores


def _interval_from(entry: Mapping, where: str) -> Interval:
    try:
        return Interval(
            onset=int(entry["onset"]),
            offset=int(entry["offset"]),
            kind=str(entry["kind"]),
            apex=None if entry.get("apex") is None else int(entry["apex"]),
            emotion=entry.get("emotion"),
            action_units=tuple(entry.get("action_units") or ()),
            source=str(entry.get("source") or ""),
        )
    except (KeyError, TypeError, ValueError) as err:
        raise EvaluationError(f"{where}: ground truth entry {dict(entry)!r} is malformed ({err})") from None


def read_spotting_run(run_dir: str | Path) -> tuple[dict, list[SpottedVideo]]:
    """spotting.json's record and its videos, the detections read from detections.csv (the scored file)."""
    run_dir = Path(run_dir)
    path = run_dir / SPOTTING_JSON
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise EvaluationError(f"{path}: missing; is {run_dir} a directory spot.py wrote?") from None
    except ValueError as err:
        raise EvaluationError(f"{path}: not valid JSON ({err})") from None
    if (
        not isinstance(record, dict)
        or record.get("run") != RUN_KIND
        or not isinstance(record.get("videos"), list)
    ):
        raise EvaluationError(
            f'{path}: not a spotting record (expected "run": "{RUN_KIND}" and a videos list)'
        )
    videos = []
    for i, entry in enumerate(record["videos"]):
        where = f"{path}: videos[{i}]"
        try:
            video = SpottedVideo(
                video_id=str(entry["video_id"]),
                dataset=str(entry.get("dataset", "")),
                subject=str(entry.get("subject", "")),
                fps=float(entry["fps"]),
                num_frames=int(entry["num_frames"]),
                first_frame=int(entry.get("first_frame", 0)),
                truths=[_interval_from(t, where) for t in entry.get("ground_truth", [])],
                detections=[],
                notes=dict(entry.get("notes") or {}),
            )
        except (KeyError, TypeError, ValueError) as err:
            if isinstance(err, EvaluationError):
                raise
            raise EvaluationError(f"{where}: malformed video entry ({err!r})") from None
        videos.append(video)
    ids = [v.video_id for v in videos]
    found = read_detections_csv(run_dir / DETECTIONS_CSV, ids)
    for video in videos:
        video.detections = found[video.video_id]
    return record, videos


def evaluate_spotting_run(run_dir: str | Path) -> str:
    """Rescore a spotting run: detections.csv against its ground truth; rewrite the reports; the table."""
    record, videos = read_spotting_run(run_dir)
    scores = write_spotting_reports(
        run_dir,
        videos,
        record.get("settings") or {},
        title=str(record.get("title") or ""),
        iou_threshold=float(record.get("metrics", {}).get("iou_threshold", IOU_THRESHOLD)),
        write_detections=False,
    )
    return format_spotting_table(scores)
