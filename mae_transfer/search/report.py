"""A search's report on disk: report.md (Tables 4 and 5, plots, previews, every trial), the tables as CSV,
every seed's value in seeds.csv / results.json, every attempt's cost in trials.csv. The rows come from
``results``, the tables from ``tables``, the figures from ``plots``."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Any

from .config import METRICS, SearchConfig
from .plots import plot_grids
from .protocol import selection_seed
from .results import COST_KEYS, SECOND, collect
from .tables import fmt, fmt_hours, markdown, noise_verdicts, reference_label, tables


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
            f"Δ: difference of means to {reference_label(reference)} with its 95% confidence interval by "
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
        verdicts = noise_verdicts(rows, "det" if "Table 4" in title else "seg", reference)
        if verdicts:
            md += [f"Outside seed noise? (Δ vs {reference_label(reference)}, 95% interval)", ""]
            md += [*verdicts, ""]
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
                f"| {t['number']} | {t['stage']} | {t['state']} | {fmt(t['value'], 3)} | {t['lr']:.3g} "
                f"| {t['weight_decay']:.3g} | {t['drop_path']:.2g} | {t['schedule']} | {seed} | "
                f"{fmt_hours(t.get('device_hours'))} | {note.strip()} |"
            )
        md.append("")
    path = out / "report.md"
    path.write_text("\n".join(md))
    return path
