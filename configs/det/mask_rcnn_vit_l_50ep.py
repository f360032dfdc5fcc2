# Table 4, ViT-L, 50-epoch schedule (everything else as the 100-epoch config).
from .mask_rcnn_vit_l_100ep import dataloader, datasets, entry, lr_multiplier, model, optimizer, train

entry.epochs = 50
train.max_iter = train.eval_period = 92_188  # 50 epochs at batch 64
lr_multiplier.warmup_length = 0.25 / 50  # 0.25 epoch
train.output_dir = "output/det/mask_rcnn_vit_l_50ep"
