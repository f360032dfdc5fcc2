"""Mask R-CNN training / evaluation through detectron2 (LazyConfig + its trainers, hooks and COCOEvaluator).

The flow follows detectron2's ``lazyconfig_train_net``: load a LazyConfig, apply the entry's
hyperparameters and ``key=value`` overrides, validate and register datasets, build, train with
``AMPTrainer``/``SimpleTrainer`` + hooks, evaluate with ``COCOEvaluator``. Additions: the per-entry table,
override-key checking, dataset validation before anything is built, a JSON-lines/TensorBoard log, and a
final ``metrics.json`` with APbox / APmask and the AP breakdown.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig

from ..cli import (
    add_entry_args,
)
from ..console import console_to_log_files_only
from ..errors import ConfigError, NonFiniteLossError, UserError
from ..kernels import set_attention_kernel
from ..recipes import DET_BATCH
from ..rundir import lock_output_dir
from ..runlog import ComputeMeter, read_jsonl, setup_logging, truncate_jsonl, write_curves
from ..utils import autocast_training_forward, precision_name
from .checkpoint import SafeDetectionCheckpointer
from .config import load_config
from .data import register_datasets
from .evaluate import _ap, _nan_to_zero, do_test, write_metrics
from .recipe import bottom_up, det_card

log = logging.getLogger("mae_transfer.det")


# progress with ETA, training time, inference progress
_CONSOLE_LOGGERS = {
    "detectron2.utils.events",
    "detectron2.engine.train_loop",
    "detectron2.engine.hooks",
    "detectron2.evaluation.evaluator",
}


def _shows_on_console(record: logging.LogRecord) -> bool:
    return record.levelno >= logging.WARNING or record.name in _CONSOLE_LOGGERS


class _NoTracebackForNaN(logging.Filter):
    """detectron2 logs the trainer's exception with a traceback; a non-finite loss needs one line."""

    def filter(self, record: logging.LogRecord) -> bool:
        if (
            record.exc_info
            and record.exc_info[0] is not None
            and issubclass(record.exc_info[0], FloatingPointError)
        ):
            record.exc_info = None
            record.msg = f"{record.msg} (stopped on a non-finite loss)"
        return True


def _amp_dtype(cfg: DictConfig) -> torch.dtype:
    """``train.amp``'s autocast dtype: bf16 on GPUs that have it (else fp16); bf16 on CPU (load_config turns
    amp off on CPUs without native bf16)."""
    if cfg.train.device.startswith("cuda") and not torch.cuda.is_bf16_supported():
        return torch.float16
    return torch.bfloat16


def _precision(cfg: DictConfig) -> str:
    if not cfg.train.amp.enabled:
        return "fp32"
    how = "AMPTrainer" if cfg.train.device.startswith("cuda") else "training forward, CPU"
    return f"{precision_name(_amp_dtype(cfg))} autocast ({how}); fp32 weights and optimizer"


