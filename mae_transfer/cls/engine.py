"""Fine-tune (Table 9) and linear probe (Table 10) of a pretrained encoder on an ImageFolder dataset.

The classifier is timm's ``VisionTransformer``; the encoder weights come through the same checkpoint
converters as the transfer backbones, so any Table 4 initialization (or none: random init) works.
"""

from __future__ import annotations

import logging
import math
import sys
import time
from functools import partial
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
from timm.data import Mixup
from timm.loss import LabelSmoothingCrossEntropy, SoftTargetCrossEntropy
from timm.models.vision_transformer import VisionTransformer
from timm.optim import Lars
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler
from tqdm import tqdm

from ..checkpoints import (
    load_checkpoint,
    save_atomic,
)
from ..data import SafeImageFolder, SkipCounter, collate_skip_bad
from ..errors import ConfigError, DataError, NonFiniteLossError
from ..kernels import adamw, set_attention_kernel
from ..optim import AccumulatedSteps, cosine_lr, param_groups, vit_layer_id
from ..rundir import run_in_output_dir
from ..runlog import RunLogger, setup_logging
from ..utils import autocast, precision_name, resolve_precision, seed_all, write_json_atomic
from .config import ClsConfig
from .linprobe import linprobe_cached
from .model import build_classifier, build_datasets, evaluate

log = logging.getLogger("mae_transfer.cls")


# ----------------------------------------------------------------------------- main
def run_cls(cfg: ClsConfig) -> dict[str, Any]:
    """Fine-tune or linear-probe; writes metrics.json and returns it."""
    return run_in_output_dir(cfg, _run_cls)


def _run_cls(cfg: ClsConfig, device: torch.device, rank: int, world: int) -> dict[str, Any]:
    main = rank == 0
    out = Path(cfg.output_dir)
    setup_logging(out, main)
    seed_all(cfg.seed + rank)
    amp_dtype = resolve_precision(cfg.precision, device)
    train_set, val_set = build_datasets(cfg)
    model, report = build_classifier(cfg, num_classes=len(train_set.classes))
    model.to(device)
    set_attention_kernel(model, device, cfg.kernels)
    if main:
        out.mkdir(parents=True, exist_ok=True)
        write_json_atomic(cfg.to_dict(), out / "config.json")
        card = cfg.recipe_card(world)
        card.notes.append(
            f"precision: {precision_name(amp_dtype)} (precision={cfg.precision}); kernels: {cfg.kernels}"
        )
        card.write(out)
        card.log(log)

    if cfg.mode == "linprobe" and cfg.cache_features:
        metrics = linprobe_cached(cfg, model, train_set, val_set, device, amp_dtype, main)
    else:
        metrics = _train(cfg, model, train_set, val_set, device, amp_dtype, main, world, rank)
    metrics.update(
        mode=cfg.mode,
        weights=cfg.weights or "random init",
        source=report.source if report else "random",
        classes=len(train_set.classes),
    )
    if main:
        write_json_atomic(metrics, out / "metrics.json")
        log.info("final: top1 %.2f  top5 %.2f  (%s)", metrics["top1"], metrics["top5"], out / "metrics.json")
    return metrics


def _optimizer(cfg: ClsConfig, model: VisionTransformer, lr: float) -> torch.optim.Optimizer:
    depth = len(model.blocks)
    if cfg.mode == "finetune":
        groups = param_groups(
            model,
            lr=lr,
            weight_decay=cfg.weight_decay,
            layer_decay=cfg.layer_decay,
            num_layers=depth,
            layer_id=partial(vit_layer_id, num_layers=depth),
        )
    else:
        groups = param_groups(model, lr=lr, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adamw":
        return adamw(groups, lr=lr, betas=(0.9, 0.999), kernels=cfg.kernels)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=cfg.momentum)
    if cfg.optimizer == "lars":
        return Lars(groups, lr=lr, momentum=cfg.momentum)
    raise ConfigError(f"unknown optimizer {cfg.optimizer!r}; choose adamw, sgd or lars")


def _loader(
    dataset: Any, cfg: ClsConfig, world: int, rank: int, train: bool
) -> tuple[DataLoader, DistributedSampler]:
    sampler = DistributedSampler(
        dataset, num_replicas=world, rank=rank, shuffle=train, seed=cfg.seed, drop_last=train
    )
    loader = DataLoader(
        dataset,
        batch_size=cfg.batch_size,
        sampler=sampler,
        num_workers=cfg.num_workers,
        collate_fn=collate_skip_bad,
        drop_last=train,
        persistent_workers=cfg.num_workers > 0,
    )
    return loader, sampler


