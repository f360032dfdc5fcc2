# The miniature Table 4 (configs/mini/reproduce.sh): Mask R-CNN on balloon (one class; 61 train / 13 val
# photos, COCO polygons) with the miniature encoder (patch 8, 192 wide, 4 blocks; 128px -> a 16x16 grid,
# global attention at every block = the taps). The 128px LSJ and CPU-sized heads come from the patch-4 variant
# it imports; batch 2. Every number here is this project's choice (CPU-sized; no published recipe).
from mae_transfer.paths import shared_data

from .mask_rcnn_vit_tiny_p4_coco128 import dataloader, datasets, entry, lr_multiplier, model, optimizer, train

root = shared_data("balloon")
datasets.update(
    {
        "balloon_train": {"json": f"{root}/annotations/instances_train.json", "images": f"{root}/train"},
        "balloon_val": {"json": f"{root}/annotations/instances_val.json", "images": f"{root}/val"},
    }
)
dataloader.train.dataset.names = "balloon_train"
dataloader.test.dataset.names = "balloon_val"
dataloader.train.total_batch_size = 2

model.backbone.bottom_up.update(name="mae_vit_mini_p8", window_size=16, drop_path_rate=0.1)
model.roi_heads.num_classes = 1

train.max_iter = train.eval_period = 600
train.checkpointer.period = 100000
train.log_period = 50
lr_multiplier.warmup_length = 0.05
optimizer.lr = 3e-4
optimizer.weight_decay = 0.05
train.output_dir = "output/det/mini_vit_mini_p8_balloon"
