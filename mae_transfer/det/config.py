"""A detection run's LazyConfig, resolved by ``resolve``'s pipeline: the config file, ``--init``, the backbone
flags, ``--iters``, the dataset flags and ``--output-dir``, ``key=value`` overrides, the batch rule, the
device fallbacks."""

from __future__ import annotations

import argparse

import torch
from omegaconf import DictConfig, OmegaConf

from ..config import accepts_kwarg, check_override_type
from ..errors import ConfigError
from ..recipes import DET_BATCH, INIT_BACKBONE, det_entry_values
from ..resolve import Stage, apply_backbone_args, batch_stage, load_config_file, resolve, run_length_stage
from ..utils import cpu_has_native_bf16
from .data import coco2017_paths
from .recipe import bottom_up, det_values


def apply_entry(cfg: DictConfig, init: str) -> None:
    """``--init``: the entry's initialization; on a config that claims a published recipe, also that
    recipe's lr / wd / drop path / layer decay for the entry (a config that claims none keeps its numbers)."""
    cfg.entry.init = init
    if cfg.entry.get("recipe"):
        values = det_entry_values(init, cfg.entry.size, cfg.entry.recipe)
        cfg.optimizer.lr = values["lr"]
        cfg.optimizer.weight_decay = values["weight_decay"]
        cfg.optimizer.params.layer_decay = values["layer_decay"]
        bottom_up(cfg).drop_path_rate = values["drop_path"]
    for key, value in INIT_BACKBONE.get(init, {}).items():
        bottom_up(cfg)[key] = value


def check_override_key(cfg: DictConfig, key: str) -> None:
    """A key must exist, or be an argument of the LazyCall target that holds it; else ConfigError."""
    if OmegaConf.select(cfg, key, default="__missing__") != "__missing__":
        return
    parent_key, _, leaf = key.rpartition(".")
    parent = OmegaConf.select(cfg, parent_key, default=None) if parent_key else cfg
    if isinstance(parent, DictConfig) and "_target_" in parent:
        target = parent._target_
        if isinstance(target, str):
            from detectron2.utils.registry import locate

            target = locate(target)
        if accepts_kwarg(target, leaf):
            return
        raise ConfigError(
            f"unknown config key {key!r}: {getattr(target, '__name__', target)} takes no argument {leaf!r}"
        )
    raise ConfigError(f"unknown config key {key!r}")


def load_config(args: argparse.Namespace) -> DictConfig:
    """The LazyConfig resolved by ``resolve``'s pipeline; what each stage changed in the recipe's numbers is
    kept in ``cfg.entry.changed_by`` for the recipe card."""
    from detectron2.config import LazyConfig

    check_processes(args)
    cfg = load_config_file(
        args, "configs/det/mask_rcnn_vit_{size}_100ep.py", LazyConfig.load, lambda c: c.entry
    )
    cfg.entry.changed_by = resolve(
        lambda: det_values(cfg),
        [
            Stage(f"--init {args.init}", lambda: apply_entry(cfg, args.init)) if args.init else None,
            Stage("--backbone", lambda: apply_backbone_args(bottom_up(cfg), args)),
            Stage(None, lambda: name_random_init(cfg, args)),
            run_length_stage(args, lambda n: set_run_length(cfg, n)),
            Stage(None, lambda: datasets_from_flags(cfg, args)),
            overrides_stage(cfg, args.opts) if args.opts else None,
            batch_stage(
                args,
                DET_BATCH,
                lambda: global_batch(cfg, args),
                lambda factor: setattr(cfg.optimizer, "lr", cfg.optimizer.lr * factor),
                lambda ratio: scale_iterations(cfg, ratio),
                lambda line: setattr(cfg.entry, "batch_note", line),
            ),
            Stage(None, lambda: device_fallback(cfg)),
            Stage("CPU without native bf16", lambda: cpu_amp(cfg)),
        ],
    )
    return cfg


def check_processes(args: argparse.Namespace) -> None:
    if args.num_gpus < 1 or args.num_machines < 1 or not 0 <= args.machine_rank < args.num_machines:
        raise ConfigError(
            f"--num-gpus {args.num_gpus} --num-machines {args.num_machines} --machine-rank "
            f"{args.machine_rank}: need at least one GPU and machine, and 0 <= machine rank < machines"
        )
    if args.dist_timeout <= 0:
        raise ConfigError(f"--dist-timeout must be positive (seconds), got {args.dist_timeout:g}")


