"""The search on a real database server: two workers in separate processes (as on two machines) share one
PostgreSQL study; one is killed mid-trial, the other re-runs that trial from its checkpoint, every run
completes exactly once, and the report reads the results from the server."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from test_search import seg_trial_args

from conftest import kill_search_worker
from mae_transfer.config import load_config
from mae_transfer.paths import REPO_ROOT
from mae_transfer.search import TrialStore
from mae_transfer.search.report import write_report


def test_two_workers_on_postgresql_one_killed_mid_trial(tmp_path, postgres_url):
    common = seg_trial_args(tmp_path, "default_hooks.checkpoint.interval=5")
    path = tmp_path / "search.py"
    path.write_text(f"""
from mae_transfer.search import Entry, Protocol, SearchConfig
config = SearchConfig(
    name="pg", storage={postgres_url!r}, output_dir="{tmp_path}/trials",
    protocol=Protocol(name="pg", lrs=(1e-4, 2e-4), weight_decays=(0.05,), extend_edges=False,
                      drop_paths=(0.0,), stage1_schedule="s", stage2_schedule="s", schedules=("s",)),
    schedules={{"seg": {{"s": ["train_cfg.max_iters=30", "train_cfg.val_interval=30"]}}}},
    entries={{"seg/random/B": Entry(init="random", task="seg", args={common!r})}},
    heartbeat_s=1.0,
)
""")
    cfg = load_config(path)
    cmd = [sys.executable, "tools/search.py", "run", "--config", str(path), "--workers", "1"]
    workers = [
        subprocess.Popen(
            cmd,
            cwd=REPO_ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        for _ in range(2)
    ]
    t0 = time.time()
    try:
        store = TrialStore.for_search(cfg)
        victim, deadline = None, time.time() + 600
        while victim is None and time.time() < deadline:  # a trial with a checkpoint: kill its worker
            for t in store.trials("seg/random/B"):
                out = Path(t.user_attrs.get("output_dir", "/nonexistent"))
                if t.state.name == "RUNNING" and (out / "last_checkpoint").exists():
                    victim = t
            time.sleep(0.2)
        assert victim is not None, "no trial wrote a checkpoint"
        worker_pid = int(victim.user_attrs["pid"])
        assert worker_pid in [w.pid for w in workers]  # each command is its own worker process
        trial_dir = Path(victim.user_attrs["output_dir"])
        kill_search_worker(worker_pid, trial_dir)
        survivor = next(w for w in workers if w.pid != worker_pid)
        out, _ = survivor.communicate(timeout=900)
    finally:
        for w in workers:
            if w.poll() is None:
                os.killpg(w.pid, signal.SIGKILL)
    seconds = time.time() - t0
    assert survivor.returncode == 0, out[-3000:]
    trials = TrialStore.for_search(cfg).trials("seg/random/B")
    complete = [t.user_attrs["key"] for t in trials if t.state.name == "COMPLETE"]
    assert sorted(Counter(complete).values()) == [1, 1]  # both runs, each completed exactly once
    interrupted = [t for t in trials if t.state.name == "FAIL" and t.user_attrs.get("retry") is True]
    assert [t.number for t in interrupted] == [victim.number]
    log = (trial_dir / "trial.log").read_text().splitlines()
    commands = [ln for ln in log if ln.startswith("$ ")]
    assert len(commands) == 2 and "--resume" in commands[1]  # re-run from the killed run's checkpoint
    assert json.loads((trial_dir / "metrics.json").read_text())["iteration"] == 30
    report = write_report(cfg, tmp_path / "report").read_text()
    assert "seg/random/B" in report and "(no result)" not in report
    print(f"two workers on PostgreSQL, one killed: {len(trials)} trial records, {seconds:.0f} s")
