#!/usr/bin/env python
"""Classification evals of an encoder: end-to-end fine-tune (Table 9) or linear probe (Table 10).

Examples:
  python tools/eval_cls.py --config configs/cls/cifar10_tiny_linprobe.py weights=output/pretrain/cifar10_tiny/encoder.pth
  python tools/eval_cls.py --config configs/cls/cifar10_tiny_finetune.py weights=          # random init
  torchrun --nproc_per_node 8 tools/eval_cls.py --config configs/cls/finetune_vit_base.py weights=mae_pretrain_vit_base.pth
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Sequence

from mae_transfer.cli import HelpFormatter, add_slurm_args, run_tool
from mae_transfer.cls import ClsConfig, run_cls
from mae_transfer.config import apply_overrides, load_config


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter,
                                     epilog="config keys (override with key=value):\n" + ClsConfig.help_text())
    parser.add_argument("--config", default=None, help="config file under configs/cls/")
    parser.add_argument("--print-config", action="store_true")
    add_slurm_args(parser)
    parser.add_argument("overrides", nargs="*", help="key=value config overrides")
    args = parser.parse_args(argv)
    cfg = load_config(args.config, expect=ClsConfig) if args.config else ClsConfig()
    cfg = apply_overrides(cfg, args.overrides)
    if args.print_config:
        print("\n".join(f"{k}={v!r}" for k, v in cfg.to_dict().items()))
        return
    if args.slurm:
        from mae_transfer.launch import submit_slurm

        job = submit_slurm(run_cls, cfg, folder=args.slurm_folder or Path(cfg.output_dir) / "submitit",
                           nodes=args.nodes, gpus_per_node=args.gpus_per_node, partition=args.partition,
                           timeout_min=args.timeout_min, cpus_per_task=args.cpus_per_task)
        print(f"submitted Slurm job {job.job_id}")
        return
    run_cls(cfg)


if __name__ == "__main__":
    run_tool(main)
