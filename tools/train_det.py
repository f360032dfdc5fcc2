#!/usr/bin/env python
"""Mask R-CNN on COCO through detectron2 with any registered backbone (MAE Table 4 setup).

Examples:
  python tools/train_det.py --config configs/det/mask_rcnn_vit_b_100ep.py --backbone mae_vit_b \\
      --weights mae_pretrain_vit_base.pth --init mae --coco-root /datasets --num-gpus 8
  python tools/train_det.py --config configs/det/mask_rcnn_vit_l_50ep.py --backbone mae_vit_l \\
      --weights W.pth --num-gpus 8 --num-machines 8 --machine-rank $RANK --dist-url tcp://HOST:29500
  python tools/train_det.py --config configs/det/mini/mask_rcnn_vit_tiny_coco128.py       # CPU, coco128
  python tools/train_det.py --config ... --eval-only train.init_checkpoint=output/det/run/model_final.pth
  python tools/train_det.py --config ... --resume                                          # after a kill
"""

from __future__ import annotations

from typing import Sequence

from mae_transfer.cli import harness_tool, run_tool


def main(argv: Sequence[str] | None = None) -> None:
    harness_tool(argv, __doc__, "det")


if __name__ == "__main__":
    run_tool(main)
