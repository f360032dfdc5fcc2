"""The classifier of a linear probe / fine-tune (a timm ViT with the pretrained encoder loaded), its
datasets (ImageFolder, the official recipes' transforms) and its top-1 / top-5 evaluation."""

from __future__ import annotations

import logging
from functools import partial
from pathlib import Path

import torch
import torch.nn as nn
from timm.data import create_transform
from timm.models.vision_transformer import VisionTransformer
from torch.utils.data import DataLoader

from .. import dist
from ..checkpoints import (
    LoadReport,
    apply_to_model,
    read_vit_checkpoint,
    resize_pos_embed,
)
from ..data import IMAGENET_MEAN, IMAGENET_STD, SafeImageFolder, eval_transform
from ..errors import CheckpointError, ConfigError, DataError
from ..models.mae import encoder_arch
from ..utils import autocast
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
