"""Faults: a run killed with SIGKILL anywhere resumes to exactly the uninterrupted result, leaves no torn or
stale file behind, and a second run into the same output directory is refused."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from test_pretrain import overrides, tiny_cfg

from conftest import THREADS, kill_search_worker, one_line_error, run_tool, start_search
from mae_transfer.paths import REPO_ROOT
from mae_transfer.runlog import read_jsonl


def _kill_when(proc: subprocess.Popen, ready, timeout: float = 600) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None and not ready():
        time.sleep(0.02)
    assert proc.poll() is None, "the run ended before the kill point; the test would not exercise resume"
    proc.send_signal(signal.SIGKILL)
    proc.wait()


def test_pretraining_killed_at_a_random_step_with_workers_resumes_bit_exact(cifar_small, tmp_path):
    """num_workers=2 (every shipped config uses workers), killed at a random iteration inside epoch 2 (not
    right after a checkpoint): the resumed run restarts epoch 2 and ends with the uninterrupted weights."""
    cfg = tiny_cfg(cifar_small / "train", tmp_path / "full", epochs=3, num_workers=2, log_every=1)
    n_iter = 160 // 16
    full = run_tool("tools/pretrain.py", *overrides(cfg))
    assert full.returncode == 0, full.stderr[-2000:]

    killed = tmp_path / "killed"
    args = ["tools/pretrain.py", *overrides(cfg.replace(output_dir=str(killed)))]
    kill_at = n_iter + random.randint(1, n_iter - 1)  # a step inside epoch 2
    proc = subprocess.Popen(
        [sys.executable, *args],
        cwd=REPO_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "OMP_NUM_THREADS": THREADS},  # as run_tool: the same run bit for bit
    )

    def reached() -> bool:
        try:
            return any(r.get("step", 0) >= kill_at for r in read_jsonl(killed / "log.jsonl") if "loss" in r)
        except ValueError:  # read while a line was being appended
            return False

    _kill_when(proc, reached)
    assert torch.load(killed / "checkpoint-last.pth", weights_only=True)["epoch"] == 1
    res = run_tool(*args, "--resume", "auto")
    assert res.returncode == 0, res.stderr[-2000:]
    assert "resumed from" in res.stdout + res.stderr and "at epoch 1" in res.stdout + res.stderr, (
        "the second run did not resume (a from-scratch rerun would also match the weights)"
    )
    a = torch.load(tmp_path / "full/checkpoint-last.pth", weights_only=True)["model"]
    b = torch.load(killed / "checkpoint-last.pth", weights_only=True)["model"]
    diff = max((a[k].float() - b[k].float()).abs().max().item() for k in a)
    assert diff == 0.0, f"killed at step {kill_at}: max |dweight| {diff}"
    steps = [r["step"] for r in read_jsonl(killed / "log.jsonl") if "loss" in r]
    assert steps == sorted(set(steps)) and steps[-1] == 3 * n_iter, "log.jsonl repeats steps after the resume"
    assert not list(killed.glob(".*.tmp")), "a stale temporary checkpoint was left behind"
    umask = os.umask(0)
    os.umask(umask)
    for name in ("checkpoint-last.pth", "recipe.json", "config.json"):  # shared runs: not mkstemp's 0600
        assert (killed / name).stat().st_mode & 0o777 == 0o666 & ~umask, name


def test_second_run_into_the_same_output_dir_is_refused(cifar_small, tmp_path):
    cfg = tiny_cfg(cifar_small / "train", tmp_path / "out", epochs=50, num_workers=0)
    args = ["tools/pretrain.py", *overrides(cfg)]
    first = subprocess.Popen(
        [sys.executable, *args], cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.time() + 300
        while time.time() < deadline and not (tmp_path / "out/checkpoint-last.pth").exists():
            time.sleep(0.05)
        before = {p: p.stat().st_mtime_ns for p in (tmp_path / "out").glob("*.json")}
        err = one_line_error(run_tool(*args))
        assert "is in use by" in err and str(first.pid) in err
        assert {p: p.stat().st_mtime_ns for p in (tmp_path / "out").glob("*.json")} == before
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    # the dead run's lock is stale: the next run takes it over (with a warning) and resumes
    res = run_tool(*args, "epochs=2", "--resume", "auto")
    assert res.returncode == 0, res.stderr[-2000:]
    assert "stale lock" in res.stdout + res.stderr
    assert not Path(tmp_path / "out/.lock").exists()


def test_a_lock_whose_pid_now_names_another_process_is_stale(tmp_path):
    """pid numbers come back (pid_max is 32768 here): a lock naming a running pid whose start time is not
    the recorded one was left by a process that is gone, and is taken over; the live holder keeps it."""
    import json

    from mae_transfer.errors import ConfigError
    from mae_transfer.rundir import HOST, LOCK_NAME, RunDirLock, process_start

    parent = os.getppid()  # a live process other than this one
    lock = tmp_path / LOCK_NAME
    lock.write_text(json.dumps({"pid": parent, "pid_start": process_start(parent), "host": HOST}))
    with pytest.raises(ConfigError, match=f"in use by pid {parent}"):
        RunDirLock(tmp_path).acquire()
    lock.write_text(json.dumps({"pid": parent, "pid_start": process_start(parent) - 1, "host": HOST}))
    mine = RunDirLock(tmp_path).acquire()
    assert mine.held and json.loads(lock.read_text())["pid"] == os.getpid()
    mine.release()
    assert not lock.exists()


def test_segmentation_killed_during_its_final_evaluation_evaluates_on_resume(tmp_path):
    from test_seg import CLASSES, MINI, label_folder

    train = label_folder(tmp_path / "train", "training", 2)
    val = label_folder(tmp_path / "val", "validation", 24)  # an evaluation long enough to be killed in
    work = tmp_path / "run"
    args = [
        sys.executable,
        "tools/train_seg.py",
        "--config",
        MINI,
        "--work-dir",
        str(work),
        "--classes",
        CLASSES,
        "--train-images",
        train[0],
        "--train-labels",
        train[1],
        "--val-images",
        val[0],
        "--val-labels",
        val[1],
        "--cfg-options",
        "train_cfg.max_iters=6",
        "train_cfg.val_interval=6",
        "default_hooks.checkpoint.interval=6",
    ]
    proc = subprocess.Popen(args, cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    last = work / "last_checkpoint"
    _kill_when(proc, lambda: last.exists() and last.read_text().strip().endswith("iter_6.pth"))
    assert not (work / "metrics.json").exists(), "the evaluation finished before the kill"
    res = subprocess.run([*args, "--resume"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stderr[-3000:]
    import json

    metrics = json.loads((work / "metrics.json").read_text())
    assert metrics["iteration"] == 6 and not list(work.glob(".*.tmp"))
    # what the resume evaluated is iter_6.pth: an evaluation of that file alone gives the same numbers
    res = subprocess.run(
        [*args, "--eval-only", "--checkpoint", str(work / "iter_6.pth")],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    evaluated = json.loads((work / "metrics_eval.json").read_text())
    assert evaluated["mIoU"] == metrics["mIoU"] and evaluated["per_class_IoU"] == metrics["per_class_IoU"]


def test_killed_search_worker_leaves_no_orphan_and_its_trial_resumes_once(tmp_path):
    """search.py run --workers 2; the worker running the (only) trial is SIGKILLed after the trial wrote a
    checkpoint: the trial process dies with it, the other worker re-runs the trial from that checkpoint,
    the trial completes exactly once, and the command returns. 120 iterations, so the kill lands mid-trial: a
    trial of 30 can finish between its first checkpoint and the kill on a loaded machine."""
    import json

    from test_search import seg_trial_args

    from mae_transfer.config import load_config
    from mae_transfer.search import TrialStore

    common = seg_trial_args(tmp_path, "default_hooks.checkpoint.interval=5")
    path = tmp_path / "search.py"
    path.write_text(f"""
