"""The backbone contract: reference parity (timm ViT, timm BEiT, detectron2 ViTDet), shapes, conversions, lr
decay."""

from __future__ import annotations

from functools import partial

import pytest
import timm
import torch
import torch.nn as nn
import torch.nn.functional as F
from timm.models.vision_transformer import VisionTransformer

from mae_transfer.backbone import build_backbone, default_taps, registered_backbones
from mae_transfer.checkpoints import read_vit_checkpoint
from mae_transfer.errors import CheckpointError, ConfigError
from mae_transfer.models.mae import MaskedAutoencoderViT
from mae_transfer.optim import param_groups

SMALL = dict(embed_dim=64, depth=4, num_heads=2)


def randomize(module: nn.Module, seed: int = 0) -> nn.Module:
    """Non-trivial weights everywhere (norm scales, biases, rel-pos tables, layer scales included)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(
                torch.randn(p.shape, generator=g) * 0.1 + (1.0 if p.ndim == 1 and p.shape[0] > 8 else 0.0)
            )
    return module


def close_fp32(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Equal up to float32 round-off of differently-ordered attention math (fused SDPA vs explicit
    softmax)."""
    return (a - b).abs().max().item() <= 1e-5 * max(1.0, b.abs().max().item())


def save(tmp_path, obj, name="ckpt.pth"):
    path = tmp_path / name
    torch.save(obj, path)
    return str(path)


# ----------------------------------------------------------------------------- reference parity
@pytest.mark.parametrize("use_cls", [False, True])
def test_blocks_equal_timm_vit_when_windows_relpos_pyramid_off(tmp_path, use_cls):
    ref = VisionTransformer(
        img_size=64,
        patch_size=16,
        embed_dim=64,
        depth=4,
        num_heads=2,
        qkv_bias=True,
        norm_layer=partial(nn.LayerNorm, eps=1e-6),
        num_classes=0,
        class_token=use_cls,
        global_pool="token" if use_cls else "avg",
    )
    randomize(ref).eval()
    bb = build_backbone(
        "mae_vit_b", **SMALL, img_size=64, window_size=0, rel_pos=None, use_cls_token=use_cls
    ).eval()
    report = bb.load_pretrained(save(tmp_path, {"model": ref.state_dict()}))
    assert not report.resized and all(k.startswith("pyramid.") for k in report.new)
    x = torch.randn(2, 3, 64, 64)
    ours = bb.vit.forward_taps(x, [0, 1, 2, 3])
    theirs = ref.forward_intermediates(
        x, indices=[0, 1, 2, 3], norm=False, output_fmt="NCHW", intermediates_only=True
    )
    for a, b in zip(ours, theirs):
        assert (a - b).abs().max().item() <= 1e-5


def test_beit_checkpoint_equals_timm_beit(tmp_path):
    """q/v bias merge, gamma -> LayerScale, per-block rel-pos tables with cls rows, no abs pos embed."""
    ref = timm.create_model(
        "beit_base_patch16_224",
        pretrained=False,
        img_size=64,
        embed_dim=64,
        depth=3,
        num_heads=2,
        num_classes=10,
    )
    randomize(ref, seed=1).eval()
    sd = ref.state_dict()
    assert any(k.endswith("attn.q_bias") for k in sd) and any(k.endswith("gamma_1") for k in sd)
    bb = build_backbone(
        "mae_vit_b",
        embed_dim=64,
        depth=3,
        num_heads=2,
        taps=(0, 1, 2, 2),
        img_size=64,
        window_size=0,
        rel_pos="per_block",
        init_values=0.1,
        use_cls_token=True,
    ).eval()
    report = bb.load_pretrained(save(tmp_path, {"model": sd}))
    assert report.source == "beit"
    assert {"head.weight", "cls_token"} - set(report.ignored) == {"cls_token"}  # cls kept, head ignored
    x = torch.randn(2, 3, 64, 64)
    ours = bb.vit.forward_taps(x, [0, 1, 2])
    theirs = ref.forward_intermediates(
        x, indices=[0, 1, 2], norm=False, output_fmt="NCHW", intermediates_only=True
    )
    for a, b in zip(ours, theirs):
        assert (a - b).abs().max().item() <= 1e-5
    # the backbone's taps repeat block 2: both level 3 and level 4 come from it
    assert torch.equal(bb.vit.forward_taps(x, bb.taps)[3], ours[2])


