"""RUN/report.html: one self-contained page of a run directory, to read in any browser, offline.

The page holds the run's pooled tables as `evaluation.reports` wrote them (results.md, summary.json: read,
not recomputed another way), the confusion matrix, per-source-database bars, per-subject scores and a
gallery of misclassified samples with their flow pictures. Everything is inline: CSS in a <style> element,
pictures as base64 data URIs, the system's own fonts; no script, and no address outside the page except
relative links from a seeds page to its seeds' pages.

Per-subject scores follow the MEGC rule restricted to one subject's predictions (its own confusion matrix;
a class the subject never shows is left out of its UF1/UAR), so they are comparable with the pooled row
but are not an average that the pooled row was made from.

This module builds pages from what it is given (summaries, predictions, pictures); finding the pictures
(the run's config, its feature cache, its database) is `evaluation.visualize`'s job.
"""

from __future__ import annotations

import base64
import html
import io
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from evaluation.metrics import confusion_matrix, megc_scores
from evaluation.predictions import EvaluationError, read_predictions, read_run_info

REPORT_NAME = "report.html"

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", Arial, sans-serif;
  margin: 0; background: #f6f7f9; color: #1d2330; line-height: 1.45; }
main { max-width: 1180px; margin: 0 auto; padding: 24px 28px 48px; background: #fff; min-height: 100vh; }
h1 { font-size: 1.6em; margin: 0 0 4px; }
h2 { font-size: 1.25em; margin: 32px 0 8px; padding-bottom: 4px; border-bottom: 2px solid #e3e6ec; }
h3 { font-size: 1.05em; margin: 20px 0 6px; }
p { margin: 6px 0; }
code { font-family: ui-monospace, "DejaVu Sans Mono", Menlo, monospace; font-size: 0.88em;
  background: #f0f2f5; padding: 1px 4px; border-radius: 3px; word-break: break-all; }
.meta { color: #556; font-size: 0.92em; }
.note { background: #fff6dd; border-left: 4px solid #e0a800; padding: 8px 12px; margin: 10px 0; }
.warn { background: #fdecea; border-left: 4px solid #d33; padding: 8px 12px; margin: 10px 0; }
table { border-collapse: collapse; margin: 8px 0 12px; font-size: 0.93em; }
th, td { padding: 4px 10px; border-bottom: 1px solid #e3e6ec; text-align: left; vertical-align: top; }
th { background: #f0f2f5; font-weight: 600; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
tbody tr:nth-child(even) { background: #fafbfc; }
.barcell { width: 100px; }
.figures { display: flex; flex-wrap: wrap; gap: 16px; align-items: flex-start; }
.figure { margin: 8px 0 16px; max-width: 100%; }
.figure img { max-width: 100%; max-height: 460px; height: auto; border: 1px solid #e3e6ec; }
.pbar { display: inline-block; width: 90px; height: 10px; background: #eef0f4; border-radius: 2px;
  vertical-align: middle; }
.pbar span { display: block; height: 100%; background: #4c78a8; border-radius: 2px; }
.gallery { display: grid; grid-template-columns: repeat(auto-fill, minmax(260px, 1fr)); gap: 14px; }
.tile { border: 1px solid #dde1e8; border-radius: 6px; padding: 10px; background: #fff; }
.tile .pics { display: flex; gap: 6px; margin-bottom: 6px; }
.tile .pics figure { margin: 0; text-align: center; font-size: 0.78em; color: #556; }
.tile .pics img { width: 112px; height: 112px; image-rendering: pixelated; border: 1px solid #dde1e8; }
.tile .id { font-weight: 600; font-size: 0.9em; word-break: break-all; }
.tile .why { color: #8a5a00; font-size: 0.85em; }
.tile table { font-size: 0.82em; margin: 4px 0 0; width: 100%; }
.tile td { padding: 1px 4px; }
.true { color: #1a7f37; font-weight: 600; }
.pred { color: #c62828; font-weight: 600; }
.legend { display: flex; align-items: center; gap: 12px; margin: 6px 0 12px; }
.legend img { width: 72px; height: 72px; }
"""


@dataclass(frozen=True)
class GalleryItem:
    """One misclassified sample of the gallery: who, what the network said, and its pictures.

    probabilities: {class: probability} from the fold file. pictures: (caption, PNG bytes) pairs, empty when
    none could be made; `why` then says why.
    """

    sample_id: str
    subject: str
    dataset: str
    true: str
    predicted: str
    probabilities: Mapping[str, float]
    pictures: Sequence[tuple[str, bytes]] = ()
    why: str | None = None


@dataclass(frozen=True)
class Gallery:
    """The gallery section: `items` (at most a limit of them), out of `total` misclassified samples.
    note: why the gallery has no (or only some) pictures, for the whole run; legend: the colour wheel PNG;
    provenance: where the pictures came from (the run's cache, or computed again)."""

    items: Sequence[GalleryItem]
    total: int
    note: str | None = None
    legend: bytes | None = None
    order: str = "most confident mistakes first"
    provenance: str | None = None


@dataclass
class RunReports:
    """What a run directory's page shows, read from its files (see `read_run_reports`)."""

    run_dir: Path
    info: dict
    summary: dict
    markdown: str
    confusion_png: bytes
    predictions: pd.DataFrame
    notes: list[str] = field(default_factory=list)


def _fresh(summary: Mapping, frame: pd.DataFrame) -> bool:
    """Whether summary.json pools exactly the fold files present now (a run still training adds folds)."""
    return summary.get("folds_done") == len(set(frame["fold"].tolist())) and summary.get("n") == len(frame)


def read_run_reports(run_dir: str | Path) -> RunReports:
    """The tables, confusion matrix and predictions of a (finished or partial) run directory.

    summary.json, results.md and confusion_matrix.png are read as `evaluation.reports` wrote them. When they
    are absent, or pool other folds than the fold files present now, the same functions of
    evaluation.reports pool the present folds in memory, and a note on the page says so (nothing is written
    into the run). Raises FileNotFoundError / EvaluationError naming the file for a directory that is not a
    run, an untrusted fold file, or a run with no finished fold.
    """
    from evaluation.reports import confusion_matrix_png, results_markdown, summarize

    run_dir = Path(run_dir)
    info = read_run_info(run_dir)
    frame = read_predictions(run_dir, info["classes"], info if "format" in info else None)
    notes: list[str] = []
    summary_path, markdown_path = run_dir / "summary.json", run_dir / "results.md"
    summary = None
    if summary_path.is_file():
        try:
            summary = json.loads(summary_path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise EvaluationError(
                f"{summary_path} is unreadable ({err}); python evaluate.py rewrites it"
            ) from err
    fresh = summary is not None and _fresh(summary, frame)
    if not fresh:
        summary = summarize(run_dir)
        why = (
            "is absent" if not summary_path.is_file() else "pools other folds than the fold files present now"
        )
        notes.append(
            f"summary.json {why}: these tables pool the {summary['folds_done']} finished folds with "
            f"evaluation.reports (python evaluate.py run_dir={run_dir} writes them into the run)."
        )
    if fresh and markdown_path.is_file():
        markdown = markdown_path.read_text(encoding="utf-8")
    else:
        markdown = results_markdown(summary)
        oracle = run_dir / "oracle.json"
        if oracle.is_file():
            from evaluation.oracle import oracle_markdown

            markdown += oracle_markdown(json.loads(oracle.read_text(encoding="utf-8")))
    picture = run_dir / "confusion_matrix.png"
    confusion = picture.read_bytes() if fresh and picture.is_file() else confusion_matrix_png(summary)
    if summary.get("verified") is False:
        notes.append("Made by an earlier MERLin: its fold files carry no records and were not verified.")
    return RunReports(run_dir, info, summary, markdown, confusion, frame, notes)


def misclassified(frame: pd.DataFrame, classes: Sequence[str]) -> pd.DataFrame:
    """The rows whose prediction is wrong, most confident mistakes first (the predicted class's probability,
    then sample_id), with a `confidence` column added."""
    wrong = frame[frame["y_true"] != frame["y_pred"]].copy()
    columns = [f"p_{c}" for c in classes]
    probabilities = wrong[columns].to_numpy(dtype=np.float64) if len(wrong) else np.zeros((0, len(classes)))
    wrong["confidence"] = probabilities[np.arange(len(wrong)), wrong["y_pred"].to_numpy()]
    return wrong.sort_values(["confidence", "sample_id"], ascending=[False, True], kind="stable")


def subject_scores(frame: pd.DataFrame, classes: Sequence[str]) -> list[dict]:
    """Per subject, in fold order: {subject, dataset, fold, n, correct, uf1, uar, accuracy, classes_absent},
    the MEGC scores of that subject's own predictions pooled (see the module docstring)."""
    rows = []
    for (fold, subject), part in frame.groupby(["fold", "subject"], sort=False):
        cm = confusion_matrix(part["y_true"].to_numpy(), part["y_pred"].to_numpy(), len(classes))
        scores = megc_scores(cm, classes)
        rows.append(
            {
                "subject": str(subject),
                "dataset": str(part["dataset"].iloc[0]),
                "fold": int(fold),
                "n": int(len(part)),
                "correct": int(np.trace(cm)),
                "uf1": scores["uf1"],
                "uar": scores["uar"],
                "accuracy": scores["accuracy"],
                "classes_absent": list(scores["classes_absent"]),
            }
        )
    return sorted(rows, key=lambda r: (r["fold"], r["subject"]))


def _png_uri(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def _img(data: bytes, alt: str, css: str = "") -> str:
    klass = f' class="{css}"' if css else ""
    return f'<img{klass} src="{_png_uri(data)}" alt="{html.escape(alt)}">'


def _inline(text: str) -> str:
    """Markdown inline code and bold of one escaped line (the subset results.md uses)."""
    parts = re.split(r"(`[^`]*`)", text)
    out = []
    for part in parts:
        if part.startswith("`") and part.endswith("`") and len(part) >= 2:
            out.append(f"<code>{html.escape(part[1:-1])}</code>")
        else:
            escaped = html.escape(part)
            out.append(re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", escaped))
    return "".join(out)


def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def _table(lines: Sequence[str]) -> str:
    header = _cells(lines[0])
    has_rule = len(lines) > 1 and all(re.fullmatch(r":?-{3,}:?", c) for c in _cells(lines[1]) if c)
    align = [c.endswith(":") for c in _cells(lines[1])] if has_rule else [False] * len(header)
    body = lines[2:] if has_rule else lines[1:]

    def cell(tag: str, text: str, index: int) -> str:
        klass = ' class="num"' if index < len(align) and align[index] else ""
        return f"<{tag}{klass}>{_inline(text)}</{tag}>"

    out = ["<table><thead><tr>", *(cell("th", c, i) for i, c in enumerate(header)), "</tr></thead><tbody>"]
    for line in body:
        out += ["<tr>", *(cell("td", c, i) for i, c in enumerate(_cells(line))), "</tr>"]
    out.append("</tbody></table>")
    return "".join(out)


def markdown_html(text: str, top_level: int = 2) -> str:
    """HTML of the Markdown that evaluation.reports, oracle and seeds write: `#` headings (`#` becomes
    <h`top_level`>), pipe tables, paragraphs with **bold** and `code`. Anything else is kept as text."""
    out: list[str] = []
    block: list[str] = []
    paragraph: list[str] = []

    def flush() -> None:
        if block:
            out.append(_table(block))
            block.clear()
        if paragraph:
            out.append(f"<p>{_inline(' '.join(paragraph))}</p>")
            paragraph.clear()

    for raw in text.splitlines():
        line = raw.strip()
        heading = re.match(r"^(#{1,6})\s+(.*)$", line)
        if line.startswith("|"):
            if paragraph:
                flush()
            block.append(line)
            continue
        flush()
        if heading:
            level = min(6, top_level + len(heading.group(1)) - 1)
            out.append(f"<h{level}>{_inline(heading.group(2))}</h{level}>")
        elif line:
            paragraph.append(line)
    flush()
    return "\n".join(out)


def _figure_png(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    return buffer.getvalue()


def score_bars_png(rows: Sequence[tuple[str, Mapping]], title: str) -> bytes:
    """Grouped bars of UF1, UAR and accuracy, one group per (name, {uf1, uar, accuracy[, n]}) row."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    metrics = (("uf1", "UF1", "#4c78a8"), ("uar", "UAR", "#f58518"), ("accuracy", "Accuracy", "#54a24b"))
    fig = Figure(figsize=(max(5.0, 1.6 + 1.5 * len(rows)), 3.4))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    width = 0.26
    x = np.arange(len(rows))
    for i, (key, label, colour) in enumerate(metrics):
        values = [float(r[key]) for _, r in rows]
        bars = ax.bar(x + (i - 1) * width, values, width, label=label, color=colour)
        ax.bar_label(bars, [f"{v:.2f}" for v in values], fontsize=7, padding=1)
    names = [f"{name}\nn={r['n']}" if "n" in r else name for name, r in rows]
    ax.set_xticks(x, names, fontsize=8)
    ax.set_ylim(0, 1.12)
    ax.set_ylabel("score")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, ncols=3, loc="upper right", frameon=False)
    ax.spines[["top", "right"]].set_visible(False)
    fig.tight_layout()
    return _figure_png(fig)


def _fraction_bar(value: float) -> str:
    """A bar of a value in [0, 1] filling its share of a fixed-width track."""
    if not np.isfinite(value):
        return ""
    return f"<span class='pbar'><span style='width: {max(0.0, min(1.0, value)) * 100:.1f}%'></span></span>"


def _subjects_section(rows: Sequence[Mapping]) -> str:
    out = [
        "<h2 id='subjects'>Per subject</h2>",
        "<p>Each subject's own predictions pooled by the MEGC rule (a class the subject never shows is left "
        "out of its UF1/UAR). A view of where the errors are, not the numbers the pooled row is made of.</p>",
        "<table><thead><tr><th>Subject</th><th>Database</th><th class='num'>n</th>"
        "<th class='num'>Correct</th>"
        "<th class='num'>UF1</th><th class='barcell'></th><th class='num'>UAR</th>"
        "<th class='num'>Accuracy</th><th>Classes absent</th></tr></thead><tbody>",
    ]
    for r in rows:
        out.append(
            f"<tr><td>{html.escape(r['subject'])}</td><td>{html.escape(r['dataset'])}</td>"
            f"<td class='num'>{r['n']}</td><td class='num'>{r['correct']}</td>"
            f"<td class='num'>{r['uf1']:.4f}</td><td class='barcell'>{_fraction_bar(r['uf1'])}</td>"
            f"<td class='num'>{r['uar']:.4f}</td><td class='num'>{r['accuracy']:.4f}</td>"
            f"<td>{html.escape(', '.join(r['classes_absent']))}</td></tr>"
        )
    out.append("</tbody></table>")
    return "\n".join(out)


def _tile(item: GalleryItem, classes: Sequence[str]) -> str:
    pictures = "".join(
        f"<figure>{_img(png, f'{caption} of {item.sample_id}')}"
        f"<figcaption>{html.escape(caption)}</figcaption></figure>"
        for caption, png in item.pictures
    )
    rows = []
    for name in classes:
        p = float(item.probabilities.get(name, float("nan")))
        klass = "pred" if name == item.predicted else "true" if name == item.true else ""
        mark = " (predicted)" if name == item.predicted else " (true)" if name == item.true else ""
        rows.append(
            f"<tr><td class='{klass}'>{html.escape(name)}{mark}</td><td class='num'>{p:.3f}</td>"
            f"<td>{_fraction_bar(p)}</td></tr>"
        )
    why = f"<div class='why'>{html.escape(item.why)}</div>" if item.why else ""
    return (
        f"<div class='tile' id='{html.escape(item.sample_id)}'>"
        f"<div class='id'>{html.escape(item.sample_id)}</div>"
        f"<div class='meta'>subject {html.escape(item.subject)} · {html.escape(item.dataset)}</div>"
        f"<div>true <span class='true'>{html.escape(item.true)}</span> → predicted "
        f"<span class='pred'>{html.escape(item.predicted)}</span></div>"
        f"{f'<div class=pics>{pictures}</div>' if pictures else ''}{why}"
        f"<table>{''.join(rows)}</table></div>"
    )


def _gallery_section(gallery: Gallery, classes: Sequence[str]) -> str:
    out = ["<h2 id='gallery'>Misclassified samples</h2>"]
    if gallery.total == 0:
        out.append("<p>Every pooled prediction is correct: nothing to show.</p>")
        return "\n".join(out)
    shown = len(gallery.items)
    count = f"all {gallery.total}" if shown == gallery.total else f"{shown} of {gallery.total}"
    out.append(f"<p>{count} misclassified samples, {html.escape(gallery.order)}.</p>")
    if gallery.note:
        out.append(f"<div class='note'>{html.escape(gallery.note)}</div>")
    if gallery.provenance:
        out.append(f"<p class='meta'>{html.escape(gallery.provenance)}</p>")
    if gallery.legend is not None:
        out.append(
            f"<div class='legend'>{_img(gallery.legend, 'flow colour wheel')}<div>Flow: colour = direction "
            "(red right, cyan left, violet up, yellow-green down), brightness = magnitude, each picture "
            "scaled to its own largest motion (written under it). Strain: black 0, yellow its own largest "
            "value. Both at the network's input size, one square per input pixel.</div></div>"
        )
    out.append("<div class='gallery'>")
    out += [_tile(item, classes) for item in gallery.items]
    out.append("</div>")
    return "\n".join(out)


def _page(title: str, body: Sequence[str]) -> str:
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head>\n<body><main>\n"
        + "\n".join(body)
        + "\n</main></body></html>\n"
    )


def _notes(notes: Sequence[str], css: str = "note") -> list[str]:
    return [f"<div class='{css}'>{html.escape(n)}</div>" for n in notes]


def run_page(reports: RunReports, gallery: Gallery) -> str:
    """The HTML page of one run directory: header, pooled tables, confusion matrix, per-source bars,
    per-subject scores, misclassified gallery."""
    summary, info = reports.summary, reports.info
    classes = list(info["classes"])
    experiment = summary.get("experiment") or info.get("experiment") or "MERLin run"
    done, total = summary["folds_done"], summary["folds_total"]
    body = [
        f"<h1>{html.escape(str(experiment))}</h1>",
        f"<p class='meta'>Run directory <code>{html.escape(str(reports.run_dir))}</code> · "
        f"{done} of {total} folds · {summary['n']} test predictions · classes "
        f"{html.escape(', '.join(classes))}</p>",
    ]
    if summary["folds_missing"]:
        missing = ", ".join(summary["folds_missing"][:12])
        more = f" (+{len(summary['folds_missing']) - 12} more)" if len(summary["folds_missing"]) > 12 else ""
        body += _notes([f"Partial run: {done}/{total} folds done; missing {missing}{more}."], "warn")
    body += _notes(reports.notes)
    body.append(
        "<p class='meta'><a href='#tables'>Tables</a> · "
        "<a href='#figures'>Confusion matrix and databases</a> · <a href='#subjects'>Per subject</a> · "
        "<a href='#gallery'>Misclassified</a></p>"
    )
    body.append("<section id='tables'>")
    body.append(markdown_html(reports.markdown))
    body.append("</section>")
    rows = [("Full", summary), *summary.get("per_source", {}).items()]
    body.append("<h2 id='figures'>Confusion matrix and per-database scores</h2><div class='figures'>")
    body.append(f"<div class='figure'>{_img(reports.confusion_png, 'pooled confusion matrix')}</div>")
    bars = score_bars_png(rows, "pooled, per source database")
    body.append(f"<div class='figure'>{_img(bars, 'UF1, UAR and accuracy per source database')}</div></div>")
    body.append(_subjects_section(subject_scores(reports.predictions, classes)))
    body.append(_gallery_section(gallery, classes))
    return _page(f"{experiment}: MERLin report", body)


def seeds_page(
    run_dir: str | Path,
    summary: Mapping | None,
    markdown: str,
    seeds: Sequence[tuple[int, str, str | None]],
    notes: Sequence[str] = (),
) -> str:
    """The HTML page of a seeds run directory: its tables over seeds (results.md), bars per seed, and a
    link to each seed's own page. seeds: (seed, state, relative link to its report.html or None)."""
    index_name = (summary or {}).get("experiment") or "seeds run"
    body = [
        f"<h1>{html.escape(str(index_name))}: seeds</h1>",
        f"<p class='meta'>Seeds run directory <code>{html.escape(str(run_dir))}</code></p>",
        *_notes(notes),
    ]
    if markdown:
        body.append(markdown_html(markdown))
    if summary is not None and summary.get("per_seed"):
        rows = [(f"seed {s}", r) for s, r in summary["per_seed"].items()]
        body.append("<h2>Per seed</h2>")
        body.append(
            f"<div class='figure'>{_img(score_bars_png(rows, 'pooled, per seed'), 'per-seed bars')}</div>"
        )
    body.append("<h2>Each seed's page</h2><ul>")
    for seed, state, link in seeds:
        target = f"<a href='{html.escape(link)}'>seed {seed}</a>" if link else f"seed {seed}"
        body.append(f"<li>{target}: {html.escape(state)}</li>")
    body.append("</ul>")
    return _page(f"{index_name}: MERLin seeds report", body)