from mae_transfer.search import Entry, Protocol, SearchConfig
config = SearchConfig(
    name="one", storage="journal:{tmp_path}/study.journal", output_dir="{tmp_path}/trials",
    protocol=Protocol(name="one", lrs=(1e-4,), weight_decays=(0.05,), extend_edges=False, drop_paths=(0.0,),
                      stage1_schedule="s", stage2_schedule="s", schedules=("s",)),
    schedules={{"seg": {{"s": ["train_cfg.max_iters=120", "train_cfg.val_interval=120"]}}}},
    entries={{"seg/random/B": Entry(init="random", task="seg", args={common!r})}},
    heartbeat_s=1.0,
)
""")
    cfg = load_config(path)
    parent = start_search(path, "--workers", "2", output=True)
    try:
        trial_dir, deadline = None, time.time() + 600
        while time.time() < deadline and trial_dir is None:
            dirs = (
                list((tmp_path / "trials").glob("*/*/last_checkpoint"))
                if (tmp_path / "trials").exists()
                else []
            )
            trial_dir = dirs[0].parent if dirs else None
            time.sleep(0.2)
        assert trial_dir is not None, "no trial wrote a checkpoint"
        store = TrialStore.for_search(cfg)
        running = [t for t in store.trials("seg/random/B") if t.state.name == "RUNNING"]
        worker_pid = int(running[0].user_attrs["pid"])
        kill_search_worker(worker_pid, trial_dir)
        out, _ = parent.communicate(timeout=900)
    finally:
        if parent.poll() is None:
            os.killpg(parent.pid, signal.SIGKILL)
    assert parent.returncode == 0, out[-3000:]
    # both workers may plan the run at start: the later copy is then a duplicate claim, never run
    trials = [
        t for t in TrialStore.for_search(cfg).trials("seg/random/B") if "duplicate_of" not in t.user_attrs
    ]
    states = sorted(t.state.name for t in trials)
    assert states == ["COMPLETE", "FAIL"], (states, out[-4000:])
    assert [t.user_attrs.get("retry") for t in trials if t.state.name == "FAIL"] == [True]
    log = (trial_dir / "trial.log").read_text()
    assert (
        log.count("$ ") == 2
        and "--resume"
        in log.splitlines()[[i for i, ln in enumerate(log.splitlines()) if ln.startswith("$ ")][1]]
    )
    assert json.loads((trial_dir / "metrics.json").read_text())["iteration"] == 120
