"""A detection run's recipe card: the numbers of a resolved LazyConfig that decide its result, with
sources."""

from __future__ import annotations

from typing import Any, Mapping

from omegaconf import DictConfig

from ..backbone import backbone_settings
from ..recipes import VITDET_RESULTS, WD_EXEMPT, RecipeCard, det_reference, make_card


def bottom_up(cfg: DictConfig) -> DictConfig:
    """The contract backbone's node (below FPN / SimpleNeck)."""
    node = cfg.model.backbone
    while "bottom_up" in node:
        node = node.bottom_up
    return node


def target_name(node: Any) -> str:
    target = node["_target_"]
    return (target if isinstance(target, str) else f"{target.__module__}.{target.__qualname__}").rsplit(
        ".", 1
    )[-1]


def det_values(cfg: DictConfig) -> dict[str, Any]:
    """Named quantities of a detection config (the recipe card's rows and the fidelity test's subject)."""
    bu = bottom_up(cfg)
    arch = backbone_settings(
        bu.name, **{k: v for k, v in bu.items() if k not in ("name", "weights", "source")}
    )
    sched = cfg.lr_multiplier.scheduler
    max_iter = cfg.train.max_iter
    resize = next(
        (a for a in cfg.dataloader.train.mapper.augmentations if target_name(a) == "ResizeScale"), None
    )
    values = {
        "backbone": bu.name,
        "optimizer": target_name(cfg.optimizer),
        "lr": cfg.optimizer.lr,
        "weight_decay": cfg.optimizer.weight_decay,
        "weight_decay_rule": cfg.optimizer.params.get("weight_decay_rule", "li"),
        "betas": tuple(cfg.optimizer.get("betas") or ()),
        "layer_decay": cfg.optimizer.params.layer_decay,
        "drop_path": bu.get("drop_path_rate", arch.get("drop_path_rate")),
        "batch": cfg.dataloader.train.total_batch_size,
        "max_iter": max_iter,
        "schedule": {"CosineParamScheduler": "cosine", "MultiStepParamScheduler": "multistep"}.get(
            target_name(sched), target_name(sched)
        ),
        "milestones": tuple(sched.get("milestones") or ()),
        "warmup_iters": round(cfg.lr_multiplier.warmup_length * max_iter),
        "warmup_factor": cfg.lr_multiplier.warmup_factor,
        "input_size": resize.target_height if resize is not None else None,
        "lsj_scale": (resize.min_scale, resize.max_scale) if resize is not None else None,
        "amp": bool(cfg.train.amp.enabled),
    }
    if arch:
        values.update(
            window_size=arch["window_size"],
            global_blocks=arch["global_blocks"],
            pyramid=arch["pyramid"],
            rel_pos=arch["rel_pos"],
            act_checkpoint=arch["act_checkpoint"],
        )
    return values


def det_card(cfg: DictConfig, changed_by: Mapping[str, str] | None = None) -> RecipeCard:
    entry = cfg.entry
    recipe = entry.get("recipe", "")
    values = det_values(cfg)
    reference, claims = {}, ""
    notes = [
        f"weight decay exempts: {WD_EXEMPT.get(values['weight_decay_rule'], '?')}",
        f"output dir: {cfg.train.output_dir}",
    ] + ([entry.batch_note] if entry.get("batch_note") else [])
    if recipe:
        reference = det_reference(entry.get("init", "mae"), entry.size, recipe, entry.epochs)
        claims = (
            f"{'ViTDet' if recipe == 'vitdet' else 'Li et al. 2021'}, ViT-{entry.size}, {entry.epochs} "
            f"epochs, init {entry.get('init', 'mae')}"
        )
        if recipe == "vitdet":
            notes.append(
                "published (ViTDet, MAE init): APbox %.1f / APmask %.1f" % VITDET_RESULTS[entry.size]
            )
    return make_card(
        "detection (Mask R-CNN, detectron2)", claims, values, reference, recipe, changed_by, notes
    )
