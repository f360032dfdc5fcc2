# The miniature Table 4 setup: the CIFAR-pretrained tiny encoder (patch 4, 192 wide, 6 blocks; see
# configs/pretrain/cifar10_tiny.py) transferred at 128px: a 32x32 token grid, windows of 8x8 (its
# pretraining grid) with global attention at the taps (blocks 0, 2, 3, 5), pyramid strides 4-32.
import detectron2.data.transforms as T  # noqa: E402
from detectron2.config import LazyCall as L  # noqa: E402

from .mask_rcnn_vit_tiny_coco128 import dataloader, datasets, entry, lr_multiplier, model, optimizer, train

image_size = 128
bu = model.backbone.bottom_up
bu.name = "mae_vit_tiny_p4"
bu.update(img_size=image_size, window_size=8)
model.backbone.square_pad = image_size
dataloader.train.mapper.augmentations = [
    L(T.RandomFlip)(horizontal=True),
    L(T.ResizeScale)(min_scale=0.5, max_scale=2.0, target_height=image_size, target_width=image_size),
    L(T.FixedSizeCrop)(crop_size=(image_size, image_size), pad=False),
]
dataloader.test.mapper.augmentations = [
    L(T.ResizeShortestEdge)(short_edge_length=image_size, max_size=image_size)
]
dataloader.train.total_batch_size = 4
optimizer.lr = 8e-5
optimizer.weight_decay = 0.1
bu.drop_path_rate = 0.1
train.output_dir = "output/det/mini_vit_tiny_p4_coco128"
