"""The one backbone contract both harnesses consume, its registry, and the ViT -> pyramid backbone.

Contract (a plain ``nn.Module``)::

    feats = backbone(images)          # {"s4": (B, C4, H/4, W/4), "s8": ..., "s16": ..., "s32": ...}
    backbone.out_channels             # {"s4": C4, ...}
    backbone.out_strides              # {"s4": 4, ...}
    backbone.num_layers               # layer ids run from 0 to num_layers + 1 (lr decay)
    backbone.layer_id(param_name)     # -> int in [0, num_layers + 1]
    backbone.takes_weight_decay(param_name, param) -> bool
    backbone.load_pretrained(path, source="auto") -> LoadReport
    backbone.size_divisibility        # inputs are padded to a multiple of this
    backbone.square_pad               # > 0: pad every input to this square size (ViT det recipe)

Every factory accepts ``img_size`` (the fine-tune input side) and ``drop_path_rate``, so the harness
configs can pass them to any backbone; a backbone that needs neither ignores them.

Backbones are registered by name (``@register_backbone("mae_vit_l")``) in plug-in modules: every
module in the top-level ``backbones/`` package is imported on first use, as is every module listed in
``$MAE_TRANSFER_PLUGINS`` (comma-separated). ``build_backbone("my.module:name")`` imports ``my.module``
first, so a backbone living anywhere on the path works in every tool.
"""

from __future__ import annotations

import importlib
import inspect
import os
import pkgutil
import re
from typing import Any, Callable, Sequence

import torch
import torch.nn as nn

from .checkpoints import (
    LoadReport,
    apply_to_model,
    read_vit_checkpoint,
    resize_pos_embed,
    resize_rel_pos_table,
)
from .errors import CheckpointError, ConfigError
from .models.vit import TransferViT
from .optim import takes_weight_decay
from .pyramid import MultiTapPyramid, SingleTapPyramid
from .registry import Registry

BACKBONES = Registry("backbone")
_PLUGINS_LOADED = False


class Backbone(nn.Module):
    """Base class spelling out the contract; subclasses set the attributes and implement forward."""

    out_channels: dict[str, int]
    out_strides: dict[str, int]
    num_layers: int = 0
    size_divisibility: int = 32
    square_pad: int = 0

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:  # pragma: no cover - interface
        raise NotImplementedError

    def layer_id(self, name: str) -> int:
        return self.num_layers + 1

    def takes_weight_decay(self, name: str, param: torch.Tensor) -> bool:
        return takes_weight_decay(name, param)

    def load_pretrained(self, path: str, source: str = "auto") -> LoadReport:  # pragma: no cover - interface
        raise CheckpointError(f"{type(self).__name__} cannot load checkpoints")


TIMM_PREFIX = "timm:"  # --backbone timm:<model_name>: any timm model, see mae_transfer/timm_backbone.py


def register_backbone(name: str | None = None, arch: dict[str, Any] | None = None) -> Callable:
    """Decorator for a factory ``fn(**overrides) -> Backbone``, registered as ``name`` (default: the
    function's name). ``arch``: for a ``ViTPyramidBackbone`` factory, the constructor arguments it fixes
    (width, depth, ...), which recipe cards read without building the model (``backbone_settings``)."""
    return BACKBONES.register(name, arch)


def load_plugins() -> None:
    """Import the ``backbones`` package's modules and ``$MAE_TRANSFER_PLUGINS`` (once)."""
    global _PLUGINS_LOADED
    if _PLUGINS_LOADED:
        return
    _PLUGINS_LOADED = True
    try:
        pkg = importlib.import_module("backbones")
    except ModuleNotFoundError:
        pkg = None
    if pkg is not None:
        for info in pkgutil.iter_modules(pkg.__path__):
            importlib.import_module(f"backbones.{info.name}")
    for mod in filter(None, os.environ.get("MAE_TRANSFER_PLUGINS", "").split(",")):
        importlib.import_module(mod.strip())


