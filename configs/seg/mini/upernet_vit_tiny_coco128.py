# CPU-sized Table 5 recipe on coco128's semantic labels (133 COCO-panoptic classes, 0 = unlabeled):
# a 4-block 192-wide ViT at 128px crops, UPerHead at 128 channels, batch 2, short schedule.
# Data: $MAE_TRANSFER_DATA/coco128 (default ../shared/data, relative to the repository root).
_base_ = ["../upernet_vit_b_512x512_160k_ade20k.py"]

root = "{{ $MAE_TRANSFER_DATA:../shared/data }}/coco128"
crop_size = (128, 128)
model = dict(
    data_preprocessor=dict(size=crop_size),
    backbone=dict(name="mae_vit_tiny_p16", img_size=128, taps=(0, 1, 2, 3), pyramid_norm="BN"),
    decode_head=dict(in_channels=[192, 192, 192, 192], channels=128, num_classes=133),
    auxiliary_head=dict(in_channels=192, channels=64, num_classes=133),
    test_cfg=dict(mode="slide", crop_size=crop_size, stride=(85, 85)),
)
train_pipeline = [
    dict(type="LoadImageFromFile"),
    dict(type="LoadAnnotations", reduce_zero_label=True),
    dict(type="RandomResize", scale=(512, 128), ratio_range=(0.5, 2.0), keep_ratio=True),
    dict(type="RandomCrop", crop_size=crop_size, cat_max_ratio=0.75),
    dict(type="RandomFlip", prob=0.5),
    dict(type="PhotoMetricDistortion"),
    dict(type="PackSegInputs"),
]
test_pipeline = [
    dict(type="LoadImageFromFile"),
    dict(type="Resize", scale=(512, 128), keep_ratio=True),
    dict(type="LoadAnnotations", reduce_zero_label=True),
    dict(type="PackSegInputs"),
]
dataset = dict(type="LabelFolderDataset", classes_file=f"{root}/semantic/classes.txt", data_root="")
train_dataloader = dict(
    batch_size=2,
    num_workers=1,
    persistent_workers=False,
    dataset=dict(
        _delete_=True,
        **dataset,
        data_prefix=dict(img_path=f"{root}/train2017", seg_map_path=f"{root}/semantic/training"),
        pipeline=train_pipeline,
    ),
)
val_dataloader = dict(
    num_workers=1,
    persistent_workers=False,
    dataset=dict(
        _delete_=True,
        **dataset,
        data_prefix=dict(img_path=f"{root}/val2017", seg_map_path=f"{root}/semantic/validation"),
        pipeline=test_pipeline,
    ),
)
test_dataloader = val_dataloader
param_scheduler = [
    dict(type="LinearLR", start_factor=1e-6, by_epoch=False, begin=0, end=20),
    dict(type="PolyLR", eta_min=0.0, power=1.0, begin=20, end=1000, by_epoch=False),
]
train_cfg = dict(max_iters=1000, val_interval=1000)
default_hooks = dict(logger=dict(interval=10), checkpoint=dict(interval=500))
optim_wrapper = dict(optimizer=dict(lr=2e-4))
# CPU-sized: claims no published recipe (so no ViT size of one); init follows --init, else the weights
entry = dict(_delete_=True, init="mae", task="seg", recipe="")
work_dir = "output/seg/mini_upernet_vit_tiny_coco128"
