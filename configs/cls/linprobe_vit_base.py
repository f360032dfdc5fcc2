# Table 10: linear probing (BN without affine + linear on the cls token), LARS, effective batch 16384.
import os

from mae_transfer.cls import ClsConfig

config = ClsConfig(
    mode="linprobe",
    model="mae_vit_base_patch16",
    global_pool="token",
    data_path=os.environ.get("IMAGENET_ROOT", "datasets/imagenet"),
    val_split="val",
    input_size=224,
    epochs=90,
    warmup_epochs=10,
    batch_size=512,
    accum_iter=4,
    optimizer="lars",
    blr=0.1,
    weight_decay=0.0,
    momentum=0.9,
    min_lr=0.0,
    drop_path=0.0,
    smoothing=0.0,
    mixup=0.0,
    cutmix=0.0,
    randaug="",
    reprob=0.0,
    output_dir="output/cls/linprobe_vit_base",
    recipe="mae_t10",
)
