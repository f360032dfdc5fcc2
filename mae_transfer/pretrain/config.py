"""The pretraining recipe as one flat dataclass; defaults are the paper's Table 8."""
from __future__ import annotations

import dataclasses

from ..config import ConfigBase, option


@dataclasses.dataclass
class PretrainConfig(ConfigBase):
    # model
    model: str = option("mae_vit_large_patch16", "registered MAE model (mae_transfer.models.MAE_MODELS)")
    model_overrides: dict = option({}, "constructor overrides for the model, e.g. {'depth': 4, 'decoder_depth': 2}")
    input_size: int = option(224, "training crop size (pixels)")
    mask_ratio: float = option(0.75, "fraction of patches removed")
    mask_strategy: str = option("random", "random | block | grid (Table 1f)")
    norm_pix_loss: bool = option(True, "regress per-patch normalized pixels (Table 1d; released models use it)")
    loss_on_all_patches: bool = option(False, "MSE on all patches instead of the masked ones only")
    # data
    data_path: str = option("", "ImageFolder root (class sub-folders); labels are ignored")
    num_workers: int = option(10, "data-loader worker processes per training process")
    # optimization (Table 8)
    epochs: int = option(800, "total epochs (paper: 800 for ablations, 1600 for released models)")
    warmup_epochs: int = option(40, "linear warmup epochs (per-iteration schedule)")
    batch_size: int = option(64, "images per process per iteration; effective = batch_size x accum_iter x world")
    accum_iter: int = option(1, "gradient accumulation steps")
    blr: float = option(1.5e-4, "base lr: lr = blr x effective_batch / 256")
    lr: float | None = option(None, "absolute lr (overrides blr)")
    min_lr: float = option(0.0, "lr at the end of the cosine")
    weight_decay: float = option(0.05, "AdamW weight decay (none on biases, norms, pos/cls/mask tokens)")
    betas: tuple[float, float] = option((0.9, 0.95), "AdamW betas")
    precision: str = option("auto", "auto (bf16 on capable GPUs, else fp16 on GPU, fp32 on CPU) | fp32 | bf16 | fp16")
    # run
    output_dir: str = option("output/pretrain", "checkpoints, log.jsonl, tensorboard/, encoder.pth")
    resume: str = option("", "checkpoint path to resume from, or 'auto' (output_dir/checkpoint-last.pth if present)")
    save_every: int = option(20, "also keep checkpoint-EPOCH.pth every N epochs (checkpoint-last.pth is written every epoch)")
    log_every: int = option(20, "iterations between log lines")
    seed: int = option(0, "base random seed (each epoch and rank reseeds from it: resume is exact)")
    device: str = option("auto", "auto | cpu | cuda")
