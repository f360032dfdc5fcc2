# The miniature tables' supervised initialization (configs/mini/reproduce.sh): the miniature encoder
# (mae_vit_mini_patch8) trained from scratch with CIFAR-10 labels -- the CPU-sized stand-in for an
# ImageNet-supervised ViT. 64px inputs (CIFAR's 32px upsampled; an 8x8 grid, resized to 16x16 at transfer),
# a short schedule; every number is this project's choice.
from mae_transfer.config import load_config
from mae_transfer.paths import shared_data

config = load_config("finetune_vit_base.py", relative_to=__file__).replace(
    model="mae_vit_mini_patch8",
    data_path=shared_data("cifar10"),
    val_split="test",
    input_size=64,
    epochs=8,
    warmup_epochs=1,
    batch_size=128,
    accum_iter=1,
    blr=2e-3,
    num_workers=1,
    mixup=0.0,
    cutmix=0.0,  # off for a short schedule (they need long schedules to pay off)
    output_dir="output/mini/supervised",
    recipe="",
)
