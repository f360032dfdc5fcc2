# ViTDet recipe, ViT-L (layer decay 0.8, drop path 0.4).
from mae_transfer.recipes import set_det_entry

from .vitdet_vit_b_100ep import dataloader, datasets, entry, lr_multiplier, model, optimizer, train

model.backbone.bottom_up.name = "mae_vit_l"
model.backbone.bottom_up.use_checkpoint = True
entry.size = "L"
set_det_entry(optimizer, model.backbone.bottom_up, **entry)
train.output_dir = "output/det/vitdet_vit_l_100ep"
