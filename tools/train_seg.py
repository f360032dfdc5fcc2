#!/usr/bin/env python
"""UperNet on ADE20K (or any labelled folder) through mmsegmentation, with any registered backbone (Table 5).

Examples:
  torchrun --nproc_per_node 8 tools/train_seg.py --config configs/seg/upernet_vit_b_512x512_160k_ade20k.py \\
      --backbone mae_vit_b --weights mae_pretrain_vit_base.pth --init mae \\
      --data-root data/ade/ADEChallengeData2016 --launcher pytorch
  python tools/train_seg.py --config configs/seg/mini/upernet_vit_tiny_coco128.py          # CPU, coco128
  python tools/train_seg.py --config ... --cfg-options train_cfg.max_iters=200 optim_wrapper.optimizer.lr=2e-4
  python tools/train_seg.py --config ... --resume                                           # after a kill
  python tools/train_seg.py --config ... --eval-only --checkpoint WORK_DIR/iter_160000.pth
"""

from __future__ import annotations

from typing import Sequence

from mae_transfer.cli import harness_tool, run_tool


def main(argv: Sequence[str] | None = None) -> None:
    harness_tool(argv, __doc__, "seg")


if __name__ == "__main__":
    run_tool(main)
