# CPU-sized version of the Table 4 recipe on coco128 (100 train / 100 val COCO photos): a 4-block,
# 192-wide ViT at 256px (taps = every block, so all global), the same head design at 128 channels,
# LSJ at 256, batch 2.
import detectron2.data.transforms as T
from detectron2.config import LazyCall as L

from mae_transfer.paths import shared_data

from ..mask_rcnn_vit_b_100ep import dataloader, datasets, lr_multiplier, model, optimizer, train

image_size = 256
root = shared_data("coco128")
datasets.update(
    {
        "coco128_train": {
            "json": f"{root}/annotations/instances_train2017.json",
            "images": f"{root}/train2017",
        },
        "coco128_val": {"json": f"{root}/annotations/instances_val2017.json", "images": f"{root}/val2017"},
    }
)
dataloader.train.dataset.names = "coco128_train"
dataloader.test.dataset.names = "coco128_val"
dataloader.train.total_batch_size = 2
dataloader.train.num_workers = 1
dataloader.test.num_workers = 1
dataloader.train.mapper.augmentations = [
    L(T.RandomFlip)(horizontal=True),
    L(T.ResizeScale)(min_scale=0.1, max_scale=2.0, target_height=image_size, target_width=image_size),
    L(T.FixedSizeCrop)(crop_size=(image_size, image_size), pad=False),
]
dataloader.test.mapper.augmentations = [
    L(T.ResizeShortestEdge)(short_edge_length=image_size, max_size=image_size)
]

bu = model.backbone.bottom_up
bu.name = "mae_vit_tiny_p16"
bu.update(img_size=image_size, window_size=8)
model.backbone.square_pad = image_size
model.backbone.out_channels = 128
model.proposal_generator.head.in_channels = 128
model.roi_heads.box_head.input_shape.channels = 128
model.roi_heads.box_head.conv_dims = [128, 128, 128, 128]
model.roi_heads.box_head.fc_dims = [512]
model.roi_heads.box_predictor.input_shape.channels = 512
model.roi_heads.mask_head.input_shape.channels = 128
model.roi_heads.mask_head.conv_dims = [128, 128, 128, 128, 128]
model.roi_heads.batch_size_per_image = 128
model.proposal_generator.post_nms_topk = (500, 200)

# CPU-sized: claims no published recipe (every number below is this project's choice), so no ViT size or
# epoch count of one; init follows --init, else the weights
entry = dict(init="mae", recipe="")
train.max_iter = train.eval_period = 200
lr_multiplier.warmup_length = 0.05
optimizer.lr = 2e-4
train.checkpointer.period = 100
train.log_period = 10
train.device = "cpu"
train.output_dir = "output/det/mini_vit_tiny_coco128"
