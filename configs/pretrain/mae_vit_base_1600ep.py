# MAE ViT-B/16, the released recipe (Table 8): 1600 epochs, norm-pix, effective batch 4096
# (64 per GPU x 64 GPUs, e.g. 8 nodes x 8 GPUs), blr 1.5e-4 -> lr 2.4e-3, 40 warmup epochs.
import os

from mae_transfer.pretrain import PretrainConfig

config = PretrainConfig(
    model="mae_vit_base_patch16",
    input_size=224,
    mask_ratio=0.75,
    norm_pix_loss=True,
    data_path=os.path.join(os.environ.get("IMAGENET_ROOT", "datasets/imagenet"), "train"),
    epochs=1600,
    warmup_epochs=40,
    batch_size=64,
    accum_iter=1,
    blr=1.5e-4,
    weight_decay=0.05,
    betas=(0.9, 0.95),
    num_workers=10,
    output_dir="output/pretrain/mae_vit_base_1600ep",
    recipe="mae_t8",
)
