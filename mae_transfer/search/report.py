"""Tables 4 and 5 from a search's results (markdown + CSV), with the paper's numbers beside them, and
plots: each entry's stage-1 lr x wd grid as a heat map, and the metric against the schedule length."""
from __future__ import annotations

import csv
import json
import math
import os
from pathlib import Path
from typing import Any

from ..recipes import TABLE4, TABLE5
from .config import METRICS, SearchConfig
from .protocol import TrialSpec
from .runner import entry_status
from .store import TrialStore

INIT_LABELS = {"random": "random init", "supervised": "supervised", "mocov3": "MoCo v3", "beit": "BEiT", "mae": "MAE"}


def _fmt(v: Any, digits: int = 1) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "-"
    return f"{v:.{digits}f}" if isinstance(v, float) else str(v)


def _column_digits(values: list[Any]) -> int:
    """1 decimal as in the paper, 3 when a column holds values under 1 (miniature runs: APbox 0.014 is not 0.0)."""
    small = any(isinstance(v, float) and math.isfinite(v) and abs(v) < 1 for v in values)
    return 3 if small else 1


def collect(cfg: SearchConfig) -> list[dict[str, Any]]:
    """One row per entry: its final best trial (or how far it got) and every finished trial."""
    store = TrialStore.for_search(cfg)
    rows = []
    for name, e in cfg.entries.items():
        specs, best, done = entry_status(cfg, store, name)
        trials = []
        for t in store.trials(name):
            if "spec" not in t.user_attrs or t.user_attrs.get("duplicate_of") is not None:
                continue
            spec = TrialSpec(**json.loads(t.user_attrs["spec"]))
            trials.append({"number": t.number, "state": t.state.name, "value": t.value, **spec.__dict__,
                           **{k: t.user_attrs.get(k) for k in ("APmask", "aAcc", "error", "log", "output_dir")}})
        best_trial = None
        if best is not None:
            best_trial = next((t for t in trials if t["state"] == "COMPLETE" and
                               TrialSpec(0, t["lr"], t["weight_decay"], t["drop_path"], t["schedule"],
                                         t.get("layer_decay")).key() == best.key),
                              None)
        rows.append({"entry": name, "init": e.init, "size": e.size, "task": e.task, "done": done,
                     "best": best_trial, "trials": trials, "pending": len(specs)})
    return rows


def _paper(task: str, init: str, size: str) -> tuple[Any, Any]:
    size = size if size in ("B", "L") else "B"  # miniature entries are shown beside the paper's ViT-B
    if task == "det":
        return TABLE4.get(init, {}).get(size, (None, None))
    return TABLE5.get(init, {}).get(size), None


def tables(rows: list[dict[str, Any]]) -> dict[str, list[list[str]]]:
    """Table 4 (det) and Table 5 (seg) as lists of rows (header first)."""
    out: dict[str, list[list[str]]] = {}
    for task, title in (("det", "Table 4 (COCO Mask R-CNN)"), ("seg", "Table 5 (ADE20K UperNet)")):
        task_rows = [r for r in rows if r["task"] == task]
        if not task_rows:
            continue
        if task == "det":
            header = ["init", "size", "APbox", "APmask", "paper APbox", "paper APmask", "lr", "wd", "drop path",
                      "schedule", "trials"]
        else:
            header = ["init", "size", "mIoU", "aAcc", "paper mIoU", "lr", "wd", "drop path", "schedule", "trials"]
        with_ld = any((r["best"] or {}).get("layer_decay") is not None for r in task_rows)
        if with_ld:  # an entry searched layer decay (Entry.protocol layer_decays)
            header.insert(header.index("drop path") + 1, "layer decay")
        body = [header]
        second = "APmask" if task == "det" else "aAcc"
        d1 = _column_digits([(r["best"] or {}).get("value") for r in task_rows])
        d2 = _column_digits([(r["best"] or {}).get(second) for r in task_rows])
        for r in task_rows:
            b = r["best"] or {}
            paper = _paper(task, r["init"], r["size"])
            n = sum(1 for t in r["trials"] if t["state"] in ("COMPLETE", "FAIL") and t.get("error") != "interrupted (worker gone)")
            if b:
                common = [f"{b['lr']:.3g}", f"{b['weight_decay']:.3g}", f"{b['drop_path']:.2g}", b["schedule"], str(n)]
                ld = b.get("layer_decay")
            else:
                common = ["-", "-", "-", "(no result)" if r["done"] else "(in progress)", str(n)]
                ld = None
            if with_ld:
                common.insert(3, "config" if ld is None else f"{ld:.2g}")
            measured = [INIT_LABELS.get(r["init"], r["init"]), r["size"], _fmt(b.get("value"), d1), _fmt(b.get(second), d2)]
            body.append([*measured, *map(_fmt, paper[: 2 if task == "det" else 1]), *common])
        out[title] = body
    return out


def markdown(table: list[list[str]]) -> str:
    head, *body = table
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(row) + " |" for row in body]
    return "\n".join(lines)


