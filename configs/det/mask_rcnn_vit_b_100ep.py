# Table 4, ViT-B: Mask R-CNN + FPN on the 4-stage ViT (windowed + global blocks, zero-init rel-pos),
# 100 epochs (184,375 iterations at batch 64). Choose the initialization with --init / --weights.
from mae_transfer.recipes import set_det_entry

from .common.data_lsj import dataloader, datasets
from .common.model import model
from .common.train import entry, lr_multiplier, optimizer, train

model.backbone.bottom_up.name = "mae_vit_b"
entry.size = "B"
set_det_entry(optimizer, model.backbone.bottom_up, **entry)  # lr / wd / drop path of the (MAE, B) entry
train.output_dir = "output/det/mask_rcnn_vit_b_100ep"
