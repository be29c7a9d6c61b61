"""AU targets from the annotations' own AU cells: what is present, absent, and unknown (masked)."""

from __future__ import annotations

import numpy as np
import pytest

from datamodules.au_targets import au_list, au_number, au_targets
from datamodules.readers.action_units import parse_action_units

AUS = ["1", "2", "4", "6", "7", "10", "12", "14", "15"]


def _row(cell):
    targets, mask = au_targets([parse_action_units(cell)], AUS)
    present = [a for a, t in zip(AUS, targets[0], strict=True) if t]
    unknown = [a for a, m in zip(AUS, mask[0], strict=True) if not m]
    return present, unknown


@pytest.mark.parametrize(
    ("cell", "present", "unknown"),
    [
        ("4+L10", ["4", "10"], []),  # CASME II: laterality is not another AU
        ("R12", ["12"], []),
        ("1+R2+25", ["1", "2"], []),  # AU25 is outside the list: ignored
        ("(R6 or R12)+R15", ["15"], ["6", "12"]),  # SAMM 007_6_1: one of AU6/AU12, unknown which
        ("10A/B", ["10"], []),  # SAMM 011_6_1: an intensity alternative is still AU10
        ("A/L12", ["12"], []),  # SAMM 014_6_3
        ("R14A or 17A or 24A", [], ["14"]),  # SAMM 035_7_2 (AU17 and AU24 are outside the list)
        ("ref(7B)", [], ["7"]),
        ("12+(R6 or R12)", ["12"], ["6"]),  # AU12 named outright elsewhere in the clip: known
        (12, ["12"], []),  # a bare number cell
    ],
)
def test_spec_examples(cell, present, unknown):
    assert _row(cell) == (present, unknown)


@pytest.mark.parametrize("cell", ["?", None, "", float("nan")])
def test_unknown_aus_mask_the_whole_clip_never_no_au(cell):
    targets, mask = au_targets([parse_action_units(cell), ("4",)], AUS)
    assert not mask[0].any() and targets[0].sum() == 0
    assert mask[1].all() and targets[1].tolist() == [0, 0, 1, 0, 0, 0, 0, 0, 0]


def test_au_list_accepts_the_usual_spellings_and_refuses_repeats():
    assert au_list([1, "AU2", "au12", "04"]) == ("1", "2", "12", "4")
    assert au_number("L10") == "10" and au_number("12C") == "12"
    with pytest.raises(ValueError, match="twice"):
        au_list(["4", "AU4"])
    with pytest.raises(ValueError, match="not an action unit code"):
        au_list(["brow"])


def test_shapes_and_dtypes():
    targets, mask = au_targets([("1", "2"), ()], AUS)
    assert targets.shape == mask.shape == (2, len(AUS))
    assert targets.dtype == np.float32 and mask.dtype == bool


def test_au_target_of_every_synthetic_clip_is_what_the_generator_planted():
    from pathlib import Path

    from omegaconf import OmegaConf

    from datamodules.readers.synthetic import SyntheticConfig, planted_action_units, synthetic_samples

    preset = Path(__file__).resolve().parents[1] / "configs" / "data" / "synthetic_casme2like.yaml"
    reader = OmegaConf.to_container(OmegaConf.load(preset).reader)
    reader.pop("_target_")
    cfg = SyntheticConfig(**{**reader, "num_subjects": 3, "clips_per_subject": 10})
    samples = synthetic_samples(cfg)
    names = ["1", "2", "4", "5", "6", "7", "9", "10", "12", "14", "15", "17", "25", "26"]
    targets, mask = au_targets([s.action_units for s in samples], names)
    assert mask.all()  # every synthetic clip is fully coded
    for s, row in zip(samples, targets, strict=True):
        planted = planted_action_units(cfg, s.frames.subject_index, s.frames.clip_index)
        moved = {au_number(code) for code, share in planted.items() if np.abs(share).max() > 0}
        assert {n for n, t in zip(names, row, strict=True) if t} == moved, s.sample_id
