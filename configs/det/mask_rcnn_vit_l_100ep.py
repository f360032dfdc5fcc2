# Table 4, ViT-L: taps after blocks 5, 11, 17, 23 (global attention there), drop path from the entry table
# (0.3 for ViT-L), activation checkpointing to fit 1024px training in GPU memory.
from mae_transfer.recipes import set_det_entry

from .mask_rcnn_vit_b_100ep import dataloader, datasets, entry, lr_multiplier, model, optimizer, train

model.backbone.bottom_up.name = "mae_vit_l"
model.backbone.bottom_up.use_checkpoint = True
entry.size = "L"
set_det_entry(optimizer, model.backbone.bottom_up, **entry)
train.output_dir = "output/det/mask_rcnn_vit_l_100ep"
