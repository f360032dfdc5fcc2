# Table 4, ViT-B: Mask R-CNN + FPN on the 4-stage ViT (windowed + global blocks, zero-init rel-pos),
# 100 epochs (184,375 iterations at batch 64), the (MAE, ViT-B) entry of Li et al.: lr 8e-5, wd 0.1,
# drop path 0.1. Choose the initialization with --init / --weights.
from .common.data_lsj import dataloader, datasets
from .common.model import model
from .common.train import entry, lr_multiplier, optimizer, train

model.backbone.bottom_up.name = "mae_vit_b"
model.backbone.bottom_up.drop_path_rate = 0.1
train.output_dir = "output/det/mask_rcnn_vit_b_100ep"
