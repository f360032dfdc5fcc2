"""Small shared helpers: precision selection, seeding, atomic JSON."""

from __future__ import annotations

import contextlib
import functools
import json
import os
import random
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .errors import ConfigError


def cpu_has_native_bf16() -> bool:
    """True when this CPU multiplies bf16 natively (AVX512-BF16 or AMX): there bf16 autocast runs matmuls and
    convolutions 2-4x faster than fp32; elsewhere bf16 is emulated and slower, so ``auto`` keeps fp32."""
    return torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()


def resolve_precision(precision: str, device: torch.device) -> torch.dtype | None:
    """Autocast dtype for 'auto' | 'fp32' | 'bf16' | 'fp16' on this device (None = full precision).

    auto: bf16 on GPUs that support it (else fp16), bf16 on CPUs with native bf16 (else fp32). Parameters,
    gradients and optimizer state stay fp32 in every case (autocast only lowers the compute)."""
    if precision == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.bfloat16 if cpu_has_native_bf16() else None
    table = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
    if precision not in table:
        raise ConfigError(f"unknown precision {precision!r}; choose from auto, fp32, bf16, fp16")
    if table[precision] is torch.float16 and device.type != "cuda":
        raise ConfigError("precision fp16 needs a CUDA device; use bf16 or fp32 on CPU")
    return table[precision]


def precision_name(dtype: torch.dtype | None) -> str:
    return {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[dtype]


def autocast(device: torch.device, dtype: torch.dtype | None):
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def autocast_training_forward(model: torch.nn.Module, device_type: str, dtype: torch.dtype) -> None:
    """Run ``model``'s forward under autocast while it is in training mode (evaluation stays full precision),
    for trainers that have no autocast of their own on this device. Backward and the optimizer step run
    outside autocast, as torch recommends; bf16 keeps fp32's exponent range, so no loss scaling is needed."""
    forward = model.forward

    @functools.wraps(forward)
    def autocast_forward(*args: Any, **kwargs: Any) -> Any:
        if not model.training:
            return forward(*args, **kwargs)
        with torch.autocast(device_type=device_type, dtype=dtype):
            return forward(*args, **kwargs)

    model.forward = autocast_forward


def seed_all(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def write_text_atomic(text: str, path: str | Path) -> Path:
    """Write through a temporary file renamed over ``path``: readers never see a half-written file. The
    file gets the usual umask permissions (mkstemp's 0600 would hide it from a team sharing runs)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.chmod(tmp, 0o666 & ~current_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_json_atomic(data: Any, path: str | Path) -> Path:
    return write_text_atomic(json.dumps(data, indent=2, sort_keys=False) + "\n", path)
