"""A linear probe on cached features: the frozen encoder runs once over each split, the probe trains on
the stored features (the same optimum as the official per-epoch probe, in a fraction of the time)."""

from __future__ import annotations

import logging
import time
from typing import Any

import torch
import torch.nn as nn
from timm.models.vision_transformer import VisionTransformer
from timm.optim import Lars
from torch.utils.data import DataLoader, TensorDataset
from tqdm import tqdm

from ..data import SafeImageFolder, collate_skip_bad
from ..errors import DataError
from ..kernels import adamw
from ..optim import cosine_lr, param_groups, set_lr
from ..runlog import RunLogger
from ..utils import autocast
from .config import ClsConfig

log = logging.getLogger("mae_transfer.cls")


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


def linprobe_cached(
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
