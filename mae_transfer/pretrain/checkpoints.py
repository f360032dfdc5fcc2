"""MAE pretraining's files: the training state (resume), official / own MAE weights loaded into the model,
and the exported encoder (timm-named ViT keys)."""

from __future__ import annotations

from pathlib import Path

import torch

from ..checkpoints import extract_state_dict, load_checkpoint, save_atomic
from ..errors import CheckpointError
from .config import PretrainConfig, build_model


# ----------------------------------------------------------------------------- checkpoints
def save_training_state(
    out: Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    epoch: int,
    cfg: PretrainConfig,
) -> Path:
    state = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scaler": scaler.state_dict(),
        "epoch": epoch,
        "config": cfg.to_dict(),
    }
    path = save_atomic(state, out / LAST)
    if cfg.save_every > 0 and (epoch % cfg.save_every == 0 or epoch == cfg.epochs):
        save_atomic(state, out / f"checkpoint-{epoch:04d}.pth")
    return path


LAST = "checkpoint-last.pth"  # the training state --resume auto continues from


def load_training_state(
    path: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler
) -> int:
    """Restore model/optimizer/scaler; returns the number of completed epochs."""
    ckpt = load_checkpoint(path)
    if not isinstance(ckpt, dict) or "optimizer" not in ckpt or "epoch" not in ckpt:
        raise CheckpointError(
            f"{path} is not a pretraining checkpoint written by this tool "
            "(needs 'model', 'optimizer', 'epoch')"
        )
    load_mae_weights(model, ckpt["model"], str(path))
    optimizer.load_state_dict(ckpt["optimizer"])
    if "scaler" in ckpt and ckpt["scaler"]:
        scaler.load_state_dict(ckpt["scaler"])
    return int(ckpt["epoch"])


def load_mae_weights(model: torch.nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Strict load with a one-line error naming the first missing / unexpected / mis-shaped key."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [k for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (e.g. {missing[0]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (e.g. {unexpected[0]})")
        if shapes:
            k = shapes[0]
            parts.append(
                f"{len(shapes)} with wrong shape (e.g. {k}: checkpoint {tuple(state[k].shape)} "
                f"vs model {tuple(own[k].shape)})"
            )
        raise CheckpointError(f"{source} does not fit the model: " + ", ".join(parts))
    model.load_state_dict(state, strict=True)


def export_encoder(
    model_or_ckpt: torch.nn.Module | str | Path, out_path: str | Path, cfg: PretrainConfig | None = None
) -> Path:
    """Write the encoder alone as ``{'model': state}`` in official MAE / timm key format (plus 'arch')."""
    if isinstance(model_or_ckpt, (str, Path)):
        ckpt = load_checkpoint(model_or_ckpt)
        state = extract_state_dict(ckpt, model_or_ckpt)
        cfg = cfg or (
            PretrainConfig.from_dict(ckpt["config"]) if isinstance(ckpt, dict) and "config" in ckpt else None
        )
        if cfg is None:
            raise CheckpointError(
                f"{model_or_ckpt}: no 'config' in the checkpoint; cannot tell its architecture"
            )
        model = build_model(cfg)
        load_mae_weights(model, state, str(model_or_ckpt))
    else:
        model = model_or_ckpt
    arch = dict(getattr(model, "arch", {}))
    if cfg is not None:
        arch["source_model"] = cfg.model
    return save_atomic({"model": model.encoder_state_dict(), "arch": arch}, out_path)
