"""Pictures people would rather look at: one sample's network input as PNGs, or a run's report.html.

    python -m evaluation.visualize data=synthetic sample=synthetic/s01/s01_clip01
    python -m evaluation.visualize data=casme2 features=apex_flow sample=casme2/sub01/EP02_01f out=pics
    python -m evaluation.visualize run_dir=runs/synthetic_ststnet/2026-11-24_12-00-00-3f9a
    python -m evaluation.visualize run_dir=RUN sample=ID     # that sample as the run's config makes it

A sample gets onset.png, apex.png, flow.png (colour wheel), strain.png, difference.png (apex - onset,
contrast-stretched) and panel.png (all of them side by side), made by the training pipeline itself
(evaluation.pictures). A run directory gets RUN/report.html (evaluation.report_html), a seeds run directory
one page per seed and one over the seeds. The gallery of misclassified samples takes each flow from the run's
feature cache (the keys run.json records, so the very arrays the network read) and computes the rest with
the run's own config (RUN/.hydra/config.yaml: its reader and feature spec); where neither is available here
the page still renders and the gallery says why. Exit status 2, with one `error:` line, for a path that is
not a run directory, an unknown sample or a database that cannot be read.
"""

from __future__ import annotations

import difflib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger("merlin.visualize")

PICTURES_DIR = Path("outputs") / "pictures"
TILE_PICTURES = ("flow", "strain")


def _user_message(err: BaseException) -> str:
    """One line for a gallery note. The page renders whatever the run's database or cache does on this
    machine, so a failure that is not a user error (a bug) is logged with its traceback, not raised."""
    from utils.cli import user_message

    message = user_message(err)
    if message is None:
        log.warning("making a picture failed", exc_info=err)
        return f"{type(err).__name__}: {err}"
    return message


def feature_specs(features: DictConfig) -> dict:
    """{input name: FeatureSpec} of a features config: one spec (input "x") or `inputs:` of named specs."""
    from hydra.utils import instantiate

    if "inputs" in features:
        return {str(name): instantiate(node) for name, node in features.inputs.items()}
    return {"x": instantiate(features)}


def model_inputs(cfg: DictConfig) -> list[str]:
    """The named inputs a run's model reads (`model.inputs`), [] when the config does not say."""
    return [str(n) for n in (OmegaConf.select(cfg, "model.inputs") or [])]


def pictured_input(specs: Mapping, model_inputs: Sequence[str] = (), wanted: str | None = None) -> str:
    """The input whose spec is pictured: `wanted`, else the first (in the model's order, then the config's)
    that has u and v channels, else the first the model reads."""
    if wanted is not None:
        if wanted not in specs:
            raise ValueError(f"input={wanted!r}: the features config has the inputs {sorted(specs)}")
        return wanted
    order = [n for n in model_inputs if n in specs] + [n for n in specs if n not in model_inputs]
    with_flow = [n for n in order if {"u", "v"} <= set(specs[n].channels)]
    return (with_flow or order)[0]


def find_sample(samples: Sequence, sample_id: str, where: str):
    """The sample named `sample_id`, or a ValueError naming the closest ids."""
    by_id = {s.sample_id: s for s in samples}
    if sample_id in by_id:
        return by_id[sample_id]
    close = difflib.get_close_matches(sample_id, list(by_id), n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(close)}?" if close else f" (e.g. {', '.join(list(by_id)[:3])})"
    raise ValueError(f"no sample {sample_id!r} in {where} ({len(by_id)} samples){hint}")


def sample_out_dir(sample_id: str, out: str | None, run_dir: str | None = None) -> Path:
    """Where a sample's PNGs go: `out`, else RUN/pictures/<sample_id> or outputs/pictures/<sample_id>."""
    if out is not None:
        return Path(out)
    return (Path(run_dir) / "pictures" if run_dir else PICTURES_DIR) / sample_id


def write_pictures(sample, spec, out_dir: Path, title: str = "") -> dict[str, Path]:
    from evaluation.pictures import sample_maps, write_sample_pictures

    return write_sample_pictures(sample_maps(sample, spec), out_dir, title or sample.sample_id)


# --- a run directory ---------------------------------------------------------------------------------------


