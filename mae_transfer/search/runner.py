"""Search workers: plan the next trials of every entry, claim one, run it as a real tool invocation.

A trial is ``python tools/train_det.py|train_seg.py <entry args> <schedule args> --init ... --weights ...
<lr/wd/drop-path overrides> --output-dir <trial dir>``; its ``metrics.json`` gives the value. The search
never trains anything itself. Workers are plain processes: ``--workers N`` on one machine (multiprocessing),
a Slurm job array through submitit, or any number of ``tools/search.py run`` on machines that share the
storage (RDB URL).
"""

from __future__ import annotations

import logging
import math
import re
import sys
import threading
import time
from pathlib import Path
from typing import Any

import optuna

from ..paths import REPO_ROOT
from ..runlog import read_jsonl
from ..toolrun import last_error, read_metrics, run_tool
from .cache import recipe_card, trial_identity
from .config import METRICS, PARAM_KEYS, TOOLS, SearchConfig
from .protocol import Finished, TrialSpec, next_trials, stage1_best
from .store import Claimed, TrialStore

log = logging.getLogger("mae_transfer.search")


def entry_status(
    cfg: SearchConfig, store: TrialStore, name: str
) -> tuple[list[TrialSpec], Finished | None, bool]:
    """(trials to enqueue, final best, done). Done: a final best, or nothing left to try (all failed)."""
    entry = cfg.entries[name]
    reused = None
    if entry.reuse_lr_wd_from:
        src = entry.reuse_lr_wd_from
        src_todo, src_best = stage1_best(cfg.protocol_for(src), store.finished(src))
        if src_todo or src_best is None:
            src_done = entry_status(cfg, store, entry.reuse_lr_wd_from)[2]
            # wait for the source entry (dead end if it failed)
            return (
                [],
                None,
                src_done and src_best is None,
            )
        reused = (src_best.lr, src_best.weight_decay)
    specs, best = next_trials(cfg.protocol_for(name), store.finished(name), reused)
    if best is not None:
        return [], best, True
    pending = store.counts(name).get("WAITING", 0) + store.counts(name).get("RUNNING", 0)
    return specs, None, not specs and pending == 0


def trial_command(cfg: SearchConfig, name: str, spec: TrialSpec, out_dir: Path) -> list[str]:
    e = cfg.entries[name]
    keys = PARAM_KEYS[e.task]
    sched = list(cfg.schedules_for(name)[spec.schedule])
    overrides = [f"{keys[k]}={v!r}" for k, v in spec.params().items() if k != "schedule"]
    args = [*e.args, *sched]
    flags = [a for a in args if "=" not in a or a.startswith("--")]
    kv = [a for a in args if "=" in a and not a.startswith("--")] + overrides
    n = cfg.gpus_per_trial
    launcher = (
        ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(n)]
        if e.task == "seg" and n > 1
        else []
    )
    processes = (["--launcher", "pytorch"] if e.task == "seg" else ["--num-gpus", str(n)]) if n > 1 else []
    cmd = [
        sys.executable,
        *launcher,
        str(REPO_ROOT / TOOLS[e.task]),
        *flags,
        *processes,
        "--init",
        e.init,
        "--weights",
        e.weights_for(spec.seed),
        "--source",
        e.source,
        "--work-dir" if e.task == "seg" else "--output-dir",
        str(out_dir),
    ]
    if (out_dir / "last_checkpoint").exists():  # an interrupted run continues where it stopped
        cmd.append("--resume")
    return cmd + (["--cfg-options", *kv] if e.task == "seg" else kv)


def _read_metric(task: str, out_dir: Path) -> tuple[float | None, dict[str, Any]]:
    data = read_metrics(out_dir)
    if data is None:
        return None, {}
    value = data.get(METRICS[task])
    extra = {k: data.get(k) for k in ("APbox", "APmask", "mIoU", "aAcc", "mAcc") if k in data}
    # a test split evaluated once at the end
    test = data.get("test") if isinstance(data.get("test"), dict) else {}
    extra.update(
        {f"test_{k}": test[k] for k in ("APbox", "APmask", "mIoU", "aAcc") if test.get(k) is not None}
    )
    compute = data.get("compute") if isinstance(data.get("compute"), dict) else {}
    extra.update(
        {k: compute[k] for k in ("device", "s_per_iter", "peak_mem_mib", "images_seen") if k in compute}
    )
    if value is None and task == "det" and data.get("iteration", 0) > 0:
        value = 0.0  # COCOeval gives NaN when a trained model predicts nothing: that is AP 0
    return value, extra


def local_device() -> str:
    import torch

    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"