def test_shallow_vit_shares_blocks_between_groups():
    """Fewer than 4 blocks: groups share blocks, and all four levels still come out."""
    assert default_taps(2) == (0, 0, 0, 1) and default_taps(12) == (2, 5, 8, 11)
    bb = build_backbone("mae_vit_tiny_p4", depth=2, embed_dim=64, num_heads=2, img_size=32).eval()
    feats = bb(torch.randn(1, 3, 32, 32))
    assert [tuple(f.shape[-2:]) for f in feats.values()] == [(8, 8), (4, 4), (2, 2), (1, 1)]
    with pytest.raises(ConfigError, match="taps"):
        build_backbone("mae_vit_tiny_p4", depth=2, taps=(0, 1, 2, 3))


def _d2_vit(img, window, window_blocks, dim=64, depth=4, heads=2):
    from detectron2.modeling import ViT

    return ViT(
        img_size=img,
        patch_size=16,
        embed_dim=dim,
        depth=depth,
        num_heads=heads,
        window_size=window,
        window_block_indexes=window_blocks,
        use_rel_pos=True,
        rel_pos_zero_init=True,
        pretrain_img_size=64,
        norm_layer=partial(nn.LayerNorm, eps=1e-6),
        out_feature="last_feat",
    )


def test_vitdet_mode_equals_detectron2_vit_and_simple_pyramid(tmp_path):
    """Window 4 (grid 10 -> padded windows), global blocks 1 and 3, zero-init rel-pos: same as detectron2."""
    from detectron2.modeling import SimpleFeaturePyramid
    from detectron2.modeling.backbone.fpn import LastLevelMaxPool

    d2 = _d2_vit(160, 4, [0, 2])
    sfp = SimpleFeaturePyramid(
        d2,
        in_feature="last_feat",
        out_channels=32,
        scale_factors=(4.0, 2.0, 1.0, 0.5),
        top_block=LastLevelMaxPool(),
        norm="LN",
        square_pad=160,
    )
    randomize(sfp, seed=2)
    for blk in d2.blocks:  # rel-pos starts at zero in both designs (decomposed in detectron2, tables here)
        blk.attn.rel_pos_h.data.zero_()
        blk.attn.rel_pos_w.data.zero_()
    sfp.eval()
    bb = build_backbone(
        "mae_vit_b",
        **SMALL,
        img_size=160,
        window_size=4,
        global_blocks=(1, 3),
        pyramid="simple",
        pyramid_norm="LN",
    ).eval()
    report = bb.load_pretrained(save(tmp_path, {"model": d2.state_dict()}))
    assert (
        any("rel_pos_h" in k for k in report.ignored)
        and "vit.pos_embed (1, 17, 64)->(1, 100, 64)" in report.resized
    )
    # pyramid scale ops: detectron2's simfp stages hold [ConvT, LN, GELU, ConvT | conv 1x1, conv 3x3]
    ours_sd = bb.state_dict()
    mapping = {
        "pyramid.levels.0.0": "simfp_2.0",
        "pyramid.levels.0.1": "simfp_2.1",
        "pyramid.levels.0.3": "simfp_2.3",
        "pyramid.levels.1": "simfp_3.0",
    }
    d2_sd = sfp.state_dict()
    for ours, theirs in mapping.items():
        for p in ("weight", "bias"):
            ours_sd[f"{ours}.{p}"] = d2_sd[f"{theirs}.{p}"]
    bb.load_state_dict(ours_sd)
    x = torch.randn(1, 3, 160, 160)
    with torch.no_grad():
        last = d2(x)["last_feat"]
        ref_levels = [sfp.simfp_2[:4](last), sfp.simfp_3[:1](last), last, sfp.simfp_5[:1](last)]
        feats = bb(x)
    assert close_fp32(bb.vit.forward_taps(x, [3])[0], last)
    for name, ref in zip(("s4", "s8", "s16", "s32"), ref_levels):
        assert feats[name].shape == ref.shape
        assert close_fp32(feats[name], ref)


