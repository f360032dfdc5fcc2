"""Plain ViTs (MAE / supervised / MoCo v3 / BEiT initializations) adapted into a 4-level pyramid.

One named factory per encoder shape; the shape is the decorator's ``arch`` (recipe cards read it without
building the model). Defaults are the COCO recipe of MAE App. A.3 / Li et al.: 1024px input, window 14 with
global attention in each group's last block (the taps), one shared zero-initialized relative-bias table per
attention kind, ConvT-GN-GELU-ConvT / ConvT / identity / max-pool pyramid. Every keyword of
``ViTPyramidBackbone`` can be overridden (configs do that for the segmentation recipe and the ViTDet variant).
"""

from __future__ import annotations

from typing import Any, Callable

from mae_transfer.backbone import register_backbone
from mae_transfer.vit_backbone import ViTPyramidBackbone


def vit_shape(**arch: Any) -> Callable:
    """Register a factory of ``ViTPyramidBackbone`` with this encoder shape (its ``arch``)."""
    return register_backbone(arch=arch, builds=ViTPyramidBackbone)


def _build(factory: Callable[..., ViTPyramidBackbone], overrides: dict[str, Any]) -> ViTPyramidBackbone:
    return ViTPyramidBackbone(**{**factory.arch, **overrides})


@vit_shape(patch_size=16, embed_dim=768, depth=12, num_heads=12)
def mae_vit_b(**overrides: Any) -> ViTPyramidBackbone:
    """ViT-B/16 (Tables 4 and 5)."""
    return _build(mae_vit_b, overrides)


@vit_shape(patch_size=16, embed_dim=1024, depth=24, num_heads=16)
def mae_vit_l(**overrides: Any) -> ViTPyramidBackbone:
    """ViT-L/16 (Tables 4 and 5)."""
    return _build(mae_vit_l, overrides)


@vit_shape(patch_size=16, embed_dim=1280, depth=32, num_heads=16)
def mae_vit_h(**overrides: Any) -> ViTPyramidBackbone:
    """ViT-H/14 run with 16x16 patches (as ViTDet-H): the checkpoint's 14x14 patch kernel is resampled
    (timm's FlexiViT resampling) so the pyramid reaches strides 4-32 with integer scales."""
    return _build(mae_vit_h, overrides)


# CPU-sized encoders below: they run the same code on a laptop.
@vit_shape(patch_size=16, embed_dim=384, depth=12, num_heads=6)
def mae_vit_s(**overrides: Any) -> ViTPyramidBackbone:
    """ViT-S/16."""
    return _build(mae_vit_s, overrides)


@vit_shape(patch_size=16, embed_dim=192, depth=4, num_heads=3)
def mae_vit_tiny_p16(**overrides: Any) -> ViTPyramidBackbone:
    """4-block ViT-Tiny/16: the coco128 smoke configs' encoder
    (configs/{det,seg}/mini/*_vit_tiny_coco128.py)."""
    return _build(mae_vit_tiny_p16, overrides)


@vit_shape(patch_size=4, embed_dim=192, depth=6, num_heads=3)
def mae_vit_tiny_p4(**overrides: Any) -> ViTPyramidBackbone:
    """The 32px CIFAR encoder of configs/pretrain/cifar10_tiny.py."""
    return _build(mae_vit_tiny_p4, overrides)


@vit_shape(patch_size=8, embed_dim=192, depth=4, num_heads=3)
def mae_vit_mini_p8(**overrides: Any) -> ViTPyramidBackbone:
    """The miniature tables' 128px encoder (configs/pretrain/mini_camvid_balloon.py)."""
    return _build(mae_vit_mini_p8, overrides)