def cost(seconds: float, devices: int, device: str | None = None) -> dict[str, Any]:
    """A trial attempt's compute: wall seconds (start-up and evaluations included) x the devices it held."""
    return {
        "seconds": round(seconds, 1),
        "device": device or local_device(),
        "devices": devices,
        "device_hours": round(seconds * devices / 3600, 6),
    }


# what each harness logs per iteration: the training loss, the evaluation metric
LOSS_KEYS = {"det": "total_loss", "seg": "loss"}
EVAL_KEYS = {"det": "bbox/AP", "seg": "mIoU"}


def logged(task: str, out_dir: Path, key: str) -> list[tuple[int, float]]:
    """(iteration, value) of each logged ``key`` of a run so far, by iteration (det: log.jsonl; seg: the
    vis_data/scalars.json of every start of the run, a later start's row replacing an earlier one's)."""
    if task == "det":
        rows, step = read_jsonl(out_dir / "log.jsonl"), "iteration"
    else:
        rows = [r for path in sorted(out_dir.glob("*/vis_data/scalars.json")) for r in read_jsonl(path)]
        step = "step"
    return sorted({r[step]: r[key] for r in rows if key in r}.items())


def evaluations(task: str, out_dir: Path) -> list[tuple[int, float]]:
    """(iteration, metric) of each evaluation a run made so far, in order (COCOeval's NaN for a model that
    predicts nothing is AP 0)."""
    return [(i, v if math.isfinite(v) else 0.0) for i, v in logged(task, out_dir, EVAL_KEYS[task])]


class _Halving:
    """Successive halving of a stage-1 trial of a ``strategy="halving"`` protocol: each new evaluation is
    reported to the study as an intermediate value and Optuna's SuccessiveHalvingPruner (asynchronous: rungs
    at ``halving_min_evals`` x rate^k evaluations) says whether the run goes on. A run is never stopped at
    its last evaluation (``last_iter``, from its recipe card): it has finished, and is recorded so."""

    def __init__(
        self, cfg: SearchConfig, store: TrialStore, claimed: Claimed, out_dir: Path, last_iter: int | None
    ) -> None:
        protocol = cfg.protocol_for(claimed.entry)
        self.on = protocol.strategy == "halving" and claimed.spec.stage == 1
        self.task = cfg.entries[claimed.entry].task
        self.store, self.claimed, self.out_dir, self.last_iter = store, claimed, out_dir, last_iter
        self.seen = 0  # evaluations reported so far
        self.pruner = optuna.pruners.SuccessiveHalvingPruner(
            min_resource=protocol.halving_min_evals,
            reduction_factor=protocol.halving_rate,
            min_early_stopping_rate=0,
        )

    def check(self) -> bool:
        """True when the run should stop here (a rung it does not pass)."""
        evals = evaluations(self.task, self.out_dir)
        for step in range(self.seen + 1, len(evals) + 1):
            iteration, value = evals[step - 1]
            self.store.report(self.claimed, step, value)
            self.seen = step
            if iteration != self.last_iter and self.store.should_prune(self.claimed, self.pruner):
                return True
        return False


# a trial's own bookkeeping, never copied from the run it reuses
_OWN_ATTRS = (
    "key",
    "stage",
    "spec",
    "retry",
    "duplicate_of",
    "host",  # host ... heartbeat: the claim's (store.claim)
    "pid",
    "pid_start",
    "claimed_at",
    "heartbeat",
)


def _reuse(store: TrialStore, claimed: Claimed, identity: str, study: str, t: Any) -> float:
    """Complete ``claimed`` with the finished run ``t`` of the same identity: no run, no compute spent."""
    copied = {k: v for k, v in t.user_attrs.items() if k not in _OWN_ATTRS}
    store.complete(
        claimed,
        t.value,
        {
            **copied,
            "identity": identity,
            "cached_from": f"{study}#{t.number}",
            "cached_device_hours": t.user_attrs.get("device_hours"),
            "seconds": 0.0,
            "device_hours": 0.0,
        },
    )
    log.info(
        "trial %s #%d: reused %s#%d (same identity), value %.3f",
        claimed.entry,
        claimed.number,
        study,
        t.number,
        t.value,
    )
    return float(t.value)


