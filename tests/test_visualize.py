"""evaluation.visualize: a sample's pictures and a run's report.html (colour wheel, sizes, a self-contained
page of a tiny finished run, partial / seeds / data-elsewhere runs, errors for a path that is not a run)."""

from __future__ import annotations

import colorsys
import html
import json
import math
import re
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf
from tiny import compose_train

from evaluation.pictures import (
    color_wheel,
    difference_to_rgb,
    flow_to_rgb,
    readable_factor,
    sample_maps,
    write_sample_pictures,
)
from evaluation.visualize import check_run_path, write_run_report
from utils.cli import exit_on_user_error

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")


def _hsv(rgb) -> tuple[float, float, float]:
    """(hue in degrees, saturation, value) of one RGB uint8 pixel."""
    h, s, v = colorsys.rgb_to_hsv(*(float(c) / 255 for c in rgb))
    return h * 360, s, v


def _angle_gap(a: float, b: float) -> float:
    return abs((a - b + 180) % 360 - 180)


@pytest.mark.parametrize(
    ("u", "v", "hue"),
    [(1, 0, 0), (0, 1, 90), (-1, 0, 180), (0, -1, 270), (1, 1, 45), (-0.3, 0.3, 135)],
)
def test_uniform_flow_has_the_hue_of_its_direction_and_the_value_of_its_magnitude(u, v, hue):
    # Image coordinates: +u rightwards, +v downwards; hue = atan2(v, u), value = |flow| / scale.
    magnitude = math.hypot(u, v)
    rgb = flow_to_rgb(np.full((5, 7), u, np.float32), np.full((5, 7), v, np.float32), 2 * magnitude)
    assert rgb.shape == (5, 7, 3) and rgb.dtype == np.uint8
    assert (rgb == rgb[0, 0]).all()  # a uniform flow is one colour
    h, s, value = _hsv(rgb[0, 0])
    assert _angle_gap(h, hue) < 1.5 and s > 0.99 and abs(value - 0.5) < 1 / 255 + 1e-6


def test_still_pixels_are_black_and_the_wheel_agrees_with_the_flow_colours():
    assert (flow_to_rgb(np.zeros((3, 3)), np.zeros((3, 3)), 1.0) == 0).all()
    wheel = color_wheel(65)
    assert wheel.shape == (65, 65, 3)
    centre = 32
    assert (wheel[centre, centre] == 0).all()  # no motion: black
    assert (wheel[0, 0] == 255).all()  # outside the disc: white background
    # The wheel's pixel to the right of its centre is a rightward flow's colour, below it a downward one's.
    right = flow_to_rgb(np.ones((1, 1)), np.zeros((1, 1)), 1.0)[0, 0]
    down = flow_to_rgb(np.zeros((1, 1)), np.ones((1, 1)), 1.0)[0, 0]
    assert _angle_gap(_hsv(wheel[centre, 60])[0], _hsv(right)[0]) < 2
    assert _angle_gap(_hsv(wheel[60, centre])[0], _hsv(down)[0]) < 2


def test_difference_is_mid_grey_where_nothing_changed_and_stretched_where_it_did():
    onset = np.full((4, 4), 0.5, np.float32)
    apex = onset.copy()
    apex[0, 0] += 0.01  # a faint brightening the stretch must make visible
    grey = difference_to_rgb(onset, apex)[..., 0]
    assert grey[1, 1] in (127, 128) and grey[0, 0] > 200


def test_sample_pictures_show_the_network_input_at_a_readable_size(tmp_path):
    from datamodules.readers.synthetic import read_synthetic
    from preprocessing.features import FeatureSpec, compute_features

    sample = read_synthetic(num_subjects=1, clips_per_subject=1, height=64, width=56).samples[0]
    spec = FeatureSpec()  # STSTNet's input: onset->apex u, v, strain at 28x28
    maps = sample_maps(sample, spec)
    # The maps are the network's channels, not a look-alike.
    np.testing.assert_array_equal(np.stack([maps.u, maps.v, maps.strain]), compute_features(sample, spec))
    assert maps.onset.shape == (64, 56) and maps.pair_frames == (sample.onset, sample.apex)

    written = write_sample_pictures(maps, tmp_path / "pics")
    assert sorted(written) == ["apex", "difference", "flow", "onset", "panel", "strain"]
    images = {name: cv2.imread(str(path)) for name, path in written.items()}
    frame_factor = readable_factor(64, 56)  # 5: the shorter side reaches 256 px
    assert images["onset"].shape == (64 * frame_factor, 56 * frame_factor, 3)
    assert images["apex"].shape == images["onset"].shape
    map_factor = readable_factor(28, 28)  # 10
    flow = cv2.cvtColor(images["flow"], cv2.COLOR_BGR2RGB)
    side = 28 * map_factor
    assert flow.shape[0] == side and flow.shape[1] > side  # the legend strip is on the right
    # Its left square is the flow, each network pixel a map_factor x map_factor block.
    expected = np.repeat(np.repeat(flow_to_rgb(maps.u, maps.v), map_factor, 0), map_factor, 1)
    np.testing.assert_array_equal(flow[:, :side], expected)
    assert images["strain"].shape[0] == side
    assert images["panel"].shape[1] > 1000  # one readable row of six pictures