def plot_grids(cfg: SearchConfig, rows: list[dict[str, Any]], out_dir: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    paths = []
    for r in rows:
        metric = METRICS[r["task"]]
        s1 = [t for t in r["trials"] if t["schedule"] == cfg.protocol.stage1_schedule
              and math.isclose(t["drop_path"], cfg.protocol.stage1_drop_path) and t["state"] in ("COMPLETE", "FAIL")]
        if s1:
            lrs = sorted({t["lr"] for t in s1})
            wds = sorted({t["weight_decay"] for t in s1})
            grid = np.full((len(wds), len(lrs)), np.nan)
            for t in s1:
                grid[wds.index(t["weight_decay"]), lrs.index(t["lr"])] = t["value"] if t["value"] is not None else np.nan
            fig, ax = plt.subplots(figsize=(1.6 + 1.1 * len(lrs), 1.2 + 0.8 * len(wds)))
            im = ax.imshow(grid, cmap="viridis", origin="lower")
            ax.set_xticks(range(len(lrs)), [f"{v:.2g}" for v in lrs])
            ax.set_yticks(range(len(wds)), [f"{v:.2g}" for v in wds])
            ax.set_xlabel("learning rate")
            ax.set_ylabel("weight decay")
            for (i, j), v in np.ndenumerate(grid):
                ax.text(j, i, "failed" if math.isnan(v) else f"{v:.3g}", ha="center", va="center", color="w", fontsize=8)
            ax.set_title(f"{r['entry']}: stage 1 {metric}")
            fig.colorbar(im, ax=ax)
            fig.tight_layout()
            p = out_dir / f"grid_{r['entry'].replace('/', '_')}.png"
            fig.savefig(p, dpi=110)
            plt.close(fig)
            paths.append(p)
    # metric vs schedule length: one panel per task (APbox and mIoU do not share a scale), a line per entry
    curves: dict[str, list[tuple[str, list[tuple[int, float]]]]] = {}
    for r in rows:
        b = r["best"]
        if not b:
            continue
        pts = sorted((cfg.protocol.schedules.index(t["schedule"]), t["value"]) for t in r["trials"]
                     if t["state"] == "COMPLETE" and t["lr"] == b["lr"] and t["weight_decay"] == b["weight_decay"]
                     and t["drop_path"] == b["drop_path"] and t["schedule"] in cfg.protocol.schedules)
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
        fig.tight_layout()
        p = out_dir / "schedules.png"
        fig.savefig(p, dpi=110)
        plt.close(fig)
        paths.append(p)
    return paths


def write_report(cfg: SearchConfig, out_dir: str | Path) -> Path:
    """report.md + table CSVs + PNG plots under ``out_dir``; returns the markdown path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = collect(cfg)
    tabs = tables(rows)
    md = [f"# {cfg.name}: search report", "", f"Protocol `{cfg.protocol.name}` ({cfg.protocol.fingerprint()}), "
          f"storage `{cfg.storage}`.", ""]
    for title, table in tabs.items():
        md += [f"## {title}", "", markdown(table), ""]
        if any(r["size"] not in ("B", "L") for r in rows):
            md += ["Paper columns: the full-scale ViT-B numbers (ImageNet pretraining, COCO / ADE20K), for reference "
                   "only; this run's entries are miniature.", ""]
        with open(out / f"{'table4' if 'Table 4' in title else 'table5'}.csv", "w", newline="") as f:
            csv.writer(f).writerows(table)
    plots = plot_grids(cfg, rows, out)
    md += ["## Plots", ""] + [f"![{p.stem}]({p.name})" for p in plots] + [""]
    previews = [(r["entry"], Path(r["best"]["output_dir"]) / "val_preview.png") for r in rows
                if r["best"] and r["best"].get("output_dir")]
    previews = [(name, p) for name, p in previews if p.is_file()]
    if previews:  # the same validation images for every entry's selected run, to compare by eye
        md += ["## Predictions of each entry's selected run (validation: ground truth | prediction)", ""]
        md += [f"### {name}\n\n![{name}]({os.path.relpath(p, out)})\n" for name, p in previews]
    md += ["## Trials", ""]
    for r in rows:
        md.append(f"### {r['entry']} ({'done' if r['done'] else 'in progress'})")
        md.append("")
        md.append("| # | state | value | lr | wd | drop path | schedule | note |")
        md.append("|---|---|---|---|---|---|---|---|")
        for t in sorted(r["trials"], key=lambda t: t["number"]):
            note = t.get("error") or ""
            if t["state"] == "FAIL" and t.get("log"):
                note += f" (log: {t['log']})"
            md.append(f"| {t['number']} | {t['state']} | {_fmt(t['value'], 3)} | {t['lr']:.3g} | {t['weight_decay']:.3g} "
                      f"| {t['drop_path']:.2g} | {t['schedule']} | {note.strip()} |")
        md.append("")
    path = out / "report.md"
    path.write_text("\n".join(md))
    return path
