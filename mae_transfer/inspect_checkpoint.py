"""Which checkpoint is this, and what would loading it into a backbone do? (``tools/inspect_checkpoint.py``)

The file is read with the same safe loader as every run (weights only), its container and key family name
the format, and the backbone's own ``load_pretrained`` is run on it, so the answer is exactly what a run
would do. Each outcome is sorted into *expected* (the decoder or a classifier head set aside, position
embeddings resized to the input grid, relative position bias and the pyramid newly initialized) and
*suspicious* (the loader refuses the file, transformer weights set aside, a width or depth mismatch,
nothing loaded).
"""

from __future__ import annotations

import argparse
import dataclasses
import re
from typing import Any

import torch

from .backbone import backbone_for, build_backbone
from .checkpoints.convert import _collapse, detect_source, infer_vit_arch, to_canonical
from .checkpoints.io import extract_state_dict, load_checkpoint
from .errors import CheckpointError

# keys a transfer is expected to leave behind, and why
EXPECTED_IGNORED = (
    (r"^(decoder_|mask_token)", "MAE decoder (pretraining only)"),
    (r"^(head\.|head_dist\.|fc_norm\.|pre_logits|lm_head\.)", "classifier / pretraining head"),
    (r"^dist_token$", "DeiT distillation token"),
    (r"^(module\.)?(momentum_encoder|predictor)\.", "MoCo v3 momentum encoder / predictor"),
    (r"^norm\.(weight|bias)$", "final norm (the pyramid taps blocks before it)"),
    (r"^cls_token$", "cls token (this backbone keeps none)"),
    (r"relative_position_index$", "buffer rebuilt by the model"),
    (r"^rel_pos_bias\.relative_position_bias_table$", "BEiT shared table (this backbone has no table)"),
)
EXPECTED_NEW = (
    (r"^pyramid\.", "pyramid (built at transfer)"),
    (r"relative_position_bias_table$", "relative position bias (added at transfer, zero-initialized)"),
    (r"ls[12]\.gamma$", "LayerScale the checkpoint lacks"),
)
EXPECTED_RESIZED = (
    (r"pos_embed", "position embeddings follow the input grid"),
    (r"relative_position_bias_table", "relative position table follows the window / grid"),
    (r"patch_embed\.proj\.weight", "patch kernel resampled to the backbone's patch size (FlexiViT)"),
)
# whole-model training checkpoints of the harnesses: their backbone keys sit under these prefixes
HARNESS_PREFIXES = {
    "backbone.bottom_up.": "detectron2 checkpoint (tools/train_det.py: model_final.pth / model_NNNNNNN.pth)",
    "backbone.": "mmengine / mmseg checkpoint (tools/train_seg.py: iter_N.pth)",
}


@dataclasses.dataclass
class Diagnosis:
    """What ``inspect_checkpoint`` found: the format, the architecture, and what loading does."""

    path: str
    format: str
    source: str = ""
    arch: dict[str, Any] = dataclasses.field(default_factory=dict)
    backbone: str = ""
    outcome: dict[str, list[tuple[str, str]]] = dataclasses.field(default_factory=dict)  # kind -> (keys, why)
    suspicious: list[str] = dataclasses.field(default_factory=list)
    notes: list[str] = dataclasses.field(default_factory=list)

    def format_text(self) -> str:
        lines = [f"checkpoint:   {self.path}", f"format:       {self.format}"]
        if self.arch:
            a = self.arch
            grid = (
                f", pretraining grid {a['pretrain_grid']}x{a['pretrain_grid']}"
                if "pretrain_grid" in a
                else ""
            )
            lines.append(
                f"architecture: ViT patch {a['patch_size']}, width {a['embed_dim']}, depth {a['depth']}"
                f"{grid}" + (f" (key family: {self.source})" if self.source else "")
            )
        if self.backbone:
            lines.append(f"loading into: {self.backbone}")
        for kind, entries in self.outcome.items():
            for keys, why in entries:
                lines.append(f"  {kind:<18}{keys}" + (f"  [expected: {why}]" if why else ""))
        lines += [f"  note: {n}" for n in self.notes]
        lines += [f"SUSPICIOUS: {s}" for s in self.suspicious] or ["suspicious:   nothing"]
        return "\n".join(lines)


