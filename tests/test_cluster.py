"""Several processes in one run directory: cluster jobs of a sweep (Hydra's submitit launcher), run.json
created once, each fold trained by one process (training.claims), a cache entry under concurrent writers."""

from __future__ import annotations

import dataclasses
import json
import logging
import multiprocessing
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir

from datamodules.protocols import loso_folds
from training import claims
from training.claims import ClaimRecord, claim_path, create_exclusive, try_claim
from training.rundir import RunDirError, prepare_run_dir
from training.sweep import SweepError, check_sweep

ROOT = Path(__file__).resolve().parents[1]
FOLDS = loso_folds(["synthetic/s01", "synthetic/s02", "synthetic/s03"])
CLASSES = ("negative", "positive", "surprise")
# fork: the children inherit this process's imports, so each race costs milliseconds, not an import of torch.
FORK = multiprocessing.get_context("fork")


# ---- run.json: created once by concurrent starts ---------------------------------------------------------


def _prepare(run_dir: str, lr: float, barrier, results) -> None:
    """A process starting into run_dir: both pass the check for an existing run.json before either writes."""
    import training.rundir as rundir

    adopt = rundir._adopt_orphaned_folds

    def adopt_then_wait(*args):
        adopt(*args)
        barrier.wait(timeout=30)

    rundir._adopt_orphaned_folds = adopt_then_wait
    records: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: records.append(record.getMessage())
    logging.getLogger("training.rundir").addHandler(handler)
    logging.getLogger("training.rundir").setLevel(logging.INFO)
    try:
        rundir.prepare_run_dir(run_dir, "exp", {"model": {"lr": lr}, "seed": 0}, CLASSES, FOLDS)
        results.put(("ok", lr, records))
    except RunDirError as err:
        results.put(("refused", lr, str(err)))


def _race(run_dir: Path, lrs: tuple[float, float]) -> list[tuple]:
    barrier, results = FORK.Barrier(2), FORK.Queue()
    procs = [FORK.Process(target=_prepare, args=(str(run_dir), lr, barrier, results)) for lr in lrs]
    for p in procs:
        p.start()
    out = [results.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(timeout=30)
    return out


def test_run_json_is_created_once_by_concurrent_starts(tmp_path):
    run_dir = tmp_path / "same"
    out = _race(run_dir, (0.001, 0.001))
    assert [o[0] for o in out] == ["ok", "ok"]
    joined = [o for o in out if any("joined the run another process" in m for m in o[2])]
    assert len(joined) == 1  # one created run.json, the other read it back and joined it
    assert sorted(os.listdir(run_dir)) == ["run.json"]  # no temporary file left
    reference = tmp_path / "alone"
    prepare_run_dir(reference, "exp", {"model": {"lr": 0.001}, "seed": 0}, CLASSES, FOLDS)
    assert (run_dir / "run.json").read_bytes() == (reference / "run.json").read_bytes()

    # Different settings at the same moment: one creates run.json, the other is refused, naming the setting.
    run_dir = tmp_path / "different"
    out = sorted(_race(run_dir, (0.001, 0.1)), key=lambda o: o[0])
    assert [o[0] for o in out] == ["ok", "refused"], out
    assert "different experiment" in out[1][2] and "model.lr" in out[1][2]
    kept = json.loads((run_dir / "run.json").read_text())["settings"]["model"]["lr"]
    assert kept == out[0][1]  # run.json is the one of the process that was not refused


def test_create_exclusive_writes_once_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "a" / "run.json"
    assert create_exclusive(path, b"first\n")
    assert not create_exclusive(path, b"second\n")
    assert path.read_bytes() == b"first\n" and os.listdir(path.parent) == ["run.json"]


# ---- fold claims --------------------------------------------------------------------------------------


def _write_claim(run_dir: Path, k: int, **fields) -> Path:
    record = dataclasses.asdict(ClaimRecord.mine(k, FOLDS[k].name))
    record.update(fields)
    path = claim_path(run_dir, k)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record))
    return path


def _dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


