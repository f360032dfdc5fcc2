#!/usr/bin/env python
"""MAE pretraining step: the fast path vs the official implementation, side by side in one process.

The stand-in for the official code is this project's eager model with ``kernels=reference``: it is
bit-exact with models_mae.py + main_pretrain.py (SDPA attention through timm, the for-loop AdamW;
tests/test_mae.py). The fast path is ``kernels=fast`` (fused AdamW, the per-device attention kernel of
mae_transfer/kernels.py), optionally with torch.compile. Each precision is measured with every variant
interleaved round by round on the same batch and masks (so drifting clocks hit all alike); the step is
forward + backward + AdamW. Prints img/s, the ratio to the reference, achieved TFLOP/s and its fraction of
the matmul peak measured in the same run (the faster of bf16 and fp32 products: bf16 on GPUs and on CPUs with
bf16 units, fp32 on CPUs that emulate bf16), and the fp32 loss/weight differences between the paths.

  python benchmarks/bench_pretrain.py                                  # ViT-B, batch 8, fp32 and bf16
  python benchmarks/bench_pretrain.py --model mae_vit_large_patch16 --batch 32 --precisions bf16 --compile
  python benchmarks/bench_pretrain.py --json out.json                  # also write the rows as JSON
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import time
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from mae_transfer.kernels import adamw, set_attention_kernel
from mae_transfer.models import build_mae
from mae_transfer.models.mae import MAE_MODELS

DTYPES = {"fp32": None, "bf16": torch.bfloat16}


def matmul_peak_tflops(
    device: torch.device, dtype: torch.dtype = torch.bfloat16, n_max: int = 4096, enough_s: float = 0.2
) -> float:
    """Best of a few n x n x n products: the machine's practical matmul peak at ``dtype``. n doubles from 512
    to ``n_max`` while a product takes under ``enough_s`` (a CPU that emulates bf16 needs minutes for one
    4096-cube product, a GPU or AMX a millisecond)."""
    n = 512
    while True:
        a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
        best = float("inf")
        for _ in range(5 if device.type == "cpu" else 20):
            _sync(device)
            t0 = time.perf_counter()
            a @ b
            _sync(device)
            best = min(best, time.perf_counter() - t0)
            if best >= enough_s and n < n_max:
                break  # long enough to time: this n is the measure
        if n >= n_max or best >= enough_s:
            return 2 * n**3 / best / 1e12
        n *= 2


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


class Variant:
    """One model + optimizer with its kernel choices; all variants start from the same weights."""

    def __init__(self, name: str, args: argparse.Namespace, device: torch.device, state: dict | None) -> None:
        self.name = name
        kernels = "reference" if name == "reference" else "fast"
        torch.manual_seed(0)
        self.model = build_mae(args.model, encoder_mask_tokens=name == "no-skip").to(device)
        if state is not None:
            self.model.load_state_dict(state, strict=name != "no-skip")
        set_attention_kernel(self.model, device, kernels)
        self.opt = adamw(
            self.model.parameters(), lr=1e-4, betas=(0.9, 0.95), kernels=kernels, weight_decay=0.05
        )
        self.forward = torch.compile(self.model) if name == "compiled" else self.model
        self.times: list[float] = []
        self.step_mem = 0
        self.loss = float("nan")

    def step(self, imgs: torch.Tensor, noise: torch.Tensor, dtype: torch.dtype | None) -> float:
        amp = torch.autocast(imgs.device.type, dtype=dtype) if dtype else contextlib.nullcontext()
        with amp:
            loss, _, _ = self.forward(imgs, 0.75, noise)
        loss.backward()
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        return loss.item()


def step_flops(
    args: argparse.Namespace, device: torch.device, imgs: torch.Tensor, noise: torch.Tensor
) -> int:
    model = build_mae(args.model).to(device)
    with FlopCounterMode(display=False) as counter:
        loss, _, _ = model(imgs, 0.75, noise)
        loss.backward()
    return counter.get_total_flops()


def run(args: argparse.Namespace) -> dict[str, Any]:
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    probe = build_mae(args.model)
    size, patches = probe.patch_embed.img_size, probe.patch_embed.num_patches
    gen = torch.Generator().manual_seed(0)
    imgs = torch.randn(args.batch, 3, *size, generator=gen).to(device)
    noise = torch.rand(args.batch, patches, generator=gen).to(device)
    flops = step_flops(args, device, imgs, noise)
    peaks = {name: matmul_peak_tflops(device, DTYPES[name]) for name in ("bf16", "fp32")}
    peak_dtype = max(peaks, key=peaks.get)
    peak = peaks[peak_dtype]
    names = (
        ["reference", "fast"] + (["compiled"] if args.compile else []) + (["no-skip"] if args.no_skip else [])
    )
    out: dict[str, Any] = {
        "model": args.model,
        "batch": args.batch,
        "image_size": size[0],
        "device": _device_name(device),
        "step_gflop": flops / 1e9,
        "matmul_peak_tflops": peak,
        "matmul_peak_dtype": peak_dtype,
        "rows": [],
    }
    for precision in args.precisions:
        dtype = DTYPES[precision]
        state = probe.state_dict()
        variants = [Variant(n, args, device, state) for n in names]
        for v in variants:  # warm-up (optimizer state, allocator, compilation)
            v.step(imgs, noise, dtype)
        for _ in range(args.steps):
            for v in variants:
                _sync(device)
                if device.type == "cuda":
                    torch.cuda.reset_peak_memory_stats()
                    resident = torch.cuda.memory_allocated()
                t0 = time.perf_counter()
                v.loss = v.step(imgs, noise, dtype)
                _sync(device)
                v.times.append(time.perf_counter() - t0)
                if (
                    device.type == "cuda"
                ):  # the step's own peak above everything resident (all variants' weights)
                    v.step_mem = max(v.step_mem, torch.cuda.max_memory_allocated() - resident)
        ref = variants[0]
        for v in variants:
            t = statistics.median(v.times)
            row = {
                "precision": precision,
                "variant": v.name,
                "step_s": t,
                "images_per_s": args.batch / t,
                "speedup_vs_reference": statistics.median(ref.times) / t,
                "tflops": flops / t / 1e12,
                "fraction_of_peak": flops / t / 1e12 / peak,
                "loss_after_steps": v.loss,
            }
            if device.type == "cuda":  # weights + AdamW state (fp32) + the step's activations and gradients
                row["peak_mem_gib"] = (v.step_mem + 12 * sum(p.numel() for p in v.model.parameters())) / 2**30
            if v is not ref and v.name != "no-skip":
                row["max_abs_weight_diff_vs_reference"] = max(
                    (a - b).abs().max().item() for a, b in zip(v.model.parameters(), ref.model.parameters())
                )
            out["rows"].append(row)
        del variants
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return out


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU, {torch.get_num_threads()} threads"


def print_table(res: dict[str, Any]) -> None:
    print(
        f"MAE {res['model']} pretraining step, batch {res['batch']}, {res['image_size']}px, fwd + bwd + "
        f"AdamW; {res['device']}; {res['step_gflop']:.0f} GFLOP/step; "
        f"matmul peak {res['matmul_peak_tflops']:.2f} TFLOP/s ({res['matmul_peak_dtype']})"
    )
    print(
        f"{'precision':<10}{'variant':<11}{'step s':>9}{'img/s':>9}{'x ref':>7}{'TFLOP/s':>9}"
        f"{'% peak':>12}{'loss':>9}{'max |dw|':>10}"
    )
    for r in res["rows"]:
        dw = r.get("max_abs_weight_diff_vs_reference")
        print(
            f"{r['precision']:<10}{r['variant']:<11}{r['step_s']:>9.3f}{r['images_per_s']:>9.2f}"
            f"{r['speedup_vs_reference']:>7.2f}{r['tflops']:>9.3f}{100 * r['fraction_of_peak']:>11.1f}%"
            f"{r['loss_after_steps']:>9.4f}{'' if dw is None else f'{dw:>10.1e}'}"
        )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="mae_vit_base_patch16", choices=MAE_MODELS.names())
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--steps", type=int, default=5, help="timed steps per variant (after one warm-up step)")
    p.add_argument("--precisions", nargs="+", default=["fp32", "bf16"], choices=list(DTYPES))
    p.add_argument("--compile", action="store_true", help="also time the fast path under torch.compile")
    p.add_argument("--no-skip", action="store_true", help="also time an encoder that processes mask tokens")
    p.add_argument("--device", default=None, help="cpu | cuda (default: cuda when present)")
    p.add_argument("--json", default=None, help="write the results here too")
    args = p.parse_args()
    if args.batch < 1 or args.steps < 1:
        p.error("--batch and --steps must be >= 1")
    res = run(args)
    print_table(res)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=2)


if __name__ == "__main__":
    main()
