# The GPU miniature's Table 5: UperNet on CamVid with ViT-S/16 at 256px crops (a 16x16 grid; global
# attention with the cls token and per-block zero-init relative position bias, taps after blocks 2, 5, 8,
# 11), UperNet at 256 channels, batch 8, 1500 iterations; the CPU miniature's recipe otherwise
# (configs/seg/mini/upernet_vit_mini_p8_camvid.py). This project's first GPU sizing, not yet timed on a GPU.
_base_ = ["../../seg/mini/upernet_vit_mini_p8_camvid.py"]

crop_size = (256, 256)
model = dict(
    data_preprocessor=dict(size=crop_size),
    backbone=dict(name="mae_vit_s", img_size=256, taps=(2, 5, 8, 11)),
    decode_head=dict(in_channels=[384, 384, 384, 384], channels=256),
    auxiliary_head=dict(in_channels=384, channels=128),
)
train_pipeline = [
    dict(type="LoadImageFromFile"),
    dict(type="LoadAnnotations", reduce_zero_label=True),
    dict(type="RandomResize", scale=(1024, 256), ratio_range=(0.5, 2.0), keep_ratio=True),
    dict(type="RandomCrop", crop_size=crop_size, cat_max_ratio=0.75),
    dict(type="RandomFlip", prob=0.5),
    dict(type="PhotoMetricDistortion"),
    dict(type="PackSegInputs"),
]
test_pipeline = [
    dict(type="LoadImageFromFile"),
    dict(type="Resize", scale=(1024, 256), keep_ratio=True),
    dict(type="LoadAnnotations", reduce_zero_label=True),
    dict(type="PackSegInputs"),
]
train_dataloader = dict(batch_size=8, num_workers=4, dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(num_workers=4, dataset=dict(pipeline=test_pipeline))
test_dataloader = dict(num_workers=4, dataset=dict(pipeline=test_pipeline))
param_scheduler = [
    dict(type="LinearLR", start_factor=1e-6, by_epoch=False, begin=0, end=75),
    dict(type="PolyLR", eta_min=0.0, power=1.0, begin=75, end=1500, by_epoch=False),
]
train_cfg = dict(max_iters=1500, val_interval=1500)
work_dir = "output/seg/mini_gpu_camvid"