@pytest.fixture
def trained(monkeypatch):
    """training.loop.train_fold replaced by a stub recording each fold it is asked to train and the claim
    file it trains under."""
    import training.loop

    calls: list[tuple[int, dict]] = []

    def train_fold(features, folds, k, run_dir, *args, **kwargs):
        calls.append((k, json.loads(claim_path(run_dir, k).read_text())))

    monkeypatch.setattr(training.loop, "train_fold", train_fold)
    return calls


def _train_folds(run_dir: Path, **kwargs) -> list[int]:
    from training.loop import train_folds

    return train_folds(None, FOLDS, run_dir, build=None, progress=False, **kwargs)


def test_a_live_claim_makes_train_folds_skip_that_fold(tmp_path, trained, caplog):
    caplog.set_level(logging.INFO)
    holder = subprocess.Popen(["sleep", "60"])  # another live process of this host holds fold 1
    try:
        held = _write_claim(tmp_path, 1, pid=holder.pid, pid_start=claims._pid_start(holder.pid))
        before = held.read_bytes()
        assert _train_folds(tmp_path) == [0, 2]
        assert [k for k, _ in trained] == [0, 2]
        assert all(c["pid"] == os.getpid() and c["fold"] == k for k, c in trained)  # trained under a claim
        said = [r.getMessage() for r in caplog.records if "is being trained by" in r.getMessage()]
        assert said == [
            f"fold synthetic/s02 is being trained by {socket.gethostname()} pid {holder.pid} (since "
            f"{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(json.loads(before)['started']))}); skipped "
            f"here (if that process is gone, its claim {held} is taken over 300 s after its last heartbeat)"
        ]
        assert held.read_bytes() == before  # the other process's claim is left alone
        assert sorted(p.name for p in held.parent.iterdir()) == ["fold_001.json"]  # ours are removed
    finally:
        holder.kill()
        holder.wait()


def test_a_dead_processes_claim_is_taken_over(tmp_path, trained, caplog):
    caplog.set_level(logging.INFO)
    dead = _dead_pid()
    _write_claim(tmp_path, 0, pid=dead)
    assert _train_folds(tmp_path, only=[0]) == [0]
    assert trained[0][1]["pid"] == os.getpid()  # its successor's claim replaced it
    assert any(
        f"its process {dead} on {socket.gethostname()} has ended" in r.getMessage() for r in caplog.records
    )
    assert not (tmp_path / "claims").exists()  # removed once the fold was done


def test_claims_of_other_hosts_expire_by_heartbeat_or_slurm_requeue(tmp_path, monkeypatch):
    path = _write_claim(tmp_path, 0, host="node-elsewhere", pid=1)
    claim, holder = try_claim(tmp_path, 0, "s01")  # a fresh heartbeat: cannot be asked, so it is live
    assert claim is None and holder.host == "node-elsewhere"
    old = time.time() - claims.STALE_AFTER_S - 5
    os.utime(path, (old, old))
    claim, holder = try_claim(tmp_path, 0, "s01")
    assert holder is None and claim.record.pid == os.getpid()
    claim.release()

    monkeypatch.setenv("SLURM_JOB_ID", "4242")
    monkeypatch.setenv("SLURM_RESTART_COUNT", "1")
    _write_claim(tmp_path, 0, host="node-elsewhere", pid=1, slurm_job="4242", slurm_restart=0)
    claim, holder = try_claim(tmp_path, 0, "s01")  # this job's previous run, before SLURM requeued it
    assert holder is None and claim.record.slurm_restart == 1
    claim.release()
    assert not (tmp_path / "claims").exists()


def test_claims_are_removed_after_the_fold_and_after_an_exception_or_signal(tmp_path, monkeypatch):
    import training.loop
    from training.interrupt import RunInterrupted

    seen = []

    def fails(features, folds, k, run_dir, *args, **kwargs):
        seen.append(claim_path(run_dir, k).is_file())
        if k == 1:
            raise RuntimeError("out of memory")
        if k == 2:
            raise RunInterrupted(signal.SIGTERM)

    monkeypatch.setattr(training.loop, "train_fold", fails)
    assert _train_folds(tmp_path, only=[0]) == [0]
    assert not (tmp_path / "claims").exists()
    with pytest.raises(RuntimeError, match="out of memory"):
        _train_folds(tmp_path, only=[1])
    assert not (tmp_path / "claims").exists()
    with pytest.raises(RunInterrupted):
        _train_folds(tmp_path, only=[2])
    assert not (tmp_path / "claims").exists() and seen == [True, True, True]


