# The GPU miniature's supervised initialization: ViT-S/16 trained from scratch with CIFAR-10 labels at 128px
# (CIFAR's 32px upsampled: an 8x8 grid), the CPU miniature's configs/cls/cifar10_mini_supervised.py otherwise.
# This project's first GPU sizing, not yet timed on a GPU.
from mae_transfer.config import load_config

config = load_config("../../cls/cifar10_mini_supervised.py", relative_to=__file__).replace(
    model="mae_vit_small_patch16",
    input_size=128,
    epochs=10,
    batch_size=256,
    num_workers=8,
    output_dir="output/mini_gpu/supervised",
)
