"""Pool the predictions of a run directory into MEGC metrics and rewrite its reports.

    python evaluate.py run_dir=runs/synthetic_ststnet/2026-11-24_12-00-00

Works on a partial run too (it names the folds still missing). Writes summary.json, results.md,
confusion_matrix.png and megc_log.txt into the run directory and prints the results table.
"""

from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig


@hydra.main(config_path="configs", config_name="evaluate", version_base="1.3")
def main(cfg: DictConfig) -> None:
    from evaluation.reports import format_table, write_reports

    try:
        summary = write_reports(cfg.run_dir)
    except (FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    print(format_table(summary))
    print(f"run dir: {cfg.run_dir}")


if __name__ == "__main__":
    main()
