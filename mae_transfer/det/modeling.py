"""detectron2 glue: the contract backbone as a detectron2 ``Backbone``, FPN with its lateral convs folded into
the pyramid, ViTDet's simple neck, param groups.

No model logic lives here: the ViT, its windows, rel-pos and pyramid are the contract backbone's; FPN,
RPN and ROI heads are detectron2's own.
"""

from __future__ import annotations

import logging

import torch
import torch.nn as nn
from detectron2.layers import Conv2d, get_norm
from detectron2.modeling import FPN
from detectron2.modeling import Backbone as D2Backbone
from detectron2.modeling.backbone.fpn import LastLevelMaxPool

from .. import backbone as contract
from ..errors import ConfigError
from ..optim import param_groups

log = logging.getLogger("mae_transfer.det")


class Detectron2Backbone(D2Backbone):
    """Any registered backbone (``build_backbone(name, **overrides)``) seen by detectron2.

    ``weights``: a checkpoint in any supported format, converted and loaded at construction with a
    printed report (detectron2's own checkpointer then handles resume of the whole detector).
    """

    forwards_kwargs = True  # extra keywords go to the backbone factory, which validates them

    def __init__(self, name: str, weights: str = "", source: str = "auto", **overrides) -> None:
        super().__init__()
        self.net = contract.build_backbone(name, **overrides)
        self.load_report = None
        if weights:
            self.load_report = self.net.load_pretrained(weights, source)
            log.info("backbone %s initialized from %s", name, self.load_report.format())
        else:
            log.info("backbone %s: random initialization", name)
        self._out_features = list(self.net.out_channels)
        self._out_feature_channels = self.net.out_channels  # the same dict: a fold changes widths
        self._out_feature_strides = dict(self.net.out_strides)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.net(x)

    @property
    def size_divisibility(self) -> int:
        return self.net.size_divisibility


def fold_laterals(bottom_up: D2Backbone, laterals: dict[str, Conv2d]) -> dict[str, nn.Module]:
    """Fold the 1x1 lateral convs of the outputs whose pyramid level ends in a transposed conv into it
    (``ViTPyramidBackbone.fold``); returns, per folded output, what the neck still applies to it: the conv's
    norm, or nothing. Other backbones, and convs with an activation, are left as they are."""
    net = getattr(bottom_up, "net", None)
    if not hasattr(net, "fold"):
        return {}
    folded = {n: c for n, c in laterals.items() if n in net.foldable() and c.activation is None}
    net.fold(folded)
    return {n: c.norm if c.norm is not None else nn.Identity() for n, c in folded.items()}


