"""The run directory: what an experiment is (run.json), which folds are finished, and resuming safely.

A run directory belongs to one experiment, identified by a fingerprint of every setting that can change a
prediction. Rerunning into it skips finished folds; running a *different* experiment into it is refused,
because pooling predictions of two experiments would report a number neither of them produced.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path

from datamodules.protocols import Fold
from utils.atomic import atomic_write_json


class RunDirError(RuntimeError):
    """The run directory cannot be used for this experiment."""


def fingerprint(settings: Mapping) -> str:
    """sha256 of the settings as canonical JSON (keys sorted)."""
    text = json.dumps(settings, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def _flatten(d: Mapping, prefix: str = "") -> dict[str, object]:
    out: dict[str, object] = {}
    for key, value in d.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(_flatten(value, name + "."))
        else:
            out[name] = value
    return out


def differing_settings(a: Mapping, b: Mapping) -> list[str]:
    """Dotted names of the settings whose values differ between two nested dicts."""
    fa, fb = _flatten(a), _flatten(b)
    return sorted(k for k in set(fa) | set(fb) if fa.get(k, "<absent>") != fb.get(k, "<absent>"))


def prepare_run_dir(
    run_dir: str | Path,
    experiment: str,
    settings: Mapping,
    classes: Sequence[str],
    folds: Sequence[Fold],
) -> Path:
    """Create `run_dir/run.json`, or check that an existing one describes this same experiment."""
    run_dir = Path(run_dir)
    info_path = run_dir / "run.json"
    info = {
        "fingerprint": fingerprint(settings),
        "experiment": experiment,
        "classes": list(classes),
        "folds": [f.as_dict() for f in folds],
        "settings": settings,
    }
    if info_path.exists():
        try:
            old = json.loads(info_path.read_text())
        except (OSError, json.JSONDecodeError) as err:
            raise RunDirError(f"{info_path} is unreadable ({err}); remove it or use another run_dir") from err
        if old.get("fingerprint") != info["fingerprint"]:
            changed = differing_settings(old.get("settings", {}), settings)
            shown = ", ".join(changed[:8]) + (" ..." if len(changed) > 8 else "")
            raise RunDirError(
                f"run directory {run_dir} holds predictions of a different experiment "
                f"({old.get('experiment')!r}; settings that differ: {shown or 'unknown'}). "
                "Use a new run_dir, or rerun with the settings it was made with."
            )
        if old.get("classes") != info["classes"] or old.get("folds") != info["folds"]:
            raise RunDirError(f"run directory {run_dir} was made with other classes or folds than this data")
        return run_dir
    atomic_write_json(info_path, info)
    return run_dir
