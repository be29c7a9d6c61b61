"""Spot, then recognise: the seed's figure on synthetic long videos, spotting F1 per export, and speed.

    python benchmarks/spot_recognise.py [--ckpt RUN/last.ckpt] [--fps 30 200] [--subjects 3] [--seconds 30]

1. A deployment model: `train.py data.protocol=all` of the default experiment (all 16 synthetic subjects),
   unless --ckpt names one. The long videos' faces are other people (synthetic_long draws its own faces).
2. Per frame rate: synthetic long videos (subjects x 2 videos, micro- and macro-expressions, blinks, head
   moves), spotted with the default SpotterConfig; MEGC spotting scores (IoU >= 0.5, pooled TP/FP/FN) for
   micro and macro; each correctly spotted micro-expression (a TP) cut at the spotted onset/apex/offset and
   recognised by the model; the spot-then-recognise figure as the seed defines it, spotting TPR (micro
   recall) x recognition accuracy on the correctly spotted intervals.
3. Spotting F1 on each synthetic long-video export (SAMM-LV, CAS(ME)^2, SMIC-E HS), read back by its reader.
4. Time per minute of video: spotting alone (frames rendered on demand, rendering time subtracted), and
   predict.py's whole path on a video file (decode, shots and face crop, spotting, recognition).
Nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def deployment_checkpoint(work: Path) -> Path:
    run_dir = work / "deploy"
    env = {**os.environ, "WANDB_MODE": "disabled", "MERLIN_CACHE_DIR": str(work / "cache")}
    command = [sys.executable, "train.py", "data.protocol=all", f"run_dir={run_dir}", "logger=none"]
    subprocess.run([*command, "progress=false"], cwd=ROOT, env=env, check=True, capture_output=True)
    return run_dir / "last.ckpt"


def render_seconds(video) -> float:
    start = time.perf_counter()
    for n in video.frames.frame_numbers:
        video.frames.read(n)
    return time.perf_counter() - start


def spot_and_recognise(videos, predictor) -> dict:
    from datamodules.samples import Sample
    from evaluation.spotting import spotting_scores
    from spotting import SpotterConfig, spot_video

    spotted, spot_s, render_s, minutes = [], 0.0, 0.0, 0.0
    for video in videos:
        render_s += render_seconds(video)
        start = time.perf_counter()
        result = spot_video(video, SpotterConfig())
        spot_s += time.perf_counter() - start
        minutes += video.num_frames / video.fps / 60
        spotted.append((video, result))
    scores = spotting_scores([(v.video_id, r.detections, v.intervals) for v, r in spotted])
    by_id = {v.video_id: v for v, _ in spotted}
    samples, truths = [], []
    for match in scores.matches:
        if match.truth.kind != "micro":
            continue
        video, d = by_id[match.video_id], match.detection
        samples.append(
            Sample(
                sample_id=f"{video.video_id}/{d.onset}",
                dataset=video.dataset,
                subject=video.subject,
                clip=str(d.onset),
                frames=video.frames,
                onset=d.onset,
                apex=d.apex,
                offset=d.offset,
                emotion=match.truth.emotion or "",
                fps=video.fps,
            )
        )
        truths.append(match.truth.emotion)
    start = time.perf_counter()
    probs = predictor.predict(samples) if samples else []
    recognise_s = time.perf_counter() - start
    predicted = [predictor.classes[int(p.argmax())] for p in probs]
    correct = sum(a == b for a, b in zip(predicted, truths, strict=True))
    micro = scores.per_kind["micro"]
    accuracy = correct / len(truths) if truths else 0.0
    return {
        "scores": scores.to_dict(),
        "micro_tpr": micro.recall,
        "recognised": f"{correct}/{len(truths)}",
        "recognition_accuracy": accuracy,
        "spot_then_recognise": micro.recall * accuracy,
        "spot_s_per_minute": spot_s / minutes,
        "render_s_per_minute": render_s / minutes,
        "recognise_s_per_interval": recognise_s / max(len(samples), 1),
        "minutes": minutes,
    }


def export_scores(work: Path) -> dict:
    from datamodules.readers.casme_sq import read_casme_sq
    from datamodules.readers.export.casme_sq import export_casme_sq
    from datamodules.readers.export.samm_long import export_samm_long
    from datamodules.readers.export.smic_e import export_smic_e
    from datamodules.readers.samm_long import read_samm_long
    from datamodules.readers.smic_e import read_smic_e
    from evaluation.spotting import spotting_scores
    from spotting import SpotterConfig, spot_video

    out = {}
    for name, export, read in (
        ("samm_long", export_samm_long, read_samm_long),
        ("casme_sq", export_casme_sq, read_casme_sq),
        ("smic_e_hs", export_smic_e, read_smic_e),
    ):
        manifest = export(work / name)
        videos = read(manifest["frames_root"]).videos
        results = [(v.video_id, spot_video(v, SpotterConfig()).detections, v.intervals) for v in videos]
        out[name] = spotting_scores(results).to_dict()
    return out


def predict_speed(work: Path, ckpt: Path, fps: float, seconds: float) -> float:
    """predict.py's path (predict_video) on a camera-sized video file: seconds per minute of video."""
    from datamodules.readers.export.long_common import write_video_file
    from datamodules.readers.synthetic_long import SyntheticLongConfig, synthetic_long_videos
    from inference.spot_recognise import predict_video

    cfg = SyntheticLongConfig(
        num_subjects=1, videos_per_subject=1, seconds=seconds, fps=fps, canvas=(480, 640)
    )
    video = write_video_file(synthetic_long_videos(cfg)[0], work / f"camera_{int(fps)}.avi", fourcc="MJPG")
    start = time.perf_counter()
    predict_video(video, ckpt, work / f"predict_{int(fps)}", progress=False)
    return (time.perf_counter() - start) / (seconds / 60)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--ckpt", type=Path)
    parser.add_argument("--fps", type=float, nargs="+", default=[30.0, 200.0])
    parser.add_argument("--subjects", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    from datamodules.readers.synthetic_long import SyntheticLongConfig, synthetic_long_videos
    from inference.predictor import Predictor

    work = Path(tempfile.mkdtemp(prefix="merlin-spot-recognise-"))
    ckpt = args.ckpt or deployment_checkpoint(work)
    predictor = Predictor.from_checkpoint(ckpt)
    report: dict = {"ckpt": str(ckpt), "by_fps": {}}
    for fps in args.fps:
        cfg = SyntheticLongConfig(
            num_subjects=args.subjects, videos_per_subject=2, seconds=args.seconds, fps=fps
        )
        result = spot_and_recognise(synthetic_long_videos(cfg), predictor)
        report["by_fps"][str(fps)] = result
        micro, macro = result["scores"]["micro"], result["scores"]["macro"]
        print(
            f"{fps:5.0f} fps, {result['minutes']:.1f} min of video: "
            f"micro F1 {micro['f1']:.3f} (P {micro['precision']:.3f} R {micro['recall']:.3f}), "
            f"macro F1 {macro['f1']:.3f} (P {macro['precision']:.3f} R {macro['recall']:.3f}); "
            f"recognised {result['recognised']} correctly spotted micro: STR = TPR "
            f"{result['micro_tpr']:.3f} x acc {result['recognition_accuracy']:.3f} = "
            f"{result['spot_then_recognise']:.3f}; spotting {result['spot_s_per_minute']:.1f} s per minute "
            f"of video (rendering it: {result['render_s_per_minute']:.1f} s)",
            flush=True,
        )
    report["exports"] = export_scores(work)
    for name, s in report["exports"].items():
        print(
            f"export {name:10s}: micro F1 {s['micro']['f1']:.3f}, macro F1 {s['macro']['f1']:.3f}", flush=True
        )
    report["predict_s_per_minute"] = {str(fps): predict_speed(work, ckpt, fps, 20.0) for fps in args.fps}
    for fps, s in report["predict_s_per_minute"].items():
        print(f"predict.py on a 640x480 video at {float(fps):.0f} fps: {s:.1f} s per minute of video")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
