"""Fine-tune (Table 9) and linear probe (Table 10) of a pretrained encoder on an ImageFolder dataset.

The classifier is timm's ``VisionTransformer``; the encoder weights come through the same checkpoint
converters as the transfer backbones, so any Table 4 initialization (or none: random init) works.
"""

from __future__ import annotations

import contextlib
import logging
import math
import sys
import time
from functools import partial
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
from timm.data import Mixup, create_transform
from timm.loss import LabelSmoothingCrossEntropy, SoftTargetCrossEntropy
from timm.models.vision_transformer import VisionTransformer
from timm.optim import Lars
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset
from tqdm import tqdm

from .. import dist
from ..checkpoints import (
    LoadReport,
    apply_to_model,
    load_checkpoint,
    read_vit_checkpoint,
    resize_pos_embed,
    save_atomic,
)
from ..data import IMAGENET_MEAN, IMAGENET_STD, SafeImageFolder, SkipCounter, collate_skip_bad, eval_transform
from ..errors import CheckpointError, ConfigError, DataError, NonFiniteLossError
from ..kernels import adamw, set_attention_kernel
from ..models.mae import encoder_arch
from ..optim import cosine_lr, param_groups, set_lr, vit_layer_id
from ..rundir import run_in_output_dir
from ..runlog import RunLogger, setup_logging
from ..utils import autocast, precision_name, resolve_precision, seed_all, write_json_atomic
from .config import ClsConfig

log = logging.getLogger("mae_transfer.cls")


# ----------------------------------------------------------------------------- model
def build_classifier(cfg: ClsConfig, num_classes: int) -> tuple[VisionTransformer, LoadReport | None]:
    state, report, extras = (None, None, {})
    if cfg.weights:
        state, report, extras = read_vit_checkpoint(cfg.weights, cfg.source)
        if report.source == "beit":
            raise CheckpointError(
                f"{cfg.weights}: BEiT encoders need relative position bias, which timm's "
                "VisionTransformer lacks; evaluate them through the transfer backbone instead"
            )
    if cfg.model:
        arch = encoder_arch(cfg.model)
    elif "arch" in extras:
        arch = dict(extras["arch"])
    else:
        raise ConfigError(
            "cannot tell the encoder architecture: pass model=<MAE model name> "
            "(e.g. model=mae_vit_base_patch16)"
        )
    arch.update(cfg.model_overrides)
    if cfg.mode not in ("finetune", "linprobe"):
        raise ConfigError(f"unknown mode {cfg.mode!r}; choose finetune or linprobe")
    linprobe = cfg.mode == "linprobe"
    model = VisionTransformer(
        img_size=cfg.input_size,
        patch_size=arch["patch_size"],
        in_chans=arch.get("in_chans", 3),
        num_classes=num_classes,
        global_pool=cfg.global_pool,
        embed_dim=arch["embed_dim"],
        depth=arch["depth"],
        num_heads=arch["num_heads"],
        mlp_ratio=arch.get("mlp_ratio", 4.0),
        qkv_bias=True,
        norm_layer=partial(nn.LayerNorm, eps=1e-6),
        drop_path_rate=0.0 if linprobe else cfg.drop_path,
    )
    if linprobe:  # Table 10: BatchNorm without affine, then a linear layer
        model.head = nn.Sequential(
            nn.BatchNorm1d(arch["embed_dim"], affine=False, eps=1e-6),
            nn.Linear(arch["embed_dim"], num_classes),
        )
        nn.init.trunc_normal_(model.head[1].weight, std=0.01)
    else:
        nn.init.trunc_normal_(model.head.weight, std=2e-5)
    nn.init.zeros_(model.get_classifier().bias if not linprobe else model.head[1].bias)
    if state is not None:
        report = apply_to_model(
            model,
            state,
            report,
            may_be_new=lambda k: k.startswith(("head.", "fc_norm.")),
            resizers={"pos_embed": resize_pos_embed},
        )
        log.info("%s", report.format())
    if linprobe:
        for name, p in model.named_parameters():
            p.requires_grad = name.startswith("head.")
    return model, report