# --- a tiny finished run ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    """The TINY experiment trained once for this module, with the .hydra/config.yaml that train.py writes
    from the command line (an in-process run has no Hydra app to write it)."""
    import train

    base = tmp_path_factory.mktemp("visualize")
    run_dir = base / "run"
    cfg = compose_train(base, run_dir)
    train.run(cfg)
    (run_dir / ".hydra").mkdir(exist_ok=True)
    (run_dir / ".hydra" / "config.yaml").write_text(OmegaConf.to_yaml(cfg))
    return run_dir


def _predictions(run_dir: Path) -> pd.DataFrame:
    return pd.concat(
        [pd.read_csv(p) for p in sorted((run_dir / "predictions").glob("fold_*.csv"))], ignore_index=True
    )


def _copy(run_dir: Path, to: Path) -> Path:
    shutil.copytree(run_dir, to)
    (to / "report.html").unlink(missing_ok=True)
    return to


def _tiles(page: str) -> list[str]:
    return re.findall(r"<div class='tile'.*?</table></div>", page, flags=re.S)


def test_report_page_is_self_contained_with_every_table_and_each_mistake(tiny_run):
    path = write_run_report(tiny_run)
    assert path == tiny_run / "report.html"
    page = path.read_text(encoding="utf-8")
    # Self-contained: nothing fetched from a network, no script, every picture inline.
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", page, flags=re.I)
    assert "<script" not in page.lower() and "@import" not in page and "url(" not in page
    sources = re.findall(r"""<img[^>]*\ssrc=["']([^"']*)""", page)
    assert sources and all(s.startswith("data:image/png;base64,") for s in sources)
    # The pooled tables are results.md's, as evaluate.py wrote them.
    summary = json.loads((tiny_run / "summary.json").read_text())
    for heading in ("Per class (Full)", "Confusion matrix", "Per subject", "Misclassified samples"):
        assert heading in page, heading
    assert f'<td>Full</td><td class="num">{summary["uf1"]:.4f}</td>' in page
    frame = _predictions(tiny_run)
    for subject in frame["subject"].unique():
        assert f"<td>{subject}</td>" in page
    wrong = frame[frame["y_true"] != frame["y_pred"]]
    assert len(wrong) > 0  # two epochs on nine clips leave mistakes to show
    tiles = _tiles(page)
    assert len(tiles) == len(wrong)
    for sample_id in wrong["sample_id"]:
        assert f"id='{sample_id}'" in page
    # Each mistake's flow and strain came from the run's feature cache, as the network read them.
    assert f"{len(wrong)} from the run's feature cache" in html.unescape(page)
    assert all(tile.count("<img") == 2 for tile in tiles)
    # A correctly predicted sample is not in the gallery.
    right = frame[frame["y_true"] == frame["y_pred"]]["sample_id"]
    assert not any(f"id='{sample_id}'" in page for sample_id in right)


def test_partial_run_seeds_run_and_data_elsewhere_still_render(tiny_run, tmp_path):
    # A partial run (its last fold not in yet): the page says so and pools the folds present now.
    partial = _copy(tiny_run, tmp_path / "partial")
    for suffix in ("csv", "json"):
        (partial / "predictions" / f"fold_002.{suffix}").unlink()
    # Its feature cache is elsewhere (an empty one here), its database is here: the pictures are computed
    # again with the run's reader and spec, and are the very pictures the cached arrays give.
    empty_cache = tmp_path / "empty-cache"
    empty_cache.mkdir()
    page = write_run_report(partial, gallery_limit=2, cache_dir=str(empty_cache)).read_text()
    assert "Partial run: 2/3 folds done" in page and "pools other folds" in page
    shown = _predictions(partial)
    tiles = _tiles(page)
    assert len(tiles) == min(2, int((shown["y_true"] != shown["y_pred"]).sum())) > 0
    assert re.search(
        f"0 from the run's feature cache [^,]*, {len(tiles)} computed again", html.unescape(page)
    )
    assert "synthetic/s03" not in page.split("id='subjects'")[1].split("id='gallery'")[0]
    cached = {
        re.search(r"id='([^']+)'", t).group(1): t for t in _tiles(write_run_report(tiny_run).read_text())
    }
    for tile in tiles:
        pictures = re.findall(r"src=\"([^\"]+)\"", tile)
        assert len(pictures) == 2
        assert pictures == re.findall(r"src=\"([^\"]+)\"", cached[re.search(r"id='([^']+)'", tile).group(1)])

    # The database is not on this machine and the cache is elsewhere: the gallery says why, no pictures.
    elsewhere = _copy(tiny_run, tmp_path / "elsewhere")
    config = OmegaConf.load(elsewhere / ".hydra" / "config.yaml")
    config.data.reader = {"_target_": "datamodules.readers.casme2.read_casme2", "root": "/nonexistent/CASME2"}
    config.cache_dir = str(tmp_path / "no-cache")
    (elsewhere / ".hydra" / "config.yaml").write_text(OmegaConf.to_yaml(config))
    page = write_run_report(elsewhere).read_text()
    assert "cannot be read on this machine" in page and "/nonexistent/CASME2" in page
    assert all("<img" not in tile for tile in _tiles(page)) and _tiles(page)

    # A seeds run directory: each seed's page, and one over the seeds linking to them.
    seeds = tmp_path / "seeds"
    seeds.mkdir()
    experiment = json.loads((tiny_run / "run.json").read_text())["experiment"]
    (seeds / "seeds.json").write_text(json.dumps({"format": 1, "experiment": experiment, "seeds": [0, 1]}))
    _copy(tiny_run, seeds / "seed_0")
    page = write_run_report(seeds).read_text()
    assert (seeds / "seed_0" / "report.html").is_file()
    assert "href='seed_0/report.html'" in page and "seed 1</li>" not in page and "not started" in page


def test_a_path_that_is_not_a_run_is_one_clear_error(tmp_path, capsys):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        check_run_path(tmp_path / "missing")
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(NotADirectoryError, match="is a file, not a run directory"):
        check_run_path(tmp_path / "file.txt")
    (tmp_path / "experiment" / "2026-01-01_run").mkdir(parents=True)
    (tmp_path / "experiment" / "2026-01-01_run" / "run.json").write_text("{}")
    # The folder above a run (runs/<experiment>) names the runs it holds.
    with pytest.raises(FileNotFoundError, match="not a MERLin run directory.*2026-01-01_run: pass one"):
        check_run_path(tmp_path / "experiment")
    # What the entry point prints for it: one `error:` line, exit status 2.
    with pytest.raises(SystemExit) as exit_status, exit_on_user_error():
        write_run_report(tmp_path)
    assert exit_status.value.code == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"error: {tmp_path} is not a MERLin run directory: it holds neither run.json (a run) nor seeds.json "
        "(a seeds run)"
    ]