def test_pyramid_upsampling_matmul_equals_transposed_convolution():
    """The CPU path of ConvTranspose2x2 (matmul + pixel shuffle) is torch's transposed convolution: outputs
    and every gradient, batch > 1 and a non-square map; under bf16 autocast the output stays bf16."""
    from mae_transfer.pyramid import ConvTranspose2x2

    up = randomize(ConvTranspose2x2(12, 8), seed=3)
    x = torch.randn(2, 12, 5, 7, requires_grad=True)
    grad = torch.randn(2, 8, 10, 14)
    y = up(x)
    y.backward(grad)
    ours = (y.detach(), x.grad, up.weight.grad, up.bias.grad)
    x.grad = up.weight.grad = up.bias.grad = None
    ref = F.conv_transpose2d(x, up.weight, up.bias, stride=2)
    ref.backward(grad)
    for a, b in zip(ours, (ref.detach(), x.grad, up.weight.grad, up.bias.grad)):
        assert a.shape == b.shape and close_fp32(a, b)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert up(x).dtype == torch.bfloat16


@pytest.mark.parametrize("grid", [(4, 5), (3, 5), (2, 2), (5, 7)])
def test_relative_position_bias_is_the_table_at_each_offset(grid):
    """bias[head, (y1, x1), (y2, x2)] = table[(y1 - y2 + th - 1) * (2tw - 1) + x1 - x2 + tw - 1, head] for the
    table's own grid, smaller ones (cropped offsets) and a larger one (the table resampled bicubically to
    the grid's offsets), in fp32 and bf16; the table's gradient sums its pairs' gradients."""
    from mae_transfer.models.vit import RelativePositionBias

    rpb = randomize(RelativePositionBias((4, 5), num_heads=3))
    table = rpb.relative_position_bias_table
    h, w = grid
    th, tw = max(h, 4), max(w, 5)
    offsets = table.t().reshape(1, 3, 7, 9)
    if (th, tw) != (4, 5):
        offsets = F.interpolate(offsets, size=(2 * th - 1, 2 * tw - 1), mode="bicubic", align_corners=False)
    offsets = offsets[0].flatten(1).t()  # ((2th - 1) * (2tw - 1), heads)
    ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    ys, xs = ys.reshape(-1), xs.reshape(-1)
    rows = (ys[:, None] - ys[None, :] + th - 1) * (2 * tw - 1) + xs[:, None] - xs[None, :] + tw - 1
    ref = offsets[rows].permute(2, 0, 1)  # (heads, N, N) by advanced indexing
    grad = torch.randn(ref.shape)
    (ref_grad,) = torch.autograd.grad(ref, table, grad)
    for dtype in (torch.float32, torch.bfloat16):
        bias = rpb(grid, dtype)
        assert bias.dtype == dtype and torch.equal(bias, ref.to(dtype))
        (g,) = torch.autograd.grad(bias, table, grad.to(dtype))
        torch.testing.assert_close(g, ref_grad, atol=0.05 if dtype == torch.bfloat16 else 1e-6, rtol=0.01)


def test_only_plain_1x1_convs_fold_and_only_into_upsampling_levels():
    """``fold`` takes a neck's 1x1 convs for the levels that end in a transposed conv (patch 16: s4 and s8;
    patch 8, where s8 is the ViT's own grid: s4 only) and refuses anything else with a ConfigError."""
    bb = build_backbone("mae_vit_b", img_size=64, **SMALL)
    assert bb.foldable() == ["s4", "s8"]
    assert build_backbone("mae_vit_b", img_size=64, patch_size=8, **SMALL).foldable() == ["s4"]
    with pytest.raises(ConfigError, match="'s16' cannot take"):
        bb.fold({"s16": nn.Conv2d(64, 8, 1)})
    with pytest.raises(ConfigError, match="plain 1x1"):
        bb.fold({"s4": nn.Conv2d(64, 8, 3, padding=1)})
    bb.fold({"s4": nn.Conv2d(64, 8, 1)})
    assert bb(torch.randn(1, 3, 64, 64))["s4"].shape == (1, 8, 16, 16) and bb.out_channels["s4"] == 8


