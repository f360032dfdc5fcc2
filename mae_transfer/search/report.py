"""Tables 4 and 5 from a search's results (markdown + CSV), with the paper's numbers beside them: each cell
the mean ± std over seeds, a Δ column against a reference entry with its 95% interval; every seed's value in
seeds.csv / results.json; plots: each entry's stage-1 lr x wd grid as a heat map, the metric against the
schedule length, and the results with error bars."""

from __future__ import annotations

import csv
import json
import math
import os
from pathlib import Path
from typing import Any

from ..recipes import TABLE4, TABLE5
from ..runlog import pyplot
from .config import METRICS, SearchConfig
from .protocol import TrialSpec, seed_runs, selection_seed
from .runner import LOSS_KEYS, entry_status, logged
from .stats import Summary, welch_difference
from .store import TrialStore

INIT_LABELS = {
    "random": "random init",
    "supervised": "supervised",
    "mocov3": "MoCo v3",
    "beit": "BEiT",
    "mae": "MAE",
}
SECOND = {"det": "APmask", "seg": "aAcc"}  # the table's second measured column
# what each trial attempt cost (runner.cost, the harness's metrics.json compute block)
COST_KEYS = ("seconds", "device", "devices", "device_hours", "s_per_iter", "peak_mem_mib", "images_seen")


def _fmt(v: Any, digits: int = 1) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "-"
    return f"{v:.{digits}f}" if isinstance(v, float) else str(v)


def _column_digits(values: list[Any]) -> int:
    """1 decimal as in the paper, 3 when a column holds values under 1 (miniature runs: APbox 0.014 is not
    0.0)."""
    small = any(isinstance(v, float) and math.isfinite(v) and abs(v) < 1 for v in values)
    return 3 if small else 1


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


def _hours(v: float | None) -> str:
    return "-" if v is None else f"{v:.3g}"


def reference_rows(rows: list[dict[str, Any]], reference: str) -> dict[str, dict[str, Any] | None]:
    """entry -> the row its difference is measured against: the entry named ``reference``, or else the entry
    of initialization ``reference`` with the same task and size; None when there is none (or it is itself)."""
    by_name = {r["entry"]: r for r in rows}
    out: dict[str, dict[str, Any] | None] = {}
    for r in rows:
        ref = by_name.get(reference)
        if ref is None or ref["task"] != r["task"]:
            ref = next(
                (
                    o
                    for o in rows
                    if o["init"] == reference and o["task"] == r["task"] and o["size"] == r["size"]
                ),
                None,
            )
        out[r["entry"]] = None if ref is None or ref is r else ref
    return out


def _paper(task: str, init: str, size: str) -> tuple[Any, Any]:
    size = size if size in ("B", "L") else "B"  # miniature entries are shown beside the paper's ViT-B
    if task == "det":
        return TABLE4.get(init, {}).get(size, (None, None))
    return TABLE5.get(init, {}).get(size), None


def _reference_label(reference: str) -> str:
    return INIT_LABELS.get(reference, reference)


def _cell(s: Summary | None, digits: int) -> str:
    if s is None:
        return "-"
    return f"{s.mean:.{digits}f}" if s.n == 1 else f"{s.mean:.{digits}f} ± {s.std:.{digits}f}"


def _delta_cell(
    r: dict[str, Any], ref: dict[str, Any] | None, digits: int, reference: str, key: str = "result"
) -> str:
    if ref is None:  # this entry is the reference, or the search has none for its task and size
        is_reference = r["entry"] == reference or r["init"] == reference
        return "(reference)" if r[key] is not None and is_reference else "-"
    if r[key] is None or ref[key] is None:
        return "-"
    d = welch_difference(r[key], ref[key])
    text = f"{d.delta:+.{digits}f}"
    if d.lo is None:
        return text + " (one seed: no CI)"
    return text + f" [{d.lo:+.{digits}f}, {d.hi:+.{digits}f}]" + (" ≈" if d.within_noise else "")


