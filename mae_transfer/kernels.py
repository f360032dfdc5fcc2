"""Kernel choices of the fast path, in one place: the same math as the official code with faster kernels.

- AdamW: torch's fused implementation (one kernel over all parameters) instead of torch's default (a
  per-parameter loop on CPU, multi-tensor ``foreach`` on GPU).
- Attention on CPU: timm's explicit matmul + softmax path instead of scaled_dot_product_attention, whose CPU
  (flash) backward is the slowest op of a bf16 MAE step (~3x the explicit path's); on GPU, SDPA (flash).

``reference`` keeps the kernels of the official code run with this environment's timm (SDPA attention,
torch's default AdamW): bit-exact with models_mae.py + main_pretrain.py. In fp32 the fast path agrees with
it to rounding (tests/test_mae.py states the tolerance); benchmarks/bench_pretrain.py measures the difference.
"""

from __future__ import annotations

from typing import Iterable

import torch
import torch.nn as nn

from .errors import ConfigError

KERNELS = ("fast", "reference")


def check_kernels(kernels: str) -> None:
    if kernels not in KERNELS:
        raise ConfigError(f"config key 'kernels': unknown {kernels!r}; choose from {', '.join(KERNELS)}")


def set_attention_kernel(model: nn.Module, device: torch.device, kernels: str) -> None:
    """Pick the attention kernel of every timm attention module in ``model`` for ``device``."""
    if kernels == "fast":
        for module in model.modules():
            if hasattr(module, "fused_attn"):
                module.fused_attn = device.type != "cpu"


def adamw(
    params: Iterable, lr: float, betas: tuple[float, float], kernels: str, weight_decay: float = 0.01
) -> torch.optim.AdamW:
    """AdamW over ``params`` (tensors or groups); fused when ``kernels == 'fast'``."""
    return torch.optim.AdamW(params, lr=lr, betas=betas, weight_decay=weight_decay, fused=kernels == "fast")
