"""The ViT -> pyramid backbone: a (pretrained) plain ViT in block groups, windowed + global attention,
relative position bias added at transfer and zero-initialized, and a 4-level pyramid. Registered by the
named factories of ``backbones/mae_vit.py``."""

from __future__ import annotations

import re
from typing import Any, Sequence

import torch
import torch.nn as nn

from .backbone import Backbone, default_taps
from .checkpoints import (
    LoadReport,
    apply_to_model,
    read_vit_checkpoint,
    resize_pos_embed,
    resize_rel_pos_table,
)
from .errors import CheckpointError, ConfigError
from .models.vit import TransferViT
from .pyramid import MultiTapPyramid, SingleTapPyramid


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
        self._folded: dict[str, nn.Conv2d] = {}  # a neck's lateral convs, not this module's parameters

    @staticmethod
    def resolve_settings(settings: dict[str, Any]) -> dict[str, Any]:
        """Constructor arguments with the defaults that depend on others filled in (taps from the depth,
        global blocks from the taps): what the recipe card reports (``backbone_settings``)."""
        taps = settings["taps"]
        settings["taps"] = tuple(taps) if taps is not None else default_taps(settings["depth"])
        blocks = settings["global_blocks"]
        settings["global_blocks"] = tuple(blocks) if blocks is not None else settings["taps"]
        return settings

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        taps = self.vit.forward_taps(images, self.taps)
        project = [self._folded.get(n) for n in self.names]
        return dict(zip(self.names, self.pyramid(taps, project)))

    def foldable(self) -> list[str]:
        """Outputs whose pyramid level ends in a 2x2 transposed conv (a 1x1 conv on them can be folded in)."""
        return [n for n, ok in zip(self.names, self.pyramid.foldable()) if ok]

    def fold(self, convs: dict[str, nn.Conv2d]) -> None:
        """Run a neck's 1x1 lateral convs inside the last transposed conv of their levels: from then on output
        ``name`` is ``convs[name]`` of the pyramid's map, computed as one upsampling with the composed weight.

        The upsampling then writes the neck's width, not the ViT's: in the Table 4 recipe (FPN, ViT-B at
        1024) the 768-wide 256 x 256 map and its 768 -> 256 conv are never made. The convs stay the neck's
        parameters (its state-dict keys, init and optimizer groups); only their forward moves here.
        """
        foldable = self.foldable()
        for name, conv in convs.items():
            if name not in foldable:
                raise ConfigError(f"pyramid output {name!r} cannot take a folded conv; {foldable} can")
            if (conv.kernel_size, conv.stride, conv.padding, conv.groups) != ((1, 1), (1, 1), (0, 0), 1):
                raise ConfigError(f"only a plain 1x1 conv folds into the pyramid, got {conv} for {name!r}")
        self._folded = dict(convs)
        for name, conv in convs.items():
            self.out_channels[name] = conv.out_channels

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
