"""Tables 4 and 5 from the result rows: each cell the mean ± std over seed runs, a Δ column against a
reference entry with its 95% interval (Welch), the paper's numbers and the cost beside them; markdown."""

from __future__ import annotations

import math
from typing import Any

from ..recipes import TABLE4, TABLE5
from .config import METRICS
from .results import SECOND, device_hours
from .stats import Difference, Summary, welch_difference

INIT_LABELS = {
    "random": "random init",
    "supervised": "supervised",
    "mocov3": "MoCo v3",
    "beit": "BEiT",
    "mae": "MAE",
}


def fmt(v: Any, digits: int = 1) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "-"
    return f"{v:.{digits}f}" if isinstance(v, float) else str(v)


def _column_digits(values: list[Any]) -> int:
    """1 decimal as in the paper, 3 when a column holds values under 1 (miniature runs: APbox 0.014 is not
    0.0)."""
    small = any(isinstance(v, float) and math.isfinite(v) and abs(v) < 1 for v in values)
    return 3 if small else 1


def fmt_hours(v: float | None) -> str:
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


def reference_label(reference: str) -> str:
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
        delta = f"Δ {metric} vs {reference_label(reference)} [95% CI]"
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
                fmt_hours(run_cost) + (" †" if b and b.get("cached_from") else ""),
                fmt_hours(device_hours(r["trials"])),
            ]
            if cached:
                measured[2] += " †"
            counts = [seeds, str(r["pretraining_runs"] or "-")] if with_runs else [seeds]
            body.append(
                [*measured, *map(fmt, paper[: 2 if task == "det" else 1]), *common, *counts, str(n), *cost]
            )
        out[title] = body
    return out


def _verdict(d: Difference, digits: int, reference: str) -> str:
    text = f"{d.delta:+.{digits}f}"
    if d.lo is None:
        return text + " (one seed a side: no interval, so no verdict)"
    interval = f"[{d.lo:+.{digits}f}, {d.hi:+.{digits}f}]"
    if d.within_noise:
        return f"{text} {interval}: within seed noise (the interval contains 0)"
    side = "above" if d.delta > 0 else "below"
    return f"{text} {interval}: **outside seed noise**, {side} {reference_label(reference)}"


def noise_verdicts(rows: list[dict[str, Any]], task: str, reference: str = "random") -> list[str]:
    """One plain line per entry of ``task`` that has a reference: is each of its differences (validation
    metric, APmask for detection, test metric where a test split ran) outside seed noise?"""
    refs = reference_rows(rows, reference)
    metric, second = METRICS[task], SECOND[task]
    with_test = any(r["result_test"] for r in rows if r["task"] == task)
    split = "val " if with_test else ""
    keys = [(split, "result", metric)]  # (label prefix, row key, metric name)
    if task == "det":
        keys.append((split, "result_" + second, second))
    if with_test:
        keys.append(("test ", "result_test", metric))
    lines = []
    for r in rows:
        ref = refs[r["entry"]]
        if r["task"] != task or ref is None:
            continue
        parts = []
        for split, key, name in keys:
            if r[key] is None or ref[key] is None:
                continue
            digits = _column_digits([r[key].mean, ref[key].mean])
            parts.append(f"{split}{name} {_verdict(welch_difference(r[key], ref[key]), digits, reference)}")
        if parts:
            label = INIT_LABELS.get(r["init"], r["init"])
            lines.append(f"- {label} ({r['size']}): " + "; ".join(parts) + ".")
    return lines


def markdown(table: list[list[str]]) -> str:
    head, *body = table
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(row) + " |" for row in body]
    return "\n".join(lines)
