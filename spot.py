"""Spot the micro- and macro-expressions of a long-video database and score them (MEGC spotting metric).

    python spot.py                                           # videos=synthetic_long, the default
    python spot.py videos=samm_long videos.samm_long_root=/data/SAMM_longvideos
    python spot.py videos.reader.fps=200 spotter.threshold_p=0.2 run_dir=runs/spot/try1
    python evaluate.py run_dir=runs/spot/try1                # rescore its detections.csv

Reads the videos through the config's reader, spots each one (spotting.spot_video: one face crop per video,
every frame read once) and writes, once every video is spotted, RUN_DIR/detections.csv (video_id, onset,
apex, offset, kind, score; the database's own frame numbers), RUN_DIR/spotting.json (settings, what the
reader repaired or dropped, each video's ground truth, detections and thresholds, the metrics and the
matched detection / ground-truth pairs) and RUN_DIR/results.md; prints the metrics table and
`run dir: RUN_DIR` last. A run directory that already holds files is refused before any video is read.
Exit status 2, with one `error:` line naming the file or setting, for anything the user can fix.
"""

from __future__ import annotations

import secrets
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

if not OmegaConf.has_resolver("run_suffix"):
    # As train.py: 4 random hex digits after the timestamp, so two runs started in one second differ.
    OmegaConf.register_new_resolver("run_suffix", lambda: secrets.token_hex(2), use_cache=True)


@hydra.main(config_path="configs", config_name="spot", version_base="1.3")
def main(cfg: DictConfig) -> None:
    from utils.cli import exit_on_user_error

    with exit_on_user_error():
        run_dir, table = spot_database(cfg)
    print(table)
    print(f"run dir: {run_dir}")


def _check_run_dir(run_dir: Path) -> None:
    if run_dir.exists() and not run_dir.is_dir():
        raise ValueError(f"run_dir {run_dir} is a file, not a folder")
    if run_dir.is_dir() and any(run_dir.iterdir()):
        raise ValueError(
            f"run_dir {run_dir} already holds files (an earlier run?); give a new or empty folder, or "
            f"rescore that run with: python evaluate.py run_dir={run_dir}"
        )


def spot_database(cfg: DictConfig) -> tuple[Path, str]:
    """Spot every video of cfg.videos into cfg.run_dir; returns the run directory and the metrics table."""
    from hydra.utils import instantiate
    from tqdm import tqdm

    from datamodules.long_videos import LongVideoRead, check_unique_video_ids, validate_long_video
    from evaluation.spotting import SpottedVideo, format_spotting_table, write_spotting_reports
    from spotting import SpotterConfig, spot_video

    run_dir = Path(cfg.run_dir)
    _check_run_dir(run_dir)
    spotter = SpotterConfig(**OmegaConf.to_container(cfg.spotter, resolve=True))
    if cfg.limit is not None and int(cfg.limit) < 1:
        raise ValueError(f"limit={cfg.limit}: give a positive number of videos, or null for all")
    read = instantiate(cfg.videos.reader)
    if not isinstance(read, LongVideoRead):
        raise ValueError(
            f"videos.reader {cfg.videos.reader._target_} returned {type(read).__name__}, not LongVideoRead"
        )
    videos = read.videos[: int(cfg.limit)] if cfg.limit is not None else read.videos
    if not videos:
        raise ValueError(f"videos={cfg.videos.name}: the reader found no videos")
    check_unique_video_ids(videos)
    spotted = []
    for video in tqdm(videos, desc=f"spotting {cfg.videos.name}", unit="video", disable=not cfg.progress):
        validate_long_video(video)
        result = spot_video(video, spotter)
        notes = {
            "threshold": result.threshold,
            "macro_threshold": result.macro_threshold,
            "stride": result.stride,
            "windows": list(result.windows),
            "eye_line": result.eye_line,
            "face_box": list(result.face_box) if result.face_box else None,
            **result.notes,
        }
        spotted.append(
            SpottedVideo(
                video_id=video.video_id,
                dataset=video.dataset,
                subject=video.subject,
                fps=float(video.fps),
                num_frames=video.num_frames,
                first_frame=video.first_frame,
                truths=list(video.intervals),
                detections=result.detections,
                notes=notes,
            )
        )
    report = read.report
    settings = {
        "videos": OmegaConf.to_container(cfg.videos, resolve=True),
        "limit": cfg.limit,
        "spotter": spotter.to_dict(),
        "read": {
            "repairs": [i.as_dict() for i in report.repairs],
            "drops": [i.as_dict() for i in report.drops],
            "notes": list(report.notes),
        },
    }
    scores = write_spotting_reports(run_dir, spotted, settings, title=str(cfg.videos.name))
    table = format_spotting_table(scores)
    if report.repairs or report.drops:
        table += (
            f"\nreader: {len(report.repairs)} repairs, {len(report.drops)} drops (listed in spotting.json)"
        )
    return run_dir, table


if __name__ == "__main__":
    main()
