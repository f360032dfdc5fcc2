"""Run one of the project's tools as a subprocess with its own log, and read what it left.

Shared by the search (a trial is a tool run) and the transfer report (each evaluation is one): the command
is written at the head of its log, the tool runs in its own process group that dies with the caller, and
its result is its ``metrics.json`` or, on failure, the last ``error: ...`` line it printed.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any, Callable

from .paths import REPO_ROOT


def run_tool(
    cmd: list[str],
    log_path: Path,
    timeout_s: float | None = None,
    stop: Callable[[], bool] | None = None,
    poll_s: float = 5.0,
) -> tuple[int | str, float]:
    """Run ``cmd`` from the repository root, stdout and stderr appended to ``log_path``; returns (exit status,
    "timeout", or "stopped" when ``stop()``, asked every ``poll_s`` seconds, said so; and the seconds it ran).
    When it ends, whatever is left of its process group (data-loader workers, launcher children) is killed: a
    killed caller leaves no orphan writing into the run's folder."""
    t0 = time.time()
    with open(log_path, "a") as logf:
        logf.write(f"$ {' '.join(cmd)}\n")
        logf.flush()
        proc = subprocess.Popen(
            cmd,
            cwd=REPO_ROOT,
            stdout=logf,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
        rc: int | str | None = None
        try:
            while rc is None:
                left = timeout_s - (time.time() - t0) if timeout_s else None
                if left is not None and left <= 0:
                    rc = "timeout"
                    break
                try:
                    rc = proc.wait(timeout=min(poll_s, left) if left is not None else poll_s)
                except subprocess.TimeoutExpired:
                    if stop is not None and stop():
                        rc = "stopped"
        finally:
            _kill_group(proc)
    return rc, time.time() - t0


def read_metrics(out_dir: Path) -> dict[str, Any] | None:
    """The tool's ``metrics.json`` in ``out_dir``, or None when it wrote none."""
    path = out_dir / "metrics.json"
    return json.loads(path.read_text()) if path.is_file() else None


def last_error(log_path: Path) -> str | None:
    """The last one-line error the tool printed (ours: ``error: ...``; argparse's: ``PROG: error: ...``)."""
    errors = [
        ln.split("error: ", 1)[1]
        for ln in log_path.read_text().splitlines()
        if ln.startswith("error: ") or ": error: " in ln
    ]
    return errors[-1] if errors else None


def _die_with_parent() -> None:
    """``preexec_fn``: Linux delivers SIGKILL to the tool when the process that started it dies."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG
    except OSError:  # not Linux: the caller's SIGTERM handler and the run folder's lock still apply
        pass


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()
