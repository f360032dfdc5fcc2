# Table 4, ViT-L, 25-epoch schedule (everything else as the 100-epoch config).
from .mask_rcnn_vit_l_100ep import dataloader, datasets, entry, lr_multiplier, model, optimizer, train

entry.epochs = 25
train.max_iter = train.eval_period = 46_094  # 25 epochs at batch 64
lr_multiplier.warmup_length = 0.25 / 25  # 0.25 epoch
train.output_dir = "output/det/mask_rcnn_vit_l_25ep"
