"""The pretraining recipe as one flat dataclass; defaults are the paper's Table 8."""

from __future__ import annotations

import dataclasses

from ..config import ConfigBase, check_ranges, option
from ..data import describe_augmentation, pretrain_transform
from ..errors import ConfigError
from ..kernels import check_kernels
from ..models.mae import MaskedAutoencoderViT, build_mae
from ..recipes import PRETRAIN_REFERENCES, WD_EXEMPT, RecipeCard, make_card


@dataclasses.dataclass
class PretrainConfig(ConfigBase):
    # model
    model: str = option("mae_vit_large_patch16", "registered MAE model (mae_transfer.models.MAE_MODELS)")
    model_overrides: dict = option(
        {}, "constructor overrides for the model, e.g. {'depth': 4, 'decoder_depth': 2}"
    )
    input_size: int = option(224, "training crop size (pixels)")
    mask_ratio: float = option(0.75, "fraction of patches removed")
    mask_strategy: str = option("random", "random | block | grid (Table 1f)")
    norm_pix_loss: bool = option(
        True, "regress per-patch normalized pixels (Table 1d; released models use it)"
    )
    loss_on_all_patches: bool = option(False, "MSE on all patches instead of the masked ones only")
    # data
    data_path: str = option(
        "",
        "image folder(s), comma-separated: ImageFolder roots (ROOT/<class>/<image>) or flat "
        "folders of images, searched recursively; labels are ignored",
    )
    num_workers: int = option(10, "data-loader worker processes per training process")
    cache_short_side: int = option(
        0,
        "> 0: decode every image once, shrunk to this short side at most, and keep it "
        "in memory (small datasets of large photos); 0: read from disk every time",
    )
    # optimization (Table 8)
    epochs: int = option(800, "total epochs (paper: 800 for ablations, 1600 for released models)")
    warmup_epochs: int = option(40, "linear warmup epochs (per-iteration schedule)")
    batch_size: int = option(
        64, "images per process per iteration; effective = batch_size x accum_iter x world"
    )
    accum_iter: int = option(1, "gradient accumulation steps")
    blr: float = option(1.5e-4, "base lr: lr = blr x effective_batch / 256")
    lr: float | None = option(None, "absolute lr (overrides blr)")
    min_lr: float = option(0.0, "lr at the end of the cosine")
    weight_decay: float = option(0.05, "AdamW weight decay (none on biases and norms, as main_pretrain.py)")
    wd_exempt_tokens: bool = option(
        False,
        "also exempt the cls / mask tokens from weight decay (False = the official "
        "main_pretrain.py, whose timm add_weight_decay decays them)",
    )
    betas: tuple[float, float] = option((0.9, 0.95), "AdamW betas")
    precision: str = option(
        "auto",
        "auto (bf16 on GPUs that have it, else fp16; bf16 on CPUs with native bf16, "
        "else fp32) | fp32 | bf16 | fp16",
    )
    kernels: str = option(
        "fast",
        "fast (fused AdamW; attention kernel chosen per device) | reference (the official "
        "code's kernels, bit-exact with it): mae_transfer/kernels.py",
    )
    compile: bool = option(False, "torch.compile the model (one-time compile of ~1 min; then a faster step)")
    # run
    output_dir: str = option("output/pretrain", "checkpoints, log.jsonl, tensorboard/, encoder.pth")
    resume: str = option(
        "", "checkpoint path to resume from, or 'auto' (output_dir/checkpoint-last.pth if present)"
    )
    save_every: int = option(
        20, "also keep checkpoint-EPOCH.pth every N epochs (checkpoint-last.pth is written every epoch)"
    )
    log_every: int = option(20, "iterations between log lines")
    seed: int = option(0, "base random seed (each epoch and rank reseeds from it: resume is exact)")
    image_keyed_rng: bool = option(
        False,
        "draw each image's crop, flip and mask from a generator keyed by (seed, "
        "epoch, image index): the run is the same on any number of processes "
        "(2 x 8 images = 1 x 16); off: one random stream per process, as the "
        "official code",
    )
    device: str = option("auto", "auto | cpu | cuda")
    recipe: str = option(
        "",
        "the published recipe these numbers claim, for the recipe card: mae_t8 (released "
        "models) | mae_t8_ablation (800 epochs) | '' (none)",
    )

    def validate(self) -> None:
        from ..models.masking import MASKING

        check_ranges(
            self,
            positive=("batch_size", "accum_iter", "epochs", "input_size", "blr", "log_every"),
            non_negative=(
                "warmup_epochs",
                "weight_decay",
                "num_workers",
                "min_lr",
                "save_every",
                "cache_short_side",
            ),
        )
        if not 0.0 < self.mask_ratio < 1.0:
            raise ConfigError(f"config key 'mask_ratio' must be in (0, 1), got {self.mask_ratio}")
        if self.mask_strategy not in MASKING:
            raise ConfigError(
                f"config key 'mask_strategy': unknown {self.mask_strategy!r}; choose from "
                f"{', '.join(sorted(MASKING))}"
            )
        check_kernels(self.kernels)
        if not all(0.0 <= b < 1.0 for b in self.betas):
            raise ConfigError(f"config key 'betas' must be two values in [0, 1), got {self.betas}")

    def data_folders(self) -> list[str]:
        """The folders of ``data_path`` (comma-separated)."""
        return [p.strip() for p in self.data_path.split(",") if p.strip()]

    def effective_batch(self, world: int) -> int:
        return self.batch_size * self.accum_iter * world

    def recipe_card(self, world: int = 1) -> RecipeCard:
        """The numbers that decide the pretrained encoder, at ``world`` training processes."""
        values = {
            "model": self.model,
            "blr": self.blr,
            "lr": self.lr,
            "weight_decay": self.weight_decay,
            "wd_exempt_tokens": self.wd_exempt_tokens,
            "betas": tuple(self.betas),
            "epochs": self.epochs,
            "warmup_epochs": self.warmup_epochs,
            "effective_batch": self.effective_batch(world),
            "input_size": self.input_size,
            "mask_ratio": self.mask_ratio,
            "mask_strategy": self.mask_strategy,
            "norm_pix_loss": self.norm_pix_loss,
            "loss_on_all_patches": self.loss_on_all_patches,
            "min_lr": self.min_lr,
            "augmentation": describe_augmentation(pretrain_transform(self.input_size)),
            "precision": self.precision,
        }
        lr = self.lr if self.lr is not None else self.blr * self.effective_batch(world) / 256
        notes = [
            f"global batch {self.effective_batch(world)} = {world} process(es) x {self.batch_size} x "
            f"{self.accum_iter} accumulation; lr {lr:.4g} = "
            + ("absolute (lr set)" if self.lr is not None else f"blr x {self.effective_batch(world)} / 256"),
            "weight decay exempts: "
            + (
                "biases, 1-D tensors, cls / mask tokens"
                if self.wd_exempt_tokens
                else WD_EXEMPT["official_mae"]
            ),
            f"output dir: {self.output_dir}",
        ]
        claims = (
            f"MAE Table 8 ({'800-epoch ablation' if 'ablation' in self.recipe else 'released models'})"
            if self.recipe
            else ""
        )
        return make_card(
            "MAE pretraining",
            claims,
            values,
            PRETRAIN_REFERENCES.get(self.recipe, {}),
            self.recipe,
            notes=notes,
        )


def build_model(cfg: PretrainConfig) -> MaskedAutoencoderViT:
    """The MAE model a config trains (its registered model, input size, loss and masking)."""
    return build_mae(
        cfg.model,
        **{
            **dict(
                img_size=cfg.input_size,
                norm_pix_loss=cfg.norm_pix_loss,
                loss_on_all_patches=cfg.loss_on_all_patches,
                mask_strategy=cfg.mask_strategy,
            ),
            **cfg.model_overrides,
        },
    )
