#!/usr/bin/env python
"""Export the encoder of a pretraining checkpoint as an official-MAE / timm-format file ({'model': ...}).

python tools/export_encoder.py output/pretrain/cifar10_tiny/checkpoint-last.pth encoder.pth
"""

from __future__ import annotations

import argparse
from typing import Sequence

from mae_transfer.cli import run_tool
from mae_transfer.pretrain import export_encoder


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("checkpoint", help="checkpoint written by tools/pretrain.py")
    parser.add_argument("output", help="where to write the encoder")
    args = parser.parse_args(argv)
    print(export_encoder(args.checkpoint, args.output))


if __name__ == "__main__":
    run_tool(main)