def build_backbone(name: str, **overrides: Any) -> Backbone:
    """Build a registered backbone by name (or ``module.path:name``) with constructor overrides."""
    load_plugins()
    if name.startswith(TIMM_PREFIX):
        from .timm_backbone import TimmBackbone

        _check_keywords(name, TimmBackbone, overrides)
        return TimmBackbone(name.removeprefix(TIMM_PREFIX), **overrides)
    if ":" in name:
        module, name = name.split(":", 1)
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as e:
            raise ConfigError(f"backbone plug-in module {module!r} not found ({e})") from None
    factory = BACKBONES.get(name)
    _check_keywords(name, factory, overrides)
    try:
        return factory(**overrides)
    except TypeError as e:  # a factory taking **kwargs passed a user's key on to a callee that takes none
        bad = [k for k in overrides if f"unexpected keyword argument '{k}'" in str(e)]
        if not bad:
            raise  # a bug, not the user's key: keep the traceback
        raise ConfigError(f"backbone {name!r}: {e}") from None


def _check_keywords(name: str, factory: Callable, overrides: dict[str, Any]) -> None:
    """A key the backbone does not take is the user's error (one line); a TypeError raised while building
    is a bug and keeps its traceback. A factory taking ``**kwargs`` (without an ``arch``) is checked when
    called."""
    if getattr(factory, "arch", None) is not None:
        factory = ViTPyramidBackbone
    params = inspect.signature(factory).parameters.values()
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return
    unknown = sorted(set(overrides) - {p.name for p in params})
    if unknown:
        raise ConfigError(
            f"backbone {name!r} takes no {', '.join(map(repr, unknown))}; it takes "
            f"{', '.join(p.name for p in params)}"
        )


def backbone_settings(name: str, **overrides: Any) -> dict[str, Any]:
    """The constructor arguments a registered ViT backbone would get (its factory's ``arch`` shape, then
    ``ViTPyramidBackbone``'s defaults, then ``overrides``), resolved without building it: what a recipe card
    reports. Empty for a backbone whose factory declares no ``arch`` (e.g. a ConvNet plug-in)."""
    load_plugins()
    if name.startswith(TIMM_PREFIX):
        return {}
    arch = getattr(BACKBONES.get(name.split(":")[-1]), "arch", None)
    if arch is None:
        return {}
    params = inspect.signature(ViTPyramidBackbone.__init__).parameters.values()
    settings = {p.name: p.default for p in params if p.default is not inspect.Parameter.empty}
    settings.update(arch)
    settings.update(overrides)
    settings["taps"] = (
        tuple(settings["taps"]) if settings["taps"] is not None else default_taps(settings["depth"])
    )
    if settings["global_blocks"] is None:
        settings["global_blocks"] = settings["taps"]
    settings["global_blocks"] = tuple(settings["global_blocks"])
    return settings


def backbone_keys(name: str) -> set[str] | None:
    """The constructor keywords a backbone takes, where they are a fixed set (``timm:<name>``: image size and
    drop path), so that a config written for another backbone can drop the rest; None when open-ended."""
    return {"img_size", "drop_path_rate"} if name.startswith(TIMM_PREFIX) else None


def backbone_channels(name: str, **overrides: Any) -> list[int]:
    """The widths of a backbone's maps, finest first, from a copy built without memory (meta device)."""
    with torch.device("meta"):
        return list(build_backbone(name, **overrides).out_channels.values())


def registered_backbones() -> list[str]:
    load_plugins()
    return BACKBONES.names()