@pytest.mark.slow
def test_command_line_writes_a_samples_pictures_and_refuses_a_non_run(tmp_path):
    def visualize(*args: str) -> subprocess.CompletedProcess:
        command = [sys.executable, "-m", "evaluation.visualize", *args]
        return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)

    out = visualize("data=synthetic", "sample=synthetic/s01/s01_clip01", f"out={tmp_path / 'pics'}")
    assert out.returncode == 0, out.stderr[-2000:]
    for name in ("onset", "apex", "flow", "strain", "difference", "panel"):
        assert f"{name}: {tmp_path / 'pics' / name}.png" in out.stdout
        assert cv2.imread(str(tmp_path / "pics" / f"{name}.png")) is not None
    out = visualize("sample=synthetic/s01/s01_clip99")
    assert out.returncode == 2 and "did you mean synthetic/s01/s01_clip09" in out.stderr
    out = visualize(f"run_dir={tmp_path}")
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [
        f"error: {tmp_path} is not a MERLin run directory: it holds neither run.json (a run) nor seeds.json "
        "(a seeds run)"
    ]


@pytest.mark.slow
@pytest.mark.skipif(not CHROMIUM.is_file(), reason="needs Debian's chromium at /usr/bin/chromium")
def test_report_renders_in_a_headless_browser(tiny_run, tmp_path):
    page = write_run_report(tiny_run)
    shot = tmp_path / "report.png"
    profile = tmp_path / "profile"
    profile.mkdir()
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        f"--screenshot={shot}",
        "--window-size=1280,2400",
    ]
    out = subprocess.run(
        [str(CHROMIUM), *flags, page.resolve().as_uri()], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0 and shot.is_file(), out.stderr[-2000:]
    image = cv2.imread(str(shot))
    assert image.shape[:2] == (2400, 1280)
    # Rendered, not a blank page: dark text, the tables' header shading and coloured figures.
    assert (image < 80).all(axis=2).mean() > 0.002
    assert (image.max(axis=2).astype(int) - image.min(axis=2) > 60).mean() > 0.005