def main(args: argparse.Namespace) -> dict[str, Any]:
    """One process of a (possibly distributed) run; called directly or through detectron2's ``launch``."""
    from detectron2.config import instantiate
    from detectron2.engine import AMPTrainer, SimpleTrainer, default_setup, hooks
    from detectron2.engine.defaults import create_ddp_model
    from detectron2.utils import comm
    from detectron2.utils.events import CommonMetricPrinter, JSONWriter, TensorboardXWriter

    from .hooks import DataWaitHook

    cfg = load_config(args)
    args.config_file = args.config  # default_setup logs the config file by this name
    lock_output_dir(cfg.train.output_dir, comm.get_rank() == 0)  # before anything is written there
    # detectron2's environment dump, arguments and config (logged by default_setup), dataset statistics and
    # evaluation tables go to OUTPUT_DIR/log.txt only; the console keeps progress with ETA and warnings
    with console_to_log_files_only(
        lambda: [logging.getLogger("detectron2"), logging.getLogger("fvcore")], _shows_on_console
    ):
        default_setup(cfg, args)
    setup_logging(cfg.train.output_dir, comm.is_main_process(), name="log_mae_transfer.txt")
    logging.getLogger("detectron2.engine.train_loop").addFilter(_NoTracebackForNaN())
    card = det_card(cfg, cfg.entry.changed_by)
    card.notes.append(f"precision: {_precision(cfg)}")
    card.log(log)
    if comm.is_main_process():
        card.write(cfg.train.output_dir)
    register_datasets(cfg, eval_only=args.eval_only)

    model = instantiate(cfg.model).to(cfg.train.device)
    set_attention_kernel(model, torch.device(cfg.train.device), "fast")
    out = cfg.train.output_dir
    if args.eval_only:  # train.init_checkpoint if set, else the output dir's last checkpoint; into
        # metrics_eval.json (metrics.json stays)
        checkpointer = SafeDetectionCheckpointer(model, save_dir=out)
        last = not cfg.train.init_checkpoint and checkpointer.has_checkpoint()
        evaluated = (
            checkpointer.get_checkpoint_file()
            if last
            else cfg.train.init_checkpoint or f"initialization ({bottom_up(cfg).weights or 'random'})"
        )
        checkpointer.resume_or_load(cfg.train.init_checkpoint, resume=last)
        results = do_test(cfg, model)
        if comm.is_main_process():
            write_metrics(cfg, results, iteration=-1, name="metrics_eval.json", checkpoint=evaluated)
        return results

    cfg.optimizer.params.model = model
    optimizer = instantiate(cfg.optimizer)
    train_loader = instantiate(cfg.dataloader.train)
    # detectron2 names the local GPU otherwise
    cpu = {"device_ids": None} if cfg.train.device == "cpu" else {}
    model = create_ddp_model(model, **cfg.train.ddp, **cpu)
    if cfg.train.amp.enabled and cfg.train.device.startswith("cuda"):
        trainer: SimpleTrainer = AMPTrainer(model, train_loader, optimizer, precision=_amp_dtype(cfg))
    else:
        if cfg.train.amp.enabled:  # detectron2's AMPTrainer is CUDA-only
            autocast_training_forward(model, "cpu", _amp_dtype(cfg))
        trainer = SimpleTrainer(model, train_loader, optimizer)
    checkpointer = SafeDetectionCheckpointer(model, out, trainer=trainer)
    meter = ComputeMeter(cfg.train.device if cfg.train.device == "cpu" else f"cuda:{comm.get_local_rank()}")
    last: dict[str, Any] = {}  # the latest evaluation's results (on the main process; other ranks get {})
    evaluated = []  # whether any evaluation ran: the same on every rank, unlike `last`

    def evaluate() -> dict[str, Any]:
        with meter.excluded():
            res = do_test(cfg, model)
        last.clear()
        last.update(res)
        evaluated.append(trainer.iter)
        return res

    writers = [
        CommonMetricPrinter(cfg.train.max_iter),
        JSONWriter(os.path.join(out, "log.jsonl")),
        TensorboardXWriter(out),
    ]
    trainer.register_hooks(
        [
            hooks.IterationTimer(),
            DataWaitHook(meter),
            hooks.LRScheduler(scheduler=instantiate(cfg.lr_multiplier)),
            hooks.PeriodicCheckpointer(checkpointer, **cfg.train.checkpointer)
            if comm.is_main_process()
            else None,
            hooks.EvalHook(cfg.train.eval_period, evaluate),
            hooks.PeriodicWriter(writers, period=cfg.train.log_period) if comm.is_main_process() else None,
        ]
    )
    checkpointer.resume_or_load(cfg.train.init_checkpoint, resume=args.resume)
    start_iter = trainer.iter + 1 if args.resume and checkpointer.has_checkpoint() else 0
    if start_iter:
        log.info(
            "resumed from %s: training continues at iteration %d",
            checkpointer.get_checkpoint_file(),
            start_iter,
        )
    if start_iter and comm.is_main_process():
        truncate_jsonl(os.path.join(out, "log.jsonl"), after_step=trainer.iter, key="iteration")
        for hook in trainer._hooks:  # max_to_keep counts the checkpoints an earlier process wrote too
            if isinstance(hook, hooks.PeriodicCheckpointer):
                hook.recent_checkpoints = sorted(str(p) for p in Path(out).glob("model_[0-9]*.pth"))
    meter.start()
    try:
        trainer.train(start_iter, cfg.train.max_iter)
    except FloatingPointError as e:
        raise NonFiniteLossError(f"{e} (last checkpoint kept in {out})") from None
    meter.stop()
    if not evaluated:  # resumed at the end
        evaluate()
    test = {}
    if cfg.train.get("test_dataset"):  # once, after training (every rank: inference is collective)
        log.info("evaluating the test split once: %s", cfg.train.test_dataset)
        test = {"test": _ap(do_test(cfg, model, cfg.train.test_dataset), cfg.train.test_dataset)}
    if comm.is_main_process():
        batch = cfg.dataloader.train.total_batch_size
        compute = meter.record(
            cfg.train.max_iter - start_iter, cfg.train.max_iter * batch, comm.get_world_size()
        )
        path = write_metrics(cfg, last, iteration=cfg.train.max_iter, compute=compute, **test)
        rows = read_jsonl(Path(out) / "log.jsonl")
        write_curves(
            Path(out) / "curves.png",
            [(r["iteration"], r["total_loss"]) for r in rows if "total_loss" in r],
            [(r["iteration"], _nan_to_zero(r["bbox/AP"])) for r in rows if "bbox/AP" in r],
            "total loss",
            "APbox (COCO AP, 0-100)",
        )
        log.info(
            "metrics (COCO AP, 0-100): APbox %.2f APmask %.2f -> %s",
            _nan_to_zero(last.get("bbox", {}).get("AP", math.nan)),
            _nan_to_zero(last.get("segm", {}).get("AP", math.nan)),
            path,
        )
        write_val_preview(cfg, getattr(model, "module", model))
    return last


