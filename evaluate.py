"""Pool the predictions of a run directory into MEGC metrics and rewrite its reports.

    python evaluate.py run_dir=runs/synthetic_ststnet/2026-11-24_12-00-00-3f9a

Works on a partial run too (it names the folds still missing), and on a seeds run directory (train.py
seeds=[...]: each seed's reports, then mean +/- std over the seeds). On a spotting run (spot.py: its
spotting.json) it rescores RUN_DIR/detections.csv against the ground truth with the MEGC spotting metric
and rewrites spotting.json and results.md. Every fold file is checked against its
record and run.json first; one that was changed, truncated or left by another experiment is an error naming
it. Writes summary.json, results.md, confusion_matrix.png and megc_log.txt into the run directory and
prints the results table. Exit status 2, with one `error:` line, for anything wrong with the run directory.
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig, OmegaConf


@hydra.main(config_path="configs", config_name="evaluate", version_base="1.3")
def main(cfg: DictConfig) -> None:
    from utils.cli import USAGE_ERROR, exit_on_user_error, report_error

    if OmegaConf.is_missing(cfg, "run_dir"):
        report_error(
            "say which run to evaluate: python evaluate.py run_dir=PATH "
            "(the directory train.py printed on its last line, `run dir: PATH`)"
        )
        raise SystemExit(USAGE_ERROR)
    with exit_on_user_error():
        from evaluation.seeds import is_seeds_dir
        from evaluation.spotting import evaluate_spotting_run, is_spotting_run

        if is_spotting_run(cfg.run_dir):
            table = evaluate_spotting_run(cfg.run_dir)
        else:
            table = evaluate_seeds(cfg.run_dir) if is_seeds_dir(cfg.run_dir) else evaluate_run(cfg.run_dir)
    print(table)
    print(f"run dir: {cfg.run_dir}")


def evaluate_run(run_dir: str) -> str:
    from evaluation.reports import format_table, write_reports

    return format_table(write_reports(run_dir))


def evaluate_seeds(run_dir: str) -> str:
    """A seeds run directory (train.py seeds=[...]): each seed's reports, then mean +/- std over seeds."""
    from evaluation.predictions import EvaluationError
    from evaluation.reports import write_reports
    from evaluation.seeds import format_seeds_table, read_seed_index, seed_dir, write_seed_reports

    for seed in read_seed_index(run_dir)["seeds"]:
        folder = seed_dir(run_dir, int(seed))
        if (folder / "run.json").is_file():
            try:
                write_reports(folder)
            except EvaluationError as err:
                if "no finished folds" not in str(err):
                    raise
    return format_seeds_table(write_seed_reports(run_dir))


if __name__ == "__main__":
    main()
