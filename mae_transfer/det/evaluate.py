"""COCO evaluation of a detector (detectron2's ``COCOEvaluator``) and the run's ``metrics.json``."""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from ..console import log_printed
from ..utils import write_json_atomic
from .recipe import bottom_up

log = logging.getLogger("mae_transfer.det")


def _sanitize(obj: Any) -> Any:
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _sanitize(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_sanitize(v) for v in obj]
    return obj


def do_test(cfg: DictConfig, model: torch.nn.Module, dataset: str | None = None) -> dict[str, Any]:
    """COCOEvaluator on the validation split, or on ``dataset`` (a registered name) through the same
    loader."""
    import copy

    from detectron2.config import instantiate
    from detectron2.evaluation import inference_on_dataset, print_csv_format

    loaders = cfg.dataloader
    if dataset:
        loaders = copy.deepcopy(cfg.dataloader)
        loaders.test.dataset.names = dataset  # the evaluator's dataset_name follows by interpolation
    evaluator = instantiate(loaders.evaluator)
    evaluator._output_dir = os.path.join(
        cfg.train.output_dir, "inference" + (f"_{dataset}" if dataset else "")
    )
    results = log_printed(lambda: inference_on_dataset(model, instantiate(loaders.test), evaluator), log)
    print_csv_format(results)
    return results


def _nan_to_zero(ap: float) -> float:
    """COCOeval's AP is NaN when the model predicts nothing: that is AP 0."""
    return ap if math.isfinite(ap) else 0.0


def _ap(results: dict[str, Any], dataset: str) -> dict[str, Any]:
    bbox, segm = results.get("bbox", {}), results.get("segm", {})
    return {"APbox": bbox.get("AP"), "APmask": segm.get("AP"), "bbox": bbox, "segm": segm, "dataset": dataset}


def write_metrics(
    cfg: DictConfig, results: dict[str, Any], iteration: int, name: str = "metrics.json", **extra: Any
) -> Path:
    """``name`` in the output dir: APbox / APmask and the AP breakdown, the run's backbone and entry,
    ``extra``."""
    bu = bottom_up(cfg)
    metrics = {
        **_ap(results, cfg.dataloader.test.dataset.names),
        "iteration": iteration,
        "backbone": bu.name,
        "weights": bu.weights or "random init",
        "entry": OmegaConf.to_container(cfg.entry),
        **extra,
    }
    return write_json_atomic(_sanitize(metrics), Path(cfg.train.output_dir) / name)
