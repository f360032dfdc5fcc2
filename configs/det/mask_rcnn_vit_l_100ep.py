# Table 4, ViT-L: taps after blocks 5, 11, 17, 23 (global attention there), drop path 0.3 (Li et al.'s ViT-L
# value; lr / wd as ViT-B), activation checkpointing to fit 1024px training in GPU memory.
from .mask_rcnn_vit_b_100ep import dataloader, datasets, entry, lr_multiplier, model, optimizer, train

model.backbone.bottom_up.name = "mae_vit_l"
model.backbone.bottom_up.drop_path_rate = 0.3
model.backbone.bottom_up.act_checkpoint = True
entry.size = "L"
train.output_dir = "output/det/mask_rcnn_vit_l_100ep"
