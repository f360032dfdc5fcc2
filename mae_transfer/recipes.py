"""Every number that decides a Table 4 / 5 result, with its source, and the recipe card that shows them.

The config files carry these numbers as literals (a reader sees each where it acts, as in detectron2's
ViTDet configs); this module is the reference they are checked against (``tests/test_recipes.py``) and
the source column of every run's recipe card (``recipe.json``, ``--print-recipe``). A reference value is
``(value, source key)``; ``SOURCES`` says what each key cites.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
from pathlib import Path
from typing import Any, Callable, Mapping

from .errors import ConfigError
from .runlog import CONSOLE_ONLY, FILE_ONLY

SOURCES = {
    "mae": "He et al. 2021 (MAE), arXiv 2111.06377",
    "mae_t8": "MAE Table 8 + facebookresearch/mae main_pretrain.py",
    "mae_t9": "MAE Table 9 (App. A.1, end-to-end fine-tuning)",
    "mae_t10": "MAE Table 10 (App. A.1, linear probing)",
    "li2021": "Li et al. 2021, arXiv 2111.11429 (MAE App. A.3)",
    "vitdet": "detectron2 projects/ViTDet/configs/COCO/mask_rcnn_vitdet_{b,l}_100ep.py @ 02b5c4e",
    "mmseg_mae": "mmsegmentation 1.2.2 configs/mae/mae-base_upernet_8xb2-amp-160k_ade20k-512x512.py",
    "beit_l": "microsoft/unilm beit/semantic_segmentation/configs/beit/upernet/"
    "upernet_beit_large_24_512_slide_160k_ade20k_pt2ft.py @ 86f74f0",
    "mae_a4": "MAE App. A.4 (UperNet following BEiT's code; lr searched per entry)",
    "flag": "command line",
}
PROJECT = "this project's choice"
Ref = tuple[Any, str]

INITS = ("random", "supervised", "mocov3", "beit", "mae")
# The ViT sizes the full-size configs are written for (a config for another size is refused, see cli.py)
VIT_SIZES = {"mae_vit_b": "B", "mae_vit_l": "L", "mae_vit_h": "H"}

# Backbone settings an initialization needs to load at all (not tuned values).
INIT_BACKBONE: dict[str, dict[str, Any]] = {
    # BEiT brings per-block relative position tables and LayerScale; it has no absolute position embedding
    "beit": {"rel_pos": "per_block", "init_values": 0.1},
}

# ---------------------------------------------------------------- COCO Mask R-CNN (Table 4)
# Li et al.'s selected values per initialization; drop path by model size.
DET_ENTRIES: dict[str, dict[str, float]] = {
    "random": {"lr": 1.6e-4, "weight_decay": 0.2},
    "supervised": {"lr": 8e-5, "weight_decay": 0.1},
    "mocov3": {"lr": 1.6e-4, "weight_decay": 0.1},
    "beit": {"lr": 8e-5, "weight_decay": 0.1},
    "mae": {"lr": 8e-5, "weight_decay": 0.1},
}
DET_DROP_PATH = {"B": 0.1, "L": 0.3}
# 100 epochs = 184,375 iterations at batch 64 (COCO train2017, 118k images)
DET_ITERS_100EP_B64 = 184_375
DET_BATCH = 64
# The later ViTDet recipe (MAE init): simple pyramid, layer decay, step schedule; its published results.
VITDET_ENTRIES: dict[str, dict[str, float]] = {
    "B": {"lr": 1e-4, "weight_decay": 0.1, "drop_path": 0.1, "layer_decay": 0.7},
    "L": {"lr": 1e-4, "weight_decay": 0.1, "drop_path": 0.4, "layer_decay": 0.8},
}
VITDET_MILESTONES = (163_889, 177_546)
VITDET_RESULTS = {"B": (51.6, 45.9), "L": (55.5, 49.2)}  # APbox, APmask


def det_iters(epochs: float, batch: int = DET_BATCH) -> int:
    """Iterations for an ``epochs`` schedule at ``batch`` (25 -> 46,094; 50 -> 92,188; 100 -> 184,375)."""
    return int(round(epochs / 100 * DET_ITERS_100EP_B64 * DET_BATCH / batch))


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


def det_reference(init: str, size: str, recipe: str, epochs: int) -> dict[str, Ref]:
    """What a full-size detection config of this entry must hold, each value with its source."""
    v = det_entry_values(init, size, recipe)
    src = "vitdet" if recipe == "vitdet" else "li2021"
    common = {
        "batch": (DET_BATCH, src),
        "input_size": (1024, src),
        "lsj_scale": ((0.1, 2.0), src),
        "optimizer": ("AdamW", src),
        "betas": ((0.9, 0.999), src),
        "amp": (True, src),
        "window_size": (14, src),
        "lr": (v["lr"], src),
        "weight_decay": (v["weight_decay"], src),
        "drop_path": (v["drop_path"], src),
        "layer_decay": (v["layer_decay"], src),
        "max_iter": (det_iters(epochs), src),
        "global_blocks": ((2, 5, 8, 11) if size == "B" else (5, 11, 17, 23), src),
    }
    if recipe == "vitdet":
        return {
            **common,
            "schedule": ("multistep", src),
            "milestones": (VITDET_MILESTONES, src),
            "warmup_iters": (250, src),
            "warmup_factor": (0.001, src),
            "weight_decay_rule": ("vitdet", src),
            "pyramid": ("simple", src),
            "rel_pos": ("decomposed", src),
        }
    return {
        **common,
        "schedule": ("cosine", src),
        "milestones": ((), src),
        "warmup_iters": (round(0.25 / epochs * det_iters(epochs)), src),
        "pyramid": ("multitap", src),
        "rel_pos": ("shared", src),
    }


# ---------------------------------------------------------------- ADE20K UperNet (Table 5)
SEG_BATCH = 16  # mmseg_mae: 8 GPUs x 2 images
# The public MAE ViT-B reproduction (mmseg's config, checked against the installed package); ViT-L from the
# only ViT-L/16 512px UperNet config in BEiT's segmentation code, which the MAE paper follows. That BEiT-L
# config is for intermediate-fine-tuned BEiT, so the Table 5 search also searches layer decay for ViT-L.
SEG_REFERENCE: dict[str, dict[str, Ref]] = {
    "B": {
        "optimizer": ("AdamW", "mmseg_mae"),
        "lr": (1e-4, "mmseg_mae"),
        "weight_decay": (0.05, "mmseg_mae"),
        "betas": ((0.9, 0.999), "mmseg_mae"),
        "layer_decay": (0.65, "mmseg_mae"),
        "drop_path": (0.1, "mmseg_mae"),
        "taps": ((3, 5, 7, 11), "mmseg_mae"),
        "warmup_iters": (1500, "mmseg_mae"),
        "warmup_start_factor": (1e-6, "mmseg_mae"),
        "poly_power": (1.0, "mmseg_mae"),
        "max_iters": (160_000, "mmseg_mae"),
        "batch_per_gpu": (2, "mmseg_mae"),
        "crop_size": ((512, 512), "mmseg_mae"),
        "resize_scale": ((2048, 512), "mmseg_mae"),
        "resize_ratio": ((0.5, 2.0), "mmseg_mae"),
        "cat_max_ratio": (0.75, "mmseg_mae"),
        "test_mode": ("slide", "mmseg_mae"),
        "test_stride": ((341, 341), "mmseg_mae"),
        "head_channels": (768, "mmseg_mae"),
        "pool_scales": ((1, 2, 3, 6), "mmseg_mae"),
        "aux_loss_weight": (0.4, "mmseg_mae"),
        "aux_in_index": (2, "mmseg_mae"),
    },
}
SEG_REFERENCE["L"] = {
    **SEG_REFERENCE["B"],
    "layer_decay": (0.95, "beit_l"),
    "drop_path": (0.2, "beit_l"),
    "taps": ((7, 11, 15, 23), "beit_l"),
    "head_channels": (1024, "beit_l"),
    "lr": (1e-4, "mae_a4"),
}
SEG_ENTRIES = {init: {"lr": 1e-4} for init in INITS}  # the paper searched lr per entry (mae_a4)


def seg_entry_values(init: str = "mae", size: str = "B") -> dict[str, float]:
    if init not in INITS:
        raise ConfigError(f"unknown initialization {init!r}; choose from {', '.join(INITS)}")
    if size not in SEG_REFERENCE:
        raise ConfigError(f"unknown model size {size!r}; choose from {', '.join(SEG_REFERENCE)}")
    ref = SEG_REFERENCE[size]
    return {**SEG_ENTRIES[init], "drop_path": ref["drop_path"][0], "layer_decay": ref["layer_decay"][0]}


# ---------------------------------------------------------------- pretraining and classification
_PRETRAIN: dict[str, Ref] = {
    "blr": (1.5e-4, "mae_t8"),
    "weight_decay": (0.05, "mae_t8"),
    "betas": ((0.9, 0.95), "mae_t8"),
    "wd_exempt_tokens": (False, "mae_t8"),
    "warmup_epochs": (40, "mae_t8"),
    "epochs": (1600, "mae_t8"),
    "effective_batch": (4096, "mae_t8"),
    "input_size": (224, "mae_t8"),
    "mask_ratio": (0.75, "mae_t8"),
    "mask_strategy": ("random", "mae_t8"),
    "norm_pix_loss": (True, "mae_t8"),
    "min_lr": (0.0, "mae_t8"),
    "loss_on_all_patches": (False, "mae_t8"),
    "augmentation": ("RandomResizedCrop(0.2-1, bicubic)+flip", "mae_t8"),
}
# recipe name (a config's ``recipe`` field) -> reference: the released models and Table 1's ablation setting
PRETRAIN_REFERENCES = {"mae_t8": _PRETRAIN, "mae_t8_ablation": {**_PRETRAIN, "epochs": (800, "mae_t8")}}
FINETUNE_REFERENCE: dict[str, dict[str, Ref]] = {
    size: {
        "blr": (1e-3, "mae_t9"),
        "weight_decay": (0.05, "mae_t9"),
        "layer_decay": (0.75, "mae_t9"),
        "effective_batch": (1024, "mae_t9"),
        "warmup_epochs": (5, "mae_t9"),
        "epochs": (100 if size == "B" else 50, "mae_t9"),
        "drop_path": (0.2 if size == "H" else 0.1, "mae_t9"),
        "smoothing": (0.1, "mae_t9"),
        "mixup": (0.8, "mae_t9"),
        "cutmix": (1.0, "mae_t9"),
        "randaug": ("rand-m9-mstd0.5-inc1", "mae_t9"),
        "optimizer": ("adamw", "mae_t9"),
        "input_size": (224, "mae_t9"),
    }
    for size in ("B", "L", "H")
}
LINPROBE_REFERENCE: dict[str, Ref] = {
    "optimizer": ("lars", "mae_t10"),
    "blr": (0.1, "mae_t10"),
    "weight_decay": (0.0, "mae_t10"),
    "momentum": (0.9, "mae_t10"),
    "effective_batch": (16384, "mae_t10"),
    "warmup_epochs": (10, "mae_t10"),
    "epochs": (90, "mae_t10"),
    "mixup": (0.0, "mae_t10"),
    "cutmix": (0.0, "mae_t10"),
    "drop_path": (0.0, "mae_t10"),
    "input_size": (224, "mae_t10"),
}

# What each weight-decay rule exempts (the recipe cards say it beside the rule's name)
WD_EXEMPT = {
    "li": "biases, 1-D tensors (norms), position / cls tokens, rel-pos tables (this project's shared rule)",
    "vitdet": "norm layers and pos_embed only (detectron2 get_default_optimizer_params, weight_decay_norm=0)",
    "official_mae": "biases and 1-D tensors only (timm add_weight_decay, as main_pretrain.py)",
}

# Differences from a cited source that are deliberate: (recipe, quantity) -> why. Shown on the recipe card;
# tests/test_recipes.py fails on any difference not listed here.
DEVIATIONS: dict[tuple[str, str], str] = {
    ("vitdet", "rel_pos"): "one zero-init bias table per attention kind, as Li et al. (ViTDet: decomposed "
    "per-block rel-pos; both start at zero)",
    (
        "finetune",
        "randaug",
    ): "mmax9: PIL >= 10 rejects the 0-bit posterize that timm's magnitude noise reaches at 10",
}

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


# ---------------------------------------------------------------- the recipe card
def same_value(a: Any, b: Any) -> bool:
    """Equality for config numbers: floats to 1e-9 relative, sequences element-wise (tuple == list)."""
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(same_value(x, y) for x, y in zip(a, b))
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b or a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
    return a == b


def track_changes(
    values: Callable[[], Mapping[str, Any]], changed_by: dict[str, str], step: str, change: Callable[[], Any]
) -> None:
    """Run ``change`` and record ``step`` (e.g. ``--init random``) for every quantity of ``values()`` it
    moved, so the recipe card names what changed each number."""
    before = values()
    change()
    changed_by.update({k: step for k, v in values().items() if not same_value(v, before.get(k))})


@dataclasses.dataclass
class RecipeCard:
    """The hyperparameters that decide a run's result, each with its value and source.

    ``rows``: (quantity, value, source); ``claims``: the recipe the run compares against (or '' when the
    config claims none, e.g. the CPU miniatures); ``notes``: free lines (global batch, targets, flags).
    """

    task: str
    claims: str
    rows: list[tuple[str, Any, str]]
    notes: list[str] = dataclasses.field(default_factory=list)

    def differences(self) -> list[str]:
        """Quantities whose value differs from the claimed recipe without a declared reason."""
        return [name for name, _, source in self.rows if source.startswith("CHANGED")]

    def format(self) -> str:
        head = f"recipe card: {self.task}" + (
            f" - {self.claims}" if self.claims else " (no published recipe claimed)"
        )
        width = max((len(r[0]) for r in self.rows), default=8)
        lines = [head] + [f"  {n:<{width}}  {_fmt(v):<18}  {s}" for n, v, s in self.rows]
        used = sorted({k for _, _, s in self.rows for k in SOURCES if k in s.replace(",", " ").split()})
        return "\n".join(
            lines + [f"  {note}" for note in self.notes] + [f"  [{k}] {SOURCES[k]}" for k in used]
        )

    def format_compact(self, width: int = 110) -> str:
        """The card in a few lines (the console's first screen): values grouped by source, each change on a
        line of its own; the full card goes to the log file and recipe.json."""
        import textwrap

        head = f"recipe card: {self.task}" + (
            f" - {self.claims}" if self.claims else " (no published recipe claimed)"
        )
        groups: dict[str, list[str]] = {}
        changed = []
        for name, value, source in self.rows:
            if source.startswith(("CHANGED", "deviation")):
                changed.append(f"  {name}={_fmt(value)}: {source}")
            else:
                groups.setdefault(source, []).append(f"{name}={_fmt(value)}")
        lines = [head] + [
            textwrap.fill(", ".join(items), width, initial_indent=f"  [{source}] ", subsequent_indent="    ")
            for source, items in groups.items()
        ]
        return "\n".join(lines + changed + [f"  {note}" for note in self.notes])

    def log(self, logger: logging.Logger) -> None:
        """The full card into the run's log file, the compact one on the console."""
        logger.info("%s", self.format(), extra=FILE_ONLY)
        logger.info("%s", self.format_compact(), extra=CONSOLE_ONLY)

    def render(self, fmt: str = "text") -> str:
        """``format()`` (text) or the rows as recipe.json holds them (json)."""
        return self.format() if fmt == "text" else json.dumps(self.to_dict(), default=str, sort_keys=True)

    def to_dict(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "claims": self.claims,
            "notes": self.notes,
            "rows": [{"name": n, "value": v, "source": s} for n, v, s in self.rows],
        }

    def write(self, out_dir: str | Path) -> Path:
        from .utils import write_json_atomic

        return write_json_atomic(
            json.loads(json.dumps(self.to_dict(), default=str)), Path(out_dir) / "recipe.json"
        )


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.6g}"
    if isinstance(v, (list, tuple)):
        return "(" + ", ".join(_fmt(x) for x in v) + ")"
    return str(v)


def make_card(
    task: str,
    claims: str,
    values: Mapping[str, Any],
    reference: Mapping[str, Ref],
    recipe: str = "",
    changed_by: Mapping[str, str] | None = None,
    notes: list[str] | None = None,
) -> RecipeCard:
    """Source of each value: the reference's source key (see ``SOURCES``) when equal; a declared deviation's
    reason; else ``CHANGED from SOURCE VALUE`` — or, with no reference for the quantity, this project's
    choice. ``changed_by``: quantity -> what set it (``--init random``, an override), named on the card."""
    rows = []
    for name, value in values.items():
        by = (changed_by or {}).get(name)
        if name in reference:
            ref, src = reference[name]
            if same_value(value, ref):
                source = src + (f" ({by})" if by else "")
            elif (recipe, name) in DEVIATIONS:
                source = f"deviation from {src} ({_fmt(ref)}): {DEVIATIONS[(recipe, name)]}"
            else:
                source = f"CHANGED{f' by {by}' if by else ''} from {src} {_fmt(ref)}"
        else:
            source = PROJECT + (f" ({by})" if by else "")
        rows.append((name, value, source))
    return RecipeCard(task, claims, rows, list(notes or []))