def test_the_fold_stack_and_ddp_claim_their_folds_first(tmp_path, monkeypatch, caplog):
    import training.loop

    stacked = []

    def together(features, folds, todo, run_dir, *args, **kwargs):
        stacked.append([(k, claim_path(run_dir, k).is_file()) for k in todo])

    monkeypatch.setattr(training.loop, "train_folds_together", together)
    holder = subprocess.Popen(["sleep", "60"])
    try:
        _write_claim(tmp_path, 1, pid=holder.pid, pid_start=None)
        assert _train_folds(tmp_path, strategy="parallel") == [0, 2]
        assert stacked == [[(0, True), (2, True)]]  # the stack trains the folds it holds, all claimed
        assert sorted(p.name for p in (tmp_path / "claims").iterdir()) == ["fold_001.json"]
        # Under DDP every rank trains the same folds: a fold held elsewhere cannot be skipped.
        with pytest.raises(RunDirError, match=rf"fold synthetic/s02 is being trained by .* pid {holder.pid}"):
            _train_folds(tmp_path, trainer_config={"strategy": "ddp", "devices": 2})
        assert sorted(p.name for p in (tmp_path / "claims").iterdir()) == ["fold_001.json"]
    finally:
        holder.kill()
        holder.wait()


# ---- sweeps: a shared run_dir, launcher configs -----------------------------------------------------------


def test_fold_sweep_needs_a_shared_run_dir():
    with pytest.raises(SweepError, match=r"a sweep over folds \(fold=range\(0,68\)\) needs a run_dir"):
        check_sweep(["fold=range(0,68)", "trainer.max_epochs=5"])
    with pytest.raises(SweepError, match=r"seed takes several values.*run_dir='runs/X/seed_\$\{seed\}'"):
        check_sweep(["fold=0,1", "seed=0,1", "run_dir=runs/X"])
    check_sweep(["fold=0,1", "run_dir=runs/X"])
    check_sweep(["fold=0,1", "seed=0,1", "run_dir=runs/X/seed_${seed}"])
    check_sweep(["seed=0,1"])  # a whole experiment per job: each its own default run_dir
    check_sweep(["fold=3"])


