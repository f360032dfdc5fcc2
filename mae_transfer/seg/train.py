"""UperNet training / evaluation through mmengine's Runner (mmseg models, datasets, IoUMetric).

Additions over mmseg's own train script: the per-entry table (``--init``), ``--backbone/--weights``,
dataset flags for any "images + label PNGs + classes.txt" folder, ``--cfg-options`` key checking,
CPU fallbacks (SyncBN -> BN, no AMP wrapper), weights_only-safe resume, and ``metrics.json``.
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import os
from pathlib import Path
from typing import Any, Callable

import torch

from ..cli import (
    add_entry_args,
    apply_backbone_args,
    batch_rule,
    check_backbone_size,
    config_for_backbone,
)
from ..config import accepts_kwarg, check_override_type
from ..console import console_to_log_files_only
from ..dist import barrier, init_distributed
from ..errors import ConfigError
from ..kernels import set_attention_kernel
from ..recipes import INIT_BACKBONE, SEG_BATCH, seg_entry_values, track_changes
from ..rundir import lock_output_dir
from ..runlog import setup_logging, write_curves
from ..utils import cpu_has_native_bf16
from . import compat
from .recipe import seg_card, seg_values

log = logging.getLogger("mae_transfer.seg")

_REGISTRY_NAMES = (
    "MODELS",
    "DATASETS",
    "TRANSFORMS",
    "OPTIMIZERS",
    "OPTIM_WRAPPERS",
    "OPTIM_WRAPPER_CONSTRUCTORS",
    "PARAM_SCHEDULERS",
    "HOOKS",
    "METRICS",
    "LOOPS",
    "VISUALIZERS",
    "VISBACKENDS",
    "DATA_SAMPLERS",
)


def _locate_type(type_name: Any) -> Any:
    if not isinstance(type_name, str):
        return type_name
    import mmseg.registry as regs

    for name in _REGISTRY_NAMES:
        reg = getattr(regs, name, None)
        if reg is not None:
            found = reg.get(type_name)
            if found is not None:
                return found
    return None


def check_option_key(cfg: Any, key: str) -> None:
    """``a.b.c`` must exist in the config, or be an argument of the registered type that holds it."""
    node: Any = getattr(cfg, "_cfg_dict", cfg)  # mmengine Config -> its ConfigDict
    parts = key.split(".")
    for i, part in enumerate(parts):
        is_last = i == len(parts) - 1
        if isinstance(node, (list, tuple)) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
            continue
        if isinstance(node, dict) and part in node:
            node = node[part]
            continue
        if isinstance(node, dict) and is_last and "type" in node:
            target = _locate_type(node["type"])
            if target is None:
                return  # unknown to us: let the registry decide
            if accepts_kwarg(target, part):
                return
            raise ConfigError(f"unknown config key {key!r}: {node['type']} takes no argument {part!r}")
        raise ConfigError(f"unknown config key {key!r} ({'.'.join(parts[: i + 1])} not found)")


def _lookup(cfg: Any, key: str) -> Any:
    """The config's value at a dotted key (list items by index), or None."""
    node: Any = getattr(cfg, "_cfg_dict", cfg)
    for part in key.split("."):
        if isinstance(node, (list, tuple)) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        elif isinstance(node, dict) and part in node:
            node = node[part]
        else:
            return None
    return node


def _replace_value(node: Any, old: str, new: str, keys: tuple[str, ...]) -> None:
    if isinstance(node, dict):
        for k, v in node.items():
            if k in keys and v == old:
                node[k] = new
            else:
                _replace_value(v, old, new, keys)
    elif isinstance(node, (list, tuple)):
        for v in node:
            _replace_value(v, old, new, keys)


def apply_entry(cfg: Any, init: str) -> None:
    """``--init``: the entry's initialization; on a config that claims a published recipe, also the entry
    table's lr / drop path / layer decay at the config's size (a config that claims none keeps its
    numbers)."""
    entry = cfg.get("entry", {})
    if entry.get("recipe"):
        values = seg_entry_values(init, entry.get("size", "B"))
        cfg.optim_wrapper.optimizer.lr = values["lr"]
        cfg.model.backbone.drop_path_rate = values["drop_path"]
        cfg.optim_wrapper.paramwise_cfg.layer_decay = values["layer_decay"]
    for k, v in INIT_BACKBONE.get(init, {}).items():
        cfg.model.backbone[k] = v
    cfg.entry = dict(entry, init=init)


def _folder_dataset(images: str, labels: str, classes: str, pipeline: list) -> dict:
    return dict(
        type="LabelFolderDataset",
        classes_file=classes,
        data_root="",
        data_prefix=dict(img_path=images, seg_map_path=labels),
        pipeline=pipeline,
    )