def _container(raw: Any, state: dict[str, torch.Tensor]) -> str:
    """The file's format from its container keys and its key family."""
    keys = set(raw) if isinstance(raw, dict) else set()
    source = detect_source(state)
    for prefix, name in HARNESS_PREFIXES.items():
        if any(k.startswith(prefix + "vit.") for k in state):
            return name
    if isinstance(raw.get("args") if isinstance(raw, dict) else None, argparse.Namespace):
        kind = "pretraining" if source == "mae" else "fine-tuning"
        return (
            f"official MAE {kind} training checkpoint "
            f"(main_{'pretrain' if source == 'mae' else 'finetune'}.py "
            f"checkpoint-N.pth, epoch {raw.get('epoch', '?')})"
        )
    if "arch" in keys and isinstance(raw["arch"], dict):
        return "this project's exported encoder (tools/pretrain.py encoder.pth / tools/export_encoder.py)"
    if "config" in keys and "optimizer" in keys:
        return f"this project's training checkpoint (tools/pretrain.py, epoch {raw.get('epoch', '?')})"
    if source == "mocov3":
        return "MoCo v3 checkpoint (base + momentum encoder, predictor)"
    if source == "beit":
        return "BEiT checkpoint (relative position tables, LayerScale, q/v biases)"
    if source == "mae":
        return "MAE encoder + decoder (official mae_visualize_*.pth, or a full MAE model)"
    if "dist_token" in state:
        return "DeiT (distilled) supervised ViT"
    if "fc_norm.weight" in state and "head.weight" in state:
        return "fine-tuned ViT with global pooling (official mae_finetuned_*.pth)"
    if "head.weight" in state:
        return "supervised ViT classifier (DeiT / timm)"
    return "ViT encoder without head (official mae_pretrain_vit_*.pth, timm *.mae, or an exported encoder)"


def _sort(keys: list[str], rules: tuple[tuple[str, str], ...]) -> tuple[list[tuple[str, str]], list[str]]:
    """(expected groups as (collapsed keys, reason), keys matching no rule)."""
    groups: dict[str, list[str]] = {}
    other = []
    for k in keys:
        k = re.sub(r"^vit\.", "", k)  # the backbone's ViT trunk: show the checkpoint's own names
        why = next((w for pattern, w in rules if re.search(pattern, k.split(" ")[0])), None)
        if why is None:
            other.append(k)
        else:
            groups.setdefault(why, []).append(k)
    return [
        (", ".join(_collapse(v)[:4]) + (f" ... ({len(v)})" if len(_collapse(v)) > 4 else ""), why)
        for why, v in groups.items()
    ], other


def inspect_checkpoint(path: str, backbone: str | None = None, **overrides: Any) -> Diagnosis:
    """Name the format of ``path`` and load it into ``backbone`` (default: the registered backbone of its
    shape) the way a run would; see the module docstring."""
    raw = load_checkpoint(path)
    state = extract_state_dict(raw, path)
    diag = Diagnosis(path=str(path), format=_container(raw, state))
    prefix = next((p for p in HARNESS_PREFIXES if any(k.startswith(p + "vit.") for k in state)), None)
    if prefix:
        diag.suspicious.append(
            f"a whole {'detector' if 'bottom_up' in prefix else 'segmenter'} (keys under "
            f"'{prefix}'), not a backbone initialization: continue it with its harness "
            "(--resume, --eval-only --checkpoint) rather than --weights"
        )
        vit = {k[len(prefix) + 4 :]: v for k, v in state.items() if k.startswith(prefix + "vit.")}
        if "patch_embed.proj.weight" in vit:
            diag.arch = infer_vit_arch(vit)
        return diag
    try:
        canonical, _, diag.source, _ = to_canonical(state)
    except CheckpointError as e:
        diag.suspicious.append(str(e))
        return diag
    diag.arch = infer_vit_arch(canonical)
    name = backbone or backbone_for(diag.arch["embed_dim"], diag.arch["depth"], diag.arch["patch_size"])
    if name is None:
        diag.suspicious.append(
            f"no registered backbone has width {diag.arch['embed_dim']} and depth "
            f"{diag.arch['depth']}: pass --backbone"
        )
        return diag
    bb = build_backbone(name, **overrides)
    diag.backbone = (
        f"{name} (patch {bb.vit.patch_size}, grid {bb.vit.grid[0]}x{bb.vit.grid[1]})"
        if hasattr(bb, "vit")
        else name
    )
    try:
        report = bb.load_pretrained(path)
    except CheckpointError as e:
        diag.suspicious.append(f"loading fails: {e}")
        return diag
    n_own = len(bb.state_dict())
    diag.outcome["loaded"] = [(f"{len(report.loaded)} of the backbone's {n_own} tensors", "")]
    resized, odd_resized = _sort(report.resized, EXPECTED_RESIZED)
    new, odd_new = _sort(report.new, EXPECTED_NEW)
    ignored, odd_ignored = _sort(report.ignored, EXPECTED_IGNORED)
    for kind, groups in (("resized", resized), ("newly initialized", new), ("ignored", ignored)):
        if groups:
            diag.outcome[kind] = groups
    diag.notes += report.notes
    if not report.loaded:
        diag.suspicious.append("nothing loaded")
    for kind, keys in (("resized", odd_resized), ("newly initialized", odd_new), ("ignored", odd_ignored)):
        if keys:
            diag.suspicious.append(
                f"{len(keys)} tensor(s) {kind} that a transfer keeps: {', '.join(_collapse(keys)[:4])}"
            )
    return diag
