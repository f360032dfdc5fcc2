"""The report's figures: each entry's stage-1 lr x wd grid as a heat map, the metric against the schedule
length, the results with error bars, learning curves and cost."""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

from ..runlog import pyplot
from .config import METRICS, SearchConfig
from .results import learning_curves
from .runner import LOSS_KEYS
from .tables import INIT_LABELS


def _save(plt: Any, fig: Any, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_grids(cfg: SearchConfig, rows: list[dict[str, Any]], out_dir: Path) -> list[Path]:
    import numpy as np

    plt = pyplot()

    paths = []
    for r in rows:
        metric = METRICS[r["task"]]
        s1 = [
            t
            for t in r["trials"]
            if t["schedule"] == cfg.protocol.stage1_schedule
            and math.isclose(t["drop_path"], cfg.protocol.stage1_drop_path)
            and t["state"] in ("COMPLETE", "FAIL")
        ]
        if s1:
            lrs = sorted({t["lr"] for t in s1})
            wds = sorted({t["weight_decay"] for t in s1})
            grid = np.full((len(wds), len(lrs)), np.nan)
            for t in s1:
                grid[wds.index(t["weight_decay"]), lrs.index(t["lr"])] = (
                    t["value"] if t["value"] is not None else np.nan
                )
            fig, ax = plt.subplots(figsize=(1.6 + 1.1 * len(lrs), 1.2 + 0.8 * len(wds)))
            im = ax.imshow(grid, cmap="viridis", origin="lower")
            ax.set_xticks(range(len(lrs)), [f"{v:.2g}" for v in lrs])
            ax.set_yticks(range(len(wds)), [f"{v:.2g}" for v in wds])
            ax.set_xlabel("learning rate")
            ax.set_ylabel("weight decay")
            for (i, j), v in np.ndenumerate(grid):
                ax.text(
                    j,
                    i,
                    "failed" if math.isnan(v) else f"{v:.3g}",
                    ha="center",
                    va="center",
                    color="w",
                    fontsize=8,
                )
            ax.set_title(f"{r['entry']}: stage 1 {metric}")
            fig.colorbar(im, ax=ax)
            paths.append(_save(plt, fig, out_dir / f"grid_{r['entry'].replace('/', '_')}.png"))
    # metric vs schedule length: one panel per task (APbox and mIoU do not share a scale), a line per entry
    curves: dict[str, list[tuple[str, list[tuple[int, float]]]]] = {}
    for r in rows:
        b = r["best"]
        if not b:
            continue
        pts = sorted(
            (cfg.protocol.schedules.index(t["schedule"]), t["value"])
            for t in r["trials"]
            if t["state"] == "COMPLETE"
            and t["seed"] is None
            and t["lr"] == b["lr"]
            and t["weight_decay"] == b["weight_decay"]
            and t["drop_path"] == b["drop_path"]
            and t["schedule"] in cfg.protocol.schedules
        )
        if pts:
            curves.setdefault(r["task"], []).append((r["entry"], pts))
    if curves:
        fig, axes = plt.subplots(1, len(curves), figsize=(5 * len(curves), 3.8), squeeze=False)
        for ax, (task, lines) in zip(axes[0], curves.items()):
            for entry, pts in lines:
                ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=entry)
            ax.set_xticks(range(len(cfg.protocol.schedules)), list(cfg.protocol.schedules))
            ax.set_xlabel("schedule")
            ax.set_ylabel(METRICS.get(task, "metric"))
            ax.legend(fontsize=8)
        fig.suptitle("metric vs schedule length (each entry's best lr / wd / drop path)")
        paths.append(_save(plt, fig, out_dir / "schedules.png"))
    extra = [
        plot_results(rows, out_dir),
        plot_learning_curves(learning_curves(rows), out_dir),
        plot_cost(rows, out_dir),
    ]
    return paths + [p for p in extra if p]