# ----------------------------------------------------------------------------- data
def build_datasets(cfg: ClsConfig) -> tuple[SafeImageFolder, SafeImageFolder]:
    root = Path(cfg.data_path)
    train_dir, val_dir = root / "train", root / cfg.val_split
    for d in (train_dir, val_dir):
        if not d.is_dir():
            raise DataError(f"{d} not found (data_path must hold train/ and {cfg.val_split}/)")
    if cfg.mode == "finetune":
        train_tf = create_transform(
            cfg.input_size,
            is_training=True,
            auto_augment=cfg.randaug or None,
            interpolation="bicubic",
            re_prob=cfg.reprob,
            re_mode="pixel",
            re_count=1,
            mean=IMAGENET_MEAN,
            std=IMAGENET_STD,
        )
    else:
        from torchvision import transforms as T

        train_tf = T.Compose(
            [
                T.RandomResizedCrop(cfg.input_size, interpolation=T.InterpolationMode.BICUBIC),
                T.RandomHorizontalFlip(),
                T.ToTensor(),
                T.Normalize(IMAGENET_MEAN, IMAGENET_STD),
            ]
        )
    train = SafeImageFolder(train_dir, train_tf)
    val = SafeImageFolder(val_dir, eval_transform(cfg.input_size))
    if train.classes != val.classes:
        raise DataError(f"class folders differ between {train_dir} and {val_dir}")
    return train, val


# ----------------------------------------------------------------------------- evaluation
@torch.no_grad()
def evaluate(
    model: nn.Module, loader: DataLoader, device: torch.device, amp_dtype: torch.dtype | None
) -> dict[str, float]:
    model.eval()
    correct1 = correct5 = total = 0
    loss_sum = 0.0
    for imgs, labels, _ in loader:
        if imgs.numel() == 0:
            continue
        imgs, labels = imgs.to(device), labels.to(device)
        with autocast(device, amp_dtype):
            logits = model(imgs)
        loss_sum += nn.functional.cross_entropy(logits.float(), labels, reduction="sum").item()
        top = logits.topk(min(5, logits.shape[1]), dim=1).indices
        correct1 += (top[:, 0] == labels).sum().item()
        correct5 += (top == labels[:, None]).any(dim=1).sum().item()
        total += labels.numel()
    sums = torch.tensor([correct1, correct5, total, loss_sum], dtype=torch.float64)
    if dist.world_size() > 1:
        torch.distributed.all_reduce(sums)
    c1, c5, n, ls = sums.tolist()
    if n == 0:
        raise DataError("the validation set produced no readable image")
    return {"top1": 100.0 * c1 / n, "top5": 100.0 * c5 / n, "loss": ls / n, "n": int(n)}


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
        metrics = _linprobe_cached(cfg, model, train_set, val_set, device, amp_dtype, main)
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
                if it % cfg.accum_iter == 0:
                    set_lr(
                        optimizer,
                        cosine_lr(epoch + it / n_iter, lr, cfg.epochs, cfg.warmup_epochs, cfg.min_lr),
                    )
                imgs, labels = imgs.to(device), labels.to(device)
                if mixup is not None:
                    if (
                        imgs.shape[0] % 2
                    ):  # timm's Mixup pairs samples: drop one when a bad file made the batch odd
                        imgs, labels = imgs[:-1], labels[:-1]
                    imgs, labels = mixup(imgs, labels)
                step_now = (it + 1) % cfg.accum_iter == 0 or it + 1 == n_iter
                ctx = (
                    net.no_sync()
                    if isinstance(net, DistributedDataParallel) and not step_now
                    else contextlib.nullcontext()
                )
                with ctx:
                    with autocast(device, amp_dtype):
                        loss = criterion(net(imgs), labels)
                    value = loss.item()
                    if not math.isfinite(value):
                        raise NonFiniteLossError(f"loss is {value} at epoch {epoch + 1}, iteration {it + 1}")
                    scaler.scale(loss / cfg.accum_iter).backward()
                if step_now:
                    scaler.step(optimizer)
                    scaler.update()
                    optimizer.zero_grad(set_to_none=True)
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


