#!/usr/bin/env python
"""Draw a trained detector's or segmenter's predictions on images (one PNG per image, same stem).

The run directory (or a checkpoint inside it) tells the task, config and classes:
  python tools/predict.py output/det/mini_vit_tiny_coco128 ../shared/data/coco128/val2017 --out preds/
  python tools/predict.py output/seg/run/iter_1000.pth 'frames/*.jpg' --out preds/
Detection: boxes, masks and class names (detectron2's Visualizer) above --score-thresh. Segmentation: class
colours blended over the image with a legend of the classes present. Images that do not decode are skipped
and counted.
"""

from __future__ import annotations

import argparse
from typing import Sequence

from mae_transfer.cli import run_tool


def main(argv: Sequence[str] | None = None) -> None:
    from mae_transfer.predict import predict
    from mae_transfer.runlog import setup_logging

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "run", help="run directory of train_det.py / train_seg.py, or a checkpoint inside one"
    )
    parser.add_argument("images", nargs="+", help="image files, folders or glob patterns")
    parser.add_argument("--out", default="predictions", help="output folder (PNG per image)")
    parser.add_argument("--score-thresh", type=float, default=0.5, help="detection: lowest score drawn")
    args = parser.parse_args(argv)
    setup_logging()
    result = predict(args.run, args.images, args.out, args.score_thresh)
    print(
        f"{result['written']} image(s) drawn ({result['task']}, {result['checkpoint']}) -> "
        f"{result['out_dir']}"
        + (f"; {result['skipped']} skipped (do not decode)" if result["skipped"] else "")
    )


if __name__ == "__main__":
    run_tool(main)
