"""The MEGC2019 composite database evaluation (CDE): SMIC-HS + CASME II + SAMM, 3 classes, 68-subject LOSO.

The official list (442 clips: SMIC 164, CASME II 145, SAMM 133; negative 250, positive 109, surprise 83;
16 + 24 + 28 subjects) is reproduced by the rule of specs/datasets.md section 5, applied to the 2014 CASME II
labels:
- emotion words -> classes by the `megc2019` label map (datamodules/protocols.py): CASME II others, sadness
  and fear and SAMM `Other` are excluded there, every SMIC-HS clip is kept;
- CASME II clips without an annotated apex (`/`: sub04/EP12_01f, sub09/EP02_02f) are excluded here;
- CASME II clips whose apex is the onset frame (sub05/EP09_05f) are excluded here.
Clips whose annotated frames are not all on disk stay in: the CASME II reader repairs them (logged).
"""

from __future__ import annotations

from pathlib import Path

from datamodules.readers.base import ReadReport, ReadResult

# The 2019 CASME II file relabels three sadness clips as surprise; they then pass the composite rule.
CASME2_2019_NOTE = (
    "the MEGC2019 composite is defined on the 2014 CASME II labels; with the 2019 file the clips "
    "sub24/EP07_01, sub24/EP07_04f and sub24/EP10_03 (sadness -> surprise) join it: CASME II 148 "
    "(surprise 28 instead of 25), 445 clips in all instead of the official 442"
)


def casme2_label_version(report: ReadReport) -> str | None:
    """'2014' or '2019' from the CASME II reader's note ("CASME II labels: 2014 ..."), else None."""
    for note in report.notes:
        if note.startswith("CASME II labels: 2014"):
            return "2014"
        if note.startswith("CASME II labels: 2019"):
            return "2019"
    return None


def read_megc2019(
    casme2_root: str | Path | None = None,
    casme2_annotation: str | Path | None = None,
    samm_root: str | Path | None = None,
    samm_annotation: str | Path | None = None,
    smic_root: str | Path | None = None,
    casme2_version: str = "auto",
    strict: bool = False,
) -> ReadResult:
    """Read the three databases and apply the composite's clip-level exclusions (the label map: the rest)."""
    from datamodules.readers.casme2 import read_casme2
    from datamodules.readers.samm import read_samm
    from datamodules.readers.smic import read_smic

    report = ReadReport("megc2019", strict=strict)
    casme2 = read_casme2(casme2_root, casme2_annotation, version=casme2_version, strict=strict)
    samm = read_samm(samm_root, samm_annotation, strict=strict)
    smic = read_smic(smic_root, subset="HS", strict=strict)
    for part in (casme2, samm, smic):
        report.extend(part.report)
    if casme2_label_version(casme2.report) == "2019":
        report.note(CASME2_2019_NOTE)

    kept_casme2 = []
    for sample in casme2.samples:
        if sample.apex is None:
            report.exclude(
                sample.sample_id, "MEGC2019 composite: CASME II clip without an apex ('/')", sample.source
            )
        elif sample.apex == sample.onset:
            report.exclude(
                sample.sample_id, "MEGC2019 composite: CASME II clip whose apex is its onset", sample.source
            )
        else:
            kept_casme2.append(sample)
    return ReadResult(smic.samples + kept_casme2 + samm.samples, report)
