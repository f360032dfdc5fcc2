# Table 4, ViT-L, 50-epoch schedule.
from mae_transfer.recipes import det_iters

from .mask_rcnn_vit_l_100ep import dataloader, datasets, entry, lr_multiplier, model, optimizer, train

train.max_iter = train.eval_period = det_iters(50)
lr_multiplier.warmup_length = 0.25 / 50
train.output_dir = "output/det/mask_rcnn_vit_l_50ep"
