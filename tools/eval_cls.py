#!/usr/bin/env python
"""Classification evals of an encoder: end-to-end fine-tune (Table 9) or linear probe (Table 10).

Examples:
  python tools/eval_cls.py --config configs/cls/cifar10_tiny_linprobe.py \\
      weights=output/pretrain/cifar10_tiny/encoder.pth
  python tools/eval_cls.py --config configs/cls/cifar10_tiny_finetune.py weights=          # random init
  torchrun --nproc_per_node 8 tools/eval_cls.py --config configs/cls/finetune_vit_base.py \\
      weights=mae_pretrain_vit_base.pth
"""

from __future__ import annotations

from typing import Sequence

from mae_transfer.cli import flat_config_tool, run_tool
from mae_transfer.cls import ClsConfig, run_cls


def main(argv: Sequence[str] | None = None) -> None:
    flat_config_tool(argv, __doc__, ClsConfig, run_cls, "configs/cls/")


if __name__ == "__main__":
    run_tool(main)