def check_run_path(run_dir: str | Path) -> Path:
    """`run_dir` as a Path, or a one-line error for anything that is not a run or seeds run directory."""
    from evaluation.seeds import SEEDS_NAME

    path = Path(run_dir)
    if not path.exists():
        raise FileNotFoundError(f"run_dir {path} does not exist")
    if not path.is_dir():
        raise NotADirectoryError(f"run_dir {path} is a file, not a run directory")
    if (path / "run.json").is_file() or (path / SEEDS_NAME).is_file():
        return path
    runs = sorted(p.parent.name for p in path.glob("*/run.json"))
    shown = ", ".join(runs[:4]) + (" ..." if len(runs) > 4 else "")
    hint = f"; it holds the run directories {shown}: pass one of them" if runs else ""
    raise FileNotFoundError(
        f"{path} is not a MERLin run directory: it holds neither run.json (a run) nor {SEEDS_NAME} "
        f"(a seeds run){hint}"
    )


def run_config(run_dir: Path, info: Mapping) -> tuple[DictConfig | None, str | None]:
    """The run's composed config (RUN/.hydra/config.yaml), else its settings in run.json (which lack only
    the volatile settings such as cache_dir), with a note; (None, why) when neither holds data+features."""
    path = run_dir / ".hydra" / "config.yaml"
    if path.is_file():
        try:
            return OmegaConf.load(path), None
        except Exception as err:  # a YAML error of any kind: the page still renders without pictures
            return None, f"{path} cannot be read ({' '.join(str(err).split())})"
    settings = info.get("settings") or {}
    if "data" in settings and "features" in settings:
        return OmegaConf.create(settings), f"{path} is absent: the database and features come from run.json"
    return None, f"{path} is absent and run.json holds no settings to rebuild the samples from"


def _feature_keys(info: Mapping, name: str) -> dict[str, str]:
    """{sample_id: the feature cache key of input `name`} from run.json's data records."""
    keys: dict[str, str] = {}
    for record in (info.get("data") or {}).get("samples") or []:
        key = str(record.get("features") or "")
        if ";" in key or "=" in key:
            parts = dict(part.split("=", 1) for part in key.split(";") if "=" in part)
            key = parts.get(name, "")
        if key:
            keys[str(record["sample_id"])] = key
    return keys


class GalleryPictures:
    """Flow pictures of a run's samples: from its feature cache where the run's arrays are still there,
    else computed from its database with its spec; each failure kept as a one-line reason."""

    def __init__(self, run_dir: Path, info: Mapping, cache_dir: str | None = None) -> None:
        self.info = info
        self.records = {str(r["sample_id"]): r for r in (info.get("data") or {}).get("samples") or []}
        self.cfg, self.config_note = run_config(run_dir, info)
        self.spec = None
        self.spec_note: str | None = None
        self.cache = None
        self.keys: dict[str, str] = {}
        self._samples: dict | None = None
        self.data_note: str | None = None
        self.from_cache = 0  # pictures made from the run's cached arrays
        self.computed = 0  # pictures computed again from the database
        if self.cfg is None:
            return
        try:
            specs = feature_specs(self.cfg.features)
            self.name = pictured_input(specs, model_inputs(self.cfg))
            self.spec = specs[self.name]
        except Exception as err:
            self.spec_note = f"the run's feature spec cannot be rebuilt here: {_user_message(err)}"
            return
        self.keys = _feature_keys(info, self.name)
        self.cache = self._open_cache(cache_dir)

    def _open_cache(self, override: str | None):
        from preprocessing.cache import FeatureCache

        root = override
        if root is None:
            try:
                root = OmegaConf.select(self.cfg, "cache_dir")
            except Exception:  # an interpolation this machine cannot resolve: no cache, compute instead
                root = None
        if root is None or not Path(str(root)).is_dir():
            return None
        return FeatureCache(str(root))

    def _sample(self, sample_id: str):
        if self._samples is None:
            from hydra.utils import instantiate

            self._samples = {}
            try:
                read = instantiate(self.cfg.data.reader)
                self._samples = {s.sample_id: s for s in read.samples}
            except Exception as err:
                self.data_note = f"the run's data cannot be read on this machine: {_user_message(err)}"
        return self._samples.get(sample_id)

    def _from_cache(self, sample_id: str):
        from evaluation.pictures import flow_maps

        key = self.keys.get(sample_id)
        if self.cache is None or key is None:
            return None
        try:
            array = self.cache.load(key)
        except OSError:
            return None
        if array is None or tuple(array.shape) != tuple(self.spec.shape):
            return None
        return flow_maps(array, self.spec.channels)

    def pictures(self, sample_id: str) -> tuple[list[tuple[str, bytes]], str | None]:
        """(caption, PNG) pairs of one sample's flow and strain at the network's input size, and why any
        are missing (None when both are there)."""
        from evaluation.pictures import flow_scale, flow_to_rgb, png_bytes, robust_scale, strain_to_rgb

        if self.cfg is None:
            return [], self.config_note
        if self.spec is None:
            return [], self.spec_note
        maps = self._from_cache(sample_id)
        why = None
        if maps is None:
            from evaluation.pictures import network_flow

            sample = self._sample(sample_id)
            if sample is None:
                return [], self.data_note or f"{sample_id} is not in the run's database as read here"
            record = self.records.get(sample_id, {})
            if record.get("frames") and list(record["frames"]) != [sample.onset, sample.apex, sample.offset]:
                why = (
                    f"onset/apex/offset here {[sample.onset, sample.apex, sample.offset]} differ from the "
                    f"run's {record['frames']}: pictured from today's annotation"
                )
            try:
                maps = network_flow(sample, self.spec)
            except Exception as err:
                return [], f"no pictures: {_user_message(err)}"
            self.computed += 1
        else:
            self.from_cache += 1
        u, v, strain = maps
        out = [(f"flow, max {flow_scale(u, v):.2g} px", png_bytes(flow_to_rgb(u, v)))]
        if strain is not None:
            out.append((f"strain, max {robust_scale(strain):.2g}", png_bytes(strain_to_rgb(strain))))
        return out, why


