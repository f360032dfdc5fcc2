#!/usr/bin/env python
"""MAE pretraining (He et al., 2021).

Examples:
  python tools/pretrain.py --config configs/pretrain/cifar10_tiny.py
  python tools/pretrain.py --config configs/pretrain/cifar10_tiny.py epochs=10 batch_size=64
  torchrun --nproc_per_node 8 tools/pretrain.py --config configs/pretrain/mae_vit_large_1600ep.py
  python tools/pretrain.py --config configs/pretrain/mae_vit_large_1600ep.py \\
      --slurm --nodes 8 --partition learn
  python tools/pretrain.py --config ... --resume auto       # continue from OUTPUT_DIR/checkpoint-last.pth
"""

from __future__ import annotations

from typing import Sequence

from mae_transfer.cli import flat_config_tool, run_tool
from mae_transfer.pretrain import PretrainConfig, pretrain


def main(argv: Sequence[str] | None = None) -> None:
    flat_config_tool(argv, __doc__, PretrainConfig, pretrain, "configs/pretrain/")


if __name__ == "__main__":
    run_tool(main)
