"""The plain ViT adapted for dense transfer (MAE App. A.3, Li et al. 2021).

What changes from the pretraining encoder, and why:
* windowed attention in most blocks (window = the pretraining grid, 14) keeps 1024px input affordable;
  the blocks that feed the pyramid stay global so every tap sees the whole image;
* relative position bias is *added* at transfer, zero-initialized (a no-op at step 0), as one table shared
  by the windowed blocks and one shared by the global blocks (or one per block, BEiT-style);
* absolute position embeddings are resampled (bicubic) from the pretraining grid to the fine-tune grid;
* the cls token is dropped (dense tasks use patch tokens only) unless ``use_cls_token`` keeps it in a
  global-attention-only model (BEiT / mmseg-style);
* inputs whose size is not a multiple of the patch are zero-padded, not rejected.

Blocks are timm's ``Block`` (same parameter names as a timm / official MAE ViT); only the forward is
changed to partition windows around the attention and pass the relative bias as an additive mask.
"""

from __future__ import annotations

from functools import partial
from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.utils.checkpoint as cp
from timm.layers import PatchEmbed, resample_abs_pos_embed
from timm.models.vision_transformer import Block

from ..optim import vit_layer_id
from .pos_embed import sincos_2d


def window_partition(x: torch.Tensor, ws: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """(B, H, W, C) -> (B * nW, ws * ws, C), zero-padding H and W up to multiples of ``ws``."""
    b, h, w, c = x.shape
    ph, pw = (ws - h % ws) % ws, (ws - w % ws) % ws
    if ph or pw:
        x = F.pad(x, (0, 0, 0, pw, 0, ph))
    hp, wp = h + ph, w + pw
    x = x.view(b, hp // ws, ws, wp // ws, ws, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, ws * ws, c), (hp, wp)


def window_unpartition(
    x: torch.Tensor, ws: int, padded: tuple[int, int], size: tuple[int, int]
) -> torch.Tensor:
    """Inverse of :func:`window_partition`; crops the padding."""
    hp, wp = padded
    h, w = size
    b = x.shape[0] // ((hp // ws) * (wp // ws))
    x = x.view(b, hp // ws, wp // ws, ws, ws, -1).permute(0, 1, 3, 2, 4, 5).reshape(b, hp, wp, -1)
    return x[:, :h, :w, :].contiguous()


class RelativePositionBias(nn.Module):
    """A learned bias per (relative offset, head) for an ``h x w`` token grid, BEiT table layout.

    The table has ``(2h - 1) * (2w - 1)`` rows (offset (dy, dx) at row
    ``(dy + h - 1) * (2w - 1) + dx + w - 1``), plus 3 rows (cls->token, token->cls, cls->cls) when
    ``with_cls``. Zero-initialized: adding it at transfer changes nothing until training moves it. Grids
    smaller than the table's are served by cropping the offsets they need; larger ones by bicubic resampling
    of the table.
    """

    def __init__(self, grid: tuple[int, int], num_heads: int, with_cls: bool = False) -> None:
        super().__init__()
        self.grid = tuple(grid)
        self.num_heads = num_heads
        self.with_cls = with_cls
        rows = (2 * grid[0] - 1) * (2 * grid[1] - 1) + (3 if with_cls else 0)
        self.relative_position_bias_table = nn.Parameter(torch.zeros(rows, num_heads))
        self._index_cache: dict[tuple, torch.Tensor] = {}  # not state: derived from the grid alone

    def _index(
        self, grid: tuple[int, int], table_grid: tuple[int, int], device: torch.device
    ) -> torch.Tensor:
        """Flat (N * N) table row of every (query, key) pair; a constant per grid, built once (N^2 indices:
        16.8M at a 64x64 grid)."""
        key = (grid, table_grid, device)
        if key not in self._index_cache:
            (h, w), (th, tw) = grid, table_grid
            ys, xs = torch.arange(h, device=device), torch.arange(w, device=device)
            dy = ys[:, None] - ys[None, :] + th - 1  # (h, h)
            dx = xs[:, None] - xs[None, :] + tw - 1  # (w, w)
            self._index_cache[key] = (dy[:, None, :, None] * (2 * tw - 1) + dx[None, :, None, :]).reshape(-1)
        return self._index_cache[key]

    def forward(self, grid: tuple[int, int], dtype: torch.dtype | None = None) -> torch.Tensor:
        """(heads, N, N) bias for a ``grid`` of N = h * w tokens (N + 1 with the cls token), in ``dtype``
        (default: the table's)."""
        h, w = grid
        th, tw = self.grid
        n_off = (2 * th - 1) * (2 * tw - 1)
        table = self.relative_position_bias_table[:n_off].t().reshape(self.num_heads, 2 * th - 1, 2 * tw - 1)
        if h > th or w > tw:
            table = F.interpolate(
                table[None],
                size=(2 * max(h, th) - 1, 2 * max(w, tw) - 1),
                mode="bicubic",
                align_corners=False,
            )[0]
            th, tw = max(h, th), max(w, tw)
        index = partial(self._index, (h, w), (th, tw), table.device)
        bias = _ExpandRelPos.apply(table, (h, w), dtype or table.dtype, index)
        if self.with_cls:
            extra = self.relative_position_bias_table[n_off:].to(bias.dtype)  # (3, heads)
            full = bias.new_empty(self.num_heads, h * w + 1, h * w + 1)
            full[:, 1:, 1:] = bias
            full[:, 0, :] = extra[0][:, None]
            full[:, :, 0] = extra[1][:, None]
            full[:, 0, 0] = extra[2]
            bias = full
        return bias


class _ExpandRelPos(torch.autograd.Function):
    """(heads, 2th - 1, 2tw - 1) offset table -> (heads, N, N) bias of an h x w grid, made in ``dtype``.

    Forward without an index: bias[y1, x1, y2, x2] = table[y1 - y2 + th - 1, x1 - x2 + tw - 1] is a strided
    view of the flipped table (offsets grow with y2 and fall with y1) with its query axes flipped back: one
    write of N^2 values per head, in the attention's dtype (a bf16 64 x 64 grid: 0.3 s vs 0.8 s for an fp32
    index_select and a cast). Backward: each offset's gradient sums its (query, key) pairs, an index_add in
    the table's dtype (fp32 under autocast) over the (cached) flat index ``index()``.
    """

    @staticmethod
    def forward(ctx, table, grid, dtype, index):  # noqa: ANN001 - autograd.Function signature
        heads, th2, tw2 = table.shape
        h, w = grid
        ctx.table_shape, ctx.table_dtype, ctx.index = table.shape, table.dtype, index
        flipped = table.flip(1, 2).to(dtype).contiguous()  # flipped[a, b] = table[2th - 2 - a, 2tw - 2 - b]
        sh, sa, sb = flipped.stride()
        # view[.., h-1-y1, w-1-x1, y2, x2] starts at the grid's offsets (a larger table is cropped)
        start = ((th2 + 1) // 2 - h) * sa + ((tw2 + 1) // 2 - w) * sb
        view = flipped.as_strided((heads, h, w, h, w), (sh, sa, sb, sa, sb), start)
        return view.flip(1, 2).reshape(heads, h * w, h * w)

    @staticmethod
    def backward(ctx, grad):  # noqa: ANN001
        heads = ctx.table_shape[0]
        flat = grad.reshape(heads, -1).to(ctx.table_dtype)
        out = flat.new_zeros(heads, ctx.table_shape[1] * ctx.table_shape[2]).index_add_(1, ctx.index(), flat)
        return out.view(ctx.table_shape), None, None, None


class TransferBlock(Block):
    """timm's pre-norm ViT block on a (B, H, W, C) map, with optional windows and an additive attention bias.

    Windowing happens after ``norm1`` so padded positions are exact zeros (as in detectron2's ViTDet).
    """

    def __init__(
        self, *args, window_size: int = 0, rel_pos: RelativePositionBias | None = None, **kwargs
    ) -> None:
        super().__init__(*args, **kwargs)
        self.window_size = window_size
        self.rel_pos = rel_pos  # only set for per-block tables; shared tables live on the ViT

    def forward(self, x: torch.Tensor, bias: torch.Tensor | None = None, cls: torch.Tensor | None = None):
        """``x`` (B, H, W, C); ``bias`` (1, heads, N, N) in the attention's compute dtype (see
        ``TransferViT._bias``); ``cls`` (B, 1, C) for global blocks when the cls token is kept."""
        b, h, w, c = x.shape
        shortcut = x
        y = self.norm1(x)
        if self.window_size > 0:
            y, padded = window_partition(y, self.window_size)
        else:
            y = y.reshape(b, h * w, c)
        if cls is not None:  # global blocks only: the cls token joins the sequence in front
            y = torch.cat([self.norm1(cls), y], dim=1)
        y = self.attn(y, attn_mask=bias)
        if cls is not None:
            cls = cls + self.drop_path1(self.ls1(y[:, :1]))
            cls = cls + self.drop_path2(self.ls2(self.mlp(self.norm2(cls))))
            y = y[:, 1:]
        if self.window_size > 0:
            y = window_unpartition(y, self.window_size, padded, (h, w))
        else:
            y = y.reshape(b, h, w, c)
        x = shortcut + self.drop_path1(self.ls1(y))
        x = x + self.drop_path2(self.ls2(self.mlp(self.norm2(x))))
        return x, cls


class TransferViT(nn.Module):
    """ViT encoder for dense prediction; returns (B, C, H/p, W/p) maps after the requested blocks.

    Args:
        img_size: fine-tune input size (position embeddings are stored for this grid).
        window_size: window side in tokens for windowed blocks (0 = every block global).
        global_blocks: indices of blocks with global attention (the rest are windowed).
        rel_pos: None | "shared" (one table for windowed blocks, one for global blocks) | "per_block".
        init_values: LayerScale init (None = no LayerScale; BEiT checkpoints bring theirs).
        use_cls_token: keep the pretrained cls token in the sequence (global attention only).
        act_checkpoint: activation checkpointing per block (ViT-L/H memory).
    """

    def __init__(
        self,
        img_size: int = 1024,
        patch_size: int = 16,
        in_chans: int = 3,
        embed_dim: int = 768,
        depth: int = 12,
        num_heads: int = 12,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        drop_path_rate: float = 0.0,
        window_size: int = 14,
        global_blocks: Sequence[int] = (2, 5, 8, 11),
        rel_pos: str | None = "shared",
        init_values: float | None = None,
        use_cls_token: bool = False,
        act_checkpoint: bool = False,
    ) -> None:
        super().__init__()
        if rel_pos not in (None, "shared", "per_block"):
            raise ValueError(f"rel_pos must be None, 'shared' or 'per_block', got {rel_pos!r}")
        if use_cls_token and window_size > 0 and len(set(global_blocks)) < depth:
            raise ValueError("use_cls_token needs global attention in every block (window_size=0)")
        self.patch_size = patch_size
        self.embed_dim = embed_dim
        self.depth = depth
        self.num_heads = num_heads
        self.act_checkpoint = act_checkpoint
        self.global_blocks = set(range(depth)) if window_size <= 0 else set(global_blocks)
        self.window_size = window_size
        # strict_img_size=False: any input size (padded to the patch) is accepted
        self.patch_embed = PatchEmbed(
            img_size,
            patch_size,
            in_chans,
            embed_dim,
            output_fmt="NHWC",
            strict_img_size=False,
            dynamic_img_pad=True,
        )
        grid = (-(-img_size // patch_size),) * 2  # padded to the patch: ceil
        self.grid = grid
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim)) if use_cls_token else None
        # fine-tune grid, cls slot only when the cls token is used; sin-cos init (replaced by checkpoints)
        self.pos_embed = nn.Parameter(sincos_2d(embed_dim, grid, cls_token=use_cls_token))
        dpr = [drop_path_rate * i / max(depth - 1, 1) for i in range(depth)]  # linear, as in ViTDet
        self.rel_pos_mode = rel_pos
        if rel_pos == "shared":
            self.rel_pos_global = RelativePositionBias(grid, num_heads, with_cls=use_cls_token)
            has_windows = len(self.global_blocks) < depth
            self.rel_pos_window = RelativePositionBias((window_size,) * 2, num_heads) if has_windows else None
        norm_layer = partial(nn.LayerNorm, eps=1e-6)
        self.blocks = nn.ModuleList()
        for i in range(depth):
            is_global = i in self.global_blocks
            own = None
            if rel_pos == "per_block":
                own = RelativePositionBias(
                    grid if is_global else (window_size,) * 2, num_heads, with_cls=use_cls_token and is_global
                )
            self.blocks.append(
                TransferBlock(
                    embed_dim,
                    num_heads,
                    mlp_ratio,
                    qkv_bias=qkv_bias,
                    init_values=init_values,
                    drop_path=dpr[i],
                    norm_layer=norm_layer,
                    window_size=0 if is_global else window_size,
                    rel_pos=own,
                )
            )
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(m: nn.Module) -> None:
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)

    def _pos_embed(self, grid: tuple[int, int]) -> torch.Tensor:
        prefix = 1 if self.cls_token is not None else 0
        if tuple(grid) == self.grid:
            return self.pos_embed
        return resample_abs_pos_embed(
            self.pos_embed,
            new_size=list(grid),
            old_size=list(self.grid),
            num_prefix_tokens=prefix,
            interpolation="bicubic",
            antialias=False,
        )

    def _bias(
        self, blk: TransferBlock, is_global: bool, grid: tuple[int, int], cache: dict, dtype: torch.dtype
    ) -> torch.Tensor | None:
        """The block's attention bias as (1, heads, N, N) in ``dtype``, the attention's compute dtype.

        The dtype is decided here, once per forward: the residual stream stays fp32 under autocast, so a bias
        cast to its dtype made the attention scores fp32 (at a global block an fp32 add, softmax and gradient
        over 12 x 4096² values and a cast back for attn @ v: a bf16 ViT-B Mask R-CNN step at 1024 on CPU took
        31.1 s and 11.8 GiB, 19.9 s and 7.9 GiB in the autocast dtype). The leading 1: with one image (or
        window) per batch the add's gradient is the bias's as is; a (heads, N, N) bias made autograd reduce
        over the batch dim (a 0.6 s fill + sum at 4096 tokens).
        """
        if self.rel_pos_mode is None:
            return None
        size = grid if is_global else (self.window_size,) * 2
        if blk.rel_pos is not None:
            return blk.rel_pos(size, dtype)[None]
        key = "global" if is_global else "window"
        if key not in cache:  # a shared table yields one bias per forward, reused by all its blocks
            table = self.rel_pos_global if is_global else self.rel_pos_window
            cache[key] = table(size, dtype)[None]
        return cache[key]

    def forward_taps(self, x: torch.Tensor, indices: Sequence[int]) -> list[torch.Tensor]:
        """Maps (B, C, H/p, W/p) after each block in ``indices`` (input padded to a multiple of the patch)."""
        x = self.patch_embed(x)  # (B, H, W, C)
        b, h, w, c = x.shape
        pos = self._pos_embed((h, w))
        cls = None
        if self.cls_token is not None:
            cls = (self.cls_token + pos[:, :1]).expand(b, -1, -1)
            pos = pos[:, 1:]
        x = x + pos.reshape(1, h, w, c)
        outs: list[torch.Tensor | None] = [None] * len(indices)
        cache: dict[str, torch.Tensor] = {}
        device = x.device.type
        dtype = torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else x.dtype
        last = max(indices)
        for i, blk in enumerate(self.blocks[: last + 1]):
            bias = self._bias(blk, i in self.global_blocks, (h, w), cache, dtype)
            if self.act_checkpoint and self.training:
                x, cls = cp.checkpoint(blk, x, bias, cls, use_reentrant=False)
            else:
                x, cls = blk(x, bias, cls)
            if i in indices:
                tap = x.permute(0, 3, 1, 2).contiguous()
                for k, j in enumerate(indices):  # an index may repeat (shallow ViTs share tap blocks)
                    if j == i:
                        outs[k] = tap
        return outs  # type: ignore[return-value]

    def layer_id(self, name: str) -> int:
        """0 for patch/pos/cls, i + 1 for block i; shared rel-pos tables count as the last block."""
        return vit_layer_id(name, self.depth)
