"""One rule for optimizer parameter groups: layer-wise lr decay + which parameters take weight decay.

Used by MAE pretraining, classification fine-tuning, detectron2 and mmseg alike, so a Table 4/5 row can
differ from another only by its initialization, never by its optimizer grouping.

Layer ids (BEiT/MAE convention): patch embedding, position embedding, cls token = 0; block i = i + 1;
everything after the blocks (pyramid, neck, heads) = num_layers + 1.
lr scale = decay ** (num_layers + 1 - id).
"""

from __future__ import annotations

import contextlib
import math
import re
from typing import Callable, Iterable, Iterator

import torch
import torch.nn as nn
from torch.nn.parallel import DistributedDataParallel

NO_DECAY_TOKENS = ("pos_embed", "cls_token", "mask_token", "relative_position_bias_table", "rel_pos")
_BLOCK_RE = re.compile(r"^(?:blocks|layers)\.(\d+)\.")


def takes_weight_decay(name: str, param: torch.Tensor) -> bool:
    """No decay on biases, norm/scale vectors (any 1-D tensor), position/cls/mask tokens, rel-pos tables."""
    if param.ndim <= 1 or name.endswith(".bias"):
        return False
    return not any(tok in name for tok in NO_DECAY_TOKENS)


def takes_weight_decay_official_mae(name: str, param: torch.Tensor) -> bool:
    """The official MAE pretraining rule (main_pretrain.py through timm's ``add_weight_decay``): no decay on
    1-D tensors and biases only, so the (1, 1, D) cls and mask tokens ARE decayed."""
    return not (param.ndim <= 1 or name.endswith(".bias"))


def vit_layer_id(name: str, num_layers: int) -> int:
    """Layer id of a parameter of a timm-named ViT with ``num_layers`` blocks."""
    if name.startswith(("cls_token", "pos_embed", "patch_embed", "mask_token", "reg_token")):
        return 0
    m = _BLOCK_RE.match(name)
    if m:
        return int(m.group(1)) + 1
    if name.startswith("rel_pos"):  # tables shared by many blocks: treated as the last block (BEiT rule)
        return num_layers
    return num_layers + 1


def param_groups(
    model: nn.Module,
    lr: float,
    weight_decay: float,
    layer_decay: float = 1.0,
    backbone: nn.Module | None = None,
    num_layers: int | None = None,
    layer_id: Callable[[str], int] | None = None,
    decays: Callable[[str, torch.Tensor], bool] | None = None,
) -> list[dict]:
    """Parameter groups keyed by (lr scale, weight decay) for any torch optimizer.

    ``backbone``: a submodule of ``model`` following the backbone contract (``num_layers``,
    ``layer_id(name)``, ``takes_weight_decay(name, param)``); its parameters get decayed lr scales and
    its no-decay rule, all other parameters are "head" (scale 1). Without ``backbone``, ``layer_id``
    and ``num_layers`` describe ``model`` itself (e.g. a timm ViT via :func:`vit_layer_id`).
    Each group carries ``lr_scale`` so schedulers can set ``lr = base * lr_scale``.
    """
    names_in_backbone: dict[int, str] = {}
    if backbone is not None:
        num_layers = backbone.num_layers
        layer_id = backbone.layer_id
        decays = backbone.takes_weight_decay
        names_in_backbone = {id(p): n for n, p in backbone.named_parameters()}
    if num_layers is None:
        num_layers, layer_id = 0, (lambda name: 1)
    decays = decays or takes_weight_decay

    groups: dict[tuple[int, bool], dict] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        if backbone is not None:
            inner = names_in_backbone.get(id(param))
            lid = layer_id(inner) if inner is not None else num_layers + 1
            wd_on = decays(inner, param) if inner is not None else takes_weight_decay(name, param)
        else:
            lid = layer_id(name) if layer_id else num_layers + 1
            wd_on = decays(name, param)
        key = (lid, wd_on)
        if key not in groups:
            scale = layer_decay ** (num_layers + 1 - lid)
            groups[key] = {
                "params": [],
                "param_names": [],
                "lr": lr * scale,
                "lr_scale": scale,
                "weight_decay": weight_decay if wd_on else 0.0,
                "layer_id": lid,
            }
        groups[key]["params"].append(param)
        groups[key]["param_names"].append(name)
    return [groups[k] for k in sorted(groups)]


def cosine_lr(
    progress_epochs: float, base_lr: float, total_epochs: float, warmup_epochs: float, min_lr: float = 0.0
) -> float:
    """Linear warmup, then half-period cosine to ``min_lr``; evaluated per iteration (fractional epoch)."""
    if progress_epochs < warmup_epochs:
        return base_lr * progress_epochs / warmup_epochs
    span = max(total_epochs - warmup_epochs, 1e-12)
    t = min((progress_epochs - warmup_epochs) / span, 1.0)
    return min_lr + (base_lr - min_lr) * 0.5 * (1.0 + math.cos(math.pi * t))


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for g in optimizer.param_groups:
        g["lr"] = lr * g.get("lr_scale", 1.0)


def describe_groups(groups: Iterable[dict]) -> str:
    return "; ".join(
        f"id {g['layer_id']}: {len(g['params'])} tensors, lr x{g['lr_scale']:.3g}, wd {g['weight_decay']}"
        for g in groups
    )


class AccumulatedSteps:
    """An epoch's optimizer steps with gradient accumulation, the official MAE engines' rule: the schedule's
    lr set at the first iteration of each window of ``accum_iter`` iterations, their gradients summed
    (loss / accum_iter, through the GradScaler), one step at the window's last iteration or the epoch's, and
    no DDP gradient sync on the iterations that do not step.

    Args:
        net: the model as trained (DDP-wrapped when there are several processes).
        optimizer: the optimizer it steps.
        scaler: its GradScaler (enabled for fp16 only).
        accum_iter: iterations per optimizer step.
        n_iter: iterations in the epoch.
        lr_at: the schedule: lr at a fractional epoch.
    """

    def __init__(
        self,
        net: nn.Module,
        optimizer: torch.optim.Optimizer,
        scaler: torch.amp.GradScaler,
        accum_iter: int,
        n_iter: int,
        lr_at: Callable[[float], float],
    ) -> None:
        self.net, self.optimizer, self.scaler = net, optimizer, scaler
        self.accum_iter, self.n_iter, self.lr_at = accum_iter, n_iter, lr_at

    @contextlib.contextmanager
    def iteration(self, epoch: int, it: int) -> Iterator[None]:
        """Around one iteration's forward and ``backward``; steps the optimizer after it when due."""
        if it % self.accum_iter == 0:
            set_lr(self.optimizer, self.lr_at(epoch + it / self.n_iter))
        steps = (it + 1) % self.accum_iter == 0 or it + 1 == self.n_iter
        no_sync = isinstance(self.net, DistributedDataParallel) and not steps
        with self.net.no_sync() if no_sync else contextlib.nullcontext():
            yield
        if steps:
            self.scaler.step(self.optimizer)
            self.scaler.update()
            self.optimizer.zero_grad(set_to_none=True)

    def backward(self, loss: torch.Tensor) -> None:
        self.scaler.scale(loss / self.accum_iter).backward()
