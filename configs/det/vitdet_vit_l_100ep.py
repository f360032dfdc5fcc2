# ViTDet recipe, ViT-L (mask_rcnn_vitdet_l_100ep.py @ 02b5c4e): layer decay 0.8, drop path 0.4, global
# attention in blocks 5, 11, 17, 23, activation checkpointing. Targets: 55.5 APbox / 49.2 APmask.
from .vitdet_vit_b_100ep import dataloader, datasets, entry, lr_multiplier, model, optimizer, train

model.backbone.bottom_up.name = "mae_vit_l"
model.backbone.bottom_up.drop_path_rate = 0.4
model.backbone.bottom_up.act_checkpoint = True
optimizer.params.layer_decay = 0.8
entry.size = "L"
train.output_dir = "output/det/vitdet_vit_l_100ep"
