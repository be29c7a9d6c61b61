"""Experiment loggers: Weights & Biases (default), CSV, or none.

W&B runs online when credentials are configured and offline otherwise (a local run folder under the run
directory, syncable later with `wandb sync`); nothing here ever waits on the network without credentials.
One W&B run per fold, grouped under the run's name, and one summary run for the pooled metrics; every run is
finished in a `finally`, even when training fails.
"""

from __future__ import annotations

import logging
import netrc
import os
from collections.abc import Mapping
from pathlib import Path

log = logging.getLogger(__name__)

LOGGER_KINDS = ("wandb", "csv", "none")


def wandb_mode(requested: str = "auto") -> str:
    """'online' | 'offline' | 'disabled'. 'auto': WANDB_MODE if set, online with credentials, else offline."""
    if requested != "auto":
        if requested not in ("online", "offline", "disabled"):
            raise ValueError(f"unknown wandb mode {requested!r}; choose auto, online, offline or disabled")
        return requested
    env = os.environ.get("WANDB_MODE")
    if env:
        return {"dryrun": "offline", "run": "online"}.get(env, env)
    return "online" if _has_wandb_credentials() else "offline"


def _has_wandb_credentials() -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        auth = netrc.netrc().authenticators("api.wandb.ai")
    except (FileNotFoundError, netrc.NetrcParseError, OSError):
        auth = None
    return bool(auth and auth[2])


def make_loggers(
    kind: str,
    run_dir: str | Path,
    run_name: str,
    fold_name: str,
    config: Mapping | None = None,
    project: str = "merlin",
    entity: str | None = None,
    mode: str = "auto",
    group: str | None = None,
) -> list:
    """Lightning loggers for one fold. `kind` is one of wandb, csv, none. group: the W&B group (default
    run_name; the seeds of a seeds run share one)."""
    if kind not in LOGGER_KINDS:
        raise ValueError(f"unknown logger {kind!r}; choose from {LOGGER_KINDS}")
    run_dir = Path(run_dir)
    if kind == "none":
        return []
    if kind == "csv":
        from lightning.pytorch.loggers import CSVLogger

        return [CSVLogger(save_dir=run_dir / "logs", name=fold_name.replace("/", "_"), version="")]
    from lightning.pytorch.loggers import WandbLogger

    wandb_dir = run_dir / "wandb"
    wandb_dir.mkdir(parents=True, exist_ok=True)
    logger = WandbLogger(
        project=project,
        entity=entity,
        group=group or run_name,
        name=f"{run_name}/{fold_name}",
        job_type="fold",
        save_dir=str(run_dir),
        dir=str(run_dir),
        mode=wandb_mode(mode),
        config=dict(config or {}),
        settings=_quiet_wandb_settings(),
    )
    # Lightning 2.6 always passes `anonymous=None`, which wandb 0.31 answers with a deprecation warning on
    # every run; the key has no effect, so leave it out.
    logger._wandb_init.pop("anonymous", None)
    return [logger]


def _quiet_wandb_settings():
    import wandb

    # No console capture, no git/code/system probing: a fold is short and these slow each run's start.
    return wandb.Settings(
        console="off",
        silent=True,
        save_code=False,
        disable_git=True,
        x_disable_stats=True,
        x_disable_meta=True,
    )


def close_loggers(loggers: list, failed: bool = False) -> None:
    """Finish every logger's run (W&B: mark it failed when training raised)."""
    for logger in loggers:
        experiment = getattr(logger, "_experiment", None)
        if experiment is not None and hasattr(experiment, "finish"):
            try:
                experiment.finish(exit_code=1 if failed else 0)
            except Exception as err:  # a logger that cannot close must not hide the training error
                log.warning("could not close %s: %s", type(logger).__name__, err)
        elif hasattr(logger, "finalize"):
            logger.finalize("failed" if failed else "success")


def log_summary(
    kind: str,
    run_dir: str | Path,
    run_name: str,
    summary: Mapping,
    confusion_png: str | Path | None,
    config: Mapping | None = None,
    project: str = "merlin",
    entity: str | None = None,
    mode: str = "auto",
    group: str | None = None,
) -> None:
    """Pooled metrics, per-source rows and the confusion matrix as one more run in the W&B group."""
    if kind != "wandb":
        return
    import wandb

    run = wandb.init(
        project=project,
        entity=entity,
        group=group or run_name,
        name=f"{run_name}/pooled",
        job_type="summary",
        dir=str(run_dir),
        mode=wandb_mode(mode),
        config=dict(config or {}),
        settings=_quiet_wandb_settings(),
        reinit="finish_previous",
    )
    try:
        metrics = {f"pooled/{k}": summary[k] for k in ("uf1", "uar", "accuracy", "n") if k in summary}
        for source, row in summary.get("per_source", {}).items():
            metrics.update({f"pooled/{source}/{k}": v for k, v in row.items()})
        run.summary.update(metrics)
        run.log(metrics)
        if confusion_png is not None and Path(confusion_png).exists():
            run.log({"pooled/confusion_matrix": wandb.Image(str(confusion_png))})
    finally:
        run.finish()
