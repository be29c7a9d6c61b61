"""Pool the predictions of a run directory into MEGC metrics and rewrite its reports.

    python evaluate.py run_dir=runs/synthetic_ststnet/2026-11-24_12-00-00-3f9a

Works on a partial run too (it names the folds still missing). Every fold file is checked against its
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
        from evaluation.reports import format_table, write_reports

        summary = write_reports(cfg.run_dir)
    print(format_table(summary))
    print(f"run dir: {cfg.run_dir}")


if __name__ == "__main__":
    main()
