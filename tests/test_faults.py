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

import torch

from conftest import one_line_error, run_tool
from mae_transfer.paths import REPO_ROOT
from mae_transfer.runlog import read_jsonl
from test_pretrain import overrides, tiny_cfg


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
    proc = subprocess.Popen([sys.executable, *args], cwd=REPO_ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env={**os.environ, "OMP_NUM_THREADS": "2"})
    _kill_when(proc, lambda: any(r.get("step", 0) >= kill_at for r in read_jsonl(killed / "log.jsonl")
                                 if "loss" in r))
    assert torch.load(killed / "checkpoint-last.pth", weights_only=True)["epoch"] == 1
    res = run_tool(*args, "--resume", "auto")
    assert res.returncode == 0, res.stderr[-2000:]
    assert "resumed from" in res.stdout + res.stderr and "at epoch 1" in res.stdout + res.stderr, \
        "the second run did not resume (a from-scratch rerun would also match the weights)"
    a = torch.load(tmp_path / "full/checkpoint-last.pth", weights_only=True)["model"]
    b = torch.load(killed / "checkpoint-last.pth", weights_only=True)["model"]
    diff = max((a[k].float() - b[k].float()).abs().max().item() for k in a)
    assert diff == 0.0, f"killed at step {kill_at}: max |dweight| {diff}"
    steps = [r["step"] for r in read_jsonl(killed / "log.jsonl") if "loss" in r]
    assert steps == sorted(set(steps)) and steps[-1] == 3 * n_iter, "log.jsonl repeats steps after the resume"
    assert not list(killed.glob(".*.tmp")), "a stale temporary checkpoint was left behind"


def test_second_run_into_the_same_output_dir_is_refused(cifar_small, tmp_path):
    cfg = tiny_cfg(cifar_small / "train", tmp_path / "out", epochs=50, num_workers=0)
    args = ["tools/pretrain.py", *overrides(cfg)]
    first = subprocess.Popen([sys.executable, *args], cwd=REPO_ROOT, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
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


def test_segmentation_killed_during_its_final_evaluation_evaluates_on_resume(tmp_path):
    from test_seg import CLASSES, MINI, label_folder

    train = label_folder(tmp_path / "train", "training", 2)
    val = label_folder(tmp_path / "val", "validation", 24)  # an evaluation long enough to be killed in
    work = tmp_path / "run"
    args = [sys.executable, "tools/train_seg.py", "--config", MINI, "--work-dir", str(work), "--classes", CLASSES,
            "--train-images", train[0], "--train-labels", train[1], "--val-images", val[0], "--val-labels", val[1],
            "--cfg-options", "train_cfg.max_iters=6", "train_cfg.val_interval=6",
            "default_hooks.checkpoint.interval=6"]
    proc = subprocess.Popen(args, cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    last = work / "last_checkpoint"
    _kill_when(proc, lambda: last.exists() and last.read_text().strip().endswith("iter_6.pth"))
    assert not (work / "metrics.json").exists(), "the evaluation finished before the kill"
    res = subprocess.run([*args, "--resume"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stderr[-3000:]
    import json

    metrics = json.loads((work / "metrics.json").read_text())
    assert metrics["iteration"] == 6 and metrics["mIoU"] is not None
    assert not list(work.glob(".*.tmp"))