def run_gallery(reports, limit: int, cache_dir: str | None = None):
    """The misclassified gallery of a run's page: at most `limit` samples, with their pictures."""
    from evaluation.pictures import color_wheel, png_bytes
    from evaluation.report_html import Gallery, GalleryItem, misclassified

    classes = list(reports.info["classes"])
    wrong = misclassified(reports.predictions, classes)
    source = GalleryPictures(reports.run_dir, reports.info, cache_dir)
    items = []
    for row in wrong.head(max(0, int(limit))).itertuples(index=False):
        row = row._asdict()
        pictures, why = source.pictures(row["sample_id"])
        items.append(
            GalleryItem(
                sample_id=row["sample_id"],
                subject=row["subject"],
                dataset=row["dataset"],
                true=classes[row["y_true"]],
                predicted=classes[row["y_pred"]],
                probabilities={c: float(row[f"p_{c}"]) for c in classes},
                pictures=pictures,
                why=why,
            )
        )
    pictured = sum(bool(item.pictures) for item in items)
    note = None
    if items and not pictured:
        reasons = {item.why for item in items if item.why}
        note = "No pictures: " + ("; ".join(sorted(reasons)[:3]) or "none could be made")
        if len(reasons) == 1:  # said once above the gallery, not again on every tile
            items = [replace(item, why=None) for item in items]
        if source.cache is None and source.cfg is not None and source.spec is not None:
            note += " (and the run's feature cache is not on this machine: cache_dir=PATH points to one)"
    elif pictured < len(items):
        note = f"{len(items) - pictured} of {len(items)} samples have no pictures (the reason is on each)."
    if source.config_note and source.cfg is not None:
        note = f"{note} {source.config_note}." if note else f"{source.config_note}."
    legend = png_bytes(color_wheel(72)) if pictured else None
    provenance = None
    if pictured:
        provenance = (
            f"Pictures of input {source.name!r}: {source.from_cache} from the run's feature cache (the "
            f"arrays the network read), {source.computed} computed again with the run's reader and spec."
        )
        if not {"u", "v"} <= set(source.spec.channels):
            provenance += (
                f" That input holds no flow (channels {', '.join(source.spec.channels)}): the flow shown is "
                "computed with its frames, crop and size, for reference."
            )
    return Gallery(items=items, total=len(wrong), note=note, legend=legend, provenance=provenance)


def write_run_report(run_dir: str | Path, gallery_limit: int = 60, cache_dir: str | None = None) -> Path:
    """RUN/report.html of a run directory (RUN/report.html of each seed too, for a seeds run directory);
    returns the path of the top page."""
    from evaluation.report_html import REPORT_NAME, read_run_reports, run_page
    from evaluation.seeds import is_seeds_dir
    from utils.atomic import atomic_write_text

    run_dir = check_run_path(run_dir)
    if is_seeds_dir(run_dir):
        return write_seeds_report(run_dir, gallery_limit, cache_dir)
    reports = read_run_reports(run_dir)
    page = run_page(reports, run_gallery(reports, gallery_limit, cache_dir))
    path = run_dir / REPORT_NAME
    atomic_write_text(path, page, what="run report page")
    return path


