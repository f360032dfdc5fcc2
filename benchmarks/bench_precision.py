#!/usr/bin/env python
"""Miniature det / seg training iterations under bf16 autocast vs fp32, through the real harnesses.

Each (config, precision) runs ``tools/train_det.py`` / ``tools/train_seg.py`` for ``--iters`` iterations in
its own subprocess (the configs ask for mixed precision; fp32 turns it off with the config's own switch:
``train.amp.enabled=False`` / ``optim_wrapper.type=OptimWrapper``). The seconds per iteration are the
harness's own timer (detectron2's ``time`` in log.jsonl, mmengine's ``time`` in scalars.json; data loading
included, as a user sees it), median over the logged windows after the first. Prints the speed-up.

  python benchmarks/bench_precision.py                       # the miniature Table 4 / 5 configs (patch 4)
  python benchmarks/bench_precision.py --iters 60 --configs configs/seg/mini/upernet_vit_tiny_coco128.py
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from mae_transfer.paths import REPO_ROOT

MINI = [
    "configs/det/mini/mask_rcnn_vit_tiny_p4_coco128.py",
    "configs/seg/mini/upernet_vit_tiny_p4_coco128.py",
]


def harness_run(config: str, bf16: bool, iters: int, out: Path) -> float:
    """Seconds per iteration of ``iters`` training iterations (log every 10) of ``config``."""
    if "/det/" in config:
        cmd = [
            "tools/train_det.py",
            "--config",
            config,
            "--output-dir",
            str(out),
            f"train.max_iter={iters}",
            f"train.eval_period={iters}",
            "train.log_period=10",
            f"train.checkpointer.period={iters}",
            f"train.amp.enabled={bf16}",
        ]
    else:
        cmd = [
            "tools/train_seg.py",
            "--config",
            config,
            "--work-dir",
            str(out),
            "--cfg-options",
            f"train_cfg.max_iters={iters}",
            f"train_cfg.val_interval={iters}",
            "default_hooks.logger.interval=10",
            f"default_hooks.checkpoint.interval={iters}",
        ] + ([] if bf16 else ["optim_wrapper.type=OptimWrapper"])
    subprocess.run([sys.executable, *cmd], check=True, cwd=REPO_ROOT, capture_output=True)
    if "/det/" in config:
        rows = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    else:
        scalars = next(out.glob("*/vis_data/scalars.json"))
        rows = [json.loads(line) for line in scalars.read_text().splitlines()]
    times = [r["time"] for r in rows if "time" in r]
    return statistics.median(times[1:] or times)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--configs", nargs="+", default=MINI)
    p.add_argument("--iters", type=int, default=50)
    p.add_argument("--json", default=None, help="write the rows here too")
    args = p.parse_args()
    for config in args.configs:
        if not (REPO_ROOT / config).is_file() or not ("/det/" in config or "/seg/" in config):
            p.error(f"{config}: not a det or seg config file under configs/det or configs/seg")
    if args.iters < 20:
        p.error("--iters must be >= 20 (the first logged window of 10 is dropped as warm-up)")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, config in enumerate(args.configs):
            fp32 = harness_run(config, False, args.iters, Path(tmp) / f"{i}_fp32")
            bf16 = harness_run(config, True, args.iters, Path(tmp) / f"{i}_bf16")
            rows.append(
                {"config": config, "fp32_s_per_iter": fp32, "bf16_s_per_iter": bf16, "speedup": fp32 / bf16}
            )
    width = max(len(r["config"]) for r in rows) + 2
    print(f"{'config':<{width}}{'fp32 s/it':>11}{'bf16 s/it':>11}{'speed-up':>10}")
    for r in rows:
        print(
            f"{r['config']:<{width}}{r['fp32_s_per_iter']:>11.3f}{r['bf16_s_per_iter']:>11.3f}{r['speedup']:>9.2f}x"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
