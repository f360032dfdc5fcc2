#!/usr/bin/env python
"""ViT-B backbone at 1024x1024, batch 1: Li et al.'s window/global layout vs all-global attention.

One run, each layout in its own subprocess (clean peak RSS on CPU; allocator peak on CUDA): forward +
backward time and peak memory of the contract backbone (ViT + pyramid, zero-init rel-pos on), and the ratio.

  python benchmarks/bench_backbone_attention.py
  python benchmarks/bench_backbone_attention.py --backbone mae_vit_l --size 1024 --steps 2
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import torch

from mae_transfer.backbone import build_backbone

LAYOUTS = {
    "windowed (Li et al.: window 14, global at the 4 taps)": {},
    "all-global attention": {"window_size": 0},
}


def measure(backbone: str, size: int, steps: int, overrides: dict, device: str) -> dict:
    torch.manual_seed(0)
    bb = build_backbone(backbone, img_size=size, **overrides).to(device).train()
    x = torch.randn(1, 3, size, size, device=device)
    times = []
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    for _ in range(steps + 1):  # first step is warmup
        t0 = time.perf_counter()
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=device == "cuda"):
            feats = bb(x)
        sum(f.float().mean() for f in feats.values()).backward()
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
        bb.zero_grad(set_to_none=True)
    peak = (
        torch.cuda.max_memory_allocated() / 2**20
        if device == "cuda"
        else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    )
    return {"step_s": min(times[1:]), "peak_mib": peak}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--backbone", default="mae_vit_b")
    p.add_argument("--size", type=int, default=1024)
    p.add_argument("--steps", type=int, default=2)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--one", default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.one is not None:
        print(json.dumps(measure(args.backbone, args.size, args.steps, json.loads(args.one), args.device)))
        return
    rows = {}
    for name, ov in LAYOUTS.items():
        cmd = [
            sys.executable,
            __file__,
            "--one",
            json.dumps(ov),
            "--backbone",
            args.backbone,
            "--size",
            str(args.size),
            "--steps",
            str(args.steps),
            "--device",
            args.device,
        ]
        rows[name] = json.loads(
            subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.splitlines()[-1]
        )
    where = (
        torch.cuda.get_device_name() if args.device == "cuda" else f"CPU ({torch.get_num_threads()} threads)"
    )
    print(f"{args.backbone} backbone, {args.size}x{args.size}, batch 1, forward+backward, on {where}")
    print(f"{'layout':<56}{'step s':>10}{'peak MiB':>12}")
    for name, r in rows.items():
        print(f"{name:<56}{r['step_s']:>10.2f}{r['peak_mib']:>12.0f}")
    win, glob = rows.values()
    print(
        f"all-global / windowed: time x{glob['step_s'] / win['step_s']:.2f}, memory "
        f"x{glob['peak_mib'] / win['peak_mib']:.2f}"
    )


if __name__ == "__main__":
    main()