# ----------------------------------------------------------------------------- ViT + pyramid
def default_taps(depth: int) -> tuple[int, ...]:
    """Last block of each of 4 equal groups (B: 2, 5, 8, 11; L: 5, 11, 17, 23); shallower than 4 blocks,
    groups share blocks (depth 2: 0, 0, 0, 1)."""
    return tuple(max(0, (g + 1) * depth // 4 - 1) for g in range(4))


class ViTPyramidBackbone(Backbone):
    """A (pretrained) plain ViT with windowed/global blocks and a 4-level pyramid (stride-named maps).

    Args:
        embed_dim: the ViT's width (B 768, L 1024, H 1280).
        depth: number of transformer blocks.
        num_heads: attention heads per block.
        patch_size: patch side in pixels; the pyramid's scales follow from it (strides 4, 8, 16, 32).
        img_size: fine-tune input side; absolute position embeddings are resampled to its grid.
        mlp_ratio: MLP hidden width / embed_dim.
        taps: the 4 blocks whose outputs feed the pyramid, one per block group (default: the last block of
            each of 4 equal groups, ``default_taps``).
        pyramid: "multitap" (one tap per level, MAE App. A.3 / Li et al.) or "simple" (every level from the
            last block, ViTDet; ``taps`` is then the last block).
        pyramid_norm: norm inside the 4x upsampling path (GN, BN, SyncBN, SyncBNCPU, LN).
        window_size: window side in tokens for windowed blocks (0: every block global).
        global_blocks: blocks with global attention (default: the taps); the others are windowed.
        rel_pos: relative position bias, added at transfer and zero-initialized: "shared" (one table per
            attention kind), "per_block" (one per block, BEiT's layout) or None.
        drop_path_rate: stochastic depth, rising linearly to this value over the blocks.
        init_values: LayerScale initial value (None: no LayerScale; BEiT checkpoints need it set).
        use_cls_token: keep the pretrained cls token in the sequence (needs every block global).
        act_checkpoint: activation checkpointing per block (recompute in backward; ViT-L/H memory).
        square_pad: > 0: the harness pads every input to this square side (the ViT detection recipe).
    """

    def __init__(
        self,
        embed_dim: int,
        depth: int,
        num_heads: int,
        patch_size: int = 16,
        img_size: int = 1024,
        mlp_ratio: float = 4.0,
        taps: Sequence[int] | None = None,
        pyramid: str = "multitap",
        pyramid_norm: str = "GN",
        window_size: int = 14,
        global_blocks: Sequence[int] | None = None,
        rel_pos: str | None = "shared",
        drop_path_rate: float = 0.0,
        init_values: float | None = None,
        use_cls_token: bool = False,
        act_checkpoint: bool = False,
        square_pad: int = 0,
    ) -> None:
        super().__init__()
        taps = tuple(taps) if taps is not None else default_taps(depth)
        if len(taps) != 4 or max(taps) >= depth or min(taps) < 0:
            raise ConfigError(f"taps must be 4 block indices < depth {depth}, got {taps}")
        self.taps = taps
        self.vit = TransferViT(
            img_size=img_size,
            patch_size=patch_size,
            embed_dim=embed_dim,
            depth=depth,
            num_heads=num_heads,
            mlp_ratio=mlp_ratio,
            drop_path_rate=drop_path_rate,
            window_size=window_size,
            global_blocks=tuple(global_blocks) if global_blocks is not None else taps,
            rel_pos=rel_pos,
            init_values=init_values,
            use_cls_token=use_cls_token,
            act_checkpoint=act_checkpoint,
        )
        scales = tuple(patch_size / s for s in (4, 8, 16, 32))
        if pyramid == "multitap":
            self.pyramid: nn.Module = MultiTapPyramid(embed_dim, scales, norm=pyramid_norm)
        elif pyramid == "simple":
            self.pyramid = SingleTapPyramid(embed_dim, scales, norm=pyramid_norm)
            self.taps = (depth - 1,)
        else:
            raise ConfigError(f"unknown pyramid {pyramid!r}; choose multitap or simple")
        self.names = ("s4", "s8", "s16", "s32")
        self.out_channels = dict(zip(self.names, self.pyramid.out_channels))
        self.out_strides = dict(zip(self.names, (4, 8, 16, 32)))
        self.num_layers = depth
        self.size_divisibility = max(32, patch_size)
        self.square_pad = square_pad
        for m in self.pyramid.modules():
            if isinstance(m, (nn.ConvTranspose2d, nn.Conv2d)):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        taps = self.vit.forward_taps(images, self.taps)
        return dict(zip(self.names, self.pyramid(taps)))

    def layer_id(self, name: str) -> int:
        if name.startswith("vit."):
            return self.vit.layer_id(name[4:])
        return self.num_layers + 1

    # ------------------------------------------------------------------ checkpoints
    def load_pretrained(self, path: str, source: str = "auto") -> LoadReport:
        """Load any Table 4 initialization and report every key.

        Two steps, one per concern: ``checkpoints.convert`` turns any file format (BEiT's included) into the
        canonical timm-named keys; this method places canonical keys in this model's layout, which depends
        on its construction (BEiT's shared or per-block rel-pos tables go to the tables ``rel_pos`` made;
        LayerScale needs ``init_values``; a missing ``pos_embed`` starts at zero).
        """
        state, report, _ = read_vit_checkpoint(path, source)
        vit = self.vit
        mapped: dict[str, torch.Tensor] = {}
        has_ls = any(k.endswith("ls1.gamma") for k in self.state_dict())
        if any(k.endswith("ls1.gamma") for k in state) and not has_ls:
            raise CheckpointError(
                f"{path} has LayerScale (BEiT gamma_1/gamma_2); build the backbone with "
                "init_values set (e.g. init_values=0.1) so they load"
            )
        if "pos_embed" not in state:
            state["pos_embed"] = torch.zeros_like(vit.pos_embed)
            report.notes.append(
                "no absolute position embedding in the checkpoint (BEiT): pos_embed starts at zero"
            )
        for k, v in state.items():
            m = re.match(r"^blocks\.(\d+)\.attn\.relative_position_bias_table$", k)
            if k == "rel_pos_bias.relative_position_bias_table":  # BEiT shared table -> every table we have
                targets = [n for n in self.state_dict() if n.endswith("relative_position_bias_table")]
                for t in targets:
                    mapped[t] = v
                if not targets:
                    report.ignored.append(k)
            elif m:
                if vit.rel_pos_mode != "per_block":
                    raise CheckpointError(
                        f"{path} has per-block relative position tables ({k}); build the "
                        "backbone with rel_pos='per_block' to keep them"
                    )
                mapped[f"vit.blocks.{m.group(1)}.rel_pos.relative_position_bias_table"] = v
            elif k in ("norm.weight", "norm.bias") or (k == "cls_token" and vit.cls_token is None):
                report.ignored.append(k)  # dense taps use no final norm; the cls token is dropped
            else:
                mapped[f"vit.{k}"] = v
        resizers = {"vit.pos_embed": resize_pos_embed, "vit.patch_embed.proj.weight": _resize_patch_embed}
        resizers.update(
            {n: resize_rel_pos_table for n in self.state_dict() if n.endswith("relative_position_bias_table")}
        )

        def may_be_new(key: str) -> bool:
            return key.startswith("pyramid.") or key.endswith(
                ("relative_position_bias_table", "ls1.gamma", "ls2.gamma")
            )

        apply_to_model(self, mapped, report, may_be_new=may_be_new, resizers=resizers)
        report.ignored = [k[4:] if k.startswith("vit.") else k for k in report.ignored]
        if any("relative_position_bias_table" in k for k in report.new):
            report.notes.append("relative position bias added at transfer, zero-initialized")
        return report


def _resize_patch_embed(src: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Patch-size change (FlexiViT resampling, timm) when the checkpoint's patch differs from the model's."""
    from timm.layers import resample_patch_embed

    if src.shape[:2] != target.shape[:2]:
        raise CheckpointError(
            f"patch_embed.proj.weight has shape {tuple(src.shape)}, the model needs "
            f"{tuple(target.shape)} (different width or input channels)"
        )
    return resample_patch_embed(src, list(target.shape[-2:]))
