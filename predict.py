"""A trained model on your own video or folder of frames: spot the expressions, then recognise each one.

    python predict.py input=my_video.mp4 ckpt=runs/X/last.ckpt out=runs/predict/my_video
    python predict.py input=frames/ fps=200 ckpt=... onset=120 apex=131     # one known clip, no spotting

Writes OUT/timeline.json and OUT/timeline.csv (onset, apex, offset in frames from 0 and seconds, micro or
macro, class, probabilities, spotting score) and OUT/motion.png (the motion signal with the intervals in
their class's colour), and prints `timeline: OUT/timeline.json` last. Anything wrong with the input or the
checkpoint is one `error:` line naming the file, exit status 2.
"""

from __future__ import annotations

from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf


@hydra.main(config_path="configs", config_name="predict", version_base="1.3")
def main(cfg: DictConfig) -> None:
    from utils.cli import USAGE_ERROR, exit_on_user_error, report_error

    for key in ("input", "ckpt"):
        if OmegaConf.is_missing(cfg, key):
            report_error(
                f"give {key}=...: python predict.py input=VIDEO_OR_FRAME_FOLDER ckpt=RUN_DIR/last.ckpt "
                "(train one with: python train.py data.protocol=all)"
            )
            raise SystemExit(USAGE_ERROR)
    with exit_on_user_error():
        from inference.spot_recognise import KnownClip, predict_video
        from spotting import SpotterConfig

        clip = None
        if cfg.onset is not None:
            clip = KnownClip(int(cfg.onset), cfg.apex, cfg.offset)
        elif cfg.apex is not None or cfg.offset is not None:
            raise ValueError("apex=/offset= describe a known clip: give its onset=... too")
        out = Path(cfg.out) if cfg.out else Path("runs") / "predict" / (Path(cfg.input).stem or "video")
        spotter = SpotterConfig(**OmegaConf.to_container(cfg.spotter, resolve=True))
        timeline = predict_video(
            cfg.input, cfg.ckpt, out, fps=cfg.fps, clip=clip, spotter=spotter, progress=bool(cfg.progress)
        )
    print(f"motion plot: {timeline.parent / 'motion.png'}")
    print(f"timeline: {timeline}")


if __name__ == "__main__":
    main()
