# CPU-sized Table 9 on the CIFAR-10 subset (32x32, tiny patch-4 ViT): shorter schedule, smaller batch.
from mae_transfer.config import load_config
from mae_transfer.paths import shared_data

config = load_config("finetune_vit_base.py", relative_to=__file__).replace(
    model="mae_vit_tiny_patch4",
    data_path=shared_data("cifar10"),
    val_split="test",
    input_size=32,
    epochs=12,
    warmup_epochs=2,
    batch_size=128,
    accum_iter=1,
    blr=2e-3,
    num_workers=1,
    mixup=0.0,
    cutmix=0.0,  # off for a 12-epoch schedule (they need long schedules to pay off)
    output_dir="output/cls/cifar10_tiny_finetune",
    recipe="",
)
