#!/usr/bin/env python
"""Take one pretrained checkpoint through detection, segmentation and the classification evals; write one
report (report.md + report.json) from the tools' metrics.json files.

  python tools/transfer_report.py output/pretrain/cifar10_tiny/encoder.pth --out output/transfer/tiny   # CPU
  python tools/transfer_report.py mae_pretrain_vit_base.pth --preset vit_b --out output/transfer/vit_b \\
      --extra det="--coco-root /datasets --num-gpus 8" seg="--data-root /datasets/ADEChallengeData2016"
"""

from __future__ import annotations

import argparse
import shlex
from typing import Sequence

from mae_transfer.cli import run_tool


def main(argv: Sequence[str] | None = None) -> None:
    from mae_transfer.transfer_report import PRESETS, transfer_report

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("weights", help="encoder checkpoint (any supported format)")
    parser.add_argument("--out", default="output/transfer", help="report folder")
    parser.add_argument("--preset", default="mini", choices=sorted(PRESETS))
    parser.add_argument("--only", nargs="+", default=None, choices=["det", "seg", "linprobe", "finetune"])
    parser.add_argument(
        "--extra",
        nargs="*",
        default=[],
        metavar="EVAL=ARGS",
        help="extra arguments for one evaluation, e.g. det='--coco-root /data train.max_iter=10'",
    )
    args = parser.parse_args(argv)
    extra = {}
    for item in args.extra:
        name, _, rest = item.partition("=")
        extra[name] = shlex.split(rest)
    path = transfer_report(args.weights, args.out, args.preset, args.only, extra)
    print(path.read_text())


if __name__ == "__main__":
    run_tool(main)