def tables(rows: list[dict[str, Any]], reference: str = "random") -> dict[str, list[list[str]]]:
    """Table 4 (det) and Table 5 (seg) as lists of rows (header first). Each cell is the mean ± std over the
    entry's seed runs; the Δ column is its difference to ``reference`` (an entry name or an initialization)
    with Welch's 95% interval, marked ≈ when the interval contains 0."""
    out: dict[str, list[list[str]]] = {}
    refs = reference_rows(rows, reference)
    # the tables of the paper; the datasets are the entries' (COCO / ADE20K at full size, the miniature's own)
    for task, title in (
        ("det", "Table 4 (detection: Mask R-CNN)"),
        ("seg", "Table 5 (segmentation: UperNet)"),
    ):
        task_rows = [r for r in rows if r["task"] == task]
        if not task_rows:
            continue
        metric, second = METRICS[task], SECOND[task]
        delta = f"Δ {metric} vs {_reference_label(reference)} [95% CI]"
        # runs evaluated a test split once after training
        with_test = any(r["result_test"] for r in task_rows)
        measured = (
            [f"val {metric}", f"val {delta}", f"val {second}", f"test {metric}", f"test {delta}"]
            if with_test
            else [metric, delta, second]
        )
        paper = ["paper APbox", "paper APmask"] if task == "det" else ["paper mIoU"]
        header = [
            "init",
            "size",
            *measured,
            *paper,
            "lr",
            "wd",
            "drop path",
            "schedule",
            "seeds",
            "trials",
            "run device-h",
            "search device-h",
        ]
        with_runs = any(r["pretraining_runs"] > 1 for r in task_rows)
        if with_runs:  # an entry's seed runs fine-tune one pretraining run each (Entry.weights)
            header.insert(header.index("seeds") + 1, "pretraining runs")
        with_ld = any((r["best"] or {}).get("layer_decay") is not None for r in task_rows)
        if with_ld:  # an entry searched layer decay (Entry.protocol layer_decays)
            header.insert(header.index("drop path") + 1, "layer decay")
        body = [header]
        d1 = _column_digits([s.mean for r in task_rows for s in [r["result"]] if s])
        d2 = _column_digits([s.mean for r in task_rows for s in [r["result_" + second]] if s])
        for r in task_rows:
            b = r["best"] or {}
            paper = _paper(task, r["init"], r["size"])
            n = sum(
                1
                for t in r["trials"]
                if t["state"] in ("COMPLETE", "PRUNED", "FAIL")
                and t.get("error") != "interrupted (worker gone)"
            )
            if b:
                common = [
                    f"{b['lr']:.3g}",
                    f"{b['weight_decay']:.3g}",
                    f"{b['drop_path']:.2g}",
                    b["schedule"],
                ]
                ld = b.get("layer_decay")
            else:
                common = ["-", "-", "-", "(no result)" if r["done"] else "(in progress)"]
                ld = None
            if with_ld:
                common.insert(3, "config" if ld is None else f"{ld:.2g}")
            failed = sum(1 for t in r["seeds"] if t["state"] == "FAIL")
            seeds = str(r["result"].n if r["result"] else 0) + (f" ({failed} failed)" if failed else "")
            measured = [
                INIT_LABELS.get(r["init"], r["init"]),
                r["size"],
                _cell(r["result"], d1),
                _delta_cell(r, refs[r["entry"]], d1, reference),
                _cell(r["result_" + second], d2),
            ]
            if with_test:
                measured += [
                    _cell(r["result_test"], d1),
                    _delta_cell(r, refs[r["entry"]], d1, reference, "result_test"),
                ]
            cached = any(t.get("cached_from") for t in [b, *r["seeds"]] if t)
            run_cost = (
                (b.get("cached_device_hours") if b.get("cached_from") else b.get("device_hours"))
                if b
                else None
            )
            cost = [
                _hours(run_cost) + (" †" if b and b.get("cached_from") else ""),
                _hours(device_hours(r["trials"])),
            ]
            if cached:
                measured[2] += " †"
            counts = [seeds, str(r["pretraining_runs"] or "-")] if with_runs else [seeds]
            body.append(
                [*measured, *map(_fmt, paper[: 2 if task == "det" else 1]), *common, *counts, str(n), *cost]
            )
        out[title] = body
    return out