def write_val_preview(cfg: DictConfig, model: torch.nn.Module, n: int = 4) -> None:
    """``val_preview.png``: a few validation images, ground truth beside the trained model's prediction. A
    picture is not worth failing a finished run: a problem drawing it is a warning."""
    from detectron2.data import DatasetCatalog

    from .predict import DetPredictor, det_val_preview

    try:
        records = DatasetCatalog.get(cfg.dataloader.test.dataset.names)[:n]
        path = det_val_preview(DetPredictor(cfg, model), cfg.train.output_dir, records)
    except Exception as e:  # noqa: BLE001 - reported, and the tests check that previews are written
        log.warning("no val_preview.png: %s: %s", type(e).__name__, e)
        return
    log.info("validation preview (ground truth | prediction): %s", path)


def add_args(parser: argparse.ArgumentParser) -> None:
    add_entry_args(
        parser,
        "LazyConfig file (default: configs/det/mask_rcnn_vit_{b,l}_100ep.py by --backbone's size; for a "
        "miniature backbone, the one shipped config that builds it)",
        "Table 4",
        "lr / weight decay / drop path",
        DET_BATCH,
    )
    parser.add_argument("--output-dir", default=None)
    parser.add_argument(
        "--eval-only",
        action="store_true",
        help="evaluate train.init_checkpoint if set, else the output dir's last checkpoint, into "
        "metrics_eval.json",
    )
    parser.add_argument("--resume", action="store_true", help="continue from OUTPUT_DIR/last_checkpoint")
    g = parser.add_argument_group("datasets")
    g.add_argument(
        "--coco-root", default=None, help="COCO 2017 root (holds coco/annotations, coco/train2017, ...)"
    )
    g.add_argument("--train-json", default=None)
    g.add_argument("--train-images", default=None)
    g.add_argument("--val-json", default=None)
    g.add_argument("--val-images", default=None)
    g.add_argument(
        "--test-json",
        default=None,
        help="test split, evaluated once after training into metrics.json's 'test' key",
    )
    g.add_argument("--test-images", default=None)
    g = parser.add_argument_group("distributed (detectron2.engine.launch)")
    g.add_argument(
        "--num-gpus",
        type=int,
        default=1,
        help="processes per machine: one per GPU (at most the GPUs present); CPU processes on a machine "
        "without GPUs",
    )
    g.add_argument("--num-machines", type=int, default=1)
    g.add_argument("--machine-rank", type=int, default=0)
    g.add_argument("--dist-url", default="auto", help="tcp://HOST:PORT of machine 0 for multi-machine runs")
    g.add_argument(
        "--dist-timeout",
        type=float,
        default=1800,
        help="seconds to wait for every process to join (and for any collective operation); the default "
        "is detectron2's launch timeout",
    )
    parser.add_argument("opts", nargs="*", help="key=value LazyConfig overrides, e.g. train.max_iter=100")


def run(args: argparse.Namespace) -> None:
    import datetime

    from detectron2.engine import launch
    from torch.multiprocessing import ProcessRaisedException

    cfg = load_config(args)  # bad input fails here, as one line, before any process starts
    if args.print_recipe:
        print(det_card(cfg, cfg.entry.changed_by).render(args.print_recipe))
        return
    if cfg.train.device.startswith("cuda") and args.num_gpus > torch.cuda.device_count():
        raise ConfigError(
            f"--num-gpus {args.num_gpus}, but this machine has {torch.cuda.device_count()} GPU(s)"
        )
    if args.num_gpus == 1 and args.num_machines == 1:
        main(args)
        return
    try:
        launch(
            main,
            args.num_gpus,
            num_machines=args.num_machines,
            machine_rank=args.machine_rank,
            dist_url=args.dist_url,
            args=(args,),
            timeout=datetime.timedelta(seconds=args.dist_timeout),
        )
    except ProcessRaisedException as e:
        raise _worker_error(str(e), args) from None


def _worker_error(text: str, args: argparse.Namespace) -> Exception:
    """A launched process's failure, as the parent sees it (its traceback as text): a user error or a
    process group that could not form becomes one line; anything else (a bug) keeps the traceback."""
    kind, _, message = text.strip().splitlines()[-1].partition(": ")
    if kind.startswith("mae_transfer.errors."):
        return UserError(message)
    if "Dist" in kind or "timed out" in message or "Connection" in message:
        return UserError(
            f"the process group at {args.dist_url} did not form within --dist-timeout "
            f"{args.dist_timeout:g} s ({message}); every machine must reach machine 0 there and pass "
            "the same --num-machines and --num-gpus"
        )
    return RuntimeError(text)
