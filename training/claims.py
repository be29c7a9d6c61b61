"""Several processes sharing one run directory: run.json created once, and each fold trained by one of them.

Cluster jobs (`python train.py -m hydra/launcher=slurm fold='range(0,68)' run_dir=runs/X`), or
several copies of one command on a workstation, all write into the same run directory. Two files keep them
apart:

- `run.json` is created exclusively (`create_exclusive`: a complete temporary file hard-linked to the final
  name, which fails if that name exists), so the first process creates it and every other one reads the
  complete file back and joins it if it names the same experiment (training.rundir refuses another one).
- `claims/fold_NNN.json`, created the same way before a fold trains and removed when it is finished or its
  process ends by an exception or a signal, says who trains fold NNN:

      {"fold": 3, "name": "casme2/sub04", "host": "node12", "pid": 4242, "pid_start": 9123456,
       "started": 1764000000.0, "token": "9f2c...", "slurm_job": "81234", "slurm_restart": 0}

  Its modification time is the holder's heartbeat (touched every HEARTBEAT_S by a thread). Another process
  skips a fold whose claim is live, saying who holds it. A claim is stale, and is taken over, when its
  process is gone (same host and that pid is not running, or is another process now: `pid_start` differs),
  when SLURM requeued the job that made it (same `slurm_job`, a higher restart count), or when its heartbeat
  is older than STALE_AFTER_S (a process on another host, which cannot be asked). STALE_AFTER_S is minutes,
  not seconds: an NFS client may see another client's modification time up to a minute late.

A claim only saves work; it is not what keeps results right. Fold files are written atomically and a fold's
result depends only on the seed and the fold (training.loop), so in the rare case that two processes train
one fold anyway (a holder that was paused past STALE_AFTER_S, or three processes racing for one stale claim),
each writes the same complete file and nothing is torn or mixed.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import asdict, dataclass
from pathlib import Path

from utils.atomic import _fsync_dir, _write_error

log = logging.getLogger(__name__)

CLAIMS_DIR = "claims"
HEARTBEAT_S = 30.0
STALE_AFTER_S = 300.0
# A claim that does not parse is one being written (only where hard links are unsupported) or a wreck.
UNREADABLE_GRACE_S = 60.0
# What os.link raises where a filesystem has no hard links (FAT, some FUSE and SMB mounts).
_NO_HARD_LINKS = (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.ENOSYS)


def create_exclusive(path: str | os.PathLike[str], data: bytes, what: str = "") -> bool:
    """Create `path` holding `data`, only if it does not exist yet; True if this call created it.

    The bytes go to a temporary file in the same folder (fsynced), which is then hard-linked to `path`: the
    link fails if `path` exists, so of several processes exactly one creates it, and a reader never sees it
    partly written. On a filesystem without hard links, `path` is opened with O_EXCL and written in place.
    Raises FileNotFoundError when the folder vanished meanwhile, and any other OSError as utils.atomic's
    WriteError naming `path` and `what` it holds.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise _write_error(path, what, err, folder_stage=True) from err
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        with open(tmp, "xb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
        except OSError as err:
            if err.errno not in _NO_HARD_LINKS:
                raise
            return _create_in_place(path, data)
        _fsync_dir(path.parent)
        return True
    except FileNotFoundError:
        raise
    except OSError as err:
        raise _write_error(path, what, err) from err
    finally:
        with suppress(OSError):
            os.unlink(tmp)


def _create_in_place(path: Path, data: bytes) -> bool:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    except FileExistsError:
        return False
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    _fsync_dir(path.parent)
    return True


def claim_path(run_dir: str | Path, k: int) -> Path:
    """RUN_DIR/claims/fold_NNN.json (the fold files' numbering)."""
    return Path(run_dir) / CLAIMS_DIR / f"fold_{int(k):03d}.json"


def _pid_start(pid: int) -> int | None:
    """When process `pid` started (clock ticks since boot, Linux /proc), to tell a reused pid apart; None
    where /proc is not available."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may hold spaces: count fields after the last ")".
    fields = stat[stat.rindex(")") + 2 :].split()
    return int(fields[19]) if len(fields) > 19 else None


def _pid_state(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat[stat.rindex(")") + 2 :].split()[0]


def pid_alive(pid: int, started: int | None = None) -> bool:
    """Whether process `pid` of this host is running (and, given its recorded start, is still that one)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # another user's process: it exists
    if _pid_state(pid) in ("Z", "X"):  # exited, not yet reaped by its parent
        return False
    return started is None or _pid_start(pid) in (None, started)


def _slurm_restart() -> int:
    try:
        return int(os.environ.get("SLURM_RESTART_COUNT", "0") or 0)
    except ValueError:
        return 0


@dataclass(frozen=True)
class ClaimRecord:
    """Who claimed a fold: the content of its claim file."""

    fold: int
    name: str
    host: str
    pid: int
    started: float
    token: str
    pid_start: int | None = None
    slurm_job: str | None = None
    slurm_restart: int = 0

    @classmethod
    def mine(cls, k: int, name: str) -> ClaimRecord:
        return cls(
            fold=int(k),
            name=name,
            host=socket.gethostname(),
            pid=os.getpid(),
            started=time.time(),
            token=secrets.token_hex(8),
            pid_start=_pid_start(os.getpid()),
            slurm_job=os.environ.get("SLURM_JOB_ID") or None,
            slurm_restart=_slurm_restart(),
        )

    @classmethod
    def from_dict(cls, d: Mapping) -> ClaimRecord:
        return cls(
            fold=int(d["fold"]),
            name=str(d.get("name", "")),
            host=str(d["host"]),
            pid=int(d["pid"]),
            started=float(d["started"]),
            token=str(d["token"]),
            pid_start=None if d.get("pid_start") is None else int(d["pid_start"]),
            slurm_job=None if d.get("slurm_job") is None else str(d["slurm_job"]),
            slurm_restart=int(d.get("slurm_restart") or 0),
        )

    def describe(self) -> str:
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.started))
        job = f", SLURM job {self.slurm_job}" if self.slurm_job else ""
        return f"{self.host} pid {self.pid}{job} (since {since})"