@pytest.mark.parametrize("rel_pos", ["shared", "per_block"])
def test_attention_bias_in_the_autocast_dtype(rel_pos):
    """Under bf16 autocast every block's attention gets its relative-position bias in bf16 (the fp32
    residual stream must not promote the scores to fp32: 1.5x the bf16 ViT-B step at 1024 on CPU), the
    tables keep fp32 gradients; without autocast the bias is the model's dtype."""
    from mae_transfer.models.vit import TransferViT

    vit = randomize(
        TransferViT(img_size=64, patch_size=16, window_size=2, global_blocks=(1, 3), rel_pos=rel_pos, **SMALL)
    )
    seen: list[torch.dtype] = []
    for blk in vit.blocks:
        blk.attn.register_forward_pre_hook(
            lambda m, args, kwargs: seen.append(kwargs["attn_mask"].dtype), with_kwargs=True
        )
    x = torch.randn(1, 3, 64, 64)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = vit.forward_taps(x, [3])[0]
    out.float().square().sum().backward()
    assert seen == [torch.bfloat16] * 4
    tables = [p for n, p in vit.named_parameters() if "relative_position_bias_table" in n]
    assert tables and all(t.grad.dtype == torch.float32 and t.grad.abs().sum() > 0 for t in tables)
    seen.clear()
    vit.forward_taps(x, [3])
    assert seen == [torch.float32] * 4


