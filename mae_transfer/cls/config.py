"""Classification evaluation recipes: end-to-end fine-tune (Table 9) and linear probe (Table 10)."""

from __future__ import annotations

import dataclasses

from ..config import ConfigBase, check_ranges, option
from ..errors import ConfigError
from ..kernels import check_kernels
from ..recipes import FINETUNE_REFERENCE, LINPROBE_REFERENCE, RecipeCard, make_card


@dataclasses.dataclass
class ClsConfig(ConfigBase):
    mode: str = option("finetune", "finetune (Table 9) | linprobe (Table 10)")
    model: str = option(
        "",
        "encoder architecture as an MAE model name (e.g. mae_vit_base_patch16); "
        "empty = read from the checkpoint's 'arch' (files written by this project)",
    )
    model_overrides: dict = option(
        {}, "encoder shape overrides, e.g. {'depth': 4} (random-init runs of custom sizes)"
    )
    weights: str = option(
        "", "encoder checkpoint (MAE, DeiT/timm, MoCo v3, BEiT, or this project's); empty = random init"
    )
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
    randaug: str = option(
        "rand-m9-mstd0.5-inc1-mmax9",
        "timm RandAugment spec for fine-tuning ('' = off); mmax9 because "
        "PIL>=10 rejects the 0-bit posterize that magnitude 10 reaches",
    )
    reprob: float = option(0.25, "random erasing probability (fine-tune)")
    global_pool: str = option(
        "avg", "avg (fine-tune, fc_norm) | token (linear probe: cls token after the final norm)"
    )
    cache_features: bool = option(
        False,
        "linear probe only: extract frozen features once (center crop, no "
        "augmentation) and train the probe on them; much faster on CPU",
    )
    # run
    precision: str = option(
        "auto",
        "auto (bf16 on GPUs that have it, else fp16; bf16 on CPUs with native bf16, "
        "else fp32) | fp32 | bf16 | fp16",
    )
    kernels: str = option(
        "fast", "fast (fused AdamW; attention kernel chosen per device) | reference (mae_transfer/kernels.py)"
    )
    num_workers: int = option(10, "data-loader worker processes")
    output_dir: str = option("output/cls", "metrics.json, log.jsonl, tensorboard/, checkpoint-last.pth")
    resume: str = option("", "checkpoint path or 'auto'")
    eval_every: int = option(1, "epochs between evaluations (the last epoch is always evaluated)")
    seed: int = option(0, "random seed")
    device: str = option("auto", "auto | cpu | cuda")
    recipe: str = option(
        "",
        "the published recipe these numbers claim, for the recipe card: mae_t9 (fine-tune) | "
        "mae_t10 (linear probe) | '' (none)",
    )

    def validate(self) -> None:
        check_ranges(
            self,
            positive=("batch_size", "accum_iter", "epochs", "input_size", "blr", "eval_every"),
            non_negative=(
                "warmup_epochs",
                "weight_decay",
                "num_workers",
                "min_lr",
                "drop_path",
                "mixup",
                "cutmix",
                "smoothing",
                "reprob",
            ),
        )
        check_kernels(self.kernels)
        if self.mode not in ("finetune", "linprobe"):
            raise ConfigError(f"config key 'mode': unknown {self.mode!r}; choose finetune or linprobe")
        if self.mode == "linprobe" and self.cache_features and self.resume:
            raise ConfigError(
                "config key 'resume' does not apply to a linear probe on cached features (it "
                "trains in seconds from the cache); drop resume, or set cache_features=False"
            )

    def effective_batch(self, world: int) -> int:
        return self.batch_size * self.accum_iter * world

    def recipe_card(self, world: int = 1) -> RecipeCard:
        """The numbers that decide the classification result, at ``world`` training processes."""
        values = {
            "mode": self.mode,
            "model": self.model,
            "optimizer": self.optimizer,
            "blr": self.blr,
            "lr": self.lr,
            "weight_decay": self.weight_decay,
            "effective_batch": self.effective_batch(world),
            "epochs": self.epochs,
            "warmup_epochs": self.warmup_epochs,
            "input_size": self.input_size,
            "drop_path": self.drop_path,
            "mixup": self.mixup,
            "cutmix": self.cutmix,
            "precision": self.precision,
        }
        if self.mode == "finetune":
            values.update(layer_decay=self.layer_decay, smoothing=self.smoothing, randaug=self.randaug)
        else:
            values.update(momentum=self.momentum)
        size = {"base": "B", "large": "L", "huge": "H"}.get(
            self.model.split("_")[2] if self.model.count("_") > 2 else "", "B"
        )
        reference = {"mae_t9": FINETUNE_REFERENCE[size], "mae_t10": LINPROBE_REFERENCE}.get(self.recipe, {})
        lr = self.lr if self.lr is not None else self.blr * self.effective_batch(world) / 256
        notes = [
            f"global batch {self.effective_batch(world)} = {world} process(es) x {self.batch_size} x "
            f"{self.accum_iter} accumulation; lr {lr:.4g}",
            f"output dir: {self.output_dir}",
        ]
        claims = {
            "mae_t9": f"MAE Table 9 fine-tuning, ViT-{size}",
            "mae_t10": "MAE Table 10 linear probing",
        }.get(self.recipe, "")
        recipe = "finetune" if self.recipe == "mae_t9" else self.recipe
        return make_card(f"classification ({self.mode})", claims, values, reference, recipe, notes=notes)
