"""seeds=[...]: one complete run directory per seed, and mean +/- std over the seeds at the top."""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path

import pytest
from tiny import compose_train

from evaluation.predictions import EvaluationError
from evaluation.seeds import _spread, claim_seeds_dir, summarize_seeds


def _cfg(tmp_path: Path, run_dir: Path, extra: list[str] = ()):
    return compose_train(tmp_path, run_dir, extra)


def test_spread_is_the_mean_and_sample_standard_deviation():
    spread = _spread([0.5, 0.7, 0.9])
    assert math.isclose(spread["mean"], 0.7) and math.isclose(spread["std"], 0.2) and spread["n_seeds"] == 3
    assert _spread([0.4])["std"] is None  # one seed has no spread, not a spread of 0


def test_seeds_run_reports_each_seed_and_their_spread(tmp_path, capsys):
    import train
    from training.rundir import fingerprint

    parent = tmp_path / "seeds"
    train.run_seeds(_cfg(tmp_path, parent, ["seeds=[0,1]"]), train.RunLog())
    summary = json.loads((parent / "summary.json").read_text())
    per_seed = [json.loads((parent / f"seed_{s}" / "summary.json").read_text()) for s in (0, 1)]
    assert summary["seeds_complete"] == [0, 1] and summary["seeds_incomplete"] == {}
    for metric in ("uf1", "uar", "accuracy"):
        values = [s[metric] for s in per_seed]
        assert math.isclose(summary[metric]["mean"], statistics.mean(values))
        assert math.isclose(summary[metric]["std"], statistics.stdev(values))
        assert [summary["per_seed"][str(s)][metric] for s in (0, 1)] == values
    assert math.isclose(
        summary["per_source"]["synthetic"]["uf1"]["mean"], statistics.mean(s["uf1"] for s in per_seed)
    )
    assert "±" in (parent / "results.md").read_text() and "mean ± std over 2 seeds" in capsys.readouterr().out
    # Each seed is exactly the experiment a plain run with that seed is: same fingerprint, so same numbers.
    runs = [json.loads((parent / f"seed_{s}" / "run.json").read_text()) for s in (0, 1)]
    for s, run in enumerate(runs):
        assert run["settings"]["seed"] == s and "seeds" not in run["settings"]
        plain = train.result_settings(_cfg(tmp_path, tmp_path / "plain", [f"seed={s}"]))
        assert run["fingerprint"] == fingerprint(plain)
    assert len({r["fingerprint"] for r in runs}) == 2


def test_a_rerun_resumes_every_seed_and_more_seeds_extend_it(tmp_path, caplog):
    import logging

    import train

    parent = tmp_path / "seeds"
    train.run_seeds(_cfg(tmp_path, parent, ["seeds=[0,1]", "fold=0"]), train.RunLog())
    # fold=0 alone: each seed is partial, so no mean yet, and the top summary names why.
    assert not (parent / "summary.json").exists()
    with pytest.raises(EvaluationError, match="no seed run has finished every fold"):
        summarize_seeds(parent)
    with caplog.at_level(logging.INFO):
        train.run_seeds(_cfg(tmp_path, parent, ["seeds=[0,1,2]"]), train.RunLog())
    summary = json.loads((parent / "summary.json").read_text())
    assert summary["seeds_complete"] == [0, 1, 2]
    assert json.loads((parent / "seeds.json").read_text())["seeds"] == [0, 1, 2]
    assert caplog.text.count("1 of 3 folds already finished") == 2  # seeds 0 and 1 kept their fold 0


def test_a_single_run_directory_or_another_experiments_seeds_are_refused(tmp_path):
    import train
    from training.settings import SettingError

    single = tmp_path / "single"
    single.mkdir()
    (single / "run.json").write_text("{}")
    with pytest.raises(SettingError, match="holds a single run"):
        train.run_seeds(_cfg(tmp_path, single, ["seeds=[0]"]), train.RunLog())
    other = tmp_path / "other"
    claim_seeds_dir(other, "off_apexnet", [0])
    with pytest.raises(EvaluationError, match="holds the seeds of experiment 'off_apexnet'"):
        claim_seeds_dir(other, "synthetic_ststnet", [0])
    with pytest.raises(SettingError, match="holds the seeds of experiment 'off_apexnet'"):
        train.run_seeds(_cfg(tmp_path, other, ["seeds=[0]"]), train.RunLog())
    assert not (other / "seed_0").exists()  # refused before any seed's directory was made


@pytest.mark.parametrize("seeds", ["[]", "[0,0]", "[0.5]", "'x'"])
def test_bad_seeds_are_refused_naming_the_key(tmp_path, seeds):
    from omegaconf import OmegaConf

    from training.settings import SettingError, check_settings

    cfg = _cfg(tmp_path, tmp_path / "r", [f"seeds={seeds}"])
    with pytest.raises(SettingError, match=r"^seeds="):
        check_settings(OmegaConf.to_container(cfg, resolve=True))


def test_evaluate_pools_a_seeds_directory(tmp_path):
    import evaluate
    import train

    parent = tmp_path / "seeds"
    train.run_seeds(_cfg(tmp_path, parent, ["seeds=[3,4]"]), train.RunLog())
    (parent / "summary.json").unlink()
    (parent / "seed_3" / "summary.json").unlink()
    table = evaluate.evaluate_seeds(str(parent))
    assert "mean ± std over 2 seeds" in table and (parent / "seed_3" / "summary.json").is_file()
    assert json.loads((parent / "summary.json").read_text())["seeds_complete"] == [3, 4]