@pytest.mark.parametrize(
    "name,size,taps", [("mae_vit_b", 1024, (2, 5, 8, 11)), ("mae_vit_b", 512, (3, 5, 7, 11))]
)
def test_full_size_strides_and_channels(name, size, taps):
    bb = build_backbone(name, img_size=size, taps=taps).eval()
    assert bb.vit.global_blocks == set(taps) and bb.vit.window_size == 14
    with torch.no_grad():
        feats = bb(torch.randn(1, 3, size, size))
    for level, stride in bb.out_strides.items():
        assert feats[level].shape == (1, 768, size // stride, size // stride)
        assert bb.out_channels[level] == 768


def test_vit_l_and_h_layouts_without_running():
    with torch.device("meta"):  # layout only: no memory, no compute
        large = build_backbone("mae_vit_l")
        huge = build_backbone("mae_vit_h", img_size=1024)
    assert large.taps == (5, 11, 17, 23) == default_taps(24) and large.vit.global_blocks == {5, 11, 17, 23}
    assert huge.taps == (7, 15, 23, 31) and huge.vit.window_size == 14 and huge.vit.grid == (64, 64)
    assert huge.out_strides == {"s4": 4, "s8": 8, "s16": 16, "s32": 32} and huge.out_channels["s4"] == 1280


def test_vit_h14_checkpoint_patch_kernel_resampled(tmp_path):
    """Official ViT-H is /14: its patch kernel is resampled to the backbone's 16 and its 16x16 grid
    resized."""
    src = VisionTransformer(img_size=224, patch_size=14, embed_dim=64, depth=4, num_heads=2, num_classes=0)
    report = _small_backbone().load_pretrained(save(tmp_path, {"model": src.state_dict()}))
    assert "vit.patch_embed.proj.weight (64, 3, 14, 14)->(64, 3, 16, 16)" in report.resized
    assert "vit.pos_embed (1, 257, 64)->(1, 64, 64)" in report.resized


def test_padding_and_dynamic_grid():
    bb = build_backbone("mae_vit_b", **SMALL, img_size=128, window_size=4).eval()
    with torch.no_grad():
        out = bb(torch.randn(1, 3, 100, 70))  # not multiples of 16: padded to 112 x 80
    assert out["s16"].shape[-2:] == (7, 5) and out["s4"].shape[-2:] == (28, 20)


# ----------------------------------------------------------------------------- initializations
def _vit_sd(seed=0, **kw):
    return randomize(
        VisionTransformer(
            img_size=224,
            patch_size=16,
            embed_dim=64,
            depth=4,
            num_heads=2,
            qkv_bias=True,
            norm_layer=partial(nn.LayerNorm, eps=1e-6),
            num_classes=5,
            **kw,
        ),
        seed,
    ).state_dict()


def _small_backbone(**kw):
    return build_backbone("mae_vit_b", **SMALL, img_size=128, window_size=4, global_blocks=(1, 3), **kw)


def test_mae_official_pretrain_checkpoint(tmp_path):
    mae = randomize(
        MaskedAutoencoderViT(
            img_size=224,
            patch_size=16,
            embed_dim=64,
            depth=4,
            num_heads=2,
            decoder_embed_dim=32,
            decoder_depth=1,
            decoder_num_heads=2,
        )
    )
    bb = _small_backbone()
    report = bb.load_pretrained(save(tmp_path, {"model": mae.state_dict()}))
    assert report.source == "mae"
    ignored = " ".join(report.ignored)
    for key in (
        "decoder_embed.weight",
        "mask_token",
        "decoder_pred.bias",
        "decoder_blocks.0.attn.qkv.weight",
        "norm.weight",
        "cls_token",
    ):
        assert key in ignored
    assert "vit.pos_embed (1, 197, 64)->(1, 64, 64)" in report.resized
    new = set(report.new)
    assert {
        "vit.rel_pos_global.relative_position_bias_table",
        "vit.rel_pos_window.relative_position_bias_table",
    } <= new
    assert torch.equal(bb.vit.blocks[3].mlp.fc2.weight, mae.blocks[3].mlp.fc2.weight)
    assert bb.vit.rel_pos_global.relative_position_bias_table.abs().sum() == 0  # zero-initialized
    assert "zero-initialized" in report.format()


def test_supervised_deit_checkpoint(tmp_path):
    sd = _vit_sd()
    bb = _small_backbone()
    report = bb.load_pretrained(save(tmp_path, {"model": sd}))
    assert report.source == "vit" and {"head.weight", "head.bias"} <= set(report.ignored)
    assert torch.equal(bb.vit.patch_embed.proj.weight, sd["patch_embed.proj.weight"])


def test_distilled_deit_checkpoint_drops_the_distillation_position(tmp_path):
    deit = randomize(timm.create_model("deit_base_distilled_patch16_224", pretrained=False, **SMALL))
    sd = deit.state_dict()
    bb = build_backbone("mae_vit_b", **SMALL, img_size=224, window_size=14, global_blocks=(3,))
    report = bb.load_pretrained(save(tmp_path, {"model": sd}))
    # same grid: the patch positions as they were
    assert torch.equal(bb.vit.pos_embed, sd["pos_embed"][:, 2:])
    assert {"dist_token", "head_dist.weight"} <= set(report.ignored) and "distillation" in report.format()


def test_mocov3_checkpoint(tmp_path):
    sd = _vit_sd(seed=3)
    ckpt = {f"module.base_encoder.{k}": v for k, v in sd.items() if not k.startswith("head")}
    ckpt.update(
        {
            "module.base_encoder.head.0.weight": torch.randn(32, 64),
            "module.base_encoder.head.0.bias": torch.randn(32),
        }
    )
    ckpt.update({f"module.momentum_encoder.{k}": v + 1 for k, v in sd.items()})
    ckpt.update(
        {"module.predictor.0.weight": torch.randn(32, 32), "module.predictor.1.running_mean": torch.randn(32)}
    )
    bb = _small_backbone()
    report = bb.load_pretrained(save(tmp_path, {"state_dict": ckpt, "epoch": 300, "arch": "vit_base"}))
    assert report.source == "mocov3"
    ignored = set(report.ignored)
    assert (
        "module.predictor.0.weight" in ignored and "module.momentum_encoder.blocks.0.norm1.weight" in ignored
    )
    assert "head.0.weight" in ignored
    assert torch.equal(bb.vit.blocks[1].attn.qkv.weight, sd["blocks.1.attn.qkv.weight"])


def test_beit_shared_table_resized_into_both_tables(tmp_path):
    ref = timm.create_model(
        "beit_base_patch16_224",
        pretrained=False,
        embed_dim=64,
        depth=4,
        num_heads=2,
        use_shared_rel_pos_bias=True,
        use_rel_pos_bias=False,
    )
    sd = randomize(ref, seed=4).state_dict()
    assert "rel_pos_bias.relative_position_bias_table" in sd
    table = sd["rel_pos_bias.relative_position_bias_table"]
    bb = _small_backbone(init_values=0.1)  # 128px: global grid 8x8, windows 4x4
    report = bb.load_pretrained(save(tmp_path, {"model": sd}))
    assert any(
        r.startswith("vit.rel_pos_global.relative_position_bias_table (732, 2)->(225, 2)")
        for r in report.resized
    )
    assert any(
        r.startswith("vit.rel_pos_window.relative_position_bias_table (732, 2)->(49, 2)")
        for r in report.resized
    )
    assert bb.vit.rel_pos_global.relative_position_bias_table.abs().sum() > 0
    assert torch.equal(bb.vit.blocks[0].ls1.gamma, sd["blocks.0.gamma_1"])
    assert "pos_embed starts at zero" in report.format() and bb.vit.pos_embed.abs().sum() == 0
    # same grid -> the table is used as is (cls rows dropped)
    same = build_backbone(
        "mae_vit_b", **SMALL, img_size=224, window_size=14, global_blocks=(3,), init_values=0.1
    )
    same.load_pretrained(save(tmp_path, {"model": sd}, "b.pth"))
    torch.testing.assert_close(same.vit.rel_pos_window.relative_position_bias_table, table[:-3])


def test_beit_per_block_tables_need_per_block_mode(tmp_path):
    ref = timm.create_model("beit_base_patch16_224", pretrained=False, embed_dim=64, depth=4, num_heads=2)
    path = save(tmp_path, {"model": ref.state_dict()})
    with pytest.raises(CheckpointError, match="per-block relative position tables.*rel_pos='per_block'"):
        _small_backbone(init_values=0.1).load_pretrained(path)
    with pytest.raises(CheckpointError, match="LayerScale.*init_values"):
        _small_backbone(rel_pos="per_block").load_pretrained(path)
    report = _small_backbone(rel_pos="per_block", init_values=0.1).load_pretrained(path)
    assert len([r for r in report.resized if "rel_pos.relative_position_bias_table" in r]) == 4


def test_own_pretraining_checkpoint_and_export(tmp_path):
    mae = MaskedAutoencoderViT(
        img_size=32,
        patch_size=4,
        embed_dim=64,
        depth=4,
        num_heads=2,
        decoder_embed_dim=32,
        decoder_depth=1,
        decoder_num_heads=2,
    )
    full = save(
        tmp_path,
        {"model": mae.state_dict(), "optimizer": {}, "epoch": 3, "config": {"model": "x"}},
        "full.pth",
    )
    enc = save(tmp_path, {"model": mae.encoder_state_dict(), "arch": {"depth": 4}}, "enc.pth")
    for path in (full, enc):
        bb = build_backbone("mae_vit_tiny_p4", **SMALL, img_size=64, window_size=8)
        report = bb.load_pretrained(path)
        assert "vit.pos_embed (1, 65, 64)->(1, 256, 64)" in report.resized
        assert torch.equal(bb.vit.blocks[0].attn.qkv.weight, mae.blocks[0].attn.qkv.weight)


def test_wrong_keys_and_shapes_fail_clearly(tmp_path):
    sd = _vit_sd()
    del sd["blocks.2.mlp.fc1.weight"]
    with pytest.raises(CheckpointError, match=r"lacks 1 key\(s\).*vit.blocks.\*.mlp.fc1.weight"):
        _small_backbone().load_pretrained(save(tmp_path, {"model": sd}))
    wide = VisionTransformer(img_size=224, patch_size=16, embed_dim=96, depth=4, num_heads=2, num_classes=0)
    with pytest.raises(CheckpointError, match=r"patch_embed.proj.weight has shape \(96, 3, 16, 16\)"):
        _small_backbone().load_pretrained(save(tmp_path, wide.state_dict(), "wide.pth"))
    with pytest.raises(CheckpointError, match="no 'patch_embed.proj.weight'"):
        _small_backbone().load_pretrained(save(tmp_path, {"model": {"fc.weight": torch.ones(2, 2)}}, "x.pth"))
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="unreadable or truncated"):
        _small_backbone().load_pretrained(str(tmp_path / "junk.pth"))