def markdown(table: list[list[str]]) -> str:
    head, *body = table
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(row) + " |" for row in body]
    return "\n".join(lines)


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


def write_seed_values(rows: list[dict[str, Any]], out: Path) -> None:
    """seeds.csv (one line per seed run) and results.json (every entry's summary and seed values)."""
    with open(out / "seeds.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(
            [
                "entry",
                "task",
                "init",
                "size",
                "seed",
                "state",
                "metric",
                "value",
                "second_metric",
                "second_value",
                "test_value",
                "lr",
                "weight_decay",
                "drop_path",
                "layer_decay",
                "schedule",
                "weights",
                "output_dir",
            ]
        )
        for r in rows:
            metric = METRICS[r["task"]]
            for t in r["seeds"]:
                w.writerow(
                    [
                        r["entry"],
                        r["task"],
                        r["init"],
                        r["size"],
                        "config" if t["seed"] is None else t["seed"],
                        t["state"],
                        metric,
                        t["value"],
                        SECOND[r["task"]],
                        t.get(SECOND[r["task"]]),
                        t.get(f"test_{metric}"),
                        t["lr"],
                        t["weight_decay"],
                        t["drop_path"],
                        t["layer_decay"],
                        t["schedule"],
                        t["weights"],
                        t.get("output_dir"),
                    ]
                )
    data = {
        r["entry"]: {
            "task": r["task"],
            "init": r["init"],
            "size": r["size"],
            "done": r["done"],
            "metric": METRICS[r["task"]],
            "summary": r["result"] and vars(r["result"]),
            "summary_" + SECOND[r["task"]]: r["result_" + SECOND[r["task"]]]
            and vars(r["result_" + SECOND[r["task"]]]),
            "summary_test": r["result_test"] and vars(r["result_test"]),
            "selected": r["best"]
            and {
                k: r["best"][k]
                for k in ("lr", "weight_decay", "drop_path", "layer_decay", "schedule", "value")
            },
            "seeds": [
                {
                    "seed": t["seed"],
                    "state": t["state"],
                    "value": t["value"],
                    SECOND[r["task"]]: t.get(SECOND[r["task"]]),
                    "test": t.get(f"test_{METRICS[r['task']]}"),
                    "weights": t["weights"],
                }
                for t in r["seeds"]
            ],
        }
        for r in rows
    }
    (out / "results.json").write_text(json.dumps(data, indent=1))