def write_seeds_report(run_dir: Path, gallery_limit: int = 60, cache_dir: str | None = None) -> Path:
    """Each seed's page, then the page over the seeds (its results.md, bars per seed, links)."""
    import json

    from evaluation.predictions import EvaluationError
    from evaluation.report_html import REPORT_NAME, seeds_page
    from evaluation.seeds import read_seed_index, seed_dir, seeds_markdown, summarize_seeds
    from utils.atomic import atomic_write_text

    index = read_seed_index(run_dir)
    notes: list[str] = []
    try:
        summary = summarize_seeds(run_dir)
    except EvaluationError as err:
        summary = None
        notes.append(str(err))
    markdown = ""
    if summary is not None:
        path = run_dir / "results.md"
        written = run_dir / "summary.json"
        same = written.is_file() and json.loads(written.read_text(encoding="utf-8")) == summary
        markdown = path.read_text(encoding="utf-8") if same and path.is_file() else seeds_markdown(summary)
        if not same:
            notes.append(
                f"summary.json is absent or older than the seeds present now: these tables pool them with "
                f"evaluation.seeds (python evaluate.py run_dir={run_dir} writes them into the run)."
            )
    incomplete = (summary or {}).get("seeds_incomplete", {})
    seeds = []
    for seed in [int(s) for s in index["seeds"]]:
        folder = seed_dir(run_dir, seed)
        state = incomplete.get(str(seed), "complete" if summary is not None else "")
        link = None
        if (folder / "run.json").is_file():
            try:
                write_run_report(folder, gallery_limit, cache_dir)
                link = f"{folder.name}/{REPORT_NAME}"
            except EvaluationError as err:
                state = state or str(err)
        else:
            state = "not started"
        seeds.append((seed, state or "partial", link))
    page = seeds_page(run_dir, summary or {"experiment": index.get("experiment")}, markdown, seeds, notes)
    path = run_dir / REPORT_NAME
    atomic_write_text(path, page, what="seeds report page")
    return path


def run_sample_pictures(
    run_dir: str | Path, sample_id: str, out: str | None = None, wanted: str | None = None
) -> dict[str, Path]:
    """A sample's PNGs as a run made its input: the run's reader and feature spec, with its prediction
    (true, predicted, probability) in the panel's title when the run has tested it."""
    from hydra.utils import instantiate

    from evaluation.predictions import read_predictions, read_run_info

    run_dir = check_run_path(run_dir)
    info = read_run_info(run_dir)
    cfg, note = run_config(run_dir, info)
    if cfg is None:
        raise FileNotFoundError(f"{run_dir}: {note}")
    specs = feature_specs(cfg.features)
    spec = specs[pictured_input(specs, model_inputs(cfg), wanted)]
    sample = find_sample(instantiate(cfg.data.reader).samples, sample_id, f"the database of {run_dir}")
    title = sample_id
    frame = read_predictions(run_dir, info["classes"], info if "format" in info else None)
    row = frame[frame["sample_id"] == sample_id]
    if len(row):
        r = row.iloc[0]
        classes = info["classes"]
        p = float(r[f"p_{classes[r['y_pred']]}"])
        title += f"   true {classes[r['y_true']]}, predicted {classes[r['y_pred']]} (p = {p:.2f})"
    return write_pictures(sample, spec, sample_out_dir(sample_id, out, str(run_dir)), title)


def data_sample_pictures(cfg: DictConfig, sample_id: str, out: str | None = None) -> dict[str, Path]:
    """A sample's PNGs under the composed data= and features= configs."""
    from hydra.utils import instantiate

    specs = feature_specs(cfg.features)
    spec = specs[pictured_input(specs, wanted=cfg.get("input"))]
    sample = find_sample(instantiate(cfg.data.reader).samples, sample_id, f"data={cfg.data.name}")
    title = f"{sample_id}   ({sample.emotion})" if getattr(sample, "emotion", None) else sample_id
    return write_pictures(sample, spec, sample_out_dir(sample_id, out), title)


@hydra.main(config_path="../configs", config_name="visualize", version_base="1.3")
def main(cfg: DictConfig) -> None:
    from utils.cli import USAGE_ERROR, exit_on_user_error, report_error

    if cfg.sample is None and cfg.run_dir is None:
        report_error(
            "say what to picture: python -m evaluation.visualize data=NAME sample=SAMPLE_ID (one sample's "
            "pictures) or run_dir=PATH (the run's report.html)"
        )
        raise SystemExit(USAGE_ERROR)
    with exit_on_user_error():
        if cfg.sample is not None:
            sample = str(cfg.sample)
            if cfg.run_dir is not None:
                written = run_sample_pictures(cfg.run_dir, sample, cfg.out, cfg.input)
            else:
                written = data_sample_pictures(cfg, sample, cfg.out)
            for name, path in written.items():
                print(f"{name}: {path}")
        else:
            path = write_run_report(cfg.run_dir, int(cfg.gallery_limit), cfg.cache_dir)
            print(f"report: {path}")


if __name__ == "__main__":
    main()