def test_pickled_code_is_refused(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    path = save(tmp_path, {"model": {"x": torch.ones(1)}, "payload": Evil()})
    with pytest.raises(CheckpointError, match=r"was refused: it asks to import print\b"):
        read_vit_checkpoint(path)


# ----------------------------------------------------------------------------- contract details
def test_layer_decay_and_weight_decay_groups():
    bb = _small_backbone()
    head = nn.Linear(64, 3)
    model = nn.ModuleDict({"backbone": bb, "head": head})
    groups = param_groups(model, lr=1.0, weight_decay=0.1, layer_decay=0.5, backbone=bb)
    by_name = {n: g for g in groups for n in g["param_names"]}
    assert by_name["backbone.vit.patch_embed.proj.weight"]["lr_scale"] == 0.5**5
    assert by_name["backbone.vit.blocks.0.attn.qkv.weight"]["lr_scale"] == 0.5**4
    assert by_name["backbone.vit.blocks.3.mlp.fc1.weight"]["lr_scale"] == 0.5
    assert by_name["backbone.pyramid.levels.0.0.weight"]["lr_scale"] == 1.0
    assert by_name["head.weight"]["lr_scale"] == 1.0 and by_name["head.weight"]["weight_decay"] == 0.1
    for name in (
        "backbone.vit.pos_embed",
        "backbone.vit.rel_pos_global.relative_position_bias_table",
        "backbone.vit.blocks.0.norm1.weight",
        "backbone.vit.blocks.0.attn.qkv.bias",
        "head.bias",
    ):
        assert by_name[name]["weight_decay"] == 0.0, name
    assert by_name["backbone.vit.blocks.0.attn.qkv.weight"]["weight_decay"] == 0.1
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))


