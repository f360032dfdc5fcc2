"""Trainer hooks of the detection harness."""

from __future__ import annotations

import logging

from detectron2.engine import HookBase
from detectron2.utils import comm

from ..runlog import ComputeMeter

log = logging.getLogger("mae_transfer.det")


class DataWaitHook(HookBase):
    """Hands each iteration's wait for its batch (detectron2's per-rank ``rank_data_time``) to ``meter``, puts
    the training time's data-wait fraction so far into the event storage as ``data_wait`` (log.jsonl and
    TensorBoard, through the periodic writers registered after this hook) and warns once above 10%."""

    def __init__(self, meter: ComputeMeter) -> None:
        self.meter = meter

    def after_step(self) -> None:
        storage = self.trainer.storage
        value, iteration = storage.latest().get("rank_data_time", (None, None))
        if value is None or iteration != self.trainer.iter:
            return
        self.meter.add_data_wait(value)
        storage.put_scalar("data_wait", self.meter.data_wait_fraction, smoothing_hint=False)
        if comm.is_main_process():  # one warning per run, not one per process
            self.meter.warn_on_data_wait(log, "dataloader.train.num_workers=N")
