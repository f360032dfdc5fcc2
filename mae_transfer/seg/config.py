"""A segmentation run's mmengine config, resolved by ``resolve``'s pipeline: the config file, ``--init``, the
backbone flags (the heads take the backbone's widths), ``--iters``, the dataset flags, ``--cfg-options``, the
batch rule, the run settings and the CPU fallbacks (SyncBN -> BN, no AMP wrapper)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

import torch

from ..config import accepts_kwarg, check_override_type
from ..errors import ConfigError
from ..recipes import INIT_BACKBONE, SEG_BATCH, seg_entry_values
from ..resolve import Stage, apply_backbone_args, batch_stage, load_config_file, resolve, run_length_stage
from ..utils import cpu_has_native_bf16
from .recipe import seg_values

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


def replace_value(node: Any, old: str, new: str, keys: tuple[str, ...]) -> None:
    """Every ``old`` value under one of ``keys`` in a nested config becomes ``new`` (SyncBN -> BN)."""
    if isinstance(node, dict):
        for k, v in node.items():
            if k in keys and v == old:
                node[k] = new
            else:
                replace_value(v, old, new, keys)
    elif isinstance(node, (list, tuple)):
        for v in node:
            replace_value(v, old, new, keys)


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
    """The mmengine config resolved by ``resolve``'s pipeline; what each stage changed in the recipe's
    numbers is kept in ``cfg.entry.changed_by`` for the recipe card."""
    from mmengine.config import Config

    cfg = load_config_file(
        args,
        "configs/seg/upernet_vit_{size}_512x512_160k_ade20k.py",
        Config.fromfile,
        lambda c: c.get("entry", {}),
    )
    batch_note: list[str] = []
    changed_by = resolve(
        lambda: seg_values(cfg),
        [
            Stage(f"--init {args.init}", lambda: apply_entry(cfg, args.init)) if args.init else None,
            Stage("--backbone", lambda: apply_backbone_args(cfg.model.backbone, args)),
            Stage(None, lambda: heads_for_backbone(cfg, args)),
            run_length_stage(args, lambda n: set_run_length(cfg, n)),
            Stage(None, lambda: datasets_from_flags(cfg, args)),
            overrides_stage(cfg, args.cfg_options) if args.cfg_options else None,
            batch_stage(
                args,
                SEG_BATCH,
                lambda: global_batch(cfg, args),
                lambda factor: setattr(
                    cfg.optim_wrapper.optimizer, "lr", cfg.optim_wrapper.optimizer.lr * factor
                ),
                lambda ratio: scale_iterations(cfg, ratio),
                batch_note.append,
            ),
            Stage(None, lambda: check_schedulers(cfg)),
            Stage(None, lambda: run_settings(cfg, args)),
            Stage("CPU without native bf16", lambda: cpu_amp(cfg)),
        ],
    )
    cfg.entry = dict(cfg.get("entry", {}), changed_by=changed_by, batch_note=batch_note[-1])
    return cfg


def heads_for_backbone(cfg: Any, args: argparse.Namespace) -> None:
    """The heads take the maps' widths of the backbone asked for; a config that claims no recipe names its
    run by what it loads."""
    bb = cfg.model.backbone
    if args.backbone:
        from ..backbone import backbone_channels

        widths = backbone_channels(
            bb.name,
            **{k: v for k, v in bb.items() if k not in ("type", "name", "weights", "source", "out_levels")},
        )
        cfg.model.decode_head.in_channels = widths
        cfg.model.auxiliary_head.in_channels = widths[cfg.model.auxiliary_head.in_index]
    if not args.init and not cfg.get("entry", {}).get("recipe") and not bb.get("weights"):
        cfg.entry.init = "random"


def datasets_from_flags(cfg: Any, args: argparse.Namespace) -> None:
    """--data-root, and any "images + label PNGs + classes.txt" folder as a split (--train-images, ...)."""
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


def overrides_stage(cfg: Any, items: list[str]) -> Stage:
    """``--cfg-options key=value``: every key and value's type checked before any is applied."""
    options = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"--cfg-options item {item!r} is not of the form key=value")
        key, value = item.split("=", 1)
        check_option_key(cfg, key)
        options[key] = _parse(value)
        check_override_type(key, _lookup(cfg, key), options[key])
    return Stage("override", lambda: cfg.merge_from_dict(options))


def global_batch(cfg: Any, args: argparse.Namespace) -> tuple[int, int, str, str]:
    """(global batch, processes, per-process batch, recipe) for the batch rule."""
    world = launcher_rank_world(args.launcher)[1]
    per_process = cfg.train_dataloader.batch_size
    return world * per_process, world, str(per_process), cfg.get("entry", {}).get("recipe", "")


def check_schedulers(cfg: Any) -> None:
    for i, sched in enumerate(cfg.get("param_scheduler") or []):
        if "begin" in sched and "end" in sched and sched["end"] <= sched["begin"]:
            raise ConfigError(
                f"param_scheduler.{i} ({sched.get('type')}): end {sched['end']} must be larger than "
                f"begin {sched['begin']}"
            )


def run_settings(cfg: Any, args: argparse.Namespace) -> None:
    """Work dir, launcher and resume; one process: SyncBN has no peers (and refuses CPU tensors) so it
    becomes BN; several CPU processes: ``cpu_processes``."""
    cfg.work_dir = args.work_dir or cfg.get("work_dir") or f"output/seg/{Path(args.config).stem}"
    cfg.launcher = args.launcher
    if args.launcher == "none":
        replace_value(cfg.model, "SyncBN", "BN", keys=("type", "pyramid_norm"))
    elif not torch.cuda.is_available():
        cpu_processes(cfg)
    cfg.resume = bool(args.resume)


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
    replace_value(cfg.model, "SyncBN", "SyncBNCPU", keys=("type", "pyramid_norm"))
    cfg.env_cfg.setdefault("dist_cfg", {})["backend"] = "gloo"
    cfg.model_wrapper_cfg = dict(
        type="MMDistributedDataParallel",
        device_ids=None,
        broadcast_buffers=False,
        find_unused_parameters=cfg.get("find_unused_parameters", False),
    )


def cpu_amp(cfg: Any) -> None:
    """The config asks for mixed precision, this run has no GPU: bf16 autocast on a CPU with native bf16
    (CPUAmpOptimWrapper), full precision elsewhere (emulated bf16 is slower than fp32)."""
    if torch.cuda.is_available() or cfg.optim_wrapper.get("type") != "AmpOptimWrapper":
        return
    for key in ("loss_scale", "dtype"):  # GradScaler / fp16 settings: meaningless for CPU bf16
        cfg.optim_wrapper.pop(key, None)
    cfg.optim_wrapper.type = "CPUAmpOptimWrapper" if cpu_has_native_bf16() else "OptimWrapper"


def _parse(value: str) -> Any:
    import ast

    try:
        return ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return value
