"""Classification evals (fine-tune / linear probe) and reconstructions, on real CIFAR images."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from PIL import Image

from conftest import make_image_folder, one_line_error, run_tool
from mae_transfer.cls import ClsConfig, build_classifier, run_cls
from mae_transfer.models.mae import MaskedAutoencoderViT
from mae_transfer.pretrain import PretrainConfig, pretrain
from mae_transfer.visualize import reconstruct, visualize

TINY = {"depth": 2, "embed_dim": 64, "num_heads": 2}


@pytest.fixture(scope="module")
def two_classes(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("two_classes")
    make_image_folder(root / "train", "train", 150, classes=["airplane", "frog"])
    make_image_folder(root / "test", "test", 60, classes=["airplane", "frog"])
    return root


@pytest.fixture(scope="module")
def tiny_pretrained(cifar_small, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("tiny_mae")
    pretrain(
        PretrainConfig(
            model="mae_vit_tiny_patch4",
            model_overrides={**TINY, "decoder_embed_dim": 32, "decoder_depth": 1, "decoder_num_heads": 2},
            input_size=32,
            data_path=str(cifar_small / "train"),
            epochs=2,
            warmup_epochs=1,
            batch_size=16,
            num_workers=0,
            output_dir=str(out),
            save_every=0,
            device="cpu",
        )
    )
    return out


def cls_cfg(data: Path, out: Path, **kw) -> ClsConfig:
    base = ClsConfig(
        model="mae_vit_tiny_patch4",
        model_overrides=TINY,
        data_path=str(data),
        val_split="test",
        input_size=32,
        epochs=4,
        warmup_epochs=1,
        batch_size=32,
        blr=2e-3,
        num_workers=0,
        randaug="",
        reprob=0.0,
        mixup=0.0,
        cutmix=0.0,
        drop_path=0.0,
        output_dir=str(out),
        device="cpu",
    )
    return base.replace(**kw)


def test_finetune_from_random_init_learns(two_classes, tmp_path):
    metrics = run_cls(cls_cfg(two_classes, tmp_path, epochs=5))
    assert metrics["top1"] > 65.0, metrics  # two balanced classes: chance is 50
    log = [json.loads(x) for x in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert log[-1]["train_loss"] < log[0]["train_loss"]
    assert json.loads((tmp_path / "metrics.json").read_text())["weights"] == "random init"


def test_linear_probe_on_cached_and_streamed_features(two_classes, tiny_pretrained, tmp_path):
    weights = str(tiny_pretrained / "encoder.pth")
    cached = run_cls(
        cls_cfg(
            two_classes,
            tmp_path / "cached",
            mode="linprobe",
            model="",
            model_overrides={},
            weights=weights,
            global_pool="token",
            optimizer="lars",
            blr=0.1,
            weight_decay=0.0,
            epochs=20,
            cache_features=True,
        )
    )
    assert cached["top1"] > 55.0 and cached["cached_features"]
    log = [json.loads(x) for x in (tmp_path / "cached" / "log.jsonl").read_text().splitlines()]
    assert log[-1]["train_loss"] < log[0]["train_loss"] and log[-1]["val/top1"] == cached["top1"]
    streamed = run_cls(
        cls_cfg(
            two_classes,
            tmp_path / "streamed",
            mode="linprobe",
            model="",
            model_overrides={},
            weights=weights,
            global_pool="token",
            optimizer="sgd",
            blr=0.1,
            weight_decay=0.0,
            epochs=1,
        )
    )
    assert streamed["n"] == cached["n"] == 120 and not streamed.get("cached_features")  # 60 per class
    # a linear probe trains the head alone: every encoder weight is the checkpoint's, bit for bit
    trained = torch.load(tmp_path / "streamed" / "checkpoint-last.pth", weights_only=True)["model"]
    encoder = torch.load(weights, weights_only=True)["model"]
    assert all(
        torch.equal(trained[k], v) for k, v in encoder.items() if k in trained and not k.startswith("norm.")
    )
    # all but the final norm (avg-pool: fc_norm)
    assert sum(k in trained for k in encoder) >= len(encoder) - 2
    assert not torch.equal(trained["head.1.weight"], torch.zeros_like(trained["head.1.weight"]))


def test_classifier_gets_encoder_weights_and_probe_head(tiny_pretrained, two_classes):
    enc = torch.load(tiny_pretrained / "encoder.pth", weights_only=True)["model"]
    model, report = build_classifier(
        cls_cfg(
            two_classes,
            Path("/tmp"),
            mode="linprobe",
            model="",
            model_overrides={},
            weights=str(tiny_pretrained / "encoder.pth"),
            global_pool="token",
        ),
        2,
    )
    assert torch.equal(model.blocks[1].mlp.fc1.weight, enc["blocks.1.mlp.fc1.weight"])
    assert isinstance(model.head[0], torch.nn.BatchNorm1d) and not model.head[0].affine
    assert [n for n, p in model.named_parameters() if p.requires_grad] == ["head.1.weight", "head.1.bias"]
    ft, report = build_classifier(
        cls_cfg(
            two_classes,
            Path("/tmp"),
            model="",
            model_overrides={},
            weights=str(tiny_pretrained / "encoder.pth"),
        ),
        2,
    )
    assert "norm.weight" in report.ignored and "fc_norm.weight" in report.new  # avg pool + fc_norm (Table 9)


def test_eval_cls_errors_are_one_line(tmp_path, tiny_pretrained, two_classes):
    enc = torch.load(tiny_pretrained / "encoder.pth", weights_only=True)
    torch.save({"model": enc["model"]}, tmp_path / "no_arch.pth")  # an encoder file without 'arch'
    err = one_line_error(
        run_tool(
            "tools/eval_cls.py",
            f"weights={tmp_path / 'no_arch.pth'}",
            f"data_path={two_classes}",
            "val_split=test",
            "device=cpu",
        )
    )
    assert "pass model=" in err
    err = one_line_error(
        run_tool(
            "tools/eval_cls.py",
            "mode=finetune",
            "model=mae_vit_tiny_patch4",
            f"data_path={tmp_path}",
            "device=cpu",
        )
    )
    assert "train/" in err and str(tmp_path) in err


def test_reconstruction_denormalizes_norm_pix_targets(cifar_small):
    torch.manual_seed(0)
    net = MaskedAutoencoderViT(
        img_size=32,
        patch_size=4,
        embed_dim=32,
        depth=1,
        num_heads=2,
        decoder_embed_dim=32,
        decoder_depth=1,
        decoder_num_heads=2,
        norm_pix_loss=True,
    ).eval()
    imgs = torch.randn(2, 3, 32, 32)
    net.forward_decoder = lambda latent, ids: net.patch_targets(imgs)  # a perfect norm-pix predictor
    masked, recon, pasted, original = reconstruct(net, imgs, 0.75)
    torch.testing.assert_close(recon, original, atol=1e-4, rtol=0)  # de-normalized with each patch's stats
    assert (masked == 0.5).float().mean() > 0.7  # 75% of patches shown gray


def test_visualize_writes_figure2_grid(tiny_pretrained, cifar_small, tmp_path):
    out = visualize(
        str(tiny_pretrained / "checkpoint-last.pth"),
        str(cifar_small / "test"),
        str(tmp_path / "r.png"),
        num_images=3,
        paste_visible=True,
    )
    with Image.open(out) as img:
        w, h = img.size
    # 3 rows x 4 columns of 128px tiles (32px enlarged 4x) with 2px padding
    assert (w, h) == (4 * 130 + 2, 3 * 130 + 2)
    res = run_tool(
        "tools/visualize.py",
        str(tiny_pretrained / "encoder.pth"),
        str(cifar_small / "test"),
        "-o",
        str(tmp_path / "x.png"),
    )
    assert "holds no decoder" in one_line_error(res)
