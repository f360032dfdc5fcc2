"""One checkpoint through detection, segmentation and classification: one report (tiny schedules)."""

from __future__ import annotations

import json

from test_cls_visualize import tiny_pretrained, two_classes  # noqa: F401  (fixtures)

from conftest import COCO128, one_line_error, run_tool
from mae_transfer.det.data import subset_coco


def test_one_command_report(tiny_pretrained, two_classes, tmp_path):  # noqa: F811
    val = subset_coco(COCO128 / "annotations/instances_val2017.json", tmp_path / "val4.json", 4)
    enc = str(tiny_pretrained / "encoder.pth")  # a 2-block, 64-wide encoder: shrink the presets' backbones
    res = run_tool(
        "tools/transfer_report.py",
        enc,
        "--out",
        str(tmp_path / "report"),
        "--extra",
        f"det=--val-json {val} --val-images {COCO128 / 'val2017'} train.max_iter=2 train.eval_period=2 "
        "model.backbone.bottom_up.depth=2 model.backbone.bottom_up.embed_dim=64 "
        "model.backbone.bottom_up.num_heads=2",
        "seg=train_cfg.max_iters=2 model.backbone.depth=2 model.backbone.embed_dim=64 "
        "model.backbone.num_heads=2 "
        "model.decode_head.in_channels=[64,64,64,64] model.auxiliary_head.in_channels=64",
        f"linprobe=data_path={two_classes} epochs=2 num_workers=0 model=",
        f"finetune=data_path={two_classes} epochs=1 num_workers=0 model= batch_size=64",
        timeout=1800,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    evals = report["evaluations"]
    assert set(evals) == {"det", "seg", "linprobe", "finetune"}
    for name, key in (("det", "APbox"), ("seg", "mIoU"), ("linprobe", "top1"), ("finetune", "top1")):
        assert key in evals[name].get("metrics", {}), (name, evals[name])
    text = (tmp_path / "report" / "report.md").read_text()
    assert "| linprobe | top1 |" in text and "| det | APbox |" in text
    assert "![det](det/val_preview.png)" in text and "![seg](seg/val_preview.png)" in text
    assert (tmp_path / "report" / "det" / "val_preview.png").is_file()
    assert "checkpoint not found" in one_line_error(
        run_tool("tools/transfer_report.py", str(tmp_path / "none.pth"))
    )
