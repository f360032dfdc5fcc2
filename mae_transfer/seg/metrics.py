"""mmseg's IoUMetric, also keeping the per-class IoU for ``metrics.json``."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from mmseg.evaluation import IoUMetric
from mmseg.registry import METRICS


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
        self.per_class_iou = {
            name: clean_number(round(float(v), 2)) for name, v in zip(self.dataset_meta["classes"], iou)
        }
        return summary


def clean_number(v: Any) -> Any:
    if isinstance(v, (np.floating, np.integer)):
        v = v.item()
    return None if isinstance(v, float) and not math.isfinite(v) else v
