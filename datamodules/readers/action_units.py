"""Action-unit cells as the databases write them -> a tuple of AU codes, laterality and intensity kept.

Seen in the wild (specs/datasets.md): CASME II `4+L10`, `R12`, `1+R2+25`, `?`, a bare int `12`;
SAMM `(R6 or R12)+R15`, `L12 or L14`, `10A/B`, `A/L12`, `R14A or 17A or 24A`, `ref(7B)`, `T23`, `4A/B`.
Alternatives ("or", "/") become one code joined by "|" (`R6|R12`), because the coder could not decide;
an intensity alternative such as `10A/B` stays one AU (`10A|10B`). Unknown cells raise ValueError.
"""

from __future__ import annotations

import math
import re

# Optional laterality/timing prefix (L, R, A asymmetric, T), AU number, optional intensity A-E.
_AU = re.compile(r"^(?P<prefix>[LRAT]?)(?P<number>\d{1,2})(?P<intensity>[A-E]?)$")
_REF = re.compile(r"^ref\(.+\)$", re.IGNORECASE)
_EMPTY = {"", "?", "-", "none", "null", "nan"}


def _split_top_level(text: str, sep: str) -> list[str]:
    parts, depth, current = [], 0, []
    for ch in text:
        depth += (ch == "(") - (ch == ")")
        if ch == sep and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    parts.append("".join(current))
    return parts


def _alternatives(token: str) -> str:
    token = token.strip()
    if _REF.match(token):
        return token
    if token.startswith("(") and token.endswith(")"):
        token = token[1:-1]
    options = [o for o in re.split(r"\s+or\s+|/", token) if o.strip()]
    options = [o.strip().replace(" ", "") for o in options]
    codes = []
    for i, option in enumerate(options):
        match = _AU.match(option)
        if match:
            codes.append(option)
            continue
        if re.fullmatch(r"[A-E]", option) and codes:  # `10A/B`: another intensity of the previous AU
            prev = _AU.match(codes[-1])
            codes.append(f"{prev['prefix']}{prev['number']}{option}")
            continue
        if re.fullmatch(r"[LRA]", option) and i + 1 < len(options):  # `A/L12`: a prefix of the next AU
            nxt = _AU.match(options[i + 1])
            if nxt:
                codes.append(f"{option}{nxt['number']}{nxt['intensity']}")
                continue
        raise ValueError(f"cannot parse action unit {option!r} in {token!r}")
    return "|".join(codes)


def parse_action_units(cell: object) -> tuple[str, ...]:
    """`"4+L10"` -> ("4", "L10"); `12` -> ("12",); `"?"` -> (); `"(R6 or R12)+R15"` -> ("R6|R12", "R15")."""
    if cell is None or (isinstance(cell, float) and math.isnan(cell)):
        return ()
    if isinstance(cell, bool):
        raise ValueError(f"cannot parse action units {cell!r}")
    if isinstance(cell, int | float):
        if float(cell) != int(cell):
            raise ValueError(f"cannot parse action units {cell!r}")
        return (str(int(cell)),)
    text = str(cell).strip()
    if text.lower() in _EMPTY:
        return ()
    return tuple(_alternatives(token) for token in _split_top_level(text, "+") if token.strip())
