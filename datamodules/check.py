"""Report what a data config reads: `python -m datamodules.check data=NAME [overrides] [json=PATH]`.

Prints the samples kept after the protocol's label map, per class, per subject and per source database,
every note of the readers (label-file version detected, ...), and every repair and drop with its reason
and annotation row. With `json=PATH` the same report is written as JSON with the keys `samples`,
`subjects`, `per_class`, `per_subject`, `per_source`, `repairs`, `drops` (plus `notes`, `read`, `name`).

Every frame a feature could use (onset..offset of each clip the reader kept) is decoded, so a missing,
empty or corrupt frame file is a drop naming the file (with `data.strict=true`: an error) here rather
than a crash in `train.py`. No features are computed, so even a whole database takes seconds to a minute
or two. A reader error (missing root, column or sheet, unknown emotion word, ...) prints one line
`error: ...` and exits with status 2.
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from datamodules.protocols import LabelMap
from datamodules.readers.base import ReadResult, counts


def check_report(name: str, read: ReadResult, labels: LabelMap) -> dict:
    """Counts after the label map, and every repair and drop (label-map exclusions included)."""
    kept, y, excluded = labels.apply(read.samples)
    drops = [i.as_dict() for i in read.report.drops]
    drops += [{"sample_id": e.sample_id, "reason": e.reason, "source": ""} for e in excluded]
    return {
        "name": name,
        "label_map": labels.name,
        "read": len(read.samples) + len(read.report.drops),
        "samples": len(kept),
        "subjects": len({s.subject for s in kept}),
        "per_class": {c: sum(1 for k in y if labels.classes[k] == c) for c in labels.classes},
        "per_subject": counts(s.subject for s in kept),
        "per_source": counts(s.dataset for s in kept),
        "repairs": [i.as_dict() for i in read.report.repairs],
        "drops": drops,
        "notes": list(read.report.notes),
    }


def format_report(report: dict) -> str:
    def row(mapping: dict) -> str:
        return ", ".join(f"{k} {v}" for k, v in mapping.items())

    def issue(i: dict) -> str:
        return f"  {i['sample_id']}: {i['reason']}" + (f" ({i['source']})" if i.get("source") else "")

    lines = [
        f"data={report['name']} (label map {report['label_map']})",
        f"samples kept: {report['samples']} of {report['read']} annotated; subjects: {report['subjects']}",
        f"per source:   {row(report['per_source'])}",
        f"per class:    {row(report['per_class'])}",
        f"per subject:  {row(report['per_subject'])}",
    ]
    lines += [f"note: {n}" for n in report["notes"]]
    lines.append(f"repairs ({len(report['repairs'])}):")
    lines += [issue(i) for i in report["repairs"]] or ["  none"]
    lines.append(f"drops ({len(report['drops'])}):")
    lines += [issue(i) for i in report["drops"]] or ["  none"]
    return "\n".join(lines)


@hydra.main(config_path="../configs", config_name="check", version_base="1.3")
def main(cfg: DictConfig) -> None:
    from hydra.utils import instantiate

    from datamodules.frames_check import verify_frames
    from datamodules.protocols import label_map
    from utils.atomic import atomic_write_json
    from utils.cli import exit_on_user_error

    with exit_on_user_error():
        labels = label_map(cfg.data.label_map)
        read = instantiate(cfg.data.reader)
        # The synthetic database has no `strict` setting (nothing to repair): lenient.
        read = verify_frames(read, strict=bool(cfg.data.get("strict", False)), progress=cfg.progress)
        report = check_report(cfg.data.name, read, labels)
        print(format_report(report))
        if cfg.json:
            atomic_write_json(cfg.json, report)
            print(f"json: {cfg.json}")


if __name__ == "__main__":
    main()