def test_drop_path_and_activation_checkpointing_train():
    bb = _small_backbone(drop_path_rate=0.2, act_checkpoint=True).train()
    assert bb.vit.blocks[-1].drop_path1.drop_prob == pytest.approx(0.2)
    out = bb(torch.randn(2, 3, 128, 128))
    sum(v.mean() for v in out.values()).backward()
    assert bb.vit.blocks[0].attn.qkv.weight.grad is not None
    assert bb.vit.rel_pos_window.relative_position_bias_table.grad is not None


def test_registry_lists_names_and_plugins(tmp_path, monkeypatch):
    names = registered_backbones()
    assert {"mae_vit_b", "mae_vit_l", "mae_vit_h", "convnext_t"} <= set(names)
    with pytest.raises(ConfigError, match=r"unknown backbone 'mae_vit_q'.*registered: .*mae_vit_b"):
        build_backbone("mae_vit_q")
    with pytest.raises(
        ConfigError, match="backbone 'mae_vit_b' takes no 'windw_size'; it takes .*window_size"
    ):
        build_backbone("mae_vit_b", windw_size=3)
    with pytest.raises(
        ConfigError, match="unexpected keyword argument 'dorp_path_rate'"
    ):  # **kwargs forwarded
        build_backbone("convnext_atto", dorp_path_rate=0.1)
    with pytest.raises(TypeError):  # a TypeError from building (a bug, not a key) keeps its traceback
        build_backbone("mae_vit_b", embed_dim=32, depth=2, num_heads=2, img_size="64")
    plugin = tmp_path / "my_plugin_bb.py"
    plugin.write_text(
        "from mae_transfer.backbone import register_backbone\n"
        "from backbones.timm_convnext import TimmFeaturesBackbone\n"
        "@register_backbone('my_resnet')\n"
        "def my_resnet(**kw):\n"
        "    return TimmFeaturesBackbone('resnet18', **kw)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    bb = build_backbone("my_plugin_bb:my_resnet")
    feats = bb(torch.randn(1, 3, 64, 64))
    assert list(feats) == ["s4", "s8", "s16", "s32"] and bb.out_channels["s32"] == 512


def test_convnext_plugin_contract_and_checkpoint(tmp_path):
    bb = build_backbone("convnext_atto")
    feats = bb(torch.randn(1, 3, 64, 64))
    assert {k: v.shape[1] for k, v in feats.items()} == bb.out_channels
    assert bb.out_strides == {"s4": 4, "s8": 8, "s16": 16, "s32": 32}
    ids = {n: bb.layer_id(n) for n, _ in bb.named_parameters()}
    assert ids["body.stem_0.weight"] == 0 and max(ids.values()) == bb.num_layers
    full = randomize(timm.create_model("convnext_atto", pretrained=False), seed=5)
    report = bb.load_pretrained(save(tmp_path, full.state_dict()))
    assert "head.fc.weight" in report.ignored and not report.new
    assert torch.equal(bb.body.stages_3.blocks[1].mlp.fc1.weight, full.stages[3].blocks[1].mlp.fc1.weight)


@pytest.mark.parametrize("name", ["vit_tiny_patch16_224", "convnext_atto", "resnet18"])
def test_timm_name_is_a_backbone_with_timms_own_features(name, tmp_path):
    """``timm:<name>``, three families: loaded from a timm state dict (head ignored, nothing new), the maps
    equal timm's own ``forward_intermediates`` where the model has that stride (the ViT's s16; every level
    of the CNNs) and its resampled blocks elsewhere; layer ids follow timm's group_matcher."""
    full = randomize(timm.create_model(name, pretrained=False), seed=7).eval()
    bb = build_backbone(f"timm:{name}", img_size=224).eval()
    report = bb.load_pretrained(save(tmp_path, full.state_dict()))
    assert not report.new and report.ignored and all(k.startswith(("head", "fc")) for k in report.ignored)
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        ours = bb(x)
        ref = full.forward_intermediates(x, indices=bb.indices, intermediates_only=True)
    assert {k: v.shape[-1] for k, v in ours.items()} == {"s4": 56, "s8": 28, "s16": 14, "s32": 7}
    by_index = dict(zip(bb.indices, ref))
    for level, (i, factor) in zip(bb.names, bb.levels):
        f = by_index[i]  # resampled without parameters: bilinear up, max-pool down
        expected = (
            F.interpolate(f, scale_factor=factor, mode="bilinear")
            if factor > 1
            else F.max_pool2d(f, round(1 / factor))
            if factor < 1
            else f
        )
        torch.testing.assert_close(ours[level], expected, rtol=1e-5, atol=1e-5)
    exact = [lvl for lvl, (_, f) in zip(bb.names, bb.levels) if f == 1]
    assert exact == (["s16"] if name.startswith("vit") else ["s4", "s8", "s16", "s32"])
    ids = {n: bb.layer_id(n) for n, _ in bb.named_parameters()}
    assert min(ids.values()) == 0 and max(ids.values()) == bb.num_layers >= 4
    first, last = next(iter(ids)), list(ids)[-1]
    assert ids[first] < ids[last]  # stem / patch embedding decays most, the last stage least


def test_timm_backbone_errors_are_one_line():
    from mae_transfer.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown timm model 'resnet_nope'"):
        build_backbone("timm:resnet_nope")
    with pytest.raises(ConfigError, match="window_size"):
        build_backbone("timm:resnet18", window_size=7)