class FoldedFPN(FPN):
    """detectron2's FPN, with the lateral 1x1 convs folded into the contract pyramid's last transposed conv
    where a level ends in one (``fold_laterals``): same parameters, state-dict keys, init and outputs (to
    rounding), without the ViT-wide upsampled maps (a bf16 CPU ViT-B Mask R-CNN step at 1024: 21.9 -> 21.0 s).
    Arguments are ``FPN``'s."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        # detectron2 keeps the laterals both as registered modules (fpn_lateral2, ...) and in this plain list,
        # coarsest first, which its forward runs: a folded level's entry becomes what remains of its conv
        laterals = dict(zip(reversed(self.in_features), self.lateral_convs))
        rest = fold_laterals(self.bottom_up, laterals)
        self.lateral_convs = [rest.get(n, conv) for n, conv in laterals.items()]


class SimpleNeck(D2Backbone):
    """ViTDet's output convolutions on a pyramid that already has its scales (1x1 + 3x3 conv with norm per
    level, + max-pooled p6), so the ViTDet recipe runs on the same contract backbone as the FPN recipe."""

    def __init__(
        self,
        bottom_up: D2Backbone,
        in_features: list[str],
        out_channels: int = 256,
        norm: str = "LN",
        top_block: nn.Module | None = None,
        square_pad: int = 0,
    ) -> None:
        super().__init__()
        self.bottom_up = bottom_up
        self.in_features = list(in_features)
        shapes = bottom_up.output_shape()
        self.lateral = nn.ModuleList()
        self.output = nn.ModuleList()
        for f in self.in_features:
            c = shapes[f].channels
            self.lateral.append(Conv2d(c, out_channels, 1, bias=not norm, norm=get_norm(norm, out_channels)))
            self.output.append(
                Conv2d(
                    out_channels, out_channels, 3, padding=1, bias=not norm, norm=get_norm(norm, out_channels)
                )
            )
        strides = [shapes[f].stride for f in self.in_features]
        self._out_feature_strides = {f"p{int(torch.log2(torch.tensor(s)).item())}": s for s in strides}
        self.top_block = top_block
        if top_block is not None:
            last = max(strides)
            self._out_feature_strides[f"p{int(torch.log2(torch.tensor(last)).item()) + 1}"] = last * 2
        self._out_features = list(self._out_feature_strides)
        self._out_feature_channels = {k: out_channels for k in self._out_features}
        self._square_pad = square_pad
        self._size_divisibility = max(strides)
        rest = fold_laterals(bottom_up, dict(zip(self.in_features, self.lateral)))
        self._lateral_ops = [rest.get(f, conv) for f, conv in zip(self.in_features, self.lateral)]

    @property
    def size_divisibility(self) -> int:
        return self._size_divisibility

    @property
    def padding_constraints(self) -> dict:
        # detectron2 spells the key this way (see its ImageList.from_tensors)
        return {"size_divisiblity": self._size_divisibility, "square_size": self._square_pad}

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        feats = self.bottom_up(x)
        outs = [out(lat(feats[f])) for f, lat, out in zip(self.in_features, self._lateral_ops, self.output)]
        if self.top_block is not None:
            outs.extend(self.top_block(outs[-1]))
        return dict(zip(self._out_features, outs))


def find_contract_backbone(model: nn.Module) -> contract.Backbone:
    for m in model.modules():
        if isinstance(m, contract.Backbone):
            return m
    raise ValueError("the detector holds no contract backbone")


def det_param_groups(
    model: nn.Module, lr: float, weight_decay: float, layer_decay: float = 1.0, weight_decay_rule: str = "li"
) -> list[dict]:
    """Optimizer groups (``params`` of the optimizer config) with the contract backbone's layer decay.

    ``weight_decay_rule``: ``li`` = the project's shared rule (no decay on biases, 1-D tensors, position /
    cls tokens, rel-pos tables; Li et al. do not state theirs); ``vitdet`` = ViTDet's configs, i.e.
    detectron2's ``get_default_optimizer_params`` with ``weight_decay_norm=0`` and ``pos_embed`` exempt
    (biases and rel-pos tables ARE decayed).
    """
    backbone = find_contract_backbone(model)
    if weight_decay_rule == "li":
        return param_groups(
            model, lr=lr, weight_decay=weight_decay, layer_decay=layer_decay, backbone=backbone
        )
    if weight_decay_rule != "vitdet":
        raise ConfigError(f"unknown weight_decay_rule {weight_decay_rule!r}; choose li or vitdet")
    from detectron2.solver import get_default_optimizer_params

    inner = {id(p): n for n, p in backbone.named_parameters()}
    full = {n: id(p) for n, p in model.named_parameters()}

    def lr_factor(name: str) -> float:
        sub = inner.get(full.get(name.lstrip("."), -1))
        layer = backbone.layer_id(sub) if sub is not None else backbone.num_layers + 1
        return layer_decay ** (backbone.num_layers + 1 - layer)

    return get_default_optimizer_params(
        model,
        base_lr=lr,
        weight_decay=weight_decay,
        weight_decay_norm=0.0,
        lr_factor_func=lr_factor,
        overrides={"pos_embed": {"weight_decay": 0.0}},
    )


__all__ = ["Detectron2Backbone", "FoldedFPN", "SimpleNeck", "LastLevelMaxPool", "det_param_groups"]
