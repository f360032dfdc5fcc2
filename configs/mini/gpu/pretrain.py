# The GPU miniature's MAE encoder for the CamVid table (configs/mini/reproduce_gpu.sh): ViT-S/16 at 224px
# (a 14x14 grid, as Table 8's) on the same unlabeled training images as the CPU miniature's
# (configs/pretrain/mini_camvid_balloon.py: CamVid's 367 frames + balloon's 61 photos), Table 8's recipe
# otherwise. Schedule length and batch are this project's first GPU sizing, not yet timed on a GPU.
from mae_transfer.config import load_config

config = load_config("../../pretrain/mini_camvid_balloon.py", relative_to=__file__).replace(
    model="mae_vit_small_patch16",
    input_size=224,
    epochs=200,
    warmup_epochs=20,
    batch_size=128,
    output_dir="output/mini_gpu/pretrain",
)
