"""Classification evaluation recipes: end-to-end fine-tune (Table 9) and linear probe (Table 10)."""
from __future__ import annotations

import dataclasses

from ..config import ConfigBase, option


@dataclasses.dataclass
class ClsConfig(ConfigBase):
    mode: str = option("finetune", "finetune (Table 9) | linprobe (Table 10)")
    model: str = option("", "encoder architecture as an MAE model name (e.g. mae_vit_base_patch16); "
                            "empty = read from the checkpoint's 'arch' (files written by this project)")
    model_overrides: dict = option({}, "encoder shape overrides, e.g. {'depth': 4} (random-init runs of custom sizes)")
    weights: str = option("", "encoder checkpoint (MAE, DeiT/timm, MoCo v3, BEiT, or this project's); empty = random init")
    source: str = option("auto", "checkpoint source: auto | vit | mae | supervised | mocov3 | beit")
    data_path: str = option("", "dataset root holding train/ and a validation folder (ImageFolder layout)")
    val_split: str = option("val", "validation sub-folder name (CIFAR subset: test)")
    input_size: int = option(224, "image size")
    # optimization (fine-tune defaults = Table 9)
    epochs: int = option(100, "training epochs (Table 9: 100 for ViT-B, 50 for L/H; Table 10: 90)")
    warmup_epochs: int = option(5, "linear warmup epochs")
    batch_size: int = option(128, "images per process; effective = batch_size x accum_iter x world")
    accum_iter: int = option(1, "gradient accumulation steps")
    optimizer: str = option("adamw", "adamw | sgd | lars (Table 10 uses LARS)")
    blr: float = option(1e-3, "base lr: lr = blr x effective_batch / 256")
    lr: float | None = option(None, "absolute lr (overrides blr)")
    min_lr: float = option(1e-6, "lr at the end of the cosine")
    weight_decay: float = option(0.05, "weight decay (none on biases, norms, pos/cls tokens)")
    momentum: float = option(0.9, "momentum for sgd / lars")
    layer_decay: float = option(0.75, "layer-wise lr decay (fine-tune only)")
    drop_path: float = option(0.1, "stochastic depth rate (fine-tune only)")
    smoothing: float = option(0.1, "label smoothing")
    mixup: float = option(0.8, "mixup alpha (0 = off)")
    cutmix: float = option(1.0, "cutmix alpha (0 = off)")
    randaug: str = option("rand-m9-mstd0.5-inc1-mmax9", "timm RandAugment spec for fine-tuning ('' = off); mmax9 because "
                                                          "PIL>=10 rejects the 0-bit posterize that magnitude 10 reaches")
    reprob: float = option(0.25, "random erasing probability (fine-tune)")
    global_pool: str = option("avg", "avg (fine-tune, fc_norm) | token (linear probe: cls token after the final norm)")
    cache_features: bool = option(False, "linear probe only: extract frozen features once (center crop, no "
                                         "augmentation) and train the probe on them; much faster on CPU")
    # run
    precision: str = option("auto", "auto | fp32 | bf16 | fp16")
    num_workers: int = option(10, "data-loader worker processes")
    output_dir: str = option("output/cls", "metrics.json, log.jsonl, tensorboard/, checkpoint-last.pth")
    resume: str = option("", "checkpoint path or 'auto'")
    eval_every: int = option(1, "epochs between evaluations (the last epoch is always evaluated)")
    seed: int = option(0, "random seed")
    device: str = option("auto", "auto | cpu | cuda")