def read_claim(path: Path) -> tuple[ClaimRecord | None, float] | None:
    """(record, seconds since its heartbeat) of a claim file; record None when it does not parse; None when
    there is no such file."""
    try:
        mtime = path.stat().st_mtime
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    try:
        record = ClaimRecord.from_dict(json.loads(text))
    except (ValueError, KeyError, TypeError):
        record = None
    return record, time.time() - mtime


def stale_reason(
    record: ClaimRecord | None, age_s: float, stale_after_s: float = STALE_AFTER_S
) -> str | None:
    """Why a claim can be taken over, or None while its holder may still be at work."""
    if record is None:
        return f"unreadable for {age_s:.0f} s" if age_s > UNREADABLE_GRACE_S else None
    job = os.environ.get("SLURM_JOB_ID") or None
    if record.slurm_job and record.slurm_job == job and record.slurm_restart < _slurm_restart():
        return f"SLURM requeued job {record.slurm_job} that made it"
    if record.host == socket.gethostname() and not pid_alive(record.pid, record.pid_start):
        return f"its process {record.pid} on {record.host} has ended"
    if age_s > stale_after_s:
        return f"no heartbeat for {age_s:.0f} s (more than {stale_after_s:.0f} s)"
    return None


class FoldClaim:
    """This process's claim of one fold: the file, kept fresh by a heartbeat thread until `release`."""

    def __init__(self, path: Path, record: ClaimRecord, heartbeat_s: float = HEARTBEAT_S) -> None:
        self.path, self.record = path, record
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._beat, args=(heartbeat_s,), name=f"claim-{record.fold}", daemon=True
        )
        self._thread.start()

    def _beat(self, every: float) -> None:
        while not self._stop.wait(every):
            if not self.held():
                log.warning(
                    "the claim %s of fold %s was taken over by another process (this one looked dead to it); "
                    "both may now train it, which costs time but no result",
                    self.path,
                    self.record.name,
                )
                return
            with suppress(OSError):
                os.utime(self.path)

    def held(self) -> bool:
        """The claim file is still this one's (not removed, not taken over)."""
        found = read_claim(self.path)
        return found is not None and found[0] is not None and found[0].token == self.record.token

    def release(self) -> None:
        """Stop the heartbeat and remove the claim file (if it is still this one's), then the claims folder
        if no other claim is left in it."""
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join()
        if self.held():
            with suppress(FileNotFoundError):
                self.path.unlink()
        with suppress(OSError):  # not empty: other processes' claims are still there
            self.path.parent.rmdir()

    def __enter__(self) -> FoldClaim:
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def try_claim(
    run_dir: str | Path,
    k: int,
    name: str,
    stale_after_s: float = STALE_AFTER_S,
    heartbeat_s: float = HEARTBEAT_S,
) -> tuple[FoldClaim | None, ClaimRecord | None]:
    """Claim fold k of `run_dir` for this process: (claim, None), or (None, holder) while another process
    holds a live claim of it. A stale claim (`stale_reason`) is taken over, with a log line saying whose."""
    path = claim_path(run_dir, k)
    for _ in range(100):
        mine = ClaimRecord.mine(k, name)
        try:
            created = create_exclusive(path, (json.dumps(asdict(mine), indent=2) + "\n").encode())
        except FileNotFoundError:  # the claims folder was removed by a process releasing the last claim
            continue
        if created:
            return FoldClaim(path, mine, heartbeat_s), None
        found = read_claim(path)
        if found is None:
            continue  # released in the meantime
        record, age = found
        reason = stale_reason(record, age, stale_after_s)
        if reason is None:
            if record is None:  # being written by its maker (no hard links here): held, by someone
                record = ClaimRecord(int(k), name, "?", 0, time.time() - age, "")
            return None, record
        if _remove_stale(path, record):
            who = "an unreadable claim" if record is None else f"the claim of {record.describe()}"
            log.warning("fold %s: taking over %s: %s", name, who, reason)
    raise RuntimeError(f"cannot claim fold {name}: {path} keeps changing")


