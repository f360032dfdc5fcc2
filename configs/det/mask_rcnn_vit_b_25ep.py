# Table 4, ViT-B, 25-epoch schedule (everything else as the 100-epoch config).
from mae_transfer.recipes import det_iters

from .mask_rcnn_vit_b_100ep import dataloader, datasets, entry, lr_multiplier, model, optimizer, train

train.max_iter = train.eval_period = det_iters(25)
lr_multiplier.warmup_length = 0.25 / 25
train.output_dir = "output/det/mask_rcnn_vit_b_25ep"
