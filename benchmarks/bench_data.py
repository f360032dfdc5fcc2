#!/usr/bin/env python
"""Can the pretraining data loader feed the model? Its img/s beside the model's, measured on one machine.

The loader is the one `tools/pretrain.py` builds: every image decoded from its file (JPEG), then the Table 8
augmentation (RandomResizedCrop 0.2-1 bicubic + flip + normalise) and the batch collation, timed at each
worker count after its first batch (worker start-up is reported apart). The model's rate is the pretraining
step (forward + backward + fused AdamW, the default kernels) in the harness's default precision (bf16 on
GPUs and bf16-capable CPUs, else fp32). Prints img/s and img/s per worker, the workers one training process
needs to keep up, and whether the counts measured reach it.

  python benchmarks/bench_data.py                                 # coco128's 200 photos, 1, 2, 4.. workers
  python benchmarks/bench_data.py --data /datasets/imagenet/train --workers 8 16 --model-batch 128
  python benchmarks/bench_data.py --json out.json                 # also write the results as JSON
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import time
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, RandomSampler

try:
    from benchmarks.bench_pretrain import Variant, _device_name, _sync
except ModuleNotFoundError:  # run as a script: benchmarks/ itself is on sys.path
    from bench_pretrain import Variant, _device_name, _sync
from mae_transfer.data import UnlabeledImages, collate_skip_bad, describe_augmentation, pretrain_transform
from mae_transfer.models.mae import MAE_MODELS
from mae_transfer.paths import shared_data
from mae_transfer.utils import precision_name, resolve_precision


def default_workers() -> list[int]:
    """1, 2, 4, ... up to the machine's cores (the cores included)."""
    cores = os.cpu_count() or 1
    counts = [2**i for i in range(int(math.log2(cores)) + 1)]
    return counts + ([cores] if counts[-1] != cores else [])


def loader_rate(dataset: UnlabeledImages, workers: int, batch: int, batches: int) -> dict[str, Any]:
    """img/s of ``batches`` batches after the first (``workers`` = 0: decoded in this process)."""
    sampler = RandomSampler(dataset, replacement=True, num_samples=batch * (batches + 1))
    loader = DataLoader(dataset, batch, sampler=sampler, num_workers=workers, collate_fn=collate_skip_bad)
    t0 = time.perf_counter()
    it = iter(loader)
    next(it)
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    n = sum(len(imgs) for imgs, _, _ in it)
    seconds = time.perf_counter() - t0
    rate = n / seconds
    return {
        "workers": workers,
        "images_per_s": rate,
        "images_per_s_per_worker": rate / max(workers, 1),
        "first_batch_s": first,
    }


def model_rate(model: str, batch: int, steps: int, device: torch.device) -> dict[str, Any]:
    """The pretraining step's img/s (median of ``steps`` after a warm-up step)."""
    dtype = resolve_precision("auto", device)
    variant = Variant("fast", argparse.Namespace(model=model), device, None)
    size, patches = variant.model.patch_embed.img_size, variant.model.patch_embed.num_patches
    imgs = torch.randn(batch, 3, *size, device=device)
    noise = torch.rand(batch, patches, device=device)
    times = []
    for _ in range(steps + 1):
        _sync(device)
        t0 = time.perf_counter()
        variant.step(imgs, noise, dtype)
        _sync(device)
        times.append(time.perf_counter() - t0)
    step_s = statistics.median(times[1:])
    return {
        "model": model,
        "batch": batch,
        "precision": precision_name(dtype),
        "image_size": size[0],
        "images_per_s": batch / step_s,
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    mdl = model_rate(args.model, args.model_batch, args.steps, device)
    transform = pretrain_transform(mdl["image_size"])
    dataset = UnlabeledImages([str(p) for p in args.data], transform)
    rows = [loader_rate(dataset, w, args.batch, args.batches) for w in args.workers]
    per_worker = max(r["images_per_s_per_worker"] for r in rows)
    return {
        "device": _device_name(device),
        "cores": os.cpu_count(),
        "data": ", ".join(map(str, args.data)),
        "images": len(dataset),
        "augmentation": describe_augmentation(transform),
        "batch": args.batch,
        "loader": rows,
        "model": mdl,
        "workers_needed": math.ceil(mdl["images_per_s"] / per_worker),
        "loader_over_model": max(r["images_per_s"] for r in rows) / mdl["images_per_s"],
    }


def print_table(res: dict[str, Any]) -> None:
    m = res["model"]
    print(
        f"pretraining loader: {res['images']} images under {res['data']}; {res['augmentation']} at "
        f"{m['image_size']}px, batch {res['batch']}; {res['device']}, {res['cores']} cores"
    )
    print(f"{'workers':>8}{'img/s':>10}{'img/s/worker':>14}{'first batch s':>15}")
    for r in res["loader"]:
        print(
            f"{r['workers']:>8}{r['images_per_s']:>10.1f}{r['images_per_s_per_worker']:>14.1f}"
            f"{r['first_batch_s']:>15.2f}"
        )
    print(
        f"model {m['model']} ({m['precision']}, batch {m['batch']}): {m['images_per_s']:.1f} img/s; "
        f"loader at its best / model: {res['loader_over_model']:.2f}x; workers needed at the best rate per "
        f"worker: {res['workers_needed']} ({'within' if res['workers_needed'] <= res['cores'] else 'over'} "
        f"this machine's {res['cores']} cores)"
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--data",
        nargs="+",
        type=Path,
        default=None,
        help="image folders (default: coco128's train2017 and val2017 in the shared data)",
    )
    p.add_argument("--workers", nargs="+", type=int, default=None, help="default: 1, 2, 4, .. cores")
    p.add_argument("--batch", type=int, default=64, help="loader batch")
    p.add_argument("--batches", type=int, default=10, help="timed batches per worker count")
    p.add_argument("--model", default="mae_vit_base_patch16", choices=MAE_MODELS.names())
    p.add_argument("--model-batch", type=int, default=8, help="the model step's batch (Table 8: 4096 / GPUs)")
    p.add_argument("--steps", type=int, default=3, help="timed model steps (after one warm-up step)")
    p.add_argument("--device", default=None, help="cpu | cuda (default: cuda when present)")
    p.add_argument("--json", default=None, help="write the results here too")
    args = p.parse_args()
    args.data = args.data or [Path(shared_data("coco128")) / split for split in ("train2017", "val2017")]
    args.workers = args.workers or default_workers()
    if min(args.workers) < 0 or min(args.batch, args.batches, args.model_batch, args.steps) < 1:
        p.error("--workers must be >= 0, and --batch, --batches, --model-batch and --steps >= 1")
    missing = [d for d in args.data if not d.is_dir()]
    if missing:
        p.error(f"data folder not found: {missing[0]}")
    res = run(args)
    print_table(res)
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