def _remove_stale(path: Path, stale: ClaimRecord | None) -> bool:
    """Move the stale claim aside and delete it; if what was moved is not the claim judged stale (another
    successor replaced it in between), put it back. True when the stale claim is gone."""
    aside = path.with_name(f".{path.name}.{secrets.token_hex(4)}.stale")
    try:
        os.rename(path, aside)
    except FileNotFoundError:
        return False  # another successor moved it first
    moved = read_claim(aside)
    moved_token = None if moved is None or moved[0] is None else moved[0].token
    if stale is not None and moved_token != stale.token:
        with suppress(FileExistsError):
            os.link(aside, path)
        os.unlink(aside)
        return False
    os.unlink(aside)
    return True


def _say_held(name: str, holder: ClaimRecord, path: Path) -> None:
    log.info(
        "fold %s is being trained by %s; skipped here (if that process is gone, its claim %s is taken over "
        "%.0f s after its last heartbeat)",
        name,
        holder.describe(),
        path,
        STALE_AFTER_S,
    )


@contextmanager
def fold_claim(
    run_dir: str | Path,
    k: int,
    name: str,
    finished: Callable[[int], bool] | None = None,
    enabled: bool = True,
) -> Iterator[bool]:
    """Within the block, fold k is this process's to train (yields True), or not (yields False, after a
    log line): another live process holds it, or `finished(k)` says it was finished since this process
    looked. The claim is removed when the block ends, normally or by any exception (a signal's included).
    enabled=False: no claim, yields True (a DDP worker rank, which follows its primary process)."""
    if not enabled:
        yield True
        return
    claim, holder = try_claim(run_dir, k, name)
    if claim is None:
        _say_held(name, holder, claim_path(run_dir, k))
        yield False
        return
    with claim:
        if finished is not None and finished(k):
            log.info("fold %s was finished by another process meanwhile; skipped here", name)
            yield False
        else:
            yield True


def claim_folds(
    stack: ExitStack,
    run_dir: str | Path,
    names: Mapping[int, str],
    finished: Callable[[int], bool] | None = None,
    refuse_held: bool = False,
) -> list[int]:
    """Claim every fold of `names` ({index: name}) at once, each released when `stack` closes. Returns the
    folds claimed; a fold held by another process is skipped with a log line, or, with `refuse_held` (DDP,
    whose ranks must all train the same folds), is a RunDirError naming its holder."""
    claimed = []
    for k, name in names.items():
        claim, holder = try_claim(run_dir, k, name)
        if claim is None:
            if refuse_held:
                from training.rundir import RunDirError

                raise RunDirError(
                    f"fold {name} is being trained by {holder.describe()} ({claim_path(run_dir, k)}); under "
                    "a DDP strategy every rank trains the same folds, so this run cannot skip it: let that "
                    "process finish, or train the other folds apart (fold=k)"
                )
            _say_held(name, holder, claim_path(run_dir, k))
            continue
        stack.enter_context(claim)
        if finished is not None and finished(k):
            log.info("fold %s was finished by another process meanwhile; skipped here", name)
            continue
        claimed.append(k)
    return claimed


def spans_processes(trainer_config: Mapping | None) -> bool:
    """Whether the trainer runs one fold in several processes (a DDP strategy), whose ranks must all train
    the same folds: then the primary claims every fold before the first one starts."""
    if not trainer_config:
        return False
    strategy = trainer_config.get("strategy")
    name = strategy.get("_target_", "") if isinstance(strategy, Mapping) else str(strategy or "")
    return "ddp" in name.lower() or int(trainer_config.get("num_nodes") or 1) > 1
