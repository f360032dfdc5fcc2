"""MAE model: official key format, timm parity of the encoder, masking, losses."""

from __future__ import annotations

import math
from functools import partial

import pytest
import timm
import torch
import torch.nn as nn
from timm.models.vision_transformer import VisionTransformer

from mae_transfer.errors import ConfigError
from mae_transfer.models import build_mae, mask_noise, sincos_2d
from mae_transfer.models.mae import MaskedAutoencoderViT

TINY = dict(
    img_size=32,
    patch_size=4,
    embed_dim=64,
    depth=2,
    num_heads=2,
    decoder_embed_dim=32,
    decoder_depth=1,
    decoder_num_heads=2,
)


def official_mae_keys(depth: int, decoder_depth: int) -> set[str]:
    """The key set of the official MAE pretrain/visualize checkpoints (facebookresearch/mae models_mae.py)."""
    block = [
        "norm1.weight",
        "norm1.bias",
        "attn.qkv.weight",
        "attn.qkv.bias",
        "attn.proj.weight",
        "attn.proj.bias",
        "norm2.weight",
        "norm2.bias",
        "mlp.fc1.weight",
        "mlp.fc1.bias",
        "mlp.fc2.weight",
        "mlp.fc2.bias",
    ]
    keys = {
        "cls_token",
        "pos_embed",
        "patch_embed.proj.weight",
        "patch_embed.proj.bias",
        "norm.weight",
        "norm.bias",
        "mask_token",
        "decoder_pos_embed",
        "decoder_embed.weight",
        "decoder_embed.bias",
        "decoder_norm.weight",
        "decoder_norm.bias",
        "decoder_pred.weight",
        "decoder_pred.bias",
    }
    keys |= {f"blocks.{i}.{k}" for i in range(depth) for k in block}
    keys |= {f"decoder_blocks.{i}.{k}" for i in range(decoder_depth) for k in block}
    return keys


def tiny_timm_vit(**kw) -> VisionTransformer:
    return VisionTransformer(
        img_size=32,
        patch_size=4,
        embed_dim=64,
        depth=2,
        num_heads=2,
        qkv_bias=True,
        norm_layer=partial(nn.LayerNorm, eps=1e-6),
        num_classes=0,
        global_pool="token",
        **kw,
    )


def test_full_model_has_official_keys():
    m = build_mae("mae_vit_base_patch16", depth=2, decoder_depth=2)
    assert set(m.state_dict()) == official_mae_keys(2, 2)
    # official shapes: pos embeds include the cls slot, decoder predicts p*p*3 pixels
    sd = m.state_dict()
    assert sd["pos_embed"].shape == (1, 197, 768) and sd["decoder_pos_embed"].shape == (1, 197, 512)
    assert sd["decoder_pred.weight"].shape == (16 * 16 * 3, 512)
    # a state dict in that exact format loads strictly
    m2 = build_mae("mae_vit_base_patch16", depth=2, decoder_depth=2)
    m2.load_state_dict({k: torch.randn_like(v) for k, v in sd.items()}, strict=True)


def test_encoder_state_dict_matches_timm_mae_architecture():
    """Keys and shapes equal timm's ``vit_base_patch16_224.mae`` (built without downloading weights)."""
    ref = timm.create_model("vit_base_patch16_224.mae", pretrained=False)
    ours = build_mae("mae_vit_base_patch16").encoder_state_dict()
    ref_sd = ref.state_dict()
    assert set(ours) == set(ref_sd)
    assert all(ours[k].shape == ref_sd[k].shape for k in ours)


def test_encoder_equals_timm_vit_with_same_weights():
    torch.manual_seed(0)
    mae = MaskedAutoencoderViT(**TINY).eval()
    ref = tiny_timm_vit().eval()
    ref.load_state_dict(mae.encoder_state_dict(), strict=True)
    x = torch.randn(3, 3, 32, 32)
    noise = torch.arange(64, dtype=torch.float32).expand(3, -1)  # keep every patch, in order
    latent, mask, _ = mae.forward_encoder(x, mask_ratio=0.0, noise=noise)
    assert mask.sum() == 0
    torch.testing.assert_close(latent, ref.forward_features(x), atol=1e-5, rtol=0)


