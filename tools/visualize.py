#!/usr/bin/env python
"""MAE reconstructions (paper Figure 2): rows of masked | reconstruction | original.

Examples:
  python tools/visualize.py output/pretrain/cifar10_tiny/checkpoint-last.pth ../shared/data/cifar10/test \\
      -o recon.png
  python tools/visualize.py mae_visualize_vit_large.pth val_images/ --model mae_vit_large_patch16 \\
      --no-norm-pix --paste
"""

from __future__ import annotations

import argparse
from typing import Sequence

from mae_transfer.cli import run_tool
from mae_transfer.runlog import setup_logging
from mae_transfer.visualize import visualize


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "checkpoint", help="full MAE checkpoint (this project's, or official mae_visualize_*/mae_pretrain_*)"
    )
    parser.add_argument("images", help="an image file or an ImageFolder directory")
    parser.add_argument("-o", "--output", default="reconstructions.png")
    parser.add_argument("-n", "--num-images", type=int, default=8)
    parser.add_argument("--mask-ratio", type=float, default=0.75)
    parser.add_argument("--seed", type=int, default=0, help="seed of the mask noise")
    parser.add_argument(
        "--paste", action="store_true", help="add a column with the visible patches pasted back"
    )
    parser.add_argument("--model", default=None, help="MAE model name when the checkpoint does not record it")
    norm = parser.add_mutually_exclusive_group()
    norm.add_argument(
        "--norm-pix",
        dest="norm_pix",
        action="store_true",
        default=None,
        help="the model predicts per-patch normalized pixels (de-normalize with each patch's mean/std)",
    )
    norm.add_argument("--no-norm-pix", dest="norm_pix", action="store_false")
    args = parser.parse_args(argv)
    setup_logging()
    print(
        visualize(
            args.checkpoint,
            args.images,
            args.output,
            args.num_images,
            args.mask_ratio,
            args.seed,
            args.paste,
            args.model,
            args.norm_pix,
        )
    )


if __name__ == "__main__":
    run_tool(main)
