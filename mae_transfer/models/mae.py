"""Masked Autoencoder with a ViT backbone (He et al., 2021).

Encoder: a standard ViT (timm blocks) applied to the visible patches only. Decoder: a light Transformer
that sees encoded visible tokens plus one shared mask token at every masked position, and predicts the
pixels of each patch. Parameter names equal the official MAE release, so its ``mae_pretrain_*`` and
``mae_visualize_*`` checkpoints load with ``strict=True`` and the encoder half is a timm ViT state dict.
"""

from __future__ import annotations

import inspect
from functools import partial
from typing import Any

import torch
import torch.nn as nn
from timm.layers import PatchEmbed
from timm.models.vision_transformer import Block

from ..registry import Registry
from .masking import mask_noise
from .pos_embed import sincos_2d

MAE_MODELS = Registry("MAE model")

ENCODER_PREFIXES = ("cls_token", "pos_embed", "patch_embed.", "blocks.", "norm.")


class MaskedAutoencoderViT(nn.Module):
    def __init__(
        self,
        img_size: int = 224,
        patch_size: int = 16,
        in_chans: int = 3,
        embed_dim: int = 1024,
        depth: int = 24,
        num_heads: int = 16,
        decoder_embed_dim: int = 512,
        decoder_depth: int = 8,
        decoder_num_heads: int = 16,
        mlp_ratio: float = 4.0,
        norm_pix_loss: bool = True,
        loss_on_all_patches: bool = False,
        mask_strategy: str = "random",
        encoder_mask_tokens: bool = False,
    ) -> None:
        super().__init__()
        norm_layer = partial(nn.LayerNorm, eps=1e-6)
        self.arch = dict(
            img_size=img_size,
            patch_size=patch_size,
            in_chans=in_chans,
            embed_dim=embed_dim,
            depth=depth,
            num_heads=num_heads,
            mlp_ratio=mlp_ratio,
        )
        self.patch_size = patch_size
        self.in_chans = in_chans
        self.norm_pix_loss = norm_pix_loss
        self.loss_on_all_patches = loss_on_all_patches
        self.mask_strategy = mask_strategy
        self.encoder_mask_tokens = encoder_mask_tokens

        # --- encoder
        self.patch_embed = PatchEmbed(img_size, patch_size, in_chans, embed_dim)
        self.grid_size = self.patch_embed.grid_size
        num_patches = self.patch_embed.num_patches
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        # fixed sin-cos embedding; a Parameter (not a buffer) only so the official key set is kept
        self.pos_embed = nn.Parameter(torch.zeros(1, num_patches + 1, embed_dim), requires_grad=False)
        self.blocks = nn.ModuleList(
            [
                Block(embed_dim, num_heads, mlp_ratio, qkv_bias=True, norm_layer=norm_layer)
                for _ in range(depth)
            ]
        )
        self.norm = norm_layer(embed_dim)
        if encoder_mask_tokens:
            # Table 1c / Table 2 baseline: the encoder processes mask tokens too (slow; for benchmarks)
            self.encoder_mask_token = nn.Parameter(torch.zeros(1, 1, embed_dim))

        # --- decoder
        self.decoder_embed = nn.Linear(embed_dim, decoder_embed_dim, bias=True)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, decoder_embed_dim))
        self.decoder_pos_embed = nn.Parameter(
            torch.zeros(1, num_patches + 1, decoder_embed_dim), requires_grad=False
        )
        self.decoder_blocks = nn.ModuleList(
            [
                Block(decoder_embed_dim, decoder_num_heads, mlp_ratio, qkv_bias=True, norm_layer=norm_layer)
                for _ in range(decoder_depth)
            ]
        )
        self.decoder_norm = norm_layer(decoder_embed_dim)
        self.decoder_pred = nn.Linear(decoder_embed_dim, patch_size**2 * in_chans, bias=True)
        self.initialize_weights()

    # ------------------------------------------------------------------ init
    def initialize_weights(self) -> None:
        self.pos_embed.data.copy_(sincos_2d(self.pos_embed.shape[-1], self.grid_size, cls_token=True))
        self.decoder_pos_embed.data.copy_(
            sincos_2d(self.decoder_pos_embed.shape[-1], self.grid_size, cls_token=True)
        )
        # patch embedding initialized like a Linear layer (xavier on the flattened kernel)
        w = self.patch_embed.proj.weight.data
        nn.init.xavier_uniform_(w.view(w.shape[0], -1))
        nn.init.normal_(self.cls_token, std=0.02)
        nn.init.normal_(self.mask_token, std=0.02)
        if self.encoder_mask_tokens:
            nn.init.normal_(self.encoder_mask_token, std=0.02)
        self.apply(self._init_module)

    @staticmethod
    def _init_module(m: nn.Module) -> None:
        if isinstance(m, nn.Linear):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)

    # ------------------------------------------------------------------ patches
    def patchify(self, imgs: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) -> (N, L, p*p*C), pixel order (p_row, p_col, channel) as in the official release."""
        p = self.patch_size
        n, c, h, w = imgs.shape
        if h % p or w % p:
            raise ValueError(f"image size {h}x{w} is not divisible by the patch size {p}")
        x = imgs.reshape(n, c, h // p, p, w // p, p)
        return torch.einsum("nchpwq->nhwpqc", x).reshape(n, (h // p) * (w // p), p * p * c)

    def unpatchify(self, x: torch.Tensor, grid: tuple[int, int] | None = None) -> torch.Tensor:
        """(N, L, p*p*C) -> (N, C, H, W)."""
        p, c = self.patch_size, self.in_chans
        gh, gw = grid or self.grid_size
        x = x.reshape(x.shape[0], gh, gw, p, p, c)
        return torch.einsum("nhwpqc->nchpwq", x).reshape(x.shape[0], c, gh * p, gw * p)

    # ------------------------------------------------------------------ masking
    def make_noise(
        self, batch: int, mask_ratio: float, device: torch.device, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Per-patch noise whose argsort decides the mask (lowest noise = kept)."""
        return mask_noise(self.mask_strategy, batch, *self.grid_size, mask_ratio, generator, device)

    @staticmethod
    def random_masking(x: torch.Tensor, mask_ratio: float, noise: torch.Tensor):
        """Keep the (1 - ratio) * L patches with the lowest noise.

        Returns the kept tokens (N, L_keep, D), the binary mask (N, L; 1 = removed) in the original
        patch order, and ids_restore, the permutation that undoes the shuffle.
        """
        n, length, d = x.shape
        len_keep = int(length * (1 - mask_ratio))
        ids_shuffle = torch.argsort(noise, dim=1)
        ids_restore = torch.argsort(ids_shuffle, dim=1)
        ids_keep = ids_shuffle[:, :len_keep]
        x_kept = torch.gather(x, 1, ids_keep.unsqueeze(-1).expand(-1, -1, d))
        mask = torch.ones(n, length, device=x.device)
        mask[:, :len_keep] = 0
        mask = torch.gather(mask, 1, ids_restore)
        return x_kept, mask, ids_restore

    # ------------------------------------------------------------------ forward
    def forward_encoder(self, imgs: torch.Tensor, mask_ratio: float, noise: torch.Tensor):
        x = self.patch_embed(imgs) + self.pos_embed[:, 1:, :]
        if self.encoder_mask_tokens:
            _, mask, ids_restore = self.random_masking(x, mask_ratio, noise)
            tokens = self.encoder_mask_token + self.pos_embed[:, 1:, :]
            x = torch.where(mask.unsqueeze(-1).bool(), tokens.expand_as(x), x)
        else:
            x, mask, ids_restore = self.random_masking(x, mask_ratio, noise)
        cls = (self.cls_token + self.pos_embed[:, :1, :]).expand(x.shape[0], -1, -1)
        x = torch.cat([cls, x], dim=1)
        for blk in self.blocks:
            x = blk(x)
        return self.norm(x), mask, ids_restore

    def forward_decoder(self, latent: torch.Tensor, ids_restore: torch.Tensor) -> torch.Tensor:
        x = self.decoder_embed(latent)
        if not self.encoder_mask_tokens:
            # append one shared mask token per removed patch, then undo the shuffle; under autocast the cat
            # promotes the bf16 tokens to the fp32 mask token's dtype, as in the official models_mae.py
            n_mask = ids_restore.shape[1] + 1 - x.shape[1]
            tokens = torch.cat([x[:, 1:, :], self.mask_token.expand(x.shape[0], n_mask, -1)], dim=1)
            tokens = torch.gather(tokens, 1, ids_restore.unsqueeze(-1).expand(-1, -1, x.shape[2]))
            x = torch.cat([x[:, :1, :], tokens], dim=1)
        x = x + self.decoder_pos_embed
        for blk in self.decoder_blocks:
            x = blk(x)
        x = self.decoder_norm(x)
        return self.decoder_pred(x)[:, 1:, :]

    def patch_targets(self, imgs: torch.Tensor) -> torch.Tensor:
        """Per-patch regression targets: raw pixels, or (norm-pix) each patch normalized by its own
        mean/std."""
        target = self.patchify(imgs)
        if self.norm_pix_loss:
            mean = target.mean(dim=-1, keepdim=True)
            var = target.var(dim=-1, keepdim=True)
            target = (target - mean) / (var + 1.0e-6) ** 0.5
        return target

    def forward_loss(self, imgs: torch.Tensor, pred: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        per_patch = ((pred.float() - self.patch_targets(imgs).float()) ** 2).mean(dim=-1)
        if self.loss_on_all_patches:
            return per_patch.mean()
        return (per_patch * mask).sum() / mask.sum()

    def forward(self, imgs: torch.Tensor, mask_ratio: float = 0.75, noise: torch.Tensor | None = None):
        """Returns (loss, pred (N, L, p*p*C), mask (N, L; 1 = removed)).

        ``noise`` (N, L): optional per-patch noise deciding the mask; drawn from the model's masking
        strategy when absent.
        """
        if noise is None:
            noise = self.make_noise(imgs.shape[0], mask_ratio, imgs.device)
        latent, mask, ids_restore = self.forward_encoder(imgs, mask_ratio, noise)
        pred = self.forward_decoder(latent, ids_restore)
        return self.forward_loss(imgs, pred, mask), pred, mask

    # ------------------------------------------------------------------ export
    def encoder_state_dict(self) -> dict[str, torch.Tensor]:
        """The encoder alone, in official MAE / timm ``vit_*_patch*_224.mae`` key format."""
        return {k: v.detach().clone() for k, v in self.state_dict().items() if k.startswith(ENCODER_PREFIXES)}


# Named factories; ``arch`` holds each one's constructor arguments (read by ``encoder_arch`` without
# building).
# The paper's variants keep the default decoder (8 blocks, 512 wide, 16 heads); the small ones are for CPU
# work.
@MAE_MODELS.register(arch=dict(patch_size=16, embed_dim=768, depth=12, num_heads=12))
def mae_vit_base_patch16(**overrides: Any) -> MaskedAutoencoderViT:
    """MAE ViT-B/16 (Table 8 recipe, the released base model)."""
    return MaskedAutoencoderViT(**{**mae_vit_base_patch16.arch, **overrides})


@MAE_MODELS.register(arch=dict(patch_size=16, embed_dim=1024, depth=24, num_heads=16))
def mae_vit_large_patch16(**overrides: Any) -> MaskedAutoencoderViT:
    """MAE ViT-L/16."""
    return MaskedAutoencoderViT(**{**mae_vit_large_patch16.arch, **overrides})


@MAE_MODELS.register(arch=dict(patch_size=14, embed_dim=1280, depth=32, num_heads=16))
def mae_vit_huge_patch14(**overrides: Any) -> MaskedAutoencoderViT:
    """MAE ViT-H/14."""
    return MaskedAutoencoderViT(**{**mae_vit_huge_patch14.arch, **overrides})


@MAE_MODELS.register(
    arch=dict(
        patch_size=16,
        embed_dim=384,
        depth=12,
        num_heads=6,
        decoder_embed_dim=256,
        decoder_depth=4,
        decoder_num_heads=8,
    )
)
def mae_vit_small_patch16(**overrides: Any) -> MaskedAutoencoderViT:
    """ViT-S width with a 4-block decoder (CPU work)."""
    return MaskedAutoencoderViT(**{**mae_vit_small_patch16.arch, **overrides})


@MAE_MODELS.register(
    arch=dict(
        img_size=32,
        patch_size=4,
        embed_dim=192,
        depth=6,
        num_heads=3,
        decoder_embed_dim=128,
        decoder_depth=2,
        decoder_num_heads=4,
    )
)
def mae_vit_tiny_patch4(**overrides: Any) -> MaskedAutoencoderViT:
    """A tiny 32x32 model for CIFAR-sized images."""
    return MaskedAutoencoderViT(**{**mae_vit_tiny_patch4.arch, **overrides})


@MAE_MODELS.register(
    arch=dict(
        img_size=128,
        patch_size=8,
        embed_dim=192,
        depth=4,
        num_heads=3,
        decoder_embed_dim=128,
        decoder_depth=2,
        decoder_num_heads=4,
    )
)
def mae_vit_mini_patch8(**overrides: Any) -> MaskedAutoencoderViT:
    """The miniature tables' encoder (configs/mini): 128px images, a 16x16 grid, 4 blocks."""
    return MaskedAutoencoderViT(**{**mae_vit_mini_patch8.arch, **overrides})


ENCODER_KEYS = ("img_size", "patch_size", "in_chans", "embed_dim", "depth", "num_heads", "mlp_ratio")


def build_mae(name: str, **overrides: Any) -> MaskedAutoencoderViT:
    """Build a registered MAE model; keyword overrides change any constructor argument."""
    return MAE_MODELS.get(name)(**overrides)


def encoder_arch(name: str) -> dict[str, Any]:
    """The encoder's ViT arguments of a registered MAE model (without building it)."""
    MAE_MODELS.get(name)  # unknown names raise a ConfigError listing the registered ones
    defaults = {k: v.default for k, v in inspect.signature(MaskedAutoencoderViT).parameters.items()}
    full = {**defaults, **MAE_MODELS.get(name).arch}
    return {k: full[k] for k in ENCODER_KEYS}
