"""mmseg's IoUMetric with per-class IoU kept in the results, and a hook writing ``metrics.json``."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
from mmengine.hooks import Hook
from mmseg.evaluation import IoUMetric
from mmseg.registry import HOOKS, METRICS

from ..utils import write_json_atomic


@METRICS.register_module()
class IoUMetricPerClass(IoUMetric):
    """mmseg's IoUMetric (summary: mIoU, mAcc, aAcc; per-class table in the log) that also keeps the per-class
    IoU (percent) in ``self.per_class_iou`` for ``metrics.json``; the sums are mmseg's own."""

    def compute_metrics(self, results: list) -> dict[str, float]:
        summary = super().compute_metrics(results)
        stacked = tuple(zip(*results))
        intersect, union = sum(stacked[0]), sum(stacked[1])
        with np.errstate(invalid="ignore", divide="ignore"):
            iou = (intersect / union).numpy() * 100
        self.per_class_iou = {name: _clean(round(float(v), 2)) for name, v in zip(self.dataset_meta["classes"], iou)}
        return summary


def _clean(v: Any) -> Any:
    if isinstance(v, (np.floating, np.integer)):
        v = v.item()
    return None if isinstance(v, float) and not math.isfinite(v) else v


@HOOKS.register_module()
class MetricsJSONHook(Hook):
    """After each validation/test epoch, write ``work_dir/metrics.json``: mIoU, aAcc, mAcc, per-class IoU."""

    priority = "LOW"

    def _write(self, runner, metrics: dict[str, Any] | None, loop: Any, phase: str) -> None:
        if not metrics or runner.rank != 0:
            return
        summary = {k.split("/", 1)[-1]: _clean(round(float(v), 4)) for k, v in metrics.items()}
        per_class = next((m.per_class_iou for m in loop.evaluator.metrics if hasattr(m, "per_class_iou")), {})
        data = {"mIoU": summary.get("mIoU"), "aAcc": summary.get("aAcc"), "mAcc": summary.get("mAcc"),
                "per_class_IoU": per_class, "iteration": runner.iter, "phase": phase}
        write_json_atomic(data, Path(runner.work_dir) / "metrics.json")

    def after_val_epoch(self, runner, metrics: dict[str, float] | None = None) -> None:
        self._write(runner, metrics, runner.val_loop, "val")

    def after_test_epoch(self, runner, metrics: dict[str, float] | None = None) -> None:
        self._write(runner, metrics, runner.test_loop, "test")
