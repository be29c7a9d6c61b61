"""The tiny synthetic experiment the in-process end-to-end tests train, and the pieces they share.

A module of its own (not a fixture file) so that test files import the one definition: `from tiny import
TINY, compose_train, tiny_features`. tests/ is on sys.path when pytest runs them.
"""

from __future__ import annotations

from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
# Three subjects of three clips at 64x56, two epochs, no logger: seconds per run.
TINY = [
    "data.reader.num_subjects=3",
    "data.reader.clips_per_subject=3",
    "data.reader.height=64",
    "data.reader.width=56",
    "trainer.max_epochs=2",
    "logger=none",
    "progress=false",
]


def shared_cache(tmp_path: Path) -> Path:
    """A feature cache shared by this session's tests (pytest's base temp folder): the TINY database's
    features are computed once, not once per test."""
    return tmp_path.parent / "shared-feature-cache"


def compose_train(tmp_path: Path, run_dir: Path, overrides: list[str] = ()):
    """train.yaml composed with TINY, run_dir, the shared cache and `overrides` (later ones win)."""
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base="1.3"):
        return compose(
            "train",
            overrides=[*TINY, f"run_dir={run_dir}", f"cache_dir={shared_cache(tmp_path)}", *overrides],
        )


def tiny_features(n_subjects: int = 3, per_subject: int = 3, au: bool = False):
    """A FeatureSet of random (N, 3, 4, 4) inputs over subjects d/s0, d/s1, ... and classes a, b, c."""
    from datamodules.datamodule import FeatureSet

    n = n_subjects * per_subject
    extra = {}
    if au:
        extra = {
            "au": torch.ones(n, 2),
            "au_mask": torch.ones(n, 2, dtype=torch.bool),
            "au_names": ("AU1", "AU2"),
        }
    return FeatureSet(
        x=torch.rand(n, 3, 4, 4, generator=torch.Generator().manual_seed(0)),
        y=torch.arange(n) % 3,
        sample_ids=[f"c{i}" for i in range(n)],
        subjects=[f"d/s{i // per_subject}" for i in range(n)],
        datasets=["d"] * n,
        clips=[f"c{i}" for i in range(n)],
        classes=("a", "b", "c"),
        channels=("u", "v", "s"),
        **extra,
    )
