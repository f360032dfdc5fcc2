"""A segmentation run's recipe card: the numbers of an mmengine config that decide its result, with sources.

``seg_values`` reads this project's configs and mmseg's own (its ``MAE`` / ``BEiT`` backbones name the taps
``out_indices`` and the layer decay ``layer_decay_rate``), so the fidelity test compares both sides with it.
"""

from __future__ import annotations

from typing import Any, Mapping

from ..recipes import SEG_REFERENCE, WD_EXEMPT, RecipeCard, make_card


def _step(pipeline: list, kind: str) -> dict:
    return next((t for t in pipeline if t.get("type") == kind), {})


def seg_values(cfg: Any) -> dict[str, Any]:
    """Named quantities of an mmengine segmentation config (the card's rows, the fidelity test's subject)."""
    opt = cfg.optim_wrapper
    paramwise = opt.get("paramwise_cfg") or {}
    bb, head, aux = cfg.model.backbone, cfg.model.decode_head, cfg.model.auxiliary_head
    warmup = next((s for s in cfg.param_scheduler if s.type == "LinearLR"), {})
    poly = next((s for s in cfg.param_scheduler if s.type == "PolyLR"), {})
    pipeline = cfg.train_dataloader.dataset.get("pipeline", [])
    resize, crop = _step(pipeline, "RandomResize"), _step(pipeline, "RandomCrop")
    taps = bb.get("taps", bb.get("out_indices"))
    return {
        "backbone": bb.get("name", bb.get("type")),
        "optimizer": opt.optimizer.type,
        "lr": opt.optimizer.lr,
        "weight_decay": opt.optimizer.weight_decay,
        "betas": tuple(opt.optimizer.get("betas") or ()),
        "layer_decay": paramwise.get("layer_decay", paramwise.get("layer_decay_rate", 1.0)),
        "drop_path": bb.get("drop_path_rate", 0.0),
        "taps": tuple(taps) if taps is not None else None,
        "warmup_iters": warmup.get("end"),
        "warmup_start_factor": warmup.get("start_factor"),
        "poly_power": poly.get("power"),
        "max_iters": cfg.train_cfg.max_iters,
        "batch_per_gpu": cfg.train_dataloader.batch_size,
        "crop_size": tuple(crop.get("crop_size", ())) or None,
        "resize_scale": tuple(resize.get("scale", ())) or None,
        "resize_ratio": tuple(resize.get("ratio_range", ())) or None,
        "cat_max_ratio": crop.get("cat_max_ratio"),
        "test_mode": cfg.model.test_cfg.get("mode"),
        "test_stride": tuple(cfg.model.test_cfg.get("stride", ())),
        "head_channels": head.channels,
        "pool_scales": tuple(head.pool_scales),
        "aux_loss_weight": aux.loss_decode.loss_weight,
        "aux_in_index": aux.in_index,
        "amp": opt.get("type") in ("AmpOptimWrapper", "CPUAmpOptimWrapper"),
    }


def seg_card(cfg: Any, changed_by: Mapping[str, str] | None = None) -> RecipeCard:
    entry = cfg.get("entry", {})
    size, recipe = entry.get("size", "B"), entry.get("recipe", "")
    reference = SEG_REFERENCE.get(size, {}) if recipe else {}
    claims = f"MAE Table 5 UperNet, ViT-{size}, init {entry.get('init', 'mae')}" if recipe else ""
    notes = [f"weight decay exempts: {WD_EXEMPT['li']}", f"work dir: {cfg.get('work_dir')}"] + (
        [entry["batch_note"]] if entry.get("batch_note") else []
    )
    return make_card(
        "segmentation (UperNet, mmsegmentation)",
        claims,
        seg_values(cfg),
        reference,
        recipe,
        changed_by,
        notes,
    )
