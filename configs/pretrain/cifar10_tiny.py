# Small CPU recipe: a tiny MAE (patch 4, 192 wide, 6 blocks) on the 10k-image CIFAR-10 subset.
# About 50 s per epoch on 2 CPU cores; 32 epochs fit in ~30 min. Larger base lr than ImageNet's to
# make up for the short schedule; everything else is Table 8.
from mae_transfer.paths import shared_data
from mae_transfer.pretrain import PretrainConfig

config = PretrainConfig(
    model="mae_vit_tiny_patch4",
    input_size=32,
    mask_ratio=0.75,
    norm_pix_loss=True,
    data_path=shared_data("cifar10", "train"),
    epochs=32,
    warmup_epochs=4,
    batch_size=128,
    blr=1.5e-3,
    weight_decay=0.05,
    num_workers=1,
    save_every=10,
    log_every=20,
    output_dir="output/pretrain/cifar10_tiny",
)
