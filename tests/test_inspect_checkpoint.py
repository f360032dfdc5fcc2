"""The checkpoint doctor on files made from real model state dicts, one per format users bring."""

from __future__ import annotations

import argparse

import timm
import torch

from conftest import one_line_error, run_tool
from mae_transfer.backbone import build_backbone
from mae_transfer.inspect_checkpoint import inspect_checkpoint
from mae_transfer.models.mae import MaskedAutoencoderViT

SMALL = dict(embed_dim=64, depth=4, num_heads=2, img_size=128)


def _mae() -> MaskedAutoencoderViT:
    return MaskedAutoencoderViT(
        img_size=224,
        patch_size=16,
        embed_dim=64,
        depth=4,
        num_heads=2,
        decoder_embed_dim=32,
        decoder_depth=1,
        decoder_num_heads=2,
    )


def _save(tmp_path, name, obj) -> str:
    torch.save(obj, tmp_path / name)
    return str(tmp_path / name)


def test_five_formats_named_and_their_loading_sorted(tmp_path):
    mae = _mae()
    deit = timm.create_model(
        "deit_base_distilled_patch16_224", pretrained=False, embed_dim=64, depth=4, num_heads=2
    )
    beit = timm.create_model("beit_base_patch16_224", pretrained=False, embed_dim=64, depth=4, num_heads=2)
    vit = timm.create_model(
        "vit_base_patch16_224", pretrained=False, embed_dim=64, depth=4, num_heads=2
    ).state_dict()
    files = {
        "official MAE pretraining training checkpoint": {
            "model": mae.state_dict(),
            "optimizer": {},
            "epoch": 799,
            "args": argparse.Namespace(model="mae_vit_base_patch16"),
        },
        "DeiT (distilled) supervised ViT": {"model": deit.state_dict()},
        "MoCo v3 checkpoint": {
            "state_dict": {
                **{f"module.base_encoder.{k}": v for k, v in vit.items()},
                **{f"module.momentum_encoder.{k}": v for k, v in vit.items()},
            },
            "epoch": 300,
        },
        "BEiT checkpoint": {"model": beit.state_dict()},
        "this project's exported encoder": {"model": mae.encoder_state_dict(), "arch": {"depth": 4}},
    }
    for fmt, obj in files.items():
        backbone_kw = dict(rel_pos="per_block", init_values=0.1) if fmt.startswith("BEiT") else {}
        d = inspect_checkpoint(_save(tmp_path, "c.pth", obj), "mae_vit_b", **SMALL, **backbone_kw)
        assert d.format.startswith(fmt), (fmt, d.format)
        assert not d.suspicious, (fmt, d.suspicious)
        assert (d.arch["embed_dim"], d.arch["depth"], d.arch["patch_size"]) == (64, 4, 16)
        text = d.format_text()
        assert "loaded            " in text and "suspicious:   nothing" in text
    # what the MAE file's report says, group by group
    text = inspect_checkpoint(
        _save(tmp_path, "m.pth", files["official MAE pretraining training checkpoint"]), "mae_vit_b", **SMALL
    ).format_text()
    assert "resized           pos_embed (1, 197, 64)->(1, 64, 64)  [expected: position embeddings" in text
    assert "[expected: MAE decoder (pretraining only)]" in text and "mask_token" in text
    assert "rel_pos_global.relative_position_bias_table  [expected: relative position bias" in text


def test_suspicious_files_say_why_and_exit_1(tmp_path):
    mae = _mae()
    # a detectron2 training checkpoint (the whole detector) passed where an encoder is expected
    bb = build_backbone("mae_vit_b", **SMALL)
    det = {"model": {f"backbone.bottom_up.{k}": v for k, v in bb.state_dict().items()}, "iteration": 600}
    d = inspect_checkpoint(_save(tmp_path, "model_final.pth", det))
    assert d.format.startswith("detectron2 checkpoint") and "not a backbone initialization" in d.suspicious[0]
    assert d.arch["embed_dim"] == 64
    # a deeper encoder than the backbone: its extra blocks would be dropped
    deep = MaskedAutoencoderViT(
        img_size=224,
        patch_size=16,
        embed_dim=64,
        depth=6,
        num_heads=2,
        decoder_embed_dim=32,
        decoder_depth=1,
        decoder_num_heads=2,
    )
    d = inspect_checkpoint(
        _save(tmp_path, "deep.pth", {"model": deep.encoder_state_dict()}), "mae_vit_b", **SMALL
    )
    assert any("ignored that a transfer keeps: blocks.*" in s for s in d.suspicious), d.suspicious
    # a width mismatch: the loader refuses it
    d = inspect_checkpoint(
        _save(tmp_path, "wide.pth", {"model": mae.encoder_state_dict()}),
        "mae_vit_b",
        **{**SMALL, "embed_dim": 96, "num_heads": 3},
    )
    assert d.suspicious and d.suspicious[0].startswith("loading fails:") and "(96" in d.suspicious[0]
    # every key under a prefix the loader does not know
    path = _save(tmp_path, "prefixed.pth", {f"model.{k}": v for k, v in mae.encoder_state_dict().items()})
    res = run_tool(
        "tools/inspect_checkpoint.py",
        path,
        "--backbone",
        "mae_vit_b",
        "embed_dim=64",
        "depth=4",
        "num_heads=2",
        "img_size=128",
    )
    assert (
        res.returncode == 1 and "SUSPICIOUS: " in res.stdout and "no 'patch_embed.proj.weight'" in res.stdout
    )
    ok = run_tool(
        "tools/inspect_checkpoint.py",
        _save(tmp_path, "enc.pth", {"model": mae.encoder_state_dict()}),
        "--backbone",
        "mae_vit_b",
        "embed_dim=64",
        "depth=4",
        "num_heads=2",
        "img_size=128",
    )
    assert ok.returncode == 0 and "suspicious:   nothing" in ok.stdout, ok.stdout + ok.stderr


def test_a_file_that_imports_code_is_refused_not_run(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("ran",))

    path = _save(tmp_path, "evil.pth", {"model": {"x": torch.zeros(1)}, "payload": Evil()})
    err = one_line_error(run_tool("tools/inspect_checkpoint.py", path))
    assert "was refused: it asks to import print" in err