def _train(
    cfg: ClsConfig,
    model: VisionTransformer,
    train_set: SafeImageFolder,
    val_set: SafeImageFolder,
    device: torch.device,
    amp_dtype: torch.dtype | None,
    main: bool,
    world: int,
    rank: int,
) -> dict[str, Any]:
    train_loader, sampler = _loader(train_set, cfg, world, rank, train=True)
    val_loader, _ = _loader(val_set, cfg, world, rank, train=False)
    if len(train_loader) == 0:
        raise DataError(
            f"{cfg.data_path}/train has {len(train_set)} images: fewer than one batch of {cfg.batch_size}"
        )
    lr = cfg.lr if cfg.lr is not None else cfg.blr * cfg.batch_size * cfg.accum_iter * world / 256
    optimizer = _optimizer(cfg, model, lr)
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype is torch.float16)
    mixup = None
    if cfg.mode == "finetune" and (cfg.mixup > 0 or cfg.cutmix > 0):
        mixup = Mixup(
            mixup_alpha=cfg.mixup,
            cutmix_alpha=cfg.cutmix,
            label_smoothing=cfg.smoothing,
            num_classes=len(train_set.classes),
        )
        criterion: nn.Module = SoftTargetCrossEntropy()
    elif cfg.mode == "finetune" and cfg.smoothing > 0:
        criterion = LabelSmoothingCrossEntropy(cfg.smoothing)
    else:
        criterion = nn.CrossEntropyLoss()

    start_epoch, best = 0, 0.0
    resume = (
        Path(cfg.output_dir) / "checkpoint-last.pth"
        if cfg.resume == "auto"
        else (Path(cfg.resume) if cfg.resume else None)
    )
    if resume is not None and resume.is_file():
        ckpt = load_checkpoint(resume)
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        start_epoch, best = int(ckpt["epoch"]), float(ckpt.get("best_top1", 0.0))
        log.info("resumed from %s at epoch %d", resume, start_epoch)

    net = (
        DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
        if world > 1
        else model
    )
    logger = RunLogger(cfg.output_dir, enabled=main)
    n_iter = len(train_loader)
    steps = AccumulatedSteps(
        net,
        optimizer,
        scaler,
        cfg.accum_iter,
        n_iter,
        lambda e: cosine_lr(e, lr, cfg.epochs, cfg.warmup_epochs, cfg.min_lr),
    )
    val: dict[str, float] = {}
    skipped = SkipCounter()
    try:
        for epoch in range(start_epoch, cfg.epochs):
            seed_all(cfg.seed * 100_003 + epoch * 1_009 + rank)
            sampler.set_epoch(epoch)
            net.train()
            if cfg.mode == "linprobe":  # frozen encoder: keep it in eval mode, train only the probe
                model.eval()
                model.head.train()
            t0, loss_sum, seen = time.perf_counter(), 0.0, 0
            bar = tqdm(
                train_loader,
                desc=f"{cfg.mode} epoch {epoch + 1}/{cfg.epochs}",
                disable=not main,
                leave=False,
                mininterval=1.0 if sys.stderr.isatty() else 30.0,
            )
            for it, (imgs, labels, bad) in enumerate(bar):
                skipped.add(bad)
                if imgs.numel() == 0:
                    continue
                imgs, labels = imgs.to(device), labels.to(device)
                if mixup is not None:
                    if (
                        imgs.shape[0] % 2
                    ):  # timm's Mixup pairs samples: drop one when a bad file made the batch odd
                        imgs, labels = imgs[:-1], labels[:-1]
                    imgs, labels = mixup(imgs, labels)
                with steps.iteration(epoch, it):
                    with autocast(device, amp_dtype):
                        loss = criterion(net(imgs), labels)
                    value = loss.item()
                    if not math.isfinite(value):
                        raise NonFiniteLossError(f"loss is {value} at epoch {epoch + 1}, iteration {it + 1}")
                    steps.backward(loss)
                loss_sum += value * imgs.shape[0]
                seen += imgs.shape[0]
                bar.set_postfix(loss=f"{value:.3f}", refresh=False)
            skipped.report(f"epoch {epoch + 1}")
            record: dict[str, Any] = {
                "epoch": epoch + 1,
                "train_loss": loss_sum / max(seen, 1),
                "lr": optimizer.param_groups[-1]["lr"],
                "epoch_time_s": time.perf_counter() - t0,
            }
            if (epoch + 1) % cfg.eval_every == 0 or epoch + 1 == cfg.epochs:
                val = evaluate(model, val_loader, device, amp_dtype)
                best = max(best, val["top1"])
                record.update({f"val/{k}": v for k, v in val.items()}, best_top1=best)
            if main:
                logger.log((epoch + 1) * n_iter, **record)
                log.info(
                    "epoch %d: %s",
                    epoch + 1,
                    ", ".join(f"{k} {v:.4g}" for k, v in record.items() if isinstance(v, float)),
                )
                save_atomic(
                    {
                        "model": model.state_dict(),
                        "optimizer": optimizer.state_dict(),
                        "epoch": epoch + 1,
                        "best_top1": best,
                        "config": cfg.to_dict(),
                    },
                    Path(cfg.output_dir) / "checkpoint-last.pth",
                )
    finally:
        logger.close()
    if not val:
        val = evaluate(model, val_loader, device, amp_dtype)
    return {**val, "best_top1": max(best, val["top1"]), "epochs": cfg.epochs}
