"""``timm:<model_name>``, a backbone family: any timm model with ``forward_intermediates`` as a contract
backbone, no code.

Maps: ``s4, s8, s16, s32``. Where the model has a feature level at that stride (ConvNeXt, ResNet, Swin, ...)
it is taken as is (the last level of that stride); a plain ViT has every block at its patch stride, so four
blocks spread over its depth (the taps of ``default_taps``) are resampled to strides 4-32 without parameters
(bilinear up, max-pool down). Layer ids for layer decay come from the model's own ``group_matcher``; its
``no_weight_decay()`` names are exempt from weight decay; ``--weights`` goes through the model family's own
``checkpoint_filter_fn`` (position embeddings resized, original key layouts converted) and the reporting
loader."""

from __future__ import annotations

import math
import sys
from typing import Any

import torch
import torch.nn.functional as F

from mae_transfer.backbone import Backbone, default_taps, register_backbone_family
from mae_transfer.checkpoints import LoadReport, apply_to_model, extract_state_dict, load_checkpoint
from mae_transfer.errors import ConfigError
from mae_transfer.optim import takes_weight_decay

STRIDES = (4, 8, 16, 32)


def select_levels(reductions: list[int]) -> list[tuple[int, float]]:
    """(feature index, resampling factor) for strides 4, 8, 16, 32 from the model's feature reductions."""
    if len(set(reductions)) == 1:  # one stride everywhere (plain ViT): taps spread over the blocks
        return [(t, reductions[t] / s) for t, s in zip(default_taps(len(reductions)), STRIDES)]
    levels = []
    for s in STRIDES:
        nearest = min(range(len(reductions)), key=lambda i: (abs(math.log2(reductions[i] / s)), -i))
        levels.append((nearest, reductions[nearest] / s))
    return levels


def _resample(x: torch.Tensor, factor: float) -> torch.Tensor:
    if factor > 1:
        return F.interpolate(x, scale_factor=factor, mode="bilinear", align_corners=False)
    if factor < 1:
        return F.max_pool2d(x, kernel_size=round(1 / factor))
    return x


class TimmBackbone(Backbone):
    """A timm model's intermediate features as the contract's four maps.

    Args:
        model_name: any timm model name whose model has ``forward_intermediates`` (timm >= 1.0: ViT, DeiT,
            BEiT, ConvNeXt, ResNet, Swin, EfficientNet, ...).
        img_size: the input size, for models that take one (ViTs, Swin); ViTs also get a dynamic size, so any
            padded input runs.
        drop_path_rate: stochastic depth of the timm model.
    """

    def __init__(self, model_name: str, img_size: int | None = None, drop_path_rate: float = 0.0) -> None:
        super().__init__()
        import timm

        if not timm.is_model(model_name):
            raise ConfigError(f"unknown timm model {model_name!r} (timm.list_models() lists them)")
        self.model_name = model_name
        self.body = _create(model_name, img_size, drop_path_rate)
        if not hasattr(self.body, "forward_intermediates"):
            raise ConfigError(
                f"timm model {model_name!r} has no forward_intermediates: it cannot give feature maps"
            )
        info = list(self.body.feature_info)
        self.levels = select_levels([f["reduction"] for f in info])
        self.names = [f"s{s}" for s in STRIDES]
        self.out_channels = {n: info[i]["num_chs"] for n, (i, _) in zip(self.names, self.levels)}
        self.out_strides = dict(zip(self.names, STRIDES))
        self.indices = sorted({i for i, _ in self.levels})
        from timm.models._manipulate import group_parameters

        groups = group_parameters(self.body, self.body.group_matcher(coarse=False))
        self._layer = {name: rank for rank, gid in enumerate(sorted(groups)) for name in groups[gid]}
        self.num_layers = len(groups) - 1
        self._no_decay = set(getattr(self.body, "no_weight_decay", lambda: ())())

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        feats = dict(
            zip(
                self.indices,
                self.body.forward_intermediates(images, indices=self.indices, intermediates_only=True),
            )
        )
        return {n: _resample(feats[i], factor) for n, (i, factor) in zip(self.names, self.levels)}

    def layer_id(self, name: str) -> int:
        return self._layer.get(name.removeprefix("body."), self.num_layers)

    def takes_weight_decay(self, name: str, param: torch.Tensor) -> bool:
        return name.removeprefix("body.") not in self._no_decay and takes_weight_decay(name, param)

    def load_pretrained(self, path: str, source: str = "auto") -> LoadReport:
        """A timm (or the family's original) state dict, through the family's own checkpoint filter."""
        raw = extract_state_dict(load_checkpoint(path), path)
        filter_fn = getattr(sys.modules[type(self.body).__module__], "checkpoint_filter_fn", None)
        if filter_fn is not None:
            raw = filter_fn(raw, self.body)
        report = apply_to_model(
            self,
            {f"body.{k}": v for k, v in raw.items()},
            LoadReport(source=f"timm:{self.model_name}", path=str(path)),
        )
        report.ignored = [k.removeprefix("body.") for k in report.ignored]
        return report


@register_backbone_family("timm")
def timm_model(model_name: str, img_size: int | None = None, drop_path_rate: float = 0.0) -> TimmBackbone:
    """``timm:<model_name>``."""
    return TimmBackbone(model_name, img_size, drop_path_rate)


def _create(model_name: str, img_size: int | None, drop_path_rate: float) -> torch.nn.Module:
    import timm

    # a CNN takes no image size; a ViT takes a dynamic one (any padded input), Swin a fixed one
    tries: list[dict[str, Any]] = (
        [dict(img_size=img_size, dynamic_img_size=True, dynamic_img_pad=True), dict(img_size=img_size)]
        if img_size
        else []
    )
    for kwargs in tries:
        try:
            return timm.create_model(
                model_name, pretrained=False, num_classes=0, drop_path_rate=drop_path_rate, **kwargs
            )
        except TypeError:
            continue
    return timm.create_model(model_name, pretrained=False, num_classes=0, drop_path_rate=drop_path_rate)
