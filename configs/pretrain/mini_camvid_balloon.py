# The miniature tables' MAE encoder (configs/mini/reproduce.sh): the 4-block, 192-wide patch-8 ViT at 128px,
# pretrained on the unlabeled training images of both transfer tasks -- CamVid's 367 training frames and
# balloon's 61 training photos (in-domain, as ImageNet is for COCO / ADE20K at full scale; no validation or
# test image). Table 8's recipe otherwise, on images shrunk once to a 256px short side (the smallest crop,
# 20% of the area, is still >= 114px before its resize to 128); the schedule length and the larger base lr
# (a short schedule on 428 images) are this project's choice.
from mae_transfer.paths import shared_data
from mae_transfer.pretrain import PretrainConfig

config = PretrainConfig(
    model="mae_vit_mini_patch8",
    input_size=128,
    mask_ratio=0.75,
    norm_pix_loss=True,
    data_path=f"{shared_data('camvid', 'images', 'training')},{shared_data('balloon', 'train')}",
    epochs=400,
    warmup_epochs=40,
    batch_size=64,
    blr=1.5e-3,
    weight_decay=0.05,
    # the cached images are cropped in the training process: cheaper than starting a worker per epoch
    num_workers=0,
    cache_short_side=256,  # 428 images, balloon's up to 2048px: decoding them every step would dominate it
    save_every=50,
    log_every=20,
    output_dir="output/mini/pretrain",
)
