# The GPU miniature's Table 4: Mask R-CNN on balloon with ViT-S/16 at 384px (a 24x24 grid: windows of 12,
# global attention at the taps), batch 8, 800 iterations (~105 epochs of the 61 photos); the CPU miniature's
# heads and recipe otherwise (configs/det/mini/mask_rcnn_vit_mini_p8_balloon.py). This project's first GPU
# sizing, not yet timed on a GPU.
from ...det.mini.mask_rcnn_vit_mini_p8_balloon import (
    dataloader,
    datasets,
    entry,
    lr_multiplier,
    model,
    optimizer,
    train,
)

image_size = 384
model.backbone.bottom_up.update(name="mae_vit_s", img_size=image_size, window_size=12)
model.backbone.square_pad = image_size
flip, resize, crop = dataloader.train.mapper.augmentations  # the base's LSJ, resized
resize.update(target_height=image_size, target_width=image_size)
crop.crop_size = (image_size, image_size)
dataloader.test.mapper.augmentations[0].update(short_edge_length=image_size, max_size=image_size)
dataloader.train.total_batch_size = 8
dataloader.train.num_workers = 4
train.max_iter = train.eval_period = 800
train.output_dir = "output/det/mini_gpu_balloon"
