"""UperNet training / evaluation through mmengine's Runner (mmseg models, datasets, IoUMetric).

Additions over mmseg's own train script: the per-entry table (``--init``), ``--backbone/--weights``,
dataset flags for any "images + label PNGs + classes.txt" folder, ``--cfg-options`` key checking,
CPU fallbacks (SyncBN -> BN, no AMP wrapper), weights_only-safe resume, and ``metrics.json``.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any

import torch

from ..cli import (
    add_entry_args,
)
from ..console import console_to_log_files_only
from ..dist import barrier, init_distributed
from ..kernels import set_attention_kernel
from ..recipes import SEG_BATCH
from ..rundir import lock_output_dir
from ..runlog import setup_logging, write_curves
from . import compat
from .config import launcher_rank_world, load_config
from .recipe import seg_card

log = logging.getLogger("mae_transfer.seg")


def run(args: argparse.Namespace) -> dict[str, Any]:
    """One process of a run (under mmengine's launcher when --launcher pytorch|slurm)."""
    from mmengine.logging import MMLogger
    from mmengine.runner import Runner

    cfg = load_config(args)
    card = seg_card(cfg, cfg.entry["changed_by"])
    if args.print_recipe:  # mmengine left as it is: a search worker resolves its trials' cards in-process
        print(card.render(args.print_recipe))
        return {}
    compat.patch_mmengine()
    main = launcher_rank_world(args.launcher)[0] == 0
    lock_output_dir(cfg.work_dir, main)  # before anything is written there
    setup_logging(cfg.work_dir, main, name="log_mae_transfer.txt")
    card.notes.append(f"precision: {_precision(cfg.optim_wrapper)}")
    card.log(log)
    if main:
        card.write(cfg.work_dir)
    if args.launcher != "none" and not torch.cuda.is_available():
        init_distributed("cpu")
    # mmengine's environment dump and full config (logged while the Runner is built), its hook table and the
    # per-class tables go to its log file only
    with console_to_log_files_only(lambda: [MMLogger.get_current_instance()], _shows_on_console):
        runner = Runner.from_cfg(cfg)
    set_attention_kernel(runner.model, torch.device("cuda" if torch.cuda.is_available() else "cpu"), "fast")
    if args.eval_only:  # into metrics_eval.json: a training run's metrics.json stays as it is
        ckpt = args.checkpoint or _last_checkpoint(cfg.work_dir)
        if ckpt:
            runner.load_checkpoint(ckpt)
        else:
            log.warning("--eval-only without a checkpoint: evaluating the initialization (--weights)")
            runner.model.init_weights()
        weights = cfg.model.backbone.get("weights") or "random"
        _metrics_hook(runner).eval_only_checkpoint = ckpt or f"initialization ({weights})"
        return runner.test()
    splits = [("training", runner.train_dataloader), ("validation", runner.val_dataloader)]
    if cfg.get("test_after_training"):  # built now: a bad test folder fails before training, not after it
        splits.append(("test", runner.test_dataloader))
    counts = ", ".join(f"{len(loader.dataset)} {name} images ({_folder(loader)})" for name, loader in splits)
    log.info("data: %s; %d classes", counts, len(runner.val_dataloader.dataset.metainfo["classes"]))
    runner.train()  # a NaN / inf loss stops it through NonFiniteLossHook (one-line error)
    barrier()  # metrics.json is the main process's: every rank reads it once written, and decides alike
    metrics_file = Path(cfg.work_dir) / "metrics.json"
    evaluated = json.loads(metrics_file.read_text()).get("iteration") if metrics_file.is_file() else None
    if evaluated != runner.iter:  # resumed after the last training step (killed during the final evaluation)
        log.info("no evaluation of iteration %d yet: evaluating now", runner.iter)
        runner.val_loop.run()
    if cfg.get("test_after_training") and "test" not in json.loads(metrics_file.read_text()):
        log.info("evaluating the test split once: %s", cfg.test_dataloader.dataset.get("data_prefix"))
        _metrics_hook(runner).test_after_training = True
        runner.test()
    if main:
        write_val_preview(runner)
        # one folder per start of the run (resumes)
        rows = [
            json.loads(line)
            for f in sorted(Path(cfg.work_dir).glob("*/vis_data/scalars.json"))
            for line in f.read_text().splitlines()
        ]
        write_curves(
            Path(cfg.work_dir) / "curves.png",
            [(r["step"], r["loss"]) for r in rows if "loss" in r],
            [(r["step"], r["mIoU"]) for r in rows if "mIoU" in r],
            "loss",
            "mIoU (%)",
        )
    return {"metrics_file": str(metrics_file)}


def _shows_on_console(record: logging.LogRecord) -> bool:
    return not record.getMessage().lstrip("\n").startswith(_FILE_ONLY_LINES)


# mmengine log lines (start of the message) for the log file only: long tables, notes on its internals
_FILE_ONLY_LINES = (
    "Hooks will be executed",
    "per class results",
    "+---",
    "The prefix is not set in metric class",
    '"FileClient" will be deprecated',
    '"HardDiskBackend" is the alias',
    "Distributed training is not used",
)


def _folder(loader: Any) -> str:
    prefix = loader.dataset.data_prefix.get("img_path", "")
    return str(Path(loader.dataset.data_root or "") / prefix) if prefix else loader.dataset.data_root


def _metrics_hook(runner: Any) -> Any:
    from .hooks import MetricsJSONHook

    return next(h for h in runner.hooks if isinstance(h, MetricsJSONHook))


def _precision(optim_wrapper: Any) -> str:
    kind = optim_wrapper.get("type", "OptimWrapper")
    if kind == "CPUAmpOptimWrapper":
        return "bf16 autocast (CPU); fp32 weights and optimizer"
    if kind == "AmpOptimWrapper":
        return (
            f"{optim_wrapper.get('dtype') or 'fp16'} autocast (AmpOptimWrapper); fp32 weights and optimizer"
        )
    return "fp32"


def write_val_preview(runner: Any, n: int = 4) -> None:
    """``val_preview.png``: a few validation images, ground truth beside the trained model's prediction."""
    from .predict import SegPredictor, seg_val_preview

    try:
        dataset = runner.val_dataloader.dataset
        infos = [dataset.get_data_info(i) for i in range(min(n, len(dataset)))]
        predictor = SegPredictor(
            runner.cfg,
            getattr(runner.model, "module", runner.model),
            dataset.metainfo["classes"],
            dataset.metainfo.get("palette"),
        )
        path = seg_val_preview(
            predictor,
            runner.work_dir,
            [(d["img_path"], d["seg_map_path"]) for d in infos],
            dataset.reduce_zero_label,
        )
    except Exception as e:  # noqa: BLE001 - a picture is not worth failing a finished run; tests check it
        log.warning("no val_preview.png: %s: %s", type(e).__name__, e)
        return
    log.info("validation preview (ground truth | prediction): %s", path)


def _last_checkpoint(work_dir: str) -> str | None:
    p = Path(work_dir) / "last_checkpoint"
    return p.read_text().strip() if p.is_file() else None


def add_args(parser: argparse.ArgumentParser) -> None:
    add_entry_args(
        parser,
        "mmengine config (default: configs/seg/upernet_vit_{b,l}_512x512_160k_ade20k.py by --backbone's "
        "size; for a miniature backbone, the one shipped config that builds it)",
        "Table 5",
        "lr / drop path / layer decay",
        SEG_BATCH,
    )
    parser.add_argument("--work-dir", default=None)
    parser.add_argument(
        "--resume", action="store_true", help="continue from the last checkpoint in the work dir"
    )
    parser.add_argument(
        "--eval-only",
        action="store_true",
        help="evaluate a checkpoint (default: the work dir's last) into metrics_eval.json",
    )
    parser.add_argument("--checkpoint", default=None, help="checkpoint for --eval-only")
    parser.add_argument(
        "--launcher",
        choices=["none", "pytorch", "slurm"],
        default="none",
        help="mmengine launcher (pytorch: under torchrun; slurm: under srun)",
    )
    g = parser.add_argument_group("datasets")
    g.add_argument("--data-root", default=None, help="ADE20K root (ADEChallengeData2016)")
    g.add_argument("--train-images", default=None)
    g.add_argument("--train-labels", default=None)
    g.add_argument("--val-images", default=None)
    g.add_argument("--val-labels", default=None)
    g.add_argument(
        "--test-images",
        default=None,
        help="test split, evaluated once after training into metrics.json's 'test' key (configs may set "
        "test_after_training=True for their own test_dataloader)",
    )
    g.add_argument("--test-labels", default=None)
    g.add_argument("--classes", default=None, help="classes.txt (one name per line; label 0 = ignore)")
    parser.add_argument(
        "--cfg-options",
        nargs="+",
        default=None,
        metavar="KEY=VALUE",
        help="config overrides, e.g. train_cfg.max_iters=1000 optim_wrapper.optimizer.lr=2e-4",
    )
