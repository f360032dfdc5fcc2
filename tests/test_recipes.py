"""Recipe fidelity: every full-size config holds its cited source's numbers, checked without building models.

The reference tables live in ``mae_transfer.recipes`` (with citations); where the source ships with an
installed package (mmseg's MAE and BEiT configs, detectron2's ViTDet model config) the test reads the
package itself. A difference that is not declared in ``recipes.DEVIATIONS`` fails.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from mae_transfer.config import load_config
from mae_transfer.paths import REPO_ROOT
from mae_transfer.recipes import DEVIATIONS, SEG_REFERENCE, SOURCES, same_value

DET = {  # config -> (init, size, recipe, epochs) it claims
    "mask_rcnn_vit_b_25ep.py": ("mae", "B", "li", 25),
    "mask_rcnn_vit_b_50ep.py": ("mae", "B", "li", 50),
    "mask_rcnn_vit_b_100ep.py": ("mae", "B", "li", 100),
    "mask_rcnn_vit_l_25ep.py": ("mae", "L", "li", 25),
    "mask_rcnn_vit_l_50ep.py": ("mae", "L", "li", 50),
    "mask_rcnn_vit_l_100ep.py": ("mae", "L", "li", 100),
    "vitdet_vit_b_100ep.py": ("mae", "B", "vitdet", 100),
    "vitdet_vit_l_100ep.py": ("mae", "L", "vitdet", 100),
}
SEG = {"upernet_vit_b_512x512_160k_ade20k.py": "B", "upernet_vit_l_512x512_160k_ade20k.py": "L"}
# flat configs -> (recipe they claim, training processes the recipe assumes)
PRETRAIN = {
    "mae_vit_base_1600ep.py": ("mae_t8", 64),
    "mae_vit_large_1600ep.py": ("mae_t8", 64),
    "mae_vit_huge_1600ep.py": ("mae_t8", 64),
    "mae_vit_large_800ep.py": ("mae_t8_ablation", 64),
}
CLS = {
    "finetune_vit_base.py": ("mae_t9", 8),
    "finetune_vit_large.py": ("mae_t9", 8),
    "linprobe_vit_base.py": ("mae_t10", 8),
}


def checked(card) -> int:
    """Rows compared against a cited source (equal, or a declared deviation)."""
    return sum(1 for _, _, s in card.rows if s.split(" ")[0] in SOURCES or s.startswith("deviation"))


def mmseg_config(rel: str):
    import mmseg
    from mmengine.config import Config

    return Config.fromfile(os.path.join(os.path.dirname(mmseg.__file__), ".mim/configs", rel))


@pytest.mark.parametrize("name", sorted(DET))
def test_detection_config_equals_its_source(name):
    from detectron2.config import LazyConfig

    from mae_transfer.det.recipe import det_card

    cfg = LazyConfig.load(str(REPO_ROOT / "configs/det" / name))
    assert (cfg.entry.init, cfg.entry.size, cfg.entry.recipe, cfg.entry.epochs) == DET[name]
    card = det_card(cfg)
    assert card.differences() == [], card.format()
    assert checked(card) == (18 if DET[name][2] == "li" else 20), card.format()  # every reference number


@pytest.mark.parametrize("name", sorted(SEG))
def test_segmentation_config_equals_its_source(name):
    from mmengine.config import Config

    from mae_transfer.seg.recipe import seg_card

    cfg = Config.fromfile(str(REPO_ROOT / "configs/seg" / name))
    assert (cfg.entry["size"], cfg.entry["recipe"]) == (SEG[name], "mae")
    card = seg_card(cfg)
    assert card.differences() == [], card.format()
    assert checked(card) == 22, card.format()


def test_segmentation_reference_is_mmseg_and_beit_configs_themselves():
    """The ViT-B table equals the installed mmseg's MAE config value for value; the ViT-L values taken from
    BEiT's ViT-L config equal mmseg's port of it (its BEiT-large ADE20K config)."""
    from mae_transfer.seg.recipe import seg_values

    mae = seg_values(mmseg_config("mae/mae-base_upernet_8xb2-amp-160k_ade20k-512x512.py"))
    ref_b = SEG_REFERENCE["B"]
    assert all(same_value(mae[k], v) for k, (v, src) in ref_b.items()), {
        k: (mae[k], v) for k, (v, _) in ref_b.items() if not same_value(mae[k], v)
    }
    assert len(ref_b) == 22
    beit_l = seg_values(mmseg_config("beit/beit-large_upernet_8xb1-amp-160k_ade20k-640x640.py"))
    from_beit = {k: v for k, (v, src) in SEG_REFERENCE["L"].items() if src == "beit_l"}
    assert set(from_beit) == {"layer_decay", "drop_path", "taps", "head_channels"}
    assert all(same_value(beit_l[k], v) for k, v in from_beit.items())


def test_vitdet_model_pieces_equal_detectron2_mask_rcnn_vitdet():
    """Our ViTDet variant's backbone shape, neck and heads equal detectron2's
    common/models/mask_rcnn_vitdet.py."""
    from detectron2 import model_zoo
    from detectron2.config import LazyConfig

    from mae_transfer.backbone import backbone_settings

    ref = model_zoo.get_config("common/models/mask_rcnn_vitdet.py").model
    ours = LazyConfig.load(str(REPO_ROOT / "configs/det/vitdet_vit_b_100ep.py")).model
    bu = ours.backbone.bottom_up
    arch = backbone_settings(
        bu.name, **{k: v for k, v in bu.items() if k not in ("name", "weights", "source")}
    )
    net = ref.backbone.net
    pairs = {
        "embed_dim": (arch["embed_dim"], net.embed_dim),
        "depth": (arch["depth"], net.depth),
        "num_heads": (arch["num_heads"], net.num_heads),
        "patch_size": (arch["patch_size"], net.patch_size),
        "img_size": (arch["img_size"], net.img_size),
        "window_size": (arch["window_size"], net.window_size),
        "mlp_ratio": (arch["mlp_ratio"], net.mlp_ratio),
        "drop_path": (arch["drop_path_rate"], net.drop_path_rate),
        "global_blocks": (
            arch["global_blocks"],
            tuple(i for i in range(net.depth) if i not in net.window_block_indexes),
        ),
        "neck_channels": (ours.backbone.out_channels, ref.backbone.out_channels),
        "neck_norm": (ours.backbone.norm, ref.backbone.norm),
        "square_pad": (ours.backbone.square_pad, ref.backbone.square_pad),
        "rpn_convs": (ours.proposal_generator.head.conv_dims, ref.proposal_generator.head.conv_dims),
        "box_convs": (ours.roi_heads.box_head.conv_dims, ref.roi_heads.box_head.conv_dims),
        "box_fcs": (ours.roi_heads.box_head.fc_dims, ref.roi_heads.box_head.fc_dims),
        "box_norm": (ours.roi_heads.box_head.conv_norm, ref.roi_heads.box_head.conv_norm),
        "mask_norm": (ours.roi_heads.mask_head.conv_norm, ref.roi_heads.mask_head.conv_norm),
        "num_classes": (ours.roi_heads.num_classes, ref.roi_heads.num_classes),
        "pixel_mean": (ours.pixel_mean, ref.pixel_mean),
        "pixel_std": (ours.pixel_std, ref.pixel_std),
        "input_format": (ours.input_format, ref.input_format),
    }
    assert arch["pyramid"] == "simple" and tuple(ref.backbone.scale_factors) == (4.0, 2.0, 1.0, 0.5)
    bad = {k: v for k, v in pairs.items() if not same_value(*v)}
    assert not bad, bad


@pytest.mark.parametrize(
    "kind,name", [("pretrain", n) for n in sorted(PRETRAIN)] + [("cls", n) for n in sorted(CLS)]
)
def test_pretraining_and_classification_configs_equal_tables_8_to_10(kind, name):
    from mae_transfer.cls import ClsConfig
    from mae_transfer.pretrain import PretrainConfig

    recipe, world = (PRETRAIN if kind == "pretrain" else CLS)[name]
    cfg = load_config(
        str(REPO_ROOT / "configs" / kind / name), expect=PretrainConfig if kind == "pretrain" else ClsConfig
    )
    card = cfg.recipe_card(world)
    assert cfg.recipe == recipe and card.differences() == [], card.format()
    assert checked(card) == {"mae_t8": 14, "mae_t8_ablation": 14, "mae_t9": 13, "mae_t10": 11}[recipe]


def test_a_changed_number_is_caught_and_a_declared_one_explained():
    from detectron2.config import LazyConfig

    from mae_transfer.det.recipe import det_card

    cfg = LazyConfig.load(str(REPO_ROOT / "configs/det/vitdet_vit_b_100ep.py"))
    cfg.lr_multiplier.warmup_length = 200 / 184_375
    cfg.model.backbone.bottom_up.drop_path_rate = 0.2
    card = det_card(cfg, {"drop_path": "override"})
    assert card.differences() == ["drop_path", "warmup_iters"]
    rows = {n: s for n, _, s in card.rows}
    assert rows["drop_path"] == "CHANGED by override from vitdet 0.1"
    assert rows["rel_pos"].startswith("deviation from vitdet") and ("vitdet", "rel_pos") in DEVIATIONS


def test_mini_configs_claim_no_recipe():
    from detectron2.config import LazyConfig

    from mae_transfer.det.recipe import det_card

    card = det_card(LazyConfig.load(str(REPO_ROOT / "configs/det/mini/mask_rcnn_vit_tiny_coco128.py")))
    assert card.claims == "" and {s for _, _, s in card.rows} == {"this project's choice"}


def test_vitdet_weight_decay_rule_and_layer_decay():
    """ViTDet's rule: norms and pos_embed without weight decay, biases and rel-pos tables with it; lr scale
    0.7 ** (num_layers + 1 - layer id) per backbone block, 1 for the neck and heads."""
    from detectron2.modeling.backbone.fpn import LastLevelMaxPool

    from mae_transfer.det.modeling import Detectron2Backbone, SimpleNeck, det_param_groups

    model = SimpleNeck(
        Detectron2Backbone(
            "mae_vit_b",
            embed_dim=32,
            depth=4,
            num_heads=2,
            img_size=64,
            window_size=2,
            pyramid="simple",
            pyramid_norm="LN",
        ),
        in_features=["s4", "s8", "s16", "s32"],
        out_channels=16,
        norm="LN",
        top_block=LastLevelMaxPool(),
        square_pad=64,
    )
    groups = det_param_groups(model, lr=1.0, weight_decay=0.1, layer_decay=0.7, weight_decay_rule="vitdet")
    of = {id(p): g for g in groups for p in g["params"]}
    named = dict(model.named_parameters())
    prefix = "bottom_up.net.vit."
    wd = {n: of[id(p)]["weight_decay"] for n, p in named.items()}
    lr = {n: of[id(p)]["lr"] for n, p in named.items()}
    assert wd[prefix + "pos_embed"] == 0.0 and wd[prefix + "blocks.0.norm1.weight"] == 0.0
    assert wd[prefix + "blocks.0.norm1.bias"] == 0.0  # norm biases follow weight_decay_norm
    assert wd[prefix + "blocks.0.attn.qkv.bias"] == 0.1 and wd[prefix + "blocks.3.mlp.fc1.weight"] == 0.1
    assert any("rel_pos" in n or "relative_position" in n for n in named if wd[n] == 0.1)
    assert lr[prefix + "blocks.0.attn.qkv.weight"] == pytest.approx(0.7**4)
    assert lr[prefix + "blocks.3.attn.qkv.weight"] == pytest.approx(0.7**1)
    assert lr[prefix + "pos_embed"] == pytest.approx(0.7**5)
    assert lr["output.0.weight"] == 1.0
    li = det_param_groups(model, lr=1.0, weight_decay=0.1, layer_decay=0.7, weight_decay_rule="li")
    li_wd = {id(p): g["weight_decay"] for g in li for p in g["params"]}
    assert li_wd[id(named[prefix + "blocks.0.attn.qkv.bias"])] == 0.0  # the project's rule differs here


def test_pretraining_decays_the_tokens_as_the_official_code():
    """main_pretrain.py (timm add_weight_decay) decays cls / mask tokens; wd_exempt_tokens=True exempts
    them."""
    from mae_transfer.models import build_mae
    from mae_transfer.pretrain import PretrainConfig
    from mae_transfer.pretrain.engine import pretrain_param_groups

    model = build_mae(
        "mae_vit_base_patch16",
        img_size=32,
        patch_size=4,
        embed_dim=32,
        depth=1,
        num_heads=2,
        decoder_embed_dim=16,
        decoder_depth=1,
        decoder_num_heads=2,
    )

    def decayed(cfg: PretrainConfig) -> set[str]:
        names = {id(p): n for n, p in model.named_parameters()}
        return {
            names[id(p)]
            for g in pretrain_param_groups(model, cfg, 1e-3)
            if g["weight_decay"] > 0
            for p in g["params"]
        }

    official = decayed(PretrainConfig())
    assert {"cls_token", "mask_token"} <= official
    assert not any(n.endswith(".bias") or "norm" in n for n in official)
    assert "patch_embed.proj.weight" in official and "pos_embed" not in official  # fixed sin-cos, no grad
    exempt = decayed(PretrainConfig(wd_exempt_tokens=True))
    assert official - exempt == {"cls_token", "mask_token"}


def test_print_recipe_shows_the_vit_l_row_and_refuses_a_mismatched_config():
    from conftest import one_line_error, run_tool

    res = run_tool("tools/train_det.py", "--backbone", "mae_vit_l", "--print-recipe")
    assert res.returncode == 0, res.stderr[-2000:]
    rows = {ln.split()[0]: ln.split()[1:] for ln in res.stdout.splitlines() if ln.startswith("  ")}
    assert rows["drop_path"][:2] == ["0.3", "li2021"] and rows["act_checkpoint"][0] == "True"
    assert rows["global_blocks"][:4] == ["(5,", "11,", "17,", "23)"]
    assert "output dir: output/det/mask_rcnn_vit_l_100ep" in res.stdout
    err = one_line_error(
        run_tool(
            "tools/train_det.py",
            "--backbone",
            "mae_vit_l",
            "--config",
            "configs/det/mask_rcnn_vit_b_50ep.py",
            "--print-recipe",
        )
    )
    assert "configs/det/mask_rcnn_vit_l_50ep.py" in err
    seg = run_tool("tools/train_seg.py", "--backbone", "mae_vit_l", "--init", "random", "--print-recipe")
    assert seg.returncode == 0, seg.stderr[-2000:]
    rows = {ln.split()[0]: ln.split()[1:] for ln in seg.stdout.splitlines() if ln.startswith("  ")}
    assert rows["layer_decay"][:2] == ["0.95", "beit_l"] and rows["taps"][0] == "(7,"
    assert rows["lr"][1:] == ["mae_a4", "(--init", "random)"] or rows["lr"][1] == "mae_a4"


def test_a_backbone_without_config_gets_a_config_of_its_size_or_a_refusal_naming_the_ones_that_fit(tmp_path):
    """--backbone X without --config: a full-size ViT takes the paper's recipe of its size, a miniature one
    the one shipped config that builds it; a toy encoder never gets a full-size recipe."""
    from conftest import one_line_error, run_tool
    from mae_transfer.errors import ConfigError
    from mae_transfer.resolve import config_for_backbone

    det, seg = (
        "configs/det/mask_rcnn_vit_{size}_100ep.py",
        "configs/seg/upernet_vit_{size}_512x512_160k_ade20k.py",
    )
    assert config_for_backbone(None, det, "mae_vit_l") == "configs/det/mask_rcnn_vit_l_100ep.py"
    assert config_for_backbone(None, det, None) == "configs/det/mask_rcnn_vit_b_100ep.py"
    assert (
        config_for_backbone(None, det, "mae_vit_tiny_p4")
        == "configs/det/mini/mask_rcnn_vit_tiny_p4_coco128.py"
    )
    assert (
        config_for_backbone(None, seg, "mae_vit_mini_p8") == "configs/seg/mini/upernet_vit_mini_p8_camvid.py"
    )
    assert config_for_backbone("my.py", det, "mae_vit_tiny_p4") == "my.py"
    with pytest.raises(ConfigError, match="unknown backbone 'mae_vit_nope'"):
        config_for_backbone(None, det, "mae_vit_nope")
    # started outside the repository: the shipped config is found all the same
    away = run_tool(
        str(REPO_ROOT / "tools/train_det.py"), "--backbone", "mae_vit_l", "--print-recipe", cwd=tmp_path
    )
    assert away.returncode == 0 and "ViT-L, 100 epochs" in away.stdout, away.stderr[-2000:]
    err = one_line_error(run_tool("tools/train_seg.py", "--backbone", "convnext_t", "--print-recipe"))
    assert "--backbone convnext_t is not a full-size ViT" in err and "no shipped config builds it" in err
    assert "pass --config" in err


def test_a_global_batch_other_than_the_recipes_is_refused_or_scaled_linearly():
    """Li et al. fix batch 64, the seg recipe 16 (8 x 2). At 8 processes x 2 images a detection run stops (one
    line) unless --batch-scaling linear, which scales lr by 16/64 and every iteration count by 64/16; the
    recipe card says which. Configs that claim no recipe keep their own batch."""
    from conftest import one_line_error, run_tool

    det = (
        "tools/train_det.py",
        "--config",
        "configs/det/mask_rcnn_vit_b_100ep.py",
        "--num-gpus",
        "8",
        "dataloader.train.total_batch_size=16",
    )
    err = one_line_error(run_tool(*det))
    assert "global batch 16 (8 process(es) x 2) is not the recipe's 64: pass --batch-scaling linear" in err
    res = run_tool(*det, "--batch-scaling", "linear", "--print-recipe")
    assert res.returncode == 0, res.stderr[-2000:]
    rows = {ln.split()[0]: ln.split()[1:] for ln in res.stdout.splitlines() if ln.startswith("  ")}
    assert rows["lr"][:5] == ["2e-05", "CHANGED", "by", "--batch-scaling", "linear"]
    assert rows["max_iter"][0] == "737500" and rows["batch"][0] == "16"
    assert "global batch 16 = 8 process(es) x 2, not the recipe's 64: lr x 0.25, iterations x 4" in res.stdout
    err = one_line_error(
        run_tool(
            "tools/train_det.py",
            "--config",
            "configs/det/mini/mask_rcnn_vit_tiny_coco128.py",
            "--num-gpus",
            "3",
        )
    )
    assert "global batch 2 (dataloader.train.total_batch_size) does not split over 3 processes" in err
    seg = ("tools/train_seg.py", "--config", "configs/seg/upernet_vit_b_512x512_160k_ade20k.py")
    err = one_line_error(run_tool(*seg))  # one process x 2 images
    assert "global batch 2 (1 process(es) x 2) is not the recipe's 16" in err
    res = run_tool(*seg, "--print-recipe", env={"WORLD_SIZE": "8"})  # as under torchrun --nproc_per_node 8
    assert "global batch 16 = 8 process(es) x 2 = the recipe's" in res.stdout
    res = run_tool(*seg, "--print-recipe", "--batch-scaling", "linear", env={"WORLD_SIZE": "4"})
    rows = {ln.split()[0]: ln.split()[1:] for ln in res.stdout.splitlines() if ln.startswith("  ")}
    assert rows["lr"][0] == "5e-05" and rows["max_iters"][0] == "320000" and rows["warmup_iters"][0] == "3000"
    res = run_tool(
        "tools/train_seg.py", "--config", "configs/seg/mini/upernet_vit_tiny_coco128.py", "--print-recipe"
    )
    assert "global batch 2 = 1 process(es) x 2 (this config's own: it claims no recipe)" in res.stdout


def test_runs_write_their_recipe_card(tmp_path):
    """A (one-step) pretraining run writes recipe.json beside its outputs."""
    import json

    from conftest import make_image_folder, run_tool

    data = make_image_folder(tmp_path / "data", "train", 2, classes=["airplane", "cat"])
    out = tmp_path / "run"
    res = run_tool(
        "tools/pretrain.py",
        "--config",
        "configs/pretrain/cifar10_smoke.py",
        f"data_path={data}",
        f"output_dir={out}",
        "epochs=1",
        "warmup_epochs=0",
        "batch_size=2",
        "num_workers=0",
        "model_overrides={'depth': 1, 'decoder_depth': 1}",
    )
    assert res.returncode == 0, res.stderr[-2000:]
    card = json.loads((out / "recipe.json").read_text())
    rows = {r["name"]: r for r in card["rows"]}
    assert (
        card["claims"] == "" and rows["effective_batch"]["value"] == 2 and rows["mask_ratio"]["value"] == 0.75
    )
    assert Path(out / "recipe.json").stat().st_size > 0 and torch.load(
        out / "checkpoint-last.pth", weights_only=True
    )
