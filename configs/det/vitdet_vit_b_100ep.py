# The ViTDet recipe as a second variant, on the same contract backbone: simple feature pyramid from the
# last block (ViTDet's width halving), ViTDet's output convs (1x1 + 3x3 with LN) instead of FPN, LN in the
# heads; lr 1e-4, wd 0.1, layer decay 0.7, drop path 0.1 (mae_transfer.recipes.VITDET_ENTRIES).
# Differs from detectron2's ViTDet in the rel-pos parametrization (one BEiT-style bias table per attention
# kind here, decomposed per-block rel-pos there; both start at zero).
from detectron2.config import LazyCall as L
from detectron2.modeling.backbone.fpn import LastLevelMaxPool

from mae_transfer.det.modeling import SimpleNeck
from mae_transfer.recipes import set_det_entry

from .mask_rcnn_vit_b_100ep import dataloader, datasets, entry, lr_multiplier, model, optimizer, train

bottom_up = model.backbone.bottom_up
bottom_up.pyramid = "simple"
bottom_up.pyramid_norm = "LN"
model.backbone = L(SimpleNeck)(bottom_up=bottom_up, in_features=["s4", "s8", "s16", "s32"], out_channels=256,
                               norm="LN", top_block=L(LastLevelMaxPool)(), square_pad=1024)
model.roi_heads.box_head.conv_norm = "LN"
model.roi_heads.mask_head.conv_norm = "LN"
entry.recipe = "vitdet"
set_det_entry(optimizer, model.backbone.bottom_up, **entry)
train.output_dir = "output/det/vitdet_vit_b_100ep"
