# The miniature Table 4 (configs/mini/reproduce.sh): Mask R-CNN on balloon (one class; 61 train / 13 val
# photos, COCO polygons) with the miniature encoder (patch 8, 192 wide, 4 blocks; 128px -> a 16x16 grid,
# global attention at every block = the taps), the CPU-sized heads of mask_rcnn_vit_tiny_coco128.py, LSJ at
# 128px, batch 2. Every number here is this project's choice (CPU-sized; no published recipe).
import detectron2.data.transforms as T
from detectron2.config import LazyCall as L

from mae_transfer.paths import shared_data

from .mask_rcnn_vit_tiny_coco128 import dataloader, datasets, entry, lr_multiplier, model, optimizer, train

image_size = 128
root = shared_data("balloon")
datasets.update({
    "balloon_train": {"json": f"{root}/annotations/instances_train.json", "images": f"{root}/train"},
    "balloon_val": {"json": f"{root}/annotations/instances_val.json", "images": f"{root}/val"},
})
dataloader.train.dataset.names = "balloon_train"
dataloader.test.dataset.names = "balloon_val"
dataloader.train.mapper.augmentations = [
    L(T.RandomFlip)(horizontal=True),
    L(T.ResizeScale)(min_scale=0.5, max_scale=2.0, target_height=image_size, target_width=image_size),
    L(T.FixedSizeCrop)(crop_size=(image_size, image_size), pad=False),
]
dataloader.test.mapper.augmentations = [L(T.ResizeShortestEdge)(short_edge_length=image_size, max_size=image_size)]

bu = model.backbone.bottom_up
bu.name = "mae_vit_mini_p8"
for key in ("embed_dim", "depth", "num_heads"):
    bu.pop(key)
bu.update(img_size=image_size, window_size=16, drop_path_rate=0.1)
model.backbone.square_pad = image_size
model.roi_heads.num_classes = 1

train.max_iter = train.eval_period = 600
train.checkpointer.period = 100000
train.log_period = 50
lr_multiplier.warmup_length = 0.05
optimizer.lr = 3e-4
optimizer.weight_decay = 0.05
train.output_dir = "output/det/mini_vit_mini_p8_balloon"
