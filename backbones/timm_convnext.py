"""A hierarchical CNN through timm's ``features_only``: proof that the contract is not ViT-specific.

ConvNeXt already has 4 stages at strides 4-32, so no pyramid module is needed. Layer ids for lr decay
follow ConvNeXt's segmentation recipe: stem 0, stage 0 -> 1, stage 1 -> 2, stage 2 in groups of 3 blocks,
stage 3 -> last.
"""

from __future__ import annotations

import re
from typing import Any

import timm
import torch

from mae_transfer.backbone import Backbone, register_backbone
from mae_transfer.checkpoints import LoadReport, apply_to_model, extract_state_dict, load_checkpoint


class TimmFeaturesBackbone(Backbone):
    """A timm model's ``features_only`` stages as the contract's maps.

    Args:
        model_name: the timm model (built without weights; ``load_pretrained`` loads a file).
        drop_path_rate: stochastic depth of the timm model.
        out_indices: the feature levels to return (default: those at strides 4, 8, 16, 32).
        img_size: part of every factory's signature (the harnesses pass it); a CNN needs none.
        **timm_kwargs: further ``timm.create_model`` arguments.
    """

    def __init__(
        self,
        model_name: str,
        drop_path_rate: float = 0.0,
        out_indices: tuple[int, ...] | None = None,
        img_size: int | None = None,
        **timm_kwargs: Any,
    ) -> None:
        super().__init__()
        self.model_name = model_name
        if out_indices is None:  # the feature levels at strides 4, 8, 16, 32 (read on the meta device: free)
            with torch.device("meta"):
                info = timm.create_model(model_name, pretrained=False, features_only=True).feature_info
            out_indices = tuple(i for i, r in enumerate(info.reduction()) if r in (4, 8, 16, 32))
        self.body = timm.create_model(
            model_name,
            pretrained=False,
            features_only=True,
            out_indices=out_indices,
            drop_path_rate=drop_path_rate,
            **timm_kwargs,
        )
        strides = self.body.feature_info.reduction()
        names = [f"s{r}" for r in strides]
        self.names = names
        self.out_channels = dict(zip(names, self.body.feature_info.channels()))
        self.out_strides = dict(zip(names, strides))
        if all(hasattr(self.body, f"stages_{i}") for i in range(4)):  # ConvNeXt-style stages: decay by stage
            depths = [len(getattr(self.body, f"stages_{i}").blocks) for i in range(4)]
            self.num_layers = 3 + -(-depths[2] // 3)  # stem, stage0, stage1, stage2 in 3s (stage3 = last)
        else:  # other timm models: one layer (no lr decay inside the body)
            self.num_layers = 0

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        return dict(zip(self.names, self.body(images)))

    def layer_id(self, name: str) -> int:
        if self.num_layers == 0:
            return 1
        if name.startswith("body.stem"):
            return 0
        m = re.match(r"body\.stages_(\d+)\.(?:blocks\.(\d+))?", name)
        if not m:
            return self.num_layers + 1
        stage, block = int(m.group(1)), int(m.group(2) or 0)
        if stage < 2:
            return stage + 1
        if stage == 2:
            return 3 + block // 3
        return self.num_layers

    def load_pretrained(self, path: str, source: str = "auto") -> LoadReport:
        """A timm or official ConvNeXt state dict (classification head ignored)."""
        raw = extract_state_dict(load_checkpoint(path), path)
        full = timm.create_model(self.model_name, pretrained=False)
        raw = timm.models.convnext.checkpoint_filter_fn(raw, full)  # official FB keys -> timm keys
        state = {"body." + re.sub(r"^(stem|stages)\.(\d+)", r"\1_\2", k): v for k, v in raw.items()}
        report = apply_to_model(self, state, LoadReport(source="timm-convnext", path=str(path)))
        report.ignored = [k.removeprefix("body.") for k in report.ignored]
        return report


@register_backbone()
def convnext_t(**overrides: Any) -> TimmFeaturesBackbone:
    """ConvNeXt-T (timm ``convnext_tiny``)."""
    return TimmFeaturesBackbone("convnext_tiny", **overrides)


@register_backbone()
def convnext_b(**overrides: Any) -> TimmFeaturesBackbone:
    """ConvNeXt-B (timm ``convnext_base``)."""
    return TimmFeaturesBackbone("convnext_base", **overrides)


@register_backbone()
def convnext_atto(**overrides: Any) -> TimmFeaturesBackbone:
    """ConvNeXt-Atto (timm ``convnext_atto``): CPU-sized, for tests."""
    return TimmFeaturesBackbone("convnext_atto", **overrides)
