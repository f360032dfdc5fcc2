"""Mask strategies (MAE Table 1f) expressed as per-patch *noise*.

MAE keeps the patches with the lowest noise (argsort, then the first (1 - ratio) * L). Every strategy
here returns such a noise tensor, so the model has a single masking code path and a run can pass its
own noise to be exactly reproducible.
"""

from __future__ import annotations

import math
from typing import Callable

import torch

NoiseFn = Callable[[int, int, int, float, torch.Generator | None, torch.device], torch.Tensor]


def random_noise(
    batch: int,
    grid_h: int,
    grid_w: int,
    ratio: float,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """Uniform noise: per-sample random sampling without replacement (the MAE default)."""
    return torch.rand(batch, grid_h * grid_w, generator=generator, device=device)


def grid_noise(
    batch: int,
    grid_h: int,
    grid_w: int,
    ratio: float,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """Keep one patch of every 2x2 cell (ratio fixed at 0.75); the kept corner is drawn per sample."""
    if abs(ratio - 0.75) > 1e-6:
        raise ValueError(f"grid-wise masking keeps 1 of 4 patches: mask ratio must be 0.75, got {ratio}")
    if grid_h % 2 or grid_w % 2:
        raise ValueError(f"grid-wise masking needs an even patch grid, got {grid_h}x{grid_w}")
    rows = torch.arange(grid_h, device=device)[:, None]
    cols = torch.arange(grid_w, device=device)[None, :]
    offset = torch.randint(0, 4, (batch,), generator=generator, device="cpu").to(device)
    dy, dx = (offset // 2)[:, None, None], (offset % 2)[:, None, None]
    keep = ((rows % 2)[None] == dy) & ((cols % 2)[None] == dx)
    # masked patches get noise in [1, 2): always sorted after the kept ones (noise in [0, 1))
    tie_break = torch.rand(batch, grid_h, grid_w, generator=generator, device=device)
    return (tie_break + (~keep).float()).flatten(1)


def block_noise(
    batch: int,
    grid_h: int,
    grid_w: int,
    ratio: float,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
    min_block: int = 16,
    max_aspect: float = 3.0,
) -> torch.Tensor:
    """BEiT-style block-wise masking: mask random rectangles (>= min_block patches, aspect in
    [1/max_aspect, max_aspect]) until the target count is reached. The exact count is then enforced by
    the argsort: blocked patches sort after free ones, ties broken at random."""
    target = int(round(ratio * grid_h * grid_w))
    masks = torch.zeros(batch, grid_h, grid_w, dtype=torch.bool)
    log_aspect = (math.log(1 / max_aspect), math.log(max_aspect))
    for b in range(batch):
        count, attempts = 0, 0
        while count < target and attempts < 100 * grid_h * grid_w:
            attempts += 1
            remaining = target - count
            area = min_block + torch.rand(1, generator=generator).item() * (
                max(remaining, min_block) - min_block
            )
            aspect = math.exp(
                log_aspect[0] + torch.rand(1, generator=generator).item() * (log_aspect[1] - log_aspect[0])
            )
            h = int(round(math.sqrt(area * aspect)))
            w = int(round(math.sqrt(area / aspect)))
            if not (0 < h <= grid_h and 0 < w <= grid_w):
                continue
            top = int(torch.randint(0, grid_h - h + 1, (1,), generator=generator))
            left = int(torch.randint(0, grid_w - w + 1, (1,), generator=generator))
            region = masks[b, top : top + h, left : left + w]
            new = int((~region).sum())
            if 0 < new <= max(remaining, min_block):
                region[...] = True
                count += new
    tie_break = torch.rand(batch, grid_h, grid_w, generator=generator)
    return (tie_break + masks.float()).flatten(1).to(device)


MASKING: dict[str, NoiseFn] = {"random": random_noise, "block": block_noise, "grid": grid_noise}


def mask_noise(
    strategy: str,
    batch: int,
    grid_h: int,
    grid_w: int,
    ratio: float,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """Noise for the named strategy ('random', 'block' or 'grid')."""
    try:
        fn = MASKING[strategy]
    except KeyError:
        raise ValueError(f"unknown masking strategy {strategy!r}; choose from {sorted(MASKING)}") from None
    return fn(batch, grid_h, grid_w, ratio, generator, device)
