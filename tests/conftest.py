"""Shared fixtures: small real-image folders made from ../shared/data (symlinks, never copies)."""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Iterator

import pytest
import torch

from forkserver import ForkServer
from mae_transfer.paths import REPO_ROOT, shared_data

# pytest-xdist workers share the cores: each test process (and the tools it starts) gets its share, so
# OpenMP threads never outnumber the cores (spinning threads on a shared core cost more than they give)
THREADS = str(max(1, min(2, os.cpu_count() or 1) // int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))))
torch.set_num_threads(int(THREADS))
os.environ["OMP_NUM_THREADS"] = THREADS  # every tool a test starts, run_tool or not

CIFAR = Path(shared_data("cifar10"))
COCO128 = Path(shared_data("coco128"))
BALLOON = Path(shared_data("balloon"))
CAMVID = Path(shared_data("camvid"))


def pytest_collection_modifyitems(config, items):
    missing = [p for p in (CIFAR, COCO128, BALLOON, CAMVID) if not p.is_dir()]
    if missing:
        raise pytest.UsageError(f"shared test data not found: {missing} (set MAE_TRANSFER_DATA)")


def make_image_folder(root: Path, split: str, per_class: int, classes: list[str] | None = None) -> Path:
    """ImageFolder of symlinks to the first ``per_class`` CIFAR images of each class."""
    src = CIFAR / split
    classes = classes or sorted(p.name for p in src.iterdir())
    for c in classes:
        (root / c).mkdir(parents=True, exist_ok=True)
        for f in sorted((src / c).iterdir())[:per_class]:
            (root / c / f.name).symlink_to(f)
    return root


@pytest.fixture(scope="session")
def cifar_small(tmp_path_factory) -> Path:
    """cifar-like root with train/ (16 per class) and test/ (8 per class), 10 classes."""
    root = tmp_path_factory.mktemp("cifar_small")
    make_image_folder(root / "train", "train", 16)
    make_image_folder(root / "test", "test", 8)
    return root


_FORK_SERVER: ForkServer | None = None


def run_tool(
    *args: str, cwd: Path = REPO_ROOT, env: dict | None = None, timeout: int = 600, fresh: bool = False
) -> subprocess.CompletedProcess:
    """Run ``python tools/<name>.py ...`` the way a user would. In a session of its own: on a timeout the
    whole process group dies (data-loader workers, DDP children), not the tool alone, leaving orphans that
    hold the CPU for the tests after it. A script runs in a child of this worker's fork server (the
    frameworks already imported, see forkserver.py); ``fresh``, anything else (``-c``) or an environment
    that changes what Python imports, in a new process."""
    global _FORK_SERVER
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": THREADS, **(env or {})}
    imports_change = any(k.startswith("PYTHON") and k != "PYTHONUNBUFFERED" for k in env or {})
    if fresh or imports_change or not args[0].endswith(".py"):
        return run_in_session([sys.executable, *args], cwd, full_env, timeout)
    if _FORK_SERVER is None:
        _FORK_SERVER = ForkServer(
            REPO_ROOT, {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": THREADS}
        )
        atexit.register(_FORK_SERVER.close)
    return _FORK_SERVER.run(list(args), cwd, full_env, timeout)


def run_in_session(cmd: list[str], cwd: Path, env: dict, timeout: int) -> subprocess.CompletedProcess:
    """``cmd`` in a session of its own, output captured; on a timeout its whole process group is killed."""
    proc = subprocess.Popen(
        cmd,
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)


def start_search(config: Path, *args: str, output: bool = False) -> subprocess.Popen:
    """``tools/search.py run --config CONFIG ARGS`` in a session of its own (``os.killpg`` ends all of
    it); its console as text on ``stdout`` when ``output``, else discarded."""
    return subprocess.Popen(
        [sys.executable, "tools/search.py", "run", "--config", str(config), *args],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE if output else subprocess.DEVNULL,
        stderr=subprocess.STDOUT if output else subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )


def one_line_error(proc: subprocess.CompletedProcess) -> str:
    """The tool failed with exit 2 and exactly one 'error: ...' line on stderr (no traceback)."""
    assert proc.returncode == 2, (
        f"exit {proc.returncode}\nstdout:{proc.stdout[-2000:]}\nstderr:{proc.stderr[-3000:]}"
    )
    lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("error: ")]
    assert len(errors) == 1 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    return errors[0]


def assert_seed_decides_the_run(runs: dict[str, tuple[list[float], dict]]) -> None:
    """``runs``: name -> (logged losses, final weights) of runs "a" and "b" (same seed) and "c" (another
    seed): a and b equal bit for bit, c differs."""
    (loss_a, w_a), (loss_b, w_b), (loss_c, w_c) = runs["a"], runs["b"], runs["c"]
    assert len(loss_a) >= 4 and loss_a == loss_b and loss_a != loss_c
    assert all(torch.equal(w_a[k], w_b[k]) for k in w_a)
    assert not all(torch.equal(w_a[k], w_c[k]) for k in w_a)


def kill_search_worker(worker_pid: int, trial_dir: Path) -> None:
    """SIGKILL a search worker and check that the trial it was running dies with it (no orphan run)."""
    import json
    import time

    from mae_transfer.rundir import pid_alive

    trial = json.loads((trial_dir / ".lock").read_text())
    os.kill(worker_pid, signal.SIGKILL)
    gone = time.time() + 20
    while time.time() < gone and pid_alive(trial["pid"], trial.get("pid_start")):
        time.sleep(0.1)
    assert not pid_alive(trial["pid"], trial.get("pid_start")), "the killed worker's trial kept running"


def _postgres_bin(name: str) -> str | None:
    """A PostgreSQL server program: on PATH, else in Debian's versioned folder."""
    found = shutil.which(name)
    if found:
        return found
    versions = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), key=lambda p: int(p.parts[-3]))
    return str(versions[-1]) if versions else None


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A throwaway PostgreSQL server (Debian's ``postgresql`` package, which scripts/install.sh installs):
    a cluster in a temp dir on a free local port, trust auth, a ``search`` database; stopped at the end.
    The server refuses to run as root, so under root it runs as the ``postgres`` system user."""
    initdb, pg_ctl = _postgres_bin("initdb"), _postgres_bin("pg_ctl")
    assert initdb and pg_ctl, (
        "PostgreSQL server programs not found: run scripts/install.sh (installs postgresql)"
    )
    root = Path(
        tempfile.mkdtemp(prefix="mae_transfer_pg_")
    )  # not under pytest's 0700 tmp: the server reads it
    as_user: list[str] = []
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    data = root / "data"
    subprocess.run(
        [*as_user, initdb, "-D", str(data), "-U", "mae", "--auth=trust", "-E", "UTF8", "--no-sync"],
        check=True,
        capture_output=True,
    )
    opts = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200"
    subprocess.run(
        [*as_user, pg_ctl, "-D", str(data), "-o", opts, "-l", str(root / "server.log"), "-w", "start"],
        check=True,
        capture_output=True,
    )
    try:
        import sqlalchemy

        admin = sqlalchemy.create_engine(
            f"postgresql://mae@127.0.0.1:{port}/postgres", isolation_level="AUTOCOMMIT"
        )
        with admin.connect() as conn:
            conn.execute(sqlalchemy.text("CREATE DATABASE search"))
        admin.dispose()
        yield f"postgresql://mae@127.0.0.1:{port}/search"
    finally:
        subprocess.run([*as_user, pg_ctl, "-D", str(data), "-m", "immediate", "stop"], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)