def test_cli_fold_sweep_without_run_dir_is_refused_before_any_job(tmp_path):
    sweep = tmp_path / "sweep"
    out = subprocess.run(
        [sys.executable, "train.py", "-m", "hydra/launcher=local", "fold=0,1", f"hydra.sweep.dir={sweep}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 2, out.stderr[-2000:]
    assert out.stderr.strip().splitlines() == [
        "error: a sweep over folds (fold=0,1) needs a run_dir its jobs share, e.g. run_dir=runs/NAME: the "
        "default holds a timestamp and a random suffix, so each job would make its own"
    ]
    assert not sweep.exists()


@pytest.mark.parametrize(("launcher", "plugin"), [("local", "LocalQueueConf"), ("slurm", "SlurmQueueConf")])
def test_launcher_configs_extend_the_plugins(launcher, plugin):
    from hydra_plugins.hydra_submitit_launcher import config as plugin_configs

    with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base="1.3"):
        cfg = compose(
            "train",
            overrides=[f"hydra/launcher={launcher}", "seed=1", "run_dir=runs/X/seed_${seed}"],
            return_hydra_config=True,
        )
    fields = {f.name for f in dataclasses.fields(getattr(plugin_configs, plugin))}
    assert set(cfg.hydra.launcher) == fields  # the plugin's schema, every field
    assert cfg.hydra.launcher._target_ == getattr(plugin_configs, plugin)._target_
    assert cfg.hydra.launcher.submitit_folder.startswith(".submitit/")
    assert cfg.hydra.launcher.name == "merlin-synthetic_ststnet"
    assert cfg.hydra.callbacks.run_dir_check._target_ == "training.sweep.RunDirCheck"
    assert cfg.run_dir == "runs/X/seed_1"  # a swept setting in run_dir: resolved per job
    if launcher == "slurm":
        assert (cfg.hydra.launcher.gpus_per_node, cfg.hydra.launcher.partition) == (1, None)


# ---- the feature cache under concurrent writers of one entry -----------------------------------------


def _store_and_load(root: str, key: str, value: float, rounds: int, barrier, results) -> None:
    from preprocessing.cache import FeatureCache

    cache = FeatureCache(root)
    mine = np.full((8, 256, 256), value, np.float32)  # 2 MiB: each write takes a while
    seen, torn = set(), []
    handler = logging.Handler()
    handler.emit = lambda record: torn.append(record.getMessage())
    logging.getLogger("preprocessing.cache").addHandler(handler)
    barrier.wait(timeout=30)
    for _ in range(rounds):
        cache.store(key, mine)
        array = cache.load(key)
        if array is None:
            torn.append("a miss right after a store")
            continue
        values = set(np.unique(array).tolist())
        if len(values) != 1 or array.shape != mine.shape:
            torn.append(f"mixed entry {sorted(values)[:4]}")
        seen |= values
    results.put((value, sorted(seen), torn))


def test_concurrent_writers_of_one_cache_entry_never_leave_or_read_a_torn_file(tmp_path):
    key = "0123456789abcdef/" + "ab" * 32
    barrier, results = FORK.Barrier(2), FORK.Queue()
    procs = [
        FORK.Process(target=_store_and_load, args=(str(tmp_path), key, v, 40, barrier, results))
        for v in (1.0, 2.0)
    ]
    for p in procs:
        p.start()
    out = [results.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=30)
    for _, _, torn in out:
        assert torn == []  # no corrupt file logged, no miss, no entry mixing the two writers
    assert {v for _, seen, _ in out for v in seen} <= {1.0, 2.0}
    assert sorted(os.listdir(tmp_path / "0123456789abcdef")) == ["ab" * 32 + ".npz"]  # no temporary left


# ---- end to end: two folds as two processes (submitit's local launcher) into one run directory ----------


@pytest.mark.slow
def test_submitit_local_trains_folds_as_processes_into_one_run_dir(tmp_path):
    run_dir, sweep = tmp_path / "run", tmp_path / "sweep"
    env = {**os.environ, "WANDB_MODE": "disabled", "OMP_NUM_THREADS": "1"}
    args = [
        "-m",
        "hydra/launcher=local",
        "fold=0,1",
        f"run_dir={run_dir}",
        "experiment=synthetic_ststnet",
        "data.reader.num_subjects=2",
        "data.reader.clips_per_subject=6",
        "trainer.max_epochs=2",
        "logger=none",
        "progress=false",
        f"cache_dir={tmp_path.parent / 'shared-feature-cache'}",
        f"hydra.sweep.dir={sweep}",
    ]
    out = subprocess.run(
        [sys.executable, "train.py", *args], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr[-3000:]
    logs = sorted(sweep.glob("*/*_log.out"))
    assert len(logs) == 2  # two jobs, each its own process (its own submitit job id)
    starts = [
        line
        for log in logs
        for line in log.read_text().splitlines()
        if "Starting with JobEnvironment" in line
    ]
    assert len({line.split("job_id=")[1].split(",")[0] for line in starts}) == 2
    assert not (run_dir / "claims").exists()
    text = (run_dir / "train.log").read_text()
    assert "fold synthetic/s01: trained" in text and "fold synthetic/s02: trained" in text

    (run_dir / "summary.json").unlink()
    out = subprocess.run(
        [sys.executable, "evaluate.py", f"run_dir={run_dir}"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["folds_done"] == 2 and summary["folds_missing"] == [] and summary["n"] == 12
