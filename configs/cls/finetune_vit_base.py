# Table 9: end-to-end fine-tuning of ViT-B on ImageNet-1K (effective batch 1024: 32 x 4 accum x 8 GPUs).
import os

from mae_transfer.cls import ClsConfig

config = ClsConfig(
    mode="finetune",
    model="mae_vit_base_patch16",
    global_pool="avg",
    data_path=os.environ.get("IMAGENET_ROOT", "datasets/imagenet"),
    val_split="val",
    input_size=224,
    epochs=100,
    warmup_epochs=5,
    batch_size=32,
    accum_iter=4,
    optimizer="adamw",
    blr=1e-3,
    weight_decay=0.05,
    layer_decay=0.75,
    drop_path=0.1,
    smoothing=0.1,
    mixup=0.8,
    cutmix=1.0,
    randaug="rand-m9-mstd0.5-inc1-mmax9",
    reprob=0.25,
    output_dir="output/cls/finetune_vit_base",
    recipe="mae_t9",
)
