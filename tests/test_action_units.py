"""AU cells as CASME II and SAMM write them."""

from __future__ import annotations

import pytest

from datamodules.readers.action_units import parse_action_units


@pytest.mark.parametrize(
    ("cell", "expected"),
    [
        ("4+L10", ("4", "L10")),
        ("R12", ("R12",)),
        ("1+R2+25", ("1", "R2", "25")),
        (12, ("12",)),
        (12.0, ("12",)),
        ("?", ()),
        (None, ()),
        (float("nan"), ()),
        ("(R6 or R12)+R15", ("R6|R12", "R15")),
        ("(R6 or R12) + R15", ("R6|R12", "R15")),
        ("L12 or L14", ("L12|L14",)),
        ("10A/B", ("10A|10B",)),
        ("A/L12", ("A12|L12",)),
        ("R14A or 17A or 24A", ("R14A|17A|24A",)),
        ("4A/B", ("4A|4B",)),
        ("ref(7B)", ("ref(7B)",)),
        ("T23", ("T23",)),
        ("1+2+5+26", ("1", "2", "5", "26")),
    ],
)
def test_cells(cell, expected):
    assert parse_action_units(cell) == expected


@pytest.mark.parametrize("cell", ["smile", "4+X", 12.5, "1++"])
def test_unparseable(cell):
    if cell == "1++":
        assert parse_action_units(cell) == ("1",)  # empty tokens are ignored, not invented
        return
    with pytest.raises(ValueError, match="cannot parse"):
        parse_action_units(cell)