def plot_results(rows: list[dict[str, Any]], out_dir: Path) -> Path | None:
    """Each entry's result: mean with a ±1 std error bar and every seed as a dot, one panel per task."""
    plt = pyplot()
    tasks = [t for t in ("det", "seg") if any(r["task"] == t and r["result"] for r in rows)]
    if not tasks:
        return None
    fig, axes = plt.subplots(1, len(tasks), figsize=(4.5 * len(tasks), 3.6), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        done = [r for r in rows if r["task"] == task and r["result"]]
        for i, r in enumerate(done):
            ax.errorbar([i], [r["result"].mean], yerr=[r["result"].std], fmt="o", capsize=6, markersize=8)
            vals = [t["value"] for t in r["seeds"] if t["state"] == "COMPLETE"]
            ax.scatter([i + 0.12] * len(vals), vals, s=14, color="k", alpha=0.6, zorder=3)
        ax.set_xticks(
            range(len(done)), [f"{INIT_LABELS.get(r['init'], r['init'])}\n{r['size']}" for r in done]
        )
        ax.set_xlim(-0.6, len(done) - 0.4)
        ax.set_ylabel(METRICS[task])
        ax.set_title(f"{task}: mean ± std over seeds (dots: seeds)", fontsize=9)
    return _save(plt, fig, out_dir / "results.png")


def plot_learning_curves(curves: list[dict[str, Any]], out_dir: Path) -> Path | None:
    """learning_curves.csv and .png: training loss, mean ± 1 std over each entry's seed runs, a panel per
    task -- how the initializations learn, beside what they reach."""
    if not curves:
        return None
    with open(out_dir / "learning_curves.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["entry", "task", "iteration", "loss_mean", "loss_std", "runs"])
        w.writerows(
            [
                c["entry"],
                c["task"],
                c["iteration"],
                f"{c['loss'].mean:.6g}",
                f"{c['loss'].std:.6g}",
                c["loss"].n,
            ]
            for c in curves
        )
    plt = pyplot()
    tasks = sorted({c["task"] for c in curves})
    fig, axes = plt.subplots(1, len(tasks), figsize=(5 * len(tasks), 3.6), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        for entry in dict.fromkeys(c["entry"] for c in curves if c["task"] == task):
            pts = [c for c in curves if c["entry"] == entry]
            xs = [c["iteration"] for c in pts]
            mean = [c["loss"].mean for c in pts]
            std = [c["loss"].std for c in pts]
            ax.plot(xs, mean, label=f"{entry} ({pts[0]['loss'].n} runs)")
            ax.fill_between(
                xs, [m - d for m, d in zip(mean, std)], [m + d for m, d in zip(mean, std)], alpha=0.2
            )
        ax.set_xlabel("iteration")
        ax.set_ylabel(f"training {LOSS_KEYS[task]}")
        ax.set_title(f"{task}: mean ± std over seed runs", fontsize=9)
        ax.legend(fontsize=7)
    return _save(plt, fig, out_dir / "learning_curves.png")


def plot_cost(rows: list[dict[str, Any]], out_dir: Path) -> Path | None:
    """Per entry, the best metric found so far against the device-hours spent so far (trials in the order
    they were created), one panel per task: what each point of the table cost."""
    plt = pyplot()
    tasks = [t for t in ("det", "seg") if any(r["task"] == t and r["trials"] for r in rows)]
    if not tasks:
        return None
    fig, axes = plt.subplots(1, len(tasks), figsize=(5 * len(tasks), 3.6), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        for r in (r for r in rows if r["task"] == task and r["trials"]):
            spent, best, xs, ys = 0.0, None, [], []
            for t in sorted(r["trials"], key=lambda t: t["number"]):
                spent += t.get("device_hours") or 0.0
                if t["state"] == "COMPLETE" and t["value"] is not None:
                    best = t["value"] if best is None else max(best, t["value"])
                if best is not None:
                    xs.append(spent)
                    ys.append(best)
            if xs:
                ax.step(xs, ys, where="post", marker="o", markersize=3, label=r["entry"])
        ax.set_xlabel("device-hours spent (cumulative)")
        ax.set_ylabel(f"best {METRICS[task]} so far")
        ax.legend(fontsize=7)
    return _save(plt, fig, out_dir / "cost.png")
