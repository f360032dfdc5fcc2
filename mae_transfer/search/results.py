"""A search's results as the report reads them: one row per entry from the trial store (its selected trial,
its seed runs and their summaries, every attempt and its cost), and the runs' learning curves from their
logs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .config import METRICS, SearchConfig
from .protocol import TrialSpec, seed_runs
from .runner import LOSS_KEYS, entry_status, logged
from .stats import Summary
from .store import TrialStore

SECOND = {"det": "APmask", "seg": "aAcc"}  # the table's second measured column


# what each trial attempt cost (runner.cost, the harness's metrics.json compute block)
COST_KEYS = ("seconds", "device", "devices", "device_hours", "s_per_iter", "peak_mem_mib", "images_seen")


def collect(cfg: SearchConfig) -> list[dict[str, Any]]:
    """One row per entry: its selected trial (or how far it got), its seed runs and their summary, and every
    trial."""
    store = TrialStore.for_search(cfg)
    rows = []
    for name, e in cfg.entries.items():
        specs, best, done = entry_status(cfg, store, name)
        trials = []
        for t in store.trials(name):
            if "spec" not in t.user_attrs or t.user_attrs.get("duplicate_of") is not None:
                continue
            spec = TrialSpec(**json.loads(t.user_attrs["spec"]))
            trials.append(
                {
                    "number": t.number,
                    "state": t.state.name,
                    "value": t.value,
                    "key": spec.key(),
                    **spec.__dict__,
                    **{
                        k: t.user_attrs.get(k)
                        for k in (
                            "APmask",
                            "aAcc",
                            "error",
                            "log",
                            "output_dir",
                            f"test_{METRICS[e.task]}",
                            *COST_KEYS,
                            "cached_from",
                            "cached_device_hours",
                            "pruned_after_evals",
                        )
                    },
                }
            )
        best_trial, seeds = None, []
        if best is not None:
            best_trial = next(t for t in trials if t["state"] == "COMPLETE" and t["key"] == best.key)
            runs = {r.key for r in seed_runs(cfg.protocol_for(name), store.finished(name), best)}
            # one per seed run: its completed attempt, else its last failed one (an interrupted attempt that
            # ran again is not a seed run of its own)
            attempts: dict[str, dict[str, Any]] = {}
            for t in sorted(trials, key=lambda t: t["number"]):
                if t["key"] in runs and t["state"] in ("COMPLETE", "FAIL"):
                    if attempts.get(t["key"], {}).get("state") != "COMPLETE":
                        attempts[t["key"]] = t
            seeds = sorted(attempts.values(), key=lambda t: -1 if t["seed"] is None else t["seed"])
        ok = [t for t in seeds if t["state"] == "COMPLETE"]
        rows.append(
            {
                "entry": name,
                "init": e.init,
                "size": e.size,
                "task": e.task,
                "done": done,
                "best": best_trial,
                "trials": trials,
                "pending": len(specs),
                "seeds": [{**t, "weights": e.weights_for(t["seed"])} for t in seeds],
                "pretraining_runs": sum(1 for w in e.checkpoints() if w),
                "result": Summary.of([t["value"] for t in ok]),
                "result_" + SECOND[e.task]: Summary.of([t.get(SECOND[e.task]) for t in ok]),
                "result_test": Summary.of([t.get(f"test_{METRICS[e.task]}") for t in ok]),
            }
        )
    return rows


def device_hours(trials: list[dict[str, Any]]) -> float:
    """The compute a list of trial attempts spent (failed, interrupted and pruned attempts count too)."""
    return sum(t.get("device_hours") or 0.0 for t in trials)


def learning_curves(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each entry's training loss against iteration over its seed runs (their own logs): at every iteration
    all of them logged, the mean and sample std (``Summary``) and the run count."""
    out = []
    for r in rows:
        runs = [
            dict(logged(r["task"], Path(t["output_dir"]), LOSS_KEYS[r["task"]]))
            for t in r["seeds"]
            if t["state"] == "COMPLETE" and t.get("output_dir")
        ]
        runs = [c for c in runs if c]
        common = sorted(set.intersection(*(set(c) for c in runs))) if runs else []
        for it in common:
            s = Summary.of([c[it] for c in runs])
            out.append({"entry": r["entry"], "task": r["task"], "iteration": it, "loss": s})
    return out