@torch.no_grad()
def _extract(
    model: VisionTransformer,
    dataset: Any,
    cfg: ClsConfig,
    device: torch.device,
    amp_dtype: torch.dtype | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    loader = DataLoader(
        dataset, batch_size=cfg.batch_size, num_workers=cfg.num_workers, collate_fn=collate_skip_bad
    )
    feats, labels = [], []
    model.eval()
    for imgs, y, _ in tqdm(loader, desc="features", leave=False, mininterval=30.0):
        if imgs.numel() == 0:
            continue
        with autocast(device, amp_dtype):
            f = model.forward_head(model.forward_features(imgs.to(device)), pre_logits=True)
        feats.append(f.float().cpu())
        labels.append(y)
    return torch.cat(feats), torch.cat(labels)


def _linprobe_cached(
    cfg: ClsConfig,
    model: VisionTransformer,
    train_set: SafeImageFolder,
    val_set: SafeImageFolder,
    device: torch.device,
    amp_dtype: torch.dtype | None,
    main: bool,
) -> dict[str, Any]:
    """Linear probe on features extracted once (center crops): same probe, no augmentation, CPU-cheap."""
    train_set.transform = val_set.transform
    t0 = time.perf_counter()
    xtr, ytr = _extract(model, train_set, cfg, device, amp_dtype)
    xva, yva = _extract(model, val_set, cfg, device, amp_dtype)
    log.info("extracted %d + %d features in %.0f s", len(xtr), len(xva), time.perf_counter() - t0)
    head = model.head.cpu()
    lr = cfg.lr if cfg.lr is not None else cfg.blr * cfg.batch_size / 256
    groups = param_groups(head, lr=lr, weight_decay=cfg.weight_decay)
    opt = (
        Lars(groups, lr=lr, momentum=cfg.momentum)
        if cfg.optimizer == "lars"
        else torch.optim.SGD(groups, lr=lr, momentum=cfg.momentum)
        if cfg.optimizer == "sgd"
        else adamw(groups, lr=lr, betas=(0.9, 0.999), kernels=cfg.kernels)
    )
    loader = DataLoader(
        TensorDataset(xtr, ytr),
        batch_size=cfg.batch_size,
        shuffle=True,
        drop_last=True,
        generator=torch.Generator().manual_seed(cfg.seed),
    )
    if len(loader) == 0:
        raise DataError(f"{len(xtr)} training features: fewer than one batch of {cfg.batch_size}")
    logger = RunLogger(cfg.output_dir, enabled=main)
    n_iter = len(loader)
    for epoch in range(cfg.epochs):
        head.train()
        for it, (x, y) in enumerate(loader):
            set_lr(opt, cosine_lr(epoch + it / n_iter, lr, cfg.epochs, cfg.warmup_epochs, cfg.min_lr))
            loss = nn.functional.cross_entropy(head(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
        if main and ((epoch + 1) % max(cfg.eval_every, 1) == 0 or epoch + 1 == cfg.epochs):
            top1 = _probe_accuracy(head, xva, yva)
            logger.log((epoch + 1) * n_iter, epoch=epoch + 1, train_loss=loss.item(), **{"val/top1": top1})
    logger.close()
    head.eval()
    with torch.no_grad():
        logits = head(xva)
    top = logits.topk(min(5, logits.shape[1]), dim=1).indices
    return {
        "top1": 100.0 * (top[:, 0] == yva).float().mean().item(),
        "top5": 100.0 * (top == yva[:, None]).any(dim=1).float().mean().item(),
        "loss": nn.functional.cross_entropy(logits, yva).item(),
        "n": len(yva),
        "epochs": cfg.epochs,
        "cached_features": True,
    }


@torch.no_grad()
def _probe_accuracy(head: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    head.eval()
    acc = 100.0 * (head(x).argmax(1) == y).float().mean().item()
    head.train()
    return acc
