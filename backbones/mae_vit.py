"""Plain ViTs (MAE / supervised / MoCo v3 / BEiT initializations) adapted into a 4-level pyramid.

Defaults are the COCO recipe of MAE App. A.3 / Li et al.: 1024px input, window 14 with global attention in
each group's last block (the taps), one shared zero-initialized relative-bias table per attention kind,
ConvT-GN-GELU-ConvT / ConvT / identity / max-pool pyramid. Every keyword of ``ViTPyramidBackbone``
can be overridden (configs do that for the segmentation recipe and for the ViTDet variant).
"""
from __future__ import annotations

from typing import Any

from mae_transfer.backbone import ViTPyramidBackbone, register_backbone

ARCHS: dict[str, dict[str, Any]] = {
    # name: encoder shape (patch, width, depth, heads)
    "mae_vit_b": dict(patch_size=16, embed_dim=768, depth=12, num_heads=12),
    "mae_vit_l": dict(patch_size=16, embed_dim=1024, depth=24, num_heads=16),
    # ViT-H/14 runs with 16x16 patches for transfer (as ViTDet-H): the checkpoint's 14x14 patch kernel is
    # resampled (timm's FlexiViT resampling) so the pyramid reaches strides 4-32 with integer scales
    "mae_vit_h": dict(patch_size=16, embed_dim=1280, depth=32, num_heads=16),
    # CPU-sized: ViT-S, the coco128 smoke configs' encoder (configs/{det,seg}/mini/*_vit_tiny_coco128.py), the
    # tiny 32px CIFAR encoder of configs/pretrain/cifar10_tiny.py, and the miniature tables' 128px encoder of
    # configs/pretrain/mini_camvid_balloon.py
    "mae_vit_s": dict(patch_size=16, embed_dim=384, depth=12, num_heads=6),
    "mae_vit_tiny_p16": dict(patch_size=16, embed_dim=192, depth=4, num_heads=3),
    "mae_vit_tiny_p4": dict(patch_size=4, embed_dim=192, depth=6, num_heads=3, pretrain_img_size=32),
    "mae_vit_mini_p8": dict(patch_size=8, embed_dim=192, depth=4, num_heads=3, pretrain_img_size=128),
}


def backbone_for(embed_dim: int, depth: int, patch_size: int) -> str | None:
    """The registered backbone of this encoder shape: the one of its patch size, else a patch-16 one (a
    patch-14 encoder runs as patch 16, as ViT-H)."""
    same = [name for name, a in ARCHS.items() if (a["embed_dim"], a["depth"]) == (embed_dim, depth)]
    for patch in (patch_size, 16):
        match = next((name for name in same if ARCHS[name]["patch_size"] == patch), None)
        if match:
            return match
    return None


def _factory(name: str):
    def build(**overrides: Any) -> ViTPyramidBackbone:
        return ViTPyramidBackbone(**{**ARCHS[name], **overrides})

    build.arch = ARCHS[name]  # read by mae_transfer.backbone.backbone_settings (recipe cards)
    build.__name__ = name
    build.__doc__ = f"{name}: {ARCHS[name]} + pyramid; keyword overrides go to ViTPyramidBackbone."
    return build


for _name in ARCHS:
    register_backbone(_name)(_factory(_name))
