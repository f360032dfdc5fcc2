"""Runner hooks: ``metrics.json`` after every evaluation, and a stop on a non-finite loss."""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path
from typing import Any

import torch
from mmengine.hooks import Hook
from mmseg.registry import HOOKS

from ..errors import NonFiniteLossError
from ..runlog import ComputeMeter
from ..utils import write_json_atomic
from .metrics import clean_number

log = logging.getLogger("mae_transfer.seg")


@HOOKS.register_module()
class MetricsJSONHook(Hook):
    """After each validation/test epoch, write ``work_dir/metrics.json``: mIoU, aAcc, mAcc, per-class IoU.

    ``test_after_training`` (set by the harness for the test split's one evaluation after training): the test
    results go under a ``test`` key of the training run's metrics.json instead of replacing its validation
    results. ``eval_only_checkpoint`` (set by ``--eval-only``): the results go to ``metrics_eval.json`` with
    the checkpoint evaluated, and a training run's metrics.json is left as it is. A training run's metrics
    carry its ``compute`` block (``runlog.ComputeMeter``: validation time left out). Each training iteration's
    wait for its batch goes to the meter; the data-wait fraction so far is
    logged as ``train/data_wait`` and a warning says once when it exceeds 10%."""

    priority = "LOW"
    test_after_training = False
    eval_only_checkpoint: str | None = None
    meter: ComputeMeter | None = None
    start_iter = 0
    _was_training = False
    _iter_end = 0.0  # when the last training iteration (or a validation inside training) ended

    def before_train(self, runner) -> None:
        self.meter = ComputeMeter("cuda" if torch.cuda.is_available() else "cpu")
        self.start_iter = runner.iter  # a resumed run trains from here
        self.meter.start()
        self._iter_end = time.perf_counter()

    # the wait is timed here (mmengine's train/data_time would count a validation's metric computation too)
    def before_train_iter(self, runner, batch_idx: int, data_batch: Any = None) -> None:
        if self.meter is not None:
            self.meter.add_data_wait(time.perf_counter() - self._iter_end)

    def after_train_iter(self, runner, batch_idx: int, data_batch: Any = None, outputs: Any = None) -> None:
        if self.meter is not None:
            runner.message_hub.update_scalar("train/data_wait", self.meter.data_wait_fraction)
            if runner.rank == 0:  # one warning per run, not one per process
                self.meter.warn_on_data_wait(log, "train_dataloader.num_workers=N")
        self._iter_end = time.perf_counter()

    def after_train(self, runner) -> None:
        if self.meter is not None:
            self.meter.stop()

    def before_val_epoch(self, runner) -> None:
        self._was_training = self.meter is not None and self.meter.running
        if self.meter is not None:
            self.meter.stop()

    def _write(self, runner, metrics: dict[str, Any] | None, loop: Any, phase: str) -> None:
        if not metrics or runner.rank != 0:
            return
        summary = {k.split("/", 1)[-1]: clean_number(round(float(v), 4)) for k, v in metrics.items()}
        per_class = next((m.per_class_iou for m in loop.evaluator.metrics if hasattr(m, "per_class_iou")), {})
        data = {
            "mIoU": summary.get("mIoU"),
            "aAcc": summary.get("aAcc"),
            "mAcc": summary.get("mAcc"),
            "per_class_IoU": per_class,
            "iteration": runner.iter,
            "phase": phase,
        }
        if phase == "val" and self.meter is not None:
            batch = runner.train_dataloader.batch_size * runner.world_size
            data["compute"] = self.meter.record(
                runner.iter - self.start_iter, runner.iter * batch, runner.world_size
            )
        path = Path(runner.work_dir) / "metrics.json"
        if phase == "test" and self.eval_only_checkpoint is not None:
            path, data = (
                path.with_name("metrics_eval.json"),
                {**data, "checkpoint": self.eval_only_checkpoint},
            )
        elif phase == "test" and self.test_after_training:
            data = {**json.loads(path.read_text()), "test": data}
        write_json_atomic(data, path)

    def after_val_epoch(self, runner, metrics: dict[str, float] | None = None) -> None:
        self._write(runner, metrics, runner.val_loop, "val")
        if self._was_training:
            self.meter.start()
            self._iter_end = time.perf_counter()

    def after_test_epoch(self, runner, metrics: dict[str, float] | None = None) -> None:
        self._write(runner, metrics, runner.test_loop, "test")


@HOOKS.register_module()
class NonFiniteLossHook(Hook):
    """Stop training with a one-line error when the loss is NaN/inf (checkpoints already written stay)."""

    def after_train_iter(self, runner, batch_idx: int, data_batch: Any = None, outputs: Any = None) -> None:
        loss = (outputs or {}).get("loss")
        value = float(loss.detach()) if isinstance(loss, torch.Tensor) else loss
        if value is not None and not math.isfinite(value):
            raise NonFiniteLossError(
                f"loss is {value} at iteration {runner.iter + 1}; stopping "
                f"(checkpoints kept in {runner.work_dir})"
            )