def load_config(args: argparse.Namespace) -> Any:
    """The mmengine config with --init, backbone and dataset flags and --cfg-options applied; what each
    changed in the recipe's numbers is kept in ``cfg.entry.changed_by`` for the recipe card."""
    from mmengine.config import Config

    args.config = config_for_backbone(
        args.config, "configs/seg/upernet_vit_{size}_512x512_160k_ade20k.py", args.backbone
    )
    if not Path(args.config).is_file():
        raise ConfigError(f"config file not found: {args.config}")
    cfg = Config.fromfile(args.config)
    if cfg.get("entry", {}).get("recipe"):
        check_backbone_size(args.config, cfg.entry.get("size", "B"), args.backbone)
    changed_by: dict[str, str] = {}

    track = functools.partial(track_changes, lambda: seg_values(cfg), changed_by)
    if args.init:
        track(f"--init {args.init}", lambda: apply_entry(cfg, args.init))
    bb = cfg.model.backbone
    track("--backbone", lambda: apply_backbone_args(bb, args))
    if args.backbone:  # the heads take the maps' widths of the backbone asked for
        from ..backbone import backbone_channels

        widths = backbone_channels(
            bb.name,
            **{k: v for k, v in bb.items() if k not in ("type", "name", "weights", "source", "out_levels")},
        )
        cfg.model.decode_head.in_channels = widths
        cfg.model.auxiliary_head.in_channels = widths[cfg.model.auxiliary_head.in_index]
    if not args.init and not cfg.get("entry", {}).get("recipe") and not bb.get("weights"):
        cfg.entry.init = "random"  # a config that claims no recipe names its run by what it loads
    if args.iters is not None:  # before the overrides: an explicit key wins
        if args.iters < 1:
            raise ConfigError(f"--iters must be at least 1, got {args.iters}")
        track(f"--iters {args.iters}", lambda: set_run_length(cfg, args.iters))
    if args.data_root:
        for loader in ("train_dataloader", "val_dataloader", "test_dataloader"):
            cfg[loader].dataset.data_root = args.data_root
    if (args.train_images or args.val_images or args.test_images) and not args.classes:
        raise ConfigError("--classes CLASSES.txt is required with --train-images/--val-images/--test-images")
    for split, images, labels in (
        ("train", args.train_images, args.train_labels),
        ("val", args.val_images, args.val_labels),
        ("test", args.test_images, args.test_labels),
    ):
        if images or labels:
            if not (images and labels):
                raise ConfigError(f"--{split}-images and --{split}-labels go together")
            loader = cfg[f"{split}_dataloader"]
            loader.dataset = _folder_dataset(images, labels, args.classes, loader.dataset.pipeline)
            if split == "val" and not args.test_images:  # --eval-only evaluates the given validation split;
                cfg.test_dataloader = cfg.val_dataloader  # the config's own test split is not this data's
                cfg.test_after_training = False
    if args.test_images:
        cfg.test_after_training = True
    if args.train_images and args.val_images:  # the config's own data is used nowhere: its helper keys would
        for key in ("dataset", "root"):  # stand in the saved config as if it were (e.g. another classes file)
            cfg.pop(key, None)
    if args.classes:
        from .datasets import read_classes

        n = len(read_classes(args.classes))
        cfg.model.decode_head.num_classes = n
        cfg.model.auxiliary_head.num_classes = n
    options = {}
    for item in args.cfg_options or []:
        if "=" not in item:
            raise ConfigError(f"--cfg-options item {item!r} is not of the form key=value")
        key, value = item.split("=", 1)
        check_option_key(cfg, key)
        options[key] = _parse(value)
        check_override_type(key, _lookup(cfg, key), options[key])
    track("override", lambda: cfg.merge_from_dict(options))
    world = launcher_rank_world(args.launcher)[1]
    per_process = cfg.train_dataloader.batch_size
    recipe = cfg.get("entry", {}).get("recipe", "")
    factor, batch_note = batch_rule(
        world * per_process,
        world,
        str(per_process),
        recipe,
        SEG_BATCH,
        args.batch_scaling,
        args.print_recipe,
        args.iters is not None,
    )
    if factor != 1.0:

        def scale() -> None:
            cfg.optim_wrapper.optimizer.lr = cfg.optim_wrapper.optimizer.lr * factor
            if args.iters is None:  # --iters is the run length asked for
                scale_iterations(cfg, 1 / factor)

        track("--batch-scaling linear", scale)
    for i, sched in enumerate(cfg.get("param_scheduler") or []):
        if "begin" in sched and "end" in sched and sched["end"] <= sched["begin"]:
            raise ConfigError(
                f"param_scheduler.{i} ({sched.get('type')}): end {sched['end']} must be larger than "
                f"begin {sched['begin']}"
            )
    cfg.work_dir = args.work_dir or cfg.get("work_dir") or f"output/seg/{Path(args.config).stem}"
    cfg.launcher = args.launcher
    if args.launcher == "none":  # one process: SyncBN has no peers (and refuses CPU tensors)
        _replace_value(cfg.model, "SyncBN", "BN", keys=("type", "pyramid_norm"))
    elif not torch.cuda.is_available():
        cpu_processes(cfg)
    if not torch.cuda.is_available() and cfg.optim_wrapper.get("type") == "AmpOptimWrapper":
        cpu_amp(cfg, track)
    cfg.resume = bool(args.resume)
    cfg.entry = dict(cfg.get("entry", {}), changed_by=changed_by, batch_note=batch_note)
    return cfg


