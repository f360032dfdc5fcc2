# configs/mini/gpu/seg_camvid.py at 64px crops, batch 2, for 2 iterations without loader workers (the CPU
# smoke of reproduce_gpu.sh): the same model and pipeline, cheap enough for the test suite.
_base_ = ["seg_camvid.py"]

crop_size = (64, 64)
model = dict(data_preprocessor=dict(size=crop_size), backbone=dict(img_size=64))
train_pipeline = [
    dict(type="LoadImageFromFile"),
    dict(type="LoadAnnotations", reduce_zero_label=True),
    dict(type="RandomResize", scale=(256, 64), ratio_range=(0.5, 2.0), keep_ratio=True),
    dict(type="RandomCrop", crop_size=crop_size, cat_max_ratio=0.75),
    dict(type="RandomFlip", prob=0.5),
    dict(type="PhotoMetricDistortion"),
    dict(type="PackSegInputs"),
]
test_pipeline = [
    dict(type="LoadImageFromFile"),
    dict(type="Resize", scale=(256, 64), keep_ratio=True),
    dict(type="LoadAnnotations", reduce_zero_label=True),
    dict(type="PackSegInputs"),
]
train_dataloader = dict(batch_size=2, num_workers=0, dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(num_workers=0, dataset=dict(pipeline=test_pipeline))
test_dataloader = dict(num_workers=0, dataset=dict(pipeline=test_pipeline))
param_scheduler = [dict(type="LinearLR", start_factor=1e-6, by_epoch=False, begin=0, end=2)]
train_cfg = dict(max_iters=2, val_interval=2)
