"""Reading and writing checkpoints safely.

* Every read uses ``torch.load(weights_only=True)``: a checkpoint cannot run code. The project's own
  checkpoints hold only tensors and plain Python values, so they load the same way.
* Every write goes to a temporary file in the same folder, is fsync'ed, then atomically renamed over
  the target: a process killed mid-write never replaces the last good checkpoint.
"""

from __future__ import annotations

import argparse
import os
import pickle
import re
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import torch

from ..errors import CheckpointError
from ..utils import current_umask


def save_atomic(obj: Any, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~current_umask())  # mkstemp makes 0600 files; a team shares runs
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


# Plain types allowed besides tensors and containers: official MAE training checkpoints
# (main_pretrain.py / main_finetune.py) store their argparse arguments under 'args'.
SAFE_TYPES = [argparse.Namespace]


def load_checkpoint(path: str | Path) -> Any:
    """``torch.load(path, weights_only=True, map_location='cpu')`` with one-line errors naming the file.

    A file that holds anything but tensors, plain containers and the ``SAFE_TYPES`` is refused, naming the
    global it asked for (a crafted file cannot run code here)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        with torch.serialization.safe_globals(SAFE_TYPES):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        refused = re.search(r"unsupported global:?\s*(?:GLOBAL\s+)?([\w.]+)", str(e), re.IGNORECASE)
        if refused:
            raise CheckpointError(
                f"checkpoint {path} was refused: it asks to import {refused.group(1)}, and only "
                "weights and plain data are loaded (a pickle that imports code can run it)"
            ) from None
        raise CheckpointError(
            f"checkpoint {path} is unreadable or truncated (not a torch checkpoint)"
        ) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"checkpoint {path} is unreadable or truncated ({first})") from None


def extract_state_dict(obj: Any, path: str | Path = "<checkpoint>") -> dict[str, torch.Tensor]:
    """The model state dict inside common checkpoint containers ('model', 'state_dict', 'module')."""
    for key in ("model", "state_dict", "module", "model_state"):
        if isinstance(obj, dict) and key in obj and isinstance(obj[key], dict):
            obj = obj[key]
            break
    if not isinstance(obj, dict) or not all(isinstance(k, str) for k in obj):
        raise CheckpointError(
            f"{path}: no state dict found (expected a dict of tensors, or one under 'model' / 'state_dict')"
        )
    tensors = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise CheckpointError(f"{path}: the state dict holds no tensors")
    return tensors
