"""Fixed 2-D sine-cosine position embeddings (MAE, App. A.1).

Layout follows the official MAE release so embeddings built here equal the ones stored in its
checkpoints: the first half of the channels encodes the column (x), the second half the row (y).
"""

from __future__ import annotations

import torch


def sincos_1d(dim: int, positions: torch.Tensor) -> torch.Tensor:
    """(M,) positions -> (M, dim) embedding: [sin(pos * w_k), cos(pos * w_k)], w_k = 1/10000^(2k/dim)."""
    if dim % 2:
        raise ValueError(f"sin-cos embedding needs an even dim, got {dim}")
    omega = 1.0 / 10000 ** (torch.arange(dim // 2, dtype=torch.float64) / (dim / 2.0))
    angles = positions.reshape(-1).to(torch.float64)[:, None] * omega[None, :]
    return torch.cat([angles.sin(), angles.cos()], dim=1)


def sincos_2d(dim: int, grid_size: int | tuple[int, int], cls_token: bool = False) -> torch.Tensor:
    """(1, [1 +] H*W, dim) fixed embedding for a H x W patch grid, row-major; a zero row for the cls token."""
    gh, gw = (grid_size, grid_size) if isinstance(grid_size, int) else grid_size
    if dim % 4:
        raise ValueError(f"2-D sin-cos embedding needs dim divisible by 4, got {dim}")
    rows, cols = torch.meshgrid(torch.arange(gh), torch.arange(gw), indexing="ij")
    emb = torch.cat([sincos_1d(dim // 2, cols), sincos_1d(dim // 2, rows)], dim=1)
    if cls_token:
        emb = torch.cat([torch.zeros(1, dim, dtype=emb.dtype), emb], dim=0)
    return emb.float().unsqueeze(0)
