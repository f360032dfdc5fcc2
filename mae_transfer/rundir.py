"""One run per output directory: an exclusive lock file, and the clean-up a killed run leaves to the next.

Two runs writing into one folder interleave their logs and replace each other's checkpoints and configs;
every tool takes this lock (rank 0 of a distributed run) before it writes anything there. The lock file
names the holder's pid, its start time and host; a lock whose process is gone from this host is stale and
taken over with a warning. Temporary files of atomic writes interrupted by a kill (``.NAME.XXXX.tmp``) are
removed by the next holder.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import os
import socket
import time
from pathlib import Path
from typing import Any, Callable, Iterator, TypeVar

from .errors import ConfigError

log = logging.getLogger(__name__)

LOCK_NAME = ".lock"
HOST = socket.gethostname()


def _proc_stat(pid: int) -> list[str] | None:
    """The fields of ``/proc/PID/stat`` from the state on (field 3); None when it cannot be read."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def process_start(pid: int) -> int | None:
    """When process ``pid`` started (clock ticks after boot, ``/proc/PID/stat`` field 22); None when there is
    no such process or no /proc. A pid number is handed to a new process (or thread) once its owner is gone --
    within minutes where ``pid_max`` is 32768 -- so a process is its pid *and* its start time."""
    fields = _proc_stat(pid)
    return int(fields[19]) if fields else None


def this_process() -> dict[str, Any]:
    """This process as a record names it: ``pid`` and ``pid_start`` (see :func:`process_start`)."""
    return {"pid": os.getpid(), "pid_start": process_start(os.getpid())}


def pid_alive(pid: int, start: int | None = None) -> bool:
    """Whether ``pid`` runs on this host (a zombie, killed but not yet reaped, does not count); with
    ``start`` (its :func:`process_start` when recorded), whether that same process still runs, not another
    one given its number since."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    fields = _proc_stat(pid)
    if fields is None:  # no /proc: the signal check is all there is
        return True
    return fields[0] != "Z" and (start is None or int(fields[19]) == start)


def ensure_dir(path: str | Path, what: str = "output dir") -> Path:
    """``mkdir -p`` with a one-line error (a file in the way, no permission) instead of a traceback."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"{what} {path} cannot be created: {e.strerror or e}") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise ConfigError(f"{what} {path} is not writable")
    return path


class RunDirLock:
    """Exclusive use of ``out_dir`` by this process until :meth:`release` (or exit)."""

    def __init__(self, out_dir: str | Path) -> None:
        self.dir = Path(out_dir)
        self.path = self.dir / LOCK_NAME
        self.held = False

    def acquire(self) -> RunDirLock:
        ensure_dir(self.dir)
        me = this_process()
        record = json.dumps({**me, "host": HOST, "started": time.strftime("%Y-%m-%d %H:%M:%S")})
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                holder = self._holder()
                if holder.get("host") == HOST and all(holder.get(k) == v for k, v in me.items()):
                    self.held = True  # this process already holds it (a second run in the same process)
                    return self
                if holder.get("host") == HOST and not pid_alive(
                    int(holder.get("pid", -1)), holder.get("pid_start")
                ):
                    log.warning(
                        "taking over the stale lock of run pid %s in %s (no longer running)",
                        holder.get("pid"),
                        self.dir,
                    )
                    self.path.unlink(missing_ok=True)
                    continue
                raise ConfigError(
                    f"output dir {self.dir} is in use by pid {holder.get('pid', '?')} on "
                    f"{holder.get('host', '?')} "
                    f"(since {holder.get('started', '?')}); choose another output dir, "
                    f"or delete {self.path} if that run is gone"
                ) from None
            except OSError as e:
                raise ConfigError(
                    f"output dir {self.dir}: cannot create {self.path.name} ({e.strerror or e})"
                ) from None
            with os.fdopen(fd, "w") as f:
                f.write(record + "\n")
            self.held = True
            atexit.register(self.release)
            remove_stale_temporaries(self.dir)
            return self
        raise ConfigError(f"output dir {self.dir}: another run took its stale lock first")

    def _holder(self) -> dict:
        try:
            return json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}

    def release(self) -> None:
        if self.held and self._holder().get("pid") == os.getpid():
            self.path.unlink(missing_ok=True)
        self.held = False


def remove_stale_temporaries(out_dir: Path) -> list[Path]:
    """Temporary files that interrupted atomic writes left (only the lock holder may call this)."""
    stale = [p for p in out_dir.glob(".*.tmp") if p.is_file()]
    for p in stale:
        p.unlink(missing_ok=True)
    if stale:
        log.info("removed %d temporary file(s) left by an interrupted run in %s", len(stale), out_dir)
    return stale


def lock_output_dir(out_dir: str | Path, main: bool = True) -> RunDirLock | None:
    """Take the output dir's lock on the main process (other ranks write nothing there); it is released
    when the process exits."""
    return RunDirLock(out_dir).acquire() if main else None


@contextlib.contextmanager
def locked_output_dir(out_dir: str | Path, main: bool = True) -> Iterator[None]:
    """The lock for the duration of a block (in-process callers: released when the run ends or fails)."""
    lock = lock_output_dir(out_dir, main)
    try:
        yield
    finally:
        if lock is not None:
            lock.release()


T = TypeVar("T")


def run_in_output_dir(cfg: Any, body: Callable[[Any, Any, int, int], T]) -> T:
    """Validate ``cfg``, join the launcher's process group, hold ``cfg.output_dir``'s lock (rank 0) and run
    ``body(cfg, device, rank, world)``; the process group is destroyed on the way out (a caller may start
    another run in this process)."""
    from . import dist

    cfg.validate()
    device, rank, world = dist.init_distributed(cfg.device)
    try:
        with locked_output_dir(cfg.output_dir, rank == 0):  # before anything is written there
            return body(cfg, device, rank, world)
    finally:
        dist.cleanup()