def write_report(cfg: SearchConfig, out_dir: str | Path, reference: str = "random") -> Path:
    """report.md + table CSVs + seeds.csv / results.json + PNG plots under ``out_dir``; returns the markdown
    path. ``reference``: the entry (or initialization) every Δ column is measured against."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = collect(cfg)
    tabs = tables(rows, reference)
    seeds = {cfg.protocol_for(name).seeds for name in cfg.entries}
    md = [
        f"# {cfg.name}: search report",
        "",
        f"Protocol `{cfg.protocol.name}` ({cfg.protocol.fingerprint()}), storage `{cfg.storage}`.",
        "",
    ]
    for title, table in tabs.items():
        md += [f"## {title}", "", markdown(table), ""]
        md += [
            f"Cells: mean ± sample std over the selected configuration's seed runs (column `seeds`; "
            f"{'the selected run itself' if seeds == {1} else 'seeds 1..N run after selection'}"
            + (
                "; an entry whose grid has one candidate selects nothing: its seed run 1 is its selected run"
                if any(selection_seed(cfg.protocol_for(name)) for name in cfg.entries)
                else ""
            )
            + "). "
            f"Δ: difference of means to {_reference_label(reference)} with its 95% confidence interval by "
            f"Welch's t (unequal variances); ≈ marks an interval that contains 0, i.e. a difference within "
            f"seed noise. "
            + (
                "Column `pretraining runs`: where above 1, seed run i fine-tunes pretraining run i, so the "
                "spread and the interval count the pretraining run's variance too; elsewhere an entry"
                if "pretraining runs" in table[0]
                else "Every entry"
            )
            + " fine-tunes one checkpoint: its spread counts fine-tuning seeds only, not another pretraining "
            "run."
            + (
                " val: the split the protocol selects on; test: evaluated once after each "
                "run, never used for selection."
                if table[0][2].startswith("val ")
                else ""
            ),
            "",
        ]
        if any("†" in cell for row in table[1:] for cell in row):
            md += [
                "† from the results cache: a finished run of the same identity (checkpoint content, recipe "
                "card, arguments, code version) in this storage, reused without running; its device-hours "
                "are the original run's and count in the search total of the entry that ran it.",
                "",
            ]
        if any(r["size"] not in ("B", "L") for r in rows):
            md += [
                "Paper columns: the full-scale ViT-B numbers (ImageNet pretraining, COCO / ADE20K), for "
                "reference only; this run's entries are miniature.",
                "",
            ]
        with open(out / f"{'table4' if 'Table 4' in title else 'table5'}.csv", "w", newline="") as f:
            csv.writer(f).writerows(table)
    write_seed_values(rows, out)
    with open(out / "trials.csv", "w", newline="") as f:  # every attempt and what it cost
        w = csv.writer(f)
        w.writerow(["entry", "number", "stage", "state", "value", "key", *COST_KEYS])
        for r in rows:
            for t in sorted(r["trials"], key=lambda t: t["number"]):
                w.writerow(
                    [r["entry"], t["number"], t["stage"], t["state"], t["value"], t["key"]]
                    + [t.get(k) for k in COST_KEYS]
                )
    plots = plot_grids(cfg, rows, out)
    md += ["## Plots", ""] + [f"![{p.stem}]({p.name})" for p in plots] + [""]
    previews = [
        (r["entry"], Path(r["best"]["output_dir"]) / "val_preview.png")
        for r in rows
        if r["best"] and r["best"].get("output_dir")
    ]
    previews = [(name, p) for name, p in previews if p.is_file()]
    if previews:  # the same validation images for every entry's selected run, to compare by eye
        md += ["## Predictions of each entry's selected run (validation: ground truth | prediction)", ""]
        md += [f"### {name}\n\n![{name}]({os.path.relpath(p, out)})\n" for name, p in previews]
    md += ["## Trials", ""]
    for r in rows:
        md.append(f"### {r['entry']} ({'done' if r['done'] else 'in progress'})")
        md.append("")
        md.append("| # | stage | state | value | lr | wd | drop path | schedule | seed | device-h | note |")
        md.append("|---|---|---|---|---|---|---|---|---|---|---|")
        for t in sorted(r["trials"], key=lambda t: t["number"]):
            note = t.get("error") or (f"reused {t['cached_from']}" if t.get("cached_from") else "")
            if t["state"] == "PRUNED":
                note = f"stopped by halving after {t.get('pruned_after_evals')} evaluation(s)"
            if t["state"] == "FAIL" and t.get("log"):
                note += f" (log: {t['log']})"
            seed = "config" if t["seed"] is None else t["seed"]
            md.append(
                f"| {t['number']} | {t['stage']} | {t['state']} | {_fmt(t['value'], 3)} | {t['lr']:.3g} "
                f"| {t['weight_decay']:.3g} | {t['drop_path']:.2g} | {t['schedule']} | {seed} | "
                f"{_hours(t.get('device_hours'))} | {note.strip()} |"
            )
        md.append("")
    path = out / "report.md"
    path.write_text("\n".join(md))
    return path
