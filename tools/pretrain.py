#!/usr/bin/env python
"""MAE pretraining (He et al., 2021).

Examples:
  python tools/pretrain.py --config configs/pretrain/cifar10_tiny.py
  python tools/pretrain.py --config configs/pretrain/cifar10_tiny.py epochs=10 batch_size=64
  torchrun --nproc_per_node 8 tools/pretrain.py --config configs/pretrain/mae_vit_large_1600ep.py
  python tools/pretrain.py --config configs/pretrain/mae_vit_large_1600ep.py --slurm --nodes 8 --partition learn
  python tools/pretrain.py --config ... --resume auto       # continue from OUTPUT_DIR/checkpoint-last.pth
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Sequence

from mae_transfer.cli import HelpFormatter, add_slurm_args, run_tool
from mae_transfer.config import apply_overrides, load_config
from mae_transfer.pretrain import PretrainConfig, pretrain


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=HelpFormatter,
        epilog="config keys (override with key=value):\n" + PretrainConfig.help_text())
    parser.add_argument("--config", default=None, help="config file under configs/pretrain/ (default: Table 8 defaults)")
    parser.add_argument("--resume", default=None, help="checkpoint path, or 'auto'")
    parser.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    add_slurm_args(parser)
    parser.add_argument("overrides", nargs="*", help="key=value config overrides")
    args = parser.parse_args(argv)

    cfg = load_config(args.config, expect=PretrainConfig) if args.config else PretrainConfig()
    cfg = apply_overrides(cfg, args.overrides)
    if args.resume:
        cfg = cfg.replace(resume=args.resume)
    if args.print_config:
        print("\n".join(f"{k}={v!r}" for k, v in cfg.to_dict().items()))
        return
    if args.slurm:
        from mae_transfer.launch import submit_slurm

        job = submit_slurm(pretrain, cfg, folder=args.slurm_folder or Path(cfg.output_dir) / "submitit",
                           nodes=args.nodes, gpus_per_node=args.gpus_per_node, partition=args.partition,
                           timeout_min=args.timeout_min, cpus_per_task=args.cpus_per_task)
        print(f"submitted Slurm job {job.job_id}")
        return
    pretrain(cfg)


if __name__ == "__main__":
    run_tool(main)