def name_random_init(cfg: DictConfig, args: argparse.Namespace) -> None:
    """A config that claims no recipe names its run by what it loads."""
    if not args.init and not cfg.entry.get("recipe") and not bottom_up(cfg).get("weights"):
        cfg.entry.init = "random"


def overrides_stage(cfg: DictConfig, opts: list[str]) -> Stage:
    """``key=value`` overrides: every key checked before any is applied, each value's type after."""
    from detectron2.config import LazyConfig

    before = {}
    for ov in opts:
        if "=" not in ov:
            raise ConfigError(f"override {ov!r} is not of the form key=value")
        key = ov.split("=", 1)[0]
        check_override_key(cfg, key)
        before[key] = OmegaConf.select(cfg, key, default=None)

    def apply() -> None:
        LazyConfig.apply_overrides(cfg, list(opts))
        for key, old in before.items():
            check_override_type(key, old, OmegaConf.select(cfg, key))

    return Stage("override", apply)


def global_batch(cfg: DictConfig, args: argparse.Namespace) -> tuple[int, int, str, str]:
    """(global batch, processes, per-process batch, recipe) for the batch rule."""
    world = args.num_gpus * args.num_machines
    batch = cfg.dataloader.train.total_batch_size
    if batch % world:
        raise ConfigError(
            f"global batch {batch} (dataloader.train.total_batch_size) does not split over {world} "
            "processes (--num-gpus x --num-machines)"
        )
    return batch, world, str(batch // world), cfg.entry.get("recipe", "")


def device_fallback(cfg: DictConfig) -> None:
    if cfg.train.device.startswith("cuda") and not torch.cuda.is_available():
        cfg.train.device = "cpu"


def cpu_amp(cfg: DictConfig) -> None:
    """Emulated bf16 is slower than fp32: a CPU without native bf16 trains in full precision."""
    if cfg.train.device == "cpu" and cfg.train.amp.enabled and not cpu_has_native_bf16():
        cfg.train.amp.enabled = False


def scale_iterations(cfg: DictConfig, ratio: float) -> None:
    """Every iteration count x ratio: the run length, evaluation and checkpoint periods, step milestones."""

    def iters(n: int) -> int:
        return max(1, round(n * ratio))

    cfg.train.max_iter, cfg.train.eval_period = iters(cfg.train.max_iter), iters(cfg.train.eval_period)
    cfg.train.checkpointer.period = iters(cfg.train.checkpointer.period)
    sched = cfg.lr_multiplier.scheduler  # warmup_length is a fraction of max_iter: it follows by itself
    if sched.get("milestones"):
        sched.milestones = [iters(m) for m in sched.milestones]
    if sched.get("num_updates"):
        sched.num_updates = iters(sched.num_updates)


def set_run_length(cfg: DictConfig, n: int) -> None:
    """--iters: the run ends at iteration n, every other iteration count in proportion (progress lines
    too)."""
    ratio = n / cfg.train.max_iter
    scale_iterations(cfg, ratio)
    cfg.train.max_iter = n
    cfg.train.log_period = max(1, round(cfg.train.log_period * ratio))


def datasets_from_flags(cfg: DictConfig, args: argparse.Namespace) -> None:
    """The dataset flags (--train-json/--train-images, ..., --coco-root) and --output-dir."""
    if args.output_dir:
        cfg.train.output_dir = args.output_dir
    if "datasets" not in cfg:
        cfg.datasets = {}
    if args.train_json or args.train_images:
        if not (args.train_json and args.train_images):
            raise ConfigError("--train-json and --train-images go together")
        cfg.datasets["custom_train"] = {"json": args.train_json, "images": args.train_images}
        cfg.dataloader.train.dataset.names = "custom_train"
    if args.val_json or args.val_images:
        if not (args.val_json and args.val_images):
            raise ConfigError("--val-json and --val-images go together")
        cfg.datasets["custom_val"] = {"json": args.val_json, "images": args.val_images}
        cfg.dataloader.test.dataset.names = "custom_val"
    if args.test_json or args.test_images:
        if not (args.test_json and args.test_images):
            raise ConfigError("--test-json and --test-images go together")
        cfg.datasets["custom_test"] = {"json": args.test_json, "images": args.test_images}
        cfg.train.test_dataset = "custom_test"
    if args.coco_root:
        cfg.datasets.update(coco2017_paths(args.coco_root))
