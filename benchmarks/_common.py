"""Side-by-side measurement plumbing: every model runs in its own subprocess (clean peak-RSS accounting on
CPU, the allocator's peak on CUDA) and the rows are printed with their ratios to the last one. With
``--rounds R`` the models take turns R times (A B A B ...), so a slow spell of a shared machine lands on both
sides: each row keeps its fastest round, and the ratio of every round is printed beside it."""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
from typing import Any, Callable

import torch

from mae_transfer.paths import REPO_ROOT


def peak_mib(device: str) -> float:
    if device == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB -> MiB, whole process


def compare_isolated(
    script: str, doc: str, one: Callable[..., dict[str, Any]], default_configs: list[str], title: str
) -> None:
    """CLI: ``--configs A B ...`` measured one subprocess each (``one(config, steps=..., image_size=...)``),
    ratios vs the last; ``--json`` also writes the rows."""
    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--configs", nargs="+", default=default_configs)
    p.add_argument("--steps", type=int, default=1)
    p.add_argument(
        "--image-size", type=int, default=None, help="input side in pixels (default: the recipe's)"
    )
    p.add_argument(
        "--rounds", type=int, default=1, help="measure the configs in turn this many times (fastest kept)"
    )
    p.add_argument("--json", default=None, help="write the rows here too")
    p.add_argument("--one", default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    # "pkg:path" = a reference
    missing = [c for c in args.configs if ":" not in c and not (REPO_ROOT / c).is_file()]
    if missing:
        p.error(f"config file not found: {missing[0]}")
    if args.steps < 1 or args.rounds < 1 or (args.image_size is not None and args.image_size < 32):
        p.error("--steps and --rounds must be >= 1 and --image-size >= 32")
    if args.one:
        print(json.dumps(one(args.one, steps=args.steps, image_size=args.image_size)))
        return
    rounds: list[list[dict[str, Any]]] = []
    for _ in range(args.rounds):
        rounds.append([])
        for cfg in args.configs:
            cmd = [sys.executable, script, "--one", cfg, "--steps", str(args.steps)]
            if args.image_size:
                cmd += ["--image-size", str(args.image_size)]
            out = subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=REPO_ROOT).stdout
            rounds[-1].append(json.loads(out.strip().splitlines()[-1]))
    rows = [min(runs, key=lambda r: r["step_s"]) for runs in zip(*rounds)]
    for i, runs in enumerate(zip(*rounds)):
        rows[i]["round_step_s"] = [r["step_s"] for r in runs]
        rows[i]["peak_mib"] = max(r["peak_mib"] for r in runs)
    dev = rows[0]["device"]
    where = torch.cuda.get_device_name() if dev == "cuda" else f"CPU ({torch.get_num_threads()} threads)"
    print(f"{title}, on {where}")
    width = max(len(r["model"]) for r in rows) + 2
    print(f"{'model':<{width}}{'params M':>10}{'step s':>10}{'peak MiB':>11}")
    for r in rows:
        print(f"{r['model']:<{width}}{r['params_m']:>10.1f}{r['step_s']:>10.3f}{r['peak_mib']:>11.0f}")
    base = rows[-1]
    for r in rows[:-1]:
        r["time_ratio"] = r["step_s"] / base["step_s"]
        r["memory_ratio"] = r["peak_mib"] / base["peak_mib"]
        print(f"{r['model']} / {base['model']}: time x{r['time_ratio']:.2f}, memory x{r['memory_ratio']:.2f}")
        if args.rounds > 1:
            each = [a / b for a, b in zip(r["round_step_s"], base["round_step_s"])]
            print(f"  time ratio per round: {', '.join(f'x{x:.2f}' for x in each)}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"title": title, "device": where, "rows": rows}, f, indent=2)