def launcher_rank_world(launcher: str) -> tuple[int, int]:
    """This process's rank and the world size, before mmengine joins the process group: torchrun's RANK /
    WORLD_SIZE, or srun's SLURM_PROCID / SLURM_NTASKS under --launcher slurm."""
    if launcher == "slurm":
        return int(os.environ.get("SLURM_PROCID", "0")), int(os.environ.get("SLURM_NTASKS", "1"))
    return int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))


def scale_iterations(cfg: Any, ratio: float) -> None:
    """Every iteration count x ratio: the run length, evaluation and checkpoint intervals, lr schedule."""

    def iters(n: int) -> int:
        return max(1, round(n * ratio))

    loop = cfg.train_cfg
    loop.max_iters, loop.val_interval = iters(loop.max_iters), iters(loop.val_interval)
    cfg.default_hooks.checkpoint.interval = iters(cfg.default_hooks.checkpoint.interval)
    for sched in cfg.param_scheduler:  # a phase boundary stays >= 2 (mmengine's LinearLR over [0, 1) never
        sched.begin = max(2, iters(sched.begin)) if sched.begin else 0  # ramps up), and each phase non-empty
        sched.end = max(2, iters(sched.end), sched.begin + 1)


def set_run_length(cfg: Any, n: int) -> None:
    """--iters: the run ends at iteration n, every other iteration count in proportion (progress lines
    too)."""
    ratio = n / cfg.train_cfg.max_iters
    scale_iterations(cfg, ratio)
    cfg.train_cfg.max_iters = n
    cfg.default_hooks.logger.interval = max(1, round(cfg.default_hooks.logger.interval * ratio))


def cpu_processes(cfg: Any) -> None:
    """Several CPU processes (gloo): what mmengine assumes a GPU for. SyncBN becomes the CPU-capable
    SyncBatchNormCPU (global-batch statistics still), DDP wraps the model without device ids, and ``run``
    joins the gloo process group itself (mmengine's init_dist selects a CUDA device first)."""
    _replace_value(cfg.model, "SyncBN", "SyncBNCPU", keys=("type", "pyramid_norm"))
    cfg.env_cfg.setdefault("dist_cfg", {})["backend"] = "gloo"
    cfg.model_wrapper_cfg = dict(
        type="MMDistributedDataParallel",
        device_ids=None,
        broadcast_buffers=False,
        find_unused_parameters=cfg.get("find_unused_parameters", False),
    )


def cpu_amp(cfg: Any, track: Callable[[str, Callable[[], None]], None]) -> None:
    """The config asks for mixed precision, this run has no GPU: bf16 autocast on a CPU with native bf16
    (CPUAmpOptimWrapper), full precision elsewhere (emulated bf16 is slower than fp32)."""
    for key in ("loss_scale", "dtype"):  # GradScaler / fp16 settings: meaningless for CPU bf16
        cfg.optim_wrapper.pop(key, None)
    if cpu_has_native_bf16():
        cfg.optim_wrapper.type = "CPUAmpOptimWrapper"
    else:
        track("CPU without native bf16", lambda: setattr(cfg.optim_wrapper, "type", "OptimWrapper"))


def _parse(value: str) -> Any:
    import ast

    try:
        return ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return value


def run(args: argparse.Namespace) -> dict[str, Any]:
    """One process of a run (under mmengine's launcher when --launcher pytorch|slurm)."""
    from mmengine.logging import MMLogger
    from mmengine.runner import Runner

    compat.patch_mmengine()
    cfg = load_config(args)
    card = seg_card(cfg, cfg.entry["changed_by"])
    if args.print_recipe:
        print(card.render(args.print_recipe))
        return {}
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
    from ..predict import SegPredictor, seg_val_preview

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
        "size)",
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
