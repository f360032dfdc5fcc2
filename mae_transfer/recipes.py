"""Every paper number in one place: per-entry hyperparameters and the tables to reproduce.

Configs and reports read these; nothing else hard-codes them. Sources: He et al. 2021 (MAE, Tables 4, 5,
7) and Li et al. 2021 ("Benchmarking Detection Transfer Learning with Vision Transformers"), see
../shared/docs/recipes.md.
"""
from __future__ import annotations

from typing import Any

from .errors import ConfigError

INITS = ("random", "supervised", "mocov3", "beit", "mae")

# Backbone settings an initialization needs to load at all (not tuned values).
INIT_BACKBONE: dict[str, dict[str, Any]] = {
    # BEiT brings per-block relative position tables and LayerScale; it has no absolute position embedding
    "beit": {"rel_pos": "per_block", "init_values": 0.1},
}

# COCO Mask R-CNN (Li et al.'s selected values; drop path by model size).
DET_ENTRIES: dict[str, dict[str, float]] = {
    "random": {"lr": 1.6e-4, "weight_decay": 0.2},
    "supervised": {"lr": 8e-5, "weight_decay": 0.1},
    "mocov3": {"lr": 1.6e-4, "weight_decay": 0.1},
    "beit": {"lr": 8e-5, "weight_decay": 0.1},
    "mae": {"lr": 8e-5, "weight_decay": 0.1},
}
DET_DROP_PATH = {"B": 0.1, "L": 0.3}
# The later ViTDet recipe (detectron2 projects/ViTDet), for MAE init: simple pyramid, layer decay.
VITDET_ENTRIES: dict[str, dict[str, float]] = {
    "B": {"lr": 1e-4, "weight_decay": 0.1, "drop_path": 0.1, "layer_decay": 0.7},
    "L": {"lr": 1e-4, "weight_decay": 0.1, "drop_path": 0.4, "layer_decay": 0.8},
}
VITDET_NUMBERS = {"B": (51.6, 45.9), "L": (55.5, 49.2)}  # APbox, APmask
# 100 epochs = 184,375 iterations at batch 64 (COCO train2017, 118k images)
DET_ITERS_100EP_B64 = 184_375
DET_BATCH = 64


def det_iters(epochs: float, batch: int = DET_BATCH) -> int:
    """Iterations for an ``epochs`` schedule at ``batch`` (25 -> 46,094; 50 -> 92,188; 100 -> 184,375)."""
    return int(round(epochs / 100 * DET_ITERS_100EP_B64 * DET_BATCH / batch))


# ADE20K UperNet: the public MAE ViT-B reproduction's values; the paper searched lr per entry.
SEG_ENTRIES: dict[str, dict[str, float]] = {
    "random": {"lr": 1e-4},
    "supervised": {"lr": 1e-4},
    "mocov3": {"lr": 1e-4},
    "beit": {"lr": 1e-4},
    "mae": {"lr": 1e-4},
}
SEG_DROP_PATH = {"B": 0.1, "L": 0.1}

# ---------------------------------------------------------------- numbers to reproduce
TABLE4 = {  # COCO val2017 (APbox, APmask) for ViT-B, ViT-L
    "supervised": {"B": (47.9, 42.9), "L": (49.3, 43.9)},
    "mocov3": {"B": (47.9, 42.7), "L": (49.3, 44.0)},
    "beit": {"B": (49.8, 44.4), "L": (53.3, 47.1)},
    "mae": {"B": (50.3, 44.9), "L": (53.3, 47.2)},
}
TABLE5 = {  # ADE20K val mIoU for ViT-B, ViT-L
    "supervised": {"B": 47.4, "L": 49.9},
    "mocov3": {"B": 47.3, "L": 49.1},
    "beit": {"B": 47.1, "L": 53.3},
    "mae": {"B": 48.1, "L": 53.6},
}
# Random init's best schedule (Li et al.), for context in reports
RANDOM_INIT_APBOX = {"B": 48.9, "L": 50.7}


# ---------------------------------------------------------------- applying an entry to a config
def det_entry_values(init: str = "mae", size: str = "B", recipe: str = "li") -> dict[str, float]:
    """lr, weight decay, drop path and layer decay of a Table 4 entry (``recipe``: li | vitdet)."""
    if init not in INITS:
        raise ConfigError(f"unknown initialization {init!r}; choose from {', '.join(INITS)}")
    if size not in DET_DROP_PATH:
        raise ConfigError(f"unknown model size {size!r}; choose from {', '.join(DET_DROP_PATH)}")
    if recipe == "vitdet":
        return dict(VITDET_ENTRIES[size])
    if recipe != "li":
        raise ConfigError(f"unknown detection recipe {recipe!r}; choose li or vitdet")
    return {**DET_ENTRIES[init], "drop_path": DET_DROP_PATH[size], "layer_decay": 1.0}


def set_det_entry(optimizer: Any, backbone: Any, init: str = "mae", size: str = "B", recipe: str = "li",
                  **_: Any) -> dict[str, float]:
    """Write an entry's values into a detection config's optimizer and backbone nodes (dict-like)."""
    values = det_entry_values(init, size, recipe)
    optimizer.lr = values["lr"]
    optimizer.weight_decay = values["weight_decay"]
    optimizer.params.layer_decay = values["layer_decay"]
    backbone.drop_path_rate = values["drop_path"]
    for key, value in INIT_BACKBONE.get(init, {}).items():
        backbone[key] = value
    return values


def seg_entry_values(init: str = "mae", size: str = "B") -> dict[str, float]:
    if init not in INITS:
        raise ConfigError(f"unknown initialization {init!r}; choose from {', '.join(INITS)}")
    if size not in SEG_DROP_PATH:
        raise ConfigError(f"unknown model size {size!r}; choose from {', '.join(SEG_DROP_PATH)}")
    return {**SEG_ENTRIES[init], "drop_path": SEG_DROP_PATH[size]}
