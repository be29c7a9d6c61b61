"""Checks of a Hydra multirun of train.py before any job is launched (a SLURM array costs a queue wait).

    python train.py -m hydra/launcher=slurm fold='range(0,68)' run_dir=runs/X

Every job of a sweep composes its own config, so the default run_dir (a timestamp and a random suffix) would
give each fold a directory of its own. A sweep over folds therefore needs an explicit run_dir, which all its
jobs share; and a sweep over anything else besides (seed=0,1) needs a run_dir that tells those jobs apart
(run_dir='runs/X/seed_${seed}'), since one run directory holds one experiment. `check_sweep` says so in one
line (exit status 2), before anything is submitted. The submitit launcher configs (configs/hydra/launcher/)
register `RunDirCheck` as a Hydra callback.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.experimental.callback import Callback
from omegaconf import DictConfig


class SweepError(ValueError):
    """A multirun whose jobs could not share (or tell apart) their run directories."""


def check_sweep(task_overrides: Sequence[str]) -> None:
    """Raise SweepError for a fold sweep without an explicit run_dir, or for an explicit literal run_dir
    shared by jobs of different settings (another key swept besides fold)."""
    parsed = OverridesParser.create().parse_overrides(list(task_overrides))
    swept = {
        o.key_or_group: o for o in parsed if o.is_sweep_override() and not o.key_or_group.startswith("hydra")
    }
    run_dir = next((o for o in parsed if o.key_or_group == "run_dir"), None)
    if run_dir is None:
        if "fold" in swept:
            raise SweepError(
                f"a sweep over folds ({swept['fold'].input_line}) needs a run_dir its jobs share, e.g. "
                "run_dir=runs/NAME: the default holds a timestamp and a random suffix, so each job would "
                "make its own"
            )
        return
    others = [key for key in swept if key not in ("fold", "run_dir")]
    text = run_dir.input_line.split("=", 1)[1] if run_dir.input_line else ""
    if others and "run_dir" not in swept and "${" not in text:
        example = f"run_dir='{text.rstrip('/')}/{others[0].replace('.', '_')}_${{{others[0]}}}'"
        raise SweepError(
            f"run_dir={text} is shared by every job of this sweep, but {', '.join(others)} takes several "
            f"values: one run directory holds one experiment. Put the swept setting in it, e.g. {example}"
        )


class RunDirCheck(Callback):
    """Hydra callback: `check_sweep` on the sweep's overrides when a multirun starts."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        try:
            check_sweep(list(config.hydra.overrides.task))
        except SweepError as err:
            print(f"error: {err}", file=sys.stderr, flush=True)
            sys.exit(2)