def test_sincos_layout_is_column_then_row():
    dim, g = 16, 5
    emb = sincos_2d(dim, g, cls_token=True)[0]
    assert emb.shape == (1 + g * g, dim) and torch.all(emb[0] == 0)
    omega = 1.0 / 10000 ** (torch.arange(dim // 4, dtype=torch.float64) / (dim / 4))
    r, c = 3, 1
    row = emb[1 + r * g + c].double()
    torch.testing.assert_close(row[: dim // 4], torch.sin(c * omega), atol=1e-6, rtol=0)
    torch.testing.assert_close(row[dim // 2 : 3 * dim // 4], torch.sin(r * omega), atol=1e-6, rtol=0)


def test_random_masking_keeps_lowest_noise_and_restores_order():
    x = torch.arange(2 * 8, dtype=torch.float32).view(2, 8, 1)
    noise = torch.tensor([[0.9, 0.1, 0.5, 0.3, 0.8, 0.2, 0.7, 0.6], [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7]])
    kept, mask, ids_restore = MaskedAutoencoderViT.random_masking(x, 0.75, noise)
    assert kept.squeeze(-1).tolist() == [[1, 5], [8, 9]]
    assert mask.tolist()[0] == [1, 0, 1, 1, 1, 0, 1, 1]
    shuffled = torch.gather(x, 1, torch.argsort(noise, 1).unsqueeze(-1))
    torch.testing.assert_close(torch.gather(shuffled, 1, ids_restore.unsqueeze(-1)), x)


@pytest.mark.parametrize("strategy", ["random", "block", "grid"])
def test_mask_strategies_remove_exact_ratio(strategy):
    g = torch.Generator().manual_seed(0)
    noise = mask_noise(strategy, 4, 14, 14, 0.75, generator=g)
    m = MaskedAutoencoderViT(
        img_size=56,
        patch_size=4,
        embed_dim=32,
        depth=1,
        num_heads=2,
        decoder_embed_dim=16,
        decoder_depth=1,
        decoder_num_heads=2,
        mask_strategy=strategy,
    )
    _, _, mask = m(torch.randn(4, 3, 56, 56), noise=noise)
    assert torch.all(mask.sum(1) == 196 - int(196 * 0.25))
    if strategy == "grid":  # exactly one kept patch per 2x2 cell
        kept = (1 - mask).view(4, 7, 2, 7, 2).sum(dim=(2, 4))
        assert torch.all(kept == 1)
    if (
        strategy == "block"
    ):  # block masks are spatially clustered: masked patches mostly have masked neighbours
        mm = mask.view(4, 14, 14)
        same = (mm[:, 1:, :] == mm[:, :-1, :]).float().mean()
        assert same > 0.7


def test_unknown_strategy_and_model_name_errors():
    with pytest.raises(ValueError, match="unknown masking strategy 'zigzag'"):
        mask_noise("zigzag", 1, 4, 4, 0.75)
    with pytest.raises(
        ConfigError, match="unknown MAE model 'mae_vit_gigantic'.*registered: mae_vit_base_patch16"
    ):
        build_mae("mae_vit_gigantic")


def test_noise_makes_forward_reproducible_and_loss_only_on_masked_patches():
    torch.manual_seed(0)
    m = MaskedAutoencoderViT(**TINY, norm_pix_loss=True)
    x = torch.randn(2, 3, 32, 32)
    noise = torch.rand(2, 64)
    l1, pred, mask = m(x, noise=noise)
    l2, _, _ = m(x, noise=noise)
    assert l1.item() == l2.item()
    # the loss only sees masked patches: changing the target on visible patches changes nothing
    target = m.patch_targets(x)
    manual = (((pred - target) ** 2).mean(-1) * mask).sum() / mask.sum()
    torch.testing.assert_close(l1, manual)
    x_vis_changed = m.unpatchify(torch.where(mask.bool().unsqueeze(-1), m.patchify(x), m.patchify(x) * 3 + 1))
    torch.testing.assert_close(m.forward_loss(x_vis_changed, pred, mask), l1)
    # norm-pix targets: every patch has zero mean and unit variance
    assert target.mean(-1).abs().max() < 1e-5 and (target.var(-1) - 1).abs().max() < 1e-3
    m.loss_on_all_patches = True
    assert not math.isclose(m.forward_loss(x, pred, mask).item(), l1.item())


def test_mask_tokens_in_encoder_variant():
    torch.manual_seed(0)
    m = MaskedAutoencoderViT(**TINY, encoder_mask_tokens=True)
    assert "encoder_mask_token" in m.state_dict()
    x = torch.randn(2, 3, 32, 32)
    latent, mask, _ = m.forward_encoder(x, 0.75, torch.rand(2, 64))
    assert latent.shape == (2, 65, 64) and mask.sum() == 2 * 48
    loss, pred, _ = m(x)
    assert pred.shape == (2, 64, 48) and torch.isfinite(loss)
    loss.backward()
    assert m.encoder_mask_token.grad is not None and m.mask_token.grad is None


def test_patchify_roundtrip_and_pixel_order():
    m = MaskedAutoencoderViT(**TINY)
    x = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(m.unpatchify(m.patchify(x)), x)
    # official order within a patch: (row, col, channel)
    p = m.patchify(x)
    assert p[0, 0, :3].tolist() == x[0, :, 0, 0].tolist() and p[0, 0, 3:6].tolist() == x[0, :, 0, 1].tolist()


def test_bf16_autocast_decoder_takes_the_fp32_mask_token_as_official():
    """Under bf16 autocast the mask token joins the decoder input in fp32 (the cat promotes, as in the
    official models_mae.py): loss, prediction and every gradient equal a reference decoder written that
    way, bit for bit. Casting the token to bf16 first changes them."""
    torch.manual_seed(0)
    model = build_mae("mae_vit_base_patch16", **TINY)
    imgs = torch.randn(2, 3, 32, 32)
    noise = torch.rand(2, 64)

    def reference_decoder(latent, ids_restore):
        x = model.decoder_embed(latent)
        mask_tokens = model.mask_token.repeat(x.shape[0], ids_restore.shape[1] + 1 - x.shape[1], 1)
        x_ = torch.cat([x[:, 1:, :], mask_tokens], dim=1)
        x_ = torch.gather(x_, 1, ids_restore.unsqueeze(-1).repeat(1, 1, x.shape[2]))
        x = torch.cat([x[:, :1, :], x_], dim=1) + model.decoder_pos_embed
        for blk in model.decoder_blocks:
            x = blk(x)
        return model.decoder_pred(model.decoder_norm(x))[:, 1:, :]

    def run(decoder):
        model.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            latent, mask, ids_restore = model.forward_encoder(imgs, 0.75, noise)
            pred = decoder(latent, ids_restore)
            loss = model.forward_loss(imgs, pred, mask)
        loss.backward()
        return (
            loss.detach(),
            pred.detach(),
            {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None},
        )

    loss, pred, grads = run(model.forward_decoder)
    ref_loss, ref_pred, ref_grads = run(reference_decoder)
    assert torch.equal(loss, ref_loss) and torch.equal(pred, ref_pred)
    assert grads.keys() == ref_grads.keys() and all(torch.equal(grads[n], ref_grads[n]) for n in grads)


def test_fast_kernels_equal_the_official_kernels_in_fp32_to_rounding():
    """kernels=fast vs kernels=reference (the official code's SDPA attention and for-loop AdamW) from the same
    weights and masks: loss, prediction and every gradient agree to float reassociation (the fast path's CPU
    attention is explicit matmuls); fused AdamW fed the same gradients gives the loop's weights to 1e-6."""
    from mae_transfer.kernels import adamw, set_attention_kernel

    torch.manual_seed(0)
    state = build_mae("mae_vit_base_patch16", **TINY).state_dict()
    imgs, noise = torch.randn(4, 3, 32, 32), torch.rand(4, 64)
    runs, models = {}, {}
    for kernels in ("reference", "fast"):
        model = models[kernels] = build_mae("mae_vit_base_patch16", **TINY)
        model.load_state_dict(state)
        set_attention_kernel(model, imgs.device, kernels)
        loss, pred, _ = model(imgs, 0.75, noise)
        loss.backward()
        runs[kernels] = (
            loss.detach(),
            pred.detach(),
            {n: p.grad for n, p in model.named_parameters() if p.grad is not None},
        )
    (loss, pred, grads), (ref_loss, ref_pred, ref_grads) = runs["fast"], runs["reference"]
    assert not torch.equal(pred, ref_pred)  # different kernels really ran
    torch.testing.assert_close(loss, ref_loss, rtol=1e-5, atol=0)
    torch.testing.assert_close(pred, ref_pred, rtol=1e-5, atol=1e-6)
    assert grads.keys() == ref_grads.keys()
    for n in grads:
        torch.testing.assert_close(grads[n], ref_grads[n], rtol=1e-4, atol=1e-6, msg=n)

    opts = {
        k: adamw(models[k].parameters(), lr=1e-3, betas=(0.9, 0.95), kernels=k, weight_decay=0.05)
        for k in models
    }
    for _ in range(3):
        for k, model in models.items():
            for n, p in model.named_parameters():
                if n in ref_grads:
                    p.grad = ref_grads[n].clone()
            opts[k].step()
    for (n, p), q in zip(models["fast"].named_parameters(), models["reference"].parameters()):
        torch.testing.assert_close(p, q, rtol=0, atol=1e-6, msg=n)


def test_auto_precision_is_bf16_exactly_on_cpus_with_native_bf16():
    from mae_transfer.utils import cpu_has_native_bf16, resolve_precision

    cpu = torch.device("cpu")
    assert resolve_precision("auto", cpu) == (torch.bfloat16 if cpu_has_native_bf16() else None)
    assert resolve_precision("fp32", cpu) is None and resolve_precision("bf16", cpu) is torch.bfloat16
    with pytest.raises(ConfigError, match="fp16 needs a CUDA device"):
        resolve_precision("fp16", cpu)
