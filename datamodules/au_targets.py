"""Action-unit targets: a multi-hot vector per clip over a configured AU list, with a mask of what is known.

`Sample.action_units` holds the parsed AU codes of the annotation (datamodules/readers/action_units.py):
laterality and timing prefixes (`L10`, `R12`, `A4`, `T23`) and intensity letters (`10A`) are kept there;
for a target only the AU number counts, so `4+L10` -> AU4 and AU10 present. What the annotation does not
settle is masked, never taken as "absent":

- a clip without any AU code (`?`, a blank cell, a database without AU coding) is unknown for every AU;
- an alternative between AUs (`(R6 or R12)` -> `R6|R12`) leaves each of them unknown (one of the two was
  present, the coder could not say which) unless another code of the clip names it outright;
- an alternative of intensities of one AU (`10A/B` -> `10A|10B`) is that AU, present;
- a reference to another clip's coding (`ref(7B)`) leaves that AU unknown.

Every other AU of the list is known and absent. Losses weight each (clip, AU) entry by the mask.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

_NUMBER = re.compile(r"^[LRAT]?(\d{1,2})[A-E]?$")
_REF = re.compile(r"^ref\((.+)\)$", re.IGNORECASE)


def au_number(code: str) -> str:
    """`L10` -> `10`, `12C` -> `12`, `AU4` / `4` -> `4`. Raises ValueError for anything else."""
    text = str(code).strip()
    if text.upper().startswith("AU"):
        text = text[2:]
    match = _NUMBER.match(text)
    if match is None:
        raise ValueError(f"not an action unit code: {code!r}")
    return str(int(match.group(1)))


def au_list(names: Sequence[str | int]) -> tuple[str, ...]:
    """A configured AU list (`[1, 2, "AU4", "12"]`) as AU numbers, checked: no repeats."""
    numbers = tuple(au_number(str(n)) for n in names)
    if len(set(numbers)) != len(numbers):
        raise ValueError(f"the action unit list names an AU twice: {list(names)}")
    if not numbers:
        raise ValueError("the action unit list is empty")
    return numbers


def clip_aus(codes: Sequence[str]) -> tuple[set[str], set[str]] | None:
    """(AUs present, AUs unknown) of one clip's parsed codes; None when the clip has no AU coding at all."""
    if not codes:
        return None
    present: set[str] = set()
    unsure: set[str] = set()
    for code in codes:
        ref = _REF.match(code)
        if ref is not None:
            unsure.update(_numbers(ref.group(1)))
            continue
        numbers = _numbers(code)
        if len(numbers) == 1:
            present |= numbers
        else:
            unsure |= numbers
    return present, unsure - present


def _numbers(code: str) -> set[str]:
    out = set()
    for option in code.split("|"):
        try:
            out.add(au_number(option))
        except ValueError:
            continue  # an unparseable fragment settles nothing; it cannot make another AU known
    return out


def au_targets(
    action_units: Sequence[Sequence[str]], names: Sequence[str | int]
) -> tuple[np.ndarray, np.ndarray]:
    """(targets (N, A) float32 in {0, 1}, mask (N, A) bool: True where the target is known) for N clips'
    parsed AU codes over the AU list `names` (A entries, in that order)."""
    numbers = au_list(names)
    column = {n: i for i, n in enumerate(numbers)}
    targets = np.zeros((len(action_units), len(numbers)), dtype=np.float32)
    mask = np.ones((len(action_units), len(numbers)), dtype=bool)
    for row, codes in enumerate(action_units):
        parsed = clip_aus(codes)
        if parsed is None:
            mask[row] = False
            continue
        present, unsure = parsed
        for n in present & column.keys():
            targets[row, column[n]] = 1.0
        for n in unsure & column.keys():
            mask[row, column[n]] = False
    return targets, mask
