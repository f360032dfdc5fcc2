#!/usr/bin/env python
"""Which checkpoint is this, and what would loading it into a backbone do?

Names the format (official MAE pretrain / visualize / fine-tuned / training checkpoint, timm, DeiT, MoCo v3,
BEiT, this project's checkpoints and exports, detectron2 / mmseg training checkpoints), the architecture it
implies, and what loading it as --weights does: loaded / resized (from -> to) / newly initialized / ignored,
each marked expected or SUSPICIOUS. Exit status 1 when anything is suspicious. Reads weights only: no file
can run code here.

  python tools/inspect_checkpoint.py mae_pretrain_vit_base.pth
  python tools/inspect_checkpoint.py deit_base_patch16_224.pth --backbone mae_vit_b img_size=512
"""

from __future__ import annotations

import argparse
import ast
import sys
from typing import Sequence

from mae_transfer.cli import run_tool


def main(argv: Sequence[str] | None = None) -> None:
    from mae_transfer.inspect_checkpoint import inspect_checkpoint

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("checkpoint", help="the file to inspect")
    parser.add_argument(
        "--backbone",
        default=None,
        help="registered backbone to load it into (default: the one of the checkpoint's shape)",
    )
    parser.add_argument(
        "overrides", nargs="*", help="backbone keyword overrides, e.g. img_size=512 window_size=0"
    )
    args = parser.parse_intermixed_args(argv)
    overrides = {}
    for item in args.overrides:
        key, sep, value = item.partition("=")
        if not sep:
            parser.error(f"override {item!r} is not of the form key=value")
        try:
            overrides[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            overrides[key] = value
    diag = inspect_checkpoint(args.checkpoint, args.backbone, **overrides)
    print(diag.format_text())
    if diag.suspicious:
        sys.exit(1)


if __name__ == "__main__":
    run_tool(main)
