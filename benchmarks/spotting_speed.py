"""Spotting speed: seconds of CPU per minute of video, at 30 and 200 fps, against reading the frames alone.

    python benchmarks/spotting_speed.py                      # 20 s synthetic long videos, DIS and Farneback
    python benchmarks/spotting_speed.py --seconds 60 --flows dis --json spotting_speed.json

For each frame rate, one synthetic long video (datamodules/readers/synthetic_long.py, face filling the
170x140 frame) is rendered into memory once and then (1) read through again (the cost of getting the
frames: a copy here, a JPEG decode for a real database), (2) spotted with spotting.spot_frames from
memory, (3) spotted with spotting.spot_video, which renders the analysed frames itself. Prints a markdown
table: seconds per minute of video for each, and the ratio of spotting to rendering measured in the same
run. Speeds depend on the machine (and on other processes); the ratio less so. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import cv2

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from datamodules.readers.synthetic_long import SyntheticLongConfig, synthetic_long_videos  # noqa: E402
from spotting import SpotterConfig, spot_frames, spot_video  # noqa: E402


def measure(fps: float, seconds: float, flow: str) -> dict:
    cfg = SyntheticLongConfig(num_subjects=1, videos_per_subject=1, seconds=seconds, fps=fps)
    (video,) = synthetic_long_videos(cfg)
    numbers = video.frames.frame_numbers
    start = time.perf_counter()
    frames = [video.frames.read(n) for n in numbers]
    render = time.perf_counter() - start
    config = SpotterConfig(flow=flow, face="full")
    start = time.perf_counter()
    in_memory = spot_frames(frames, fps, config)
    spot_memory = time.perf_counter() - start
    start = time.perf_counter()
    spot_video(video, config)
    spot_rendered = time.perf_counter() - start
    per_minute = 60.0 / seconds
    return {
        "fps": fps,
        "flow": flow,
        "frames": len(numbers),
        "analysed": len(range(0, len(numbers), in_memory.stride)),
        "render_s_per_min": render * per_minute,
        "spot_frames_s_per_min": spot_memory * per_minute,
        "spot_video_s_per_min": spot_rendered * per_minute,
        "spot_over_render": spot_memory / render,
        "detections": len(in_memory.detections),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="length of each test video")
    parser.add_argument("--fps", type=float, nargs="+", default=[30.0, 200.0])
    parser.add_argument("--flows", nargs="+", default=["dis", "farneback"], choices=["dis", "farneback"])
    parser.add_argument("--json", type=Path, default=None, help="also write the rows here")
    args = parser.parse_args()
    print(
        f"OpenCV threads: {cv2.getNumThreads()}, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}"
    )
    rows = [measure(fps, args.seconds, flow) for flow in args.flows for fps in args.fps]
    print()
    print(
        "| fps | flow | frames (analysed) | render s/min | spot_frames s/min | spot_video s/min "
        "| spot / render |"
    )
    print("| ---: | --- | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        print(
            f"| {r['fps']:g} | {r['flow']} | {r['frames']} ({r['analysed']}) | {r['render_s_per_min']:.1f} | "
            f"{r['spot_frames_s_per_min']:.1f} | {r['spot_video_s_per_min']:.1f} | "
            f"{r['spot_over_render']:.1f}x |"
        )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
