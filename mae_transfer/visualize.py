"""Figure 2 of the paper: masked | reconstruction | original triplets as one PNG grid."""

from __future__ import annotations

import logging
from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image
from torchvision.utils import make_grid, save_image

from .checkpoints import extract_state_dict, load_checkpoint
from .data import IMAGENET_MEAN, IMAGENET_STD, SafeImageFolder, eval_transform
from .errors import ConfigError, DataError
from .models.mae import MaskedAutoencoderViT, build_mae
from .pretrain.checkpoints import load_mae_weights
from .pretrain.config import PretrainConfig, build_model

log = logging.getLogger("mae_transfer.visualize")


def load_mae_for_visualization(
    checkpoint: str, model: str | None = None, norm_pix: bool | None = None
) -> MaskedAutoencoderViT:
    """An MAE with its decoder from this project's checkpoint (config inside) or an official
    ``mae_visualize_*`` / ``mae_pretrain_*`` full checkpoint (pass ``model``)."""
    raw = load_checkpoint(checkpoint)
    state = extract_state_dict(raw, checkpoint)
    saved = raw.get("config", {}) if isinstance(raw, dict) else {}
    if "decoder_pred.weight" not in state:
        raise ConfigError(
            f"{checkpoint} holds no decoder (an encoder-only file); reconstructions need the full MAE"
        )
    if saved and not model:
        cfg = PretrainConfig.from_dict(saved)
        net = build_model(cfg if norm_pix is None else cfg.replace(norm_pix_loss=norm_pix))
    elif model:
        net = build_mae(model, norm_pix_loss=bool(norm_pix))
    else:
        raise ConfigError(
            f"{checkpoint} does not say which model it holds; pass --model (e.g. mae_vit_large_patch16)"
        )
    load_mae_weights(net, state, checkpoint)
    return net.eval()


def _images(source: str, n: int, size: int) -> torch.Tensor:
    p = Path(source)
    tf = eval_transform(size)
    if p.is_file():
        with Image.open(p) as img:
            return tf(img.convert("RGB")).unsqueeze(0)
    ds = SafeImageFolder(p, tf)
    # spread the picks over classes: every len/n-th image
    step = max(len(ds) // n, 1)
    items = [ds[i] for i in range(0, len(ds), step)]
    imgs = [x[0] for x in items if not isinstance(x, dict)][:n]
    if not imgs:
        raise DataError(f"no readable image in {source}")
    return torch.stack(imgs)


@torch.no_grad()
def reconstruct(net: MaskedAutoencoderViT, imgs: torch.Tensor, mask_ratio: float, seed: int = 0):
    """Returns (masked, reconstruction, reconstruction with visible patches pasted, original), each in [0,
    1]."""
    gen = torch.Generator().manual_seed(seed)
    noise = net.make_noise(imgs.shape[0], mask_ratio, torch.device("cpu"), generator=gen)
    _, pred, mask = net(imgs, mask_ratio=mask_ratio, noise=noise)
    if (
        net.norm_pix_loss
    ):  # predictions are in per-patch normalized units: undo with each target patch's stats
        target = net.patchify(imgs)
        mean = target.mean(dim=-1, keepdim=True)
        std = (target.var(dim=-1, keepdim=True) + 1.0e-6) ** 0.5
        pred = pred * std + mean
    recon = net.unpatchify(pred)
    p = net.patch_size
    pixel_mask = (
        mask.reshape(mask.shape[0], *net.grid_size)[:, None].repeat_interleave(p, 2).repeat_interleave(p, 3)
    )
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)

    def to_pixels(x: torch.Tensor) -> torch.Tensor:
        return (x * std + mean).clamp(0, 1)

    original = to_pixels(imgs)
    reconstruction = to_pixels(recon)
    masked = original * (1 - pixel_mask) + 0.5 * pixel_mask  # removed patches shown gray
    pasted = original * (1 - pixel_mask) + reconstruction * pixel_mask
    return masked, reconstruction, pasted, original


def visualize(
    checkpoint: str,
    images: str,
    output: str,
    num_images: int = 8,
    mask_ratio: float = 0.75,
    seed: int = 0,
    paste_visible: bool = False,
    model: str | None = None,
    norm_pix: bool | None = None,
    min_side: int = 128,
) -> Path:
    """Write a PNG with one row per image: masked | reconstruction [| + visible] | original."""
    net = load_mae_for_visualization(checkpoint, model, norm_pix)
    size = net.grid_size[0] * net.patch_size
    imgs = _images(images, num_images, size)
    masked, recon, pasted, original = reconstruct(net, imgs, mask_ratio, seed)
    columns = [masked, recon] + ([pasted] if paste_visible else []) + [original]
    tiles = torch.stack(columns, dim=1).flatten(0, 1)  # row-major: image i's columns side by side
    if size < min_side:  # small images (CIFAR) are enlarged so patches stay visible
        tiles = F.interpolate(tiles, scale_factor=min_side // size, mode="nearest")
    grid = make_grid(tiles, nrow=len(columns), padding=2, pad_value=1.0)
    out = Path(output)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_image(grid, out)
    log.info("wrote %s (%d images, mask ratio %.2f)", out, imgs.shape[0], mask_ratio)
    return out
