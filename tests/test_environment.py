"""The installed stack: contrib TV-L1 survived the albumentations install; nothing needs a network."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import cv2

ROOT = Path(__file__).resolve().parents[1]

# Runs a script with every non-loopback connection refused: any attempt to reach the network fails loudly.
NO_NETWORK = textwrap.dedent(
    """
    import runpy, socket, sys
    real_connect = socket.socket.connect
    def guarded(self, address):
        host = address[0] if isinstance(address, tuple) else address
        if self.family in (socket.AF_INET, socket.AF_INET6) and host not in ("127.0.0.1", "::1", "localhost"):
            raise SystemExit(f"network access attempted: {address}")
        return real_connect(self, address)
    socket.socket.connect = guarded
    sys.argv = sys.argv[1:]
    runpy.run_path(sys.argv[0], run_name="__main__")
    """
)


def test_opencv_contrib_tvl1_and_haar_cascades():
    assert cv2.__version__.startswith("4."), cv2.__version__
    tvl1 = cv2.optflow.DualTVL1OpticalFlow_create()
    assert tvl1.getTau() == 0.25
    cascade = Path(cv2.data.haarcascades) / "haarcascade_frontalface_default.xml"
    assert cascade.is_file()
    assert not cv2.CascadeClassifier(str(cascade)).empty()


def test_albumentations_imports_without_network(tmp_path):
    script = tmp_path / "imp.py"
    script.write_text("import albumentations\nprint(albumentations.__version__)\n")
    env = {**os.environ, "NO_ALBUMENTATIONS_UPDATE": "1"}
    out = subprocess.run(
        [sys.executable, "-c", NO_NETWORK, str(script)], env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "2.0.8"


def test_default_logger_runs_offline_without_credentials_and_without_network(tmp_path):
    run_dir = tmp_path / "run"
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    env.update(HOME=str(tmp_path), WANDB_CONFIG_DIR=str(tmp_path / "wandb-config"))  # no netrc, no login
    args = [
        "train.py",
        "data.reader.num_subjects=2",
        "data.reader.clips_per_subject=2",
        "data.reader.height=64",
        "data.reader.width=56",
        "trainer.max_epochs=1",
        "progress=false",
        f"run_dir={run_dir}",
        f"cache_dir={tmp_path / 'cache'}",
    ]
    out = subprocess.run(
        [sys.executable, "-c", NO_NETWORK, *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip().splitlines()[-1] == f"run dir: {run_dir}"
    offline_runs = sorted(p.name for p in (run_dir / "wandb").glob("offline-run-*"))
    assert len(offline_runs) == 3  # one per fold, plus the pooled summary run