def run_trial(cfg: SearchConfig, store: TrialStore, claimed: Claimed) -> float | None:
    spec, name = claimed.spec, claimed.entry
    out_dir = (
        Path(cfg.output_dir)
        / re.sub(r"[^A-Za-z0-9_.-]+", "_", name)
        / re.sub(r"[^A-Za-z0-9_.-]+", "_", spec.key())
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    log_path = out_dir / "trial.log"
    cmd = trial_command(cfg, name, spec, out_dir)
    attrs = {
        "log": str(log_path),
        "output_dir": str(out_dir),
        "command": " ".join(cmd),
        "devices": cfg.gpus_per_trial,
    }
    store.annotate(claimed, attrs)  # where a running trial writes, for anyone watching the study
    card = recipe_card(cmd)
    attrs["identity"] = trial_identity(cmd, cfg.entries[name].weights_for(spec.seed), card) if card else ""
    if attrs["identity"] and cfg.reuse_results:
        hit = store.find_completed(attrs["identity"])
        if hit is not None:
            return _reuse(store, claimed, attrs["identity"], *hit)
    log.info("trial %s #%d (stage %d) %s", name, claimed.number, spec.stage, spec.key())
    stop, lost = threading.Event(), threading.Event()

    def beat() -> None:
        while not stop.wait(cfg.heartbeat_s):
            try:
                store.heartbeat(claimed)
            except optuna.exceptions.UpdateFinishedTrialError:  # another worker re-queued it: stop the run
                lost.set()
                return

    threading.Thread(target=beat, daemon=True).start()
    rows = {r["name"]: r["value"] for r in card["rows"]} if card else {}
    halving = _Halving(cfg, store, claimed, out_dir, rows.get("max_iter", rows.get("max_iters")))
    try:
        rc, seconds = run_tool(
            cmd,
            log_path,
            cfg.trial_timeout_s,
            stop=lambda: lost.is_set() or (halving.on and halving.check()),
            poll_s=2.0,
        )
    finally:
        stop.set()
    if lost.is_set():
        raise optuna.exceptions.UpdateFinishedTrialError(f"trial {claimed.number} was re-queued")
    value, extra = _read_metric(cfg.entries[name].task, out_dir) if rc == 0 else (None, {})
    attrs.update(cost(seconds, cfg.gpus_per_trial, extra.get("device")))
    if rc == "stopped":
        store.prune(claimed, {**attrs, "pruned_after_evals": halving.seen})
        log.info(
            "trial %s #%d pruned after %d evaluation(s) (%.0f s)", name, claimed.number, halving.seen, seconds
        )
        return None
    if rc == 0 and halving.on:
        halving.check()  # evaluations the last polls missed: their rung values count for later trials
    if rc != 0 or value is None or not math.isfinite(value):
        reason = f"exit {rc}" if rc != 0 else "no metric in metrics.json"
        error = last_error(log_path)
        if error:
            reason += f": {error}"
        # another process (an orphan of a worker on another machine) holds the trial's folder: run it later
        busy = error is not None and "is in use by" in error
        # killed by a signal from outside (the OOM killer, a kill -9): not the run's own failure -- it runs
        # again, like the run of a worker that died, and counts as failed after max_retries such ends
        killed = isinstance(rc, int) and rc < 0
        store.fail(claimed, reason, attrs, retry=busy or killed)
        log.warning("trial %s #%d failed (%s); log: %s", name, claimed.number, reason, log_path)
        return None
    store.complete(claimed, float(value), {**attrs, **extra})
    log.info(
        "trial %s #%d: %s = %.3f (%.0f s)",
        name,
        claimed.number,
        METRICS[cfg.entries[name].task],
        value,
        attrs["seconds"],
    )
    return float(value)


def work(cfg: SearchConfig, worker: str = "worker", max_trials: int = 0, poll_s: float = 5.0) -> int:
    """Run trials until every entry is done (or ``max_trials`` ran); returns the number run here."""
    cfg.validate()
    store = TrialStore.for_search(cfg)
    ran = 0
    while not max_trials or ran < max_trials:
        claimed = None
        all_done = True
        for name in cfg.entries:
            store.reclaim_stale(name, cfg.stale_after_s)
            specs, _, done = entry_status(cfg, store, name)
            all_done &= done
            if specs:
                store.enqueue(name, specs)
            claimed = store.claim(name)
            if claimed is not None:
                break
        if claimed is not None:
            try:
                run_trial(cfg, store, claimed)
            except optuna.exceptions.UpdateFinishedTrialError:
                # another worker took the trial over (its heartbeats stopped reaching the storage): that
                # worker's run of it counts, this one's does not
                log.warning(
                    "trial %s #%d was re-queued by another worker; leaving it", claimed.entry, claimed.number
                )
            ran += 1
            continue
        if all_done:
            break
        time.sleep(poll_s)  # other workers hold the remaining trials, or a source entry is still running
    log.info("%s: ran %d trial(s); search %s", worker, ran, "complete" if all_done else "stopped")
    return ran
