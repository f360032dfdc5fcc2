"""The contract backbone in mmseg's MODELS registry, and the shared layer-decay optimizer constructor."""

from __future__ import annotations

import contextlib
import logging
from typing import Iterator

import torch
import torch.nn as nn
from mmengine.model import BaseModule
from mmengine.optim import DefaultOptimWrapperConstructor, OptimWrapper
from mmseg.registry import MODELS, OPTIM_WRAPPER_CONSTRUCTORS, OPTIM_WRAPPERS, OPTIMIZERS

from .. import backbone as contract
from ..optim import param_groups
from ..pyramid import SyncBatchNormCPU

MODELS.register_module("SyncBNCPU", module=SyncBatchNormCPU)

log = logging.getLogger("mae_transfer.seg")


@MODELS.register_module()
class MMSegBackbone(BaseModule):
    """Any registered backbone as an mmseg backbone: returns its maps as a tuple, finest first.

    ``weights`` (any supported checkpoint format) is loaded in ``init_weights`` (the Runner calls it before
    training; resume and ``load_from`` overwrite it afterwards), with the key report in the log.
    """

    forwards_kwargs = True  # extra keywords go to the backbone factory, which validates them

    def __init__(
        self,
        name: str,
        weights: str = "",
        source: str = "auto",
        out_levels: tuple[str, ...] = ("s4", "s8", "s16", "s32"),
        **overrides,
    ) -> None:
        super().__init__(init_cfg=None)
        self.net = contract.build_backbone(name, **overrides)
        self.weights, self.source, self.out_levels = weights, source, tuple(out_levels)
        self.load_report = None
        missing = [lvl for lvl in self.out_levels if lvl not in self.net.out_channels]
        if missing:
            raise ValueError(
                f"backbone {name} has no level(s) {missing}; it has {list(self.net.out_channels)}"
            )

    @property
    def out_channels(self) -> list[int]:
        return [self.net.out_channels[lvl] for lvl in self.out_levels]

    def init_weights(self) -> None:
        if self.weights:
            self.load_report = self.net.load_pretrained(self.weights, self.source)
            log.info("backbone initialized from %s", self.load_report.format())
        self._is_init = True

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        feats = self.net(x)
        return tuple(feats[lvl] for lvl in self.out_levels)


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class ContractLayerDecayConstructor(DefaultOptimWrapperConstructor):
    """Param groups from ``mae_transfer.optim.param_groups`` (``paramwise_cfg=dict(layer_decay=0.65)``):
    the same layer-decay and no-weight-decay rule the detection harness uses."""

    def __call__(self, model: nn.Module) -> OptimWrapper:
        if hasattr(model, "module"):
            model = model.module
        optimizer_cfg = dict(self.optimizer_cfg)
        backbone = next((m for m in model.modules() if isinstance(m, contract.Backbone)), None)
        if backbone is None:
            raise ValueError("ContractLayerDecayConstructor needs a model holding a contract backbone")
        groups = param_groups(
            model,
            lr=optimizer_cfg["lr"],
            weight_decay=optimizer_cfg.get("weight_decay", 0.0),
            layer_decay=self.paramwise_cfg.get("layer_decay", 1.0),
            backbone=backbone,
        )
        # undecayed groups first: mmengine logs the first group's lr as the run's `lr`
        optimizer_cfg["params"] = sorted(groups, key=lambda g: -g.get("lr_scale", 1.0))
        optimizer = OPTIMIZERS.build(optimizer_cfg)
        return OPTIM_WRAPPERS.build(self.optim_wrapper_cfg, default_args=dict(optimizer=optimizer))


@OPTIM_WRAPPERS.register_module()
class CPUAmpOptimWrapper(OptimWrapper):
    """Mixed precision on CPU: the train step's forward and loss under bf16 autocast (mmengine's
    AmpOptimWrapper asserts a GPU). bf16 keeps fp32's exponent range, so no loss scaler; weights, gradients
    and optimizer state stay fp32."""

    @contextlib.contextmanager
    def optim_context(self, model: nn.Module) -> Iterator[None]:
        with super().optim_context(model), torch.autocast("cpu", dtype=torch.bfloat16):
            yield
