# The miniature Table 5 (configs/mini/reproduce.sh): CamVid road scenes (11 classes; 367 train / 101 val /
# 233 test frames, 480x360) with the miniature encoder (patch 8, 192 wide, 4 blocks; 128px -> a 16x16 grid),
# global attention with the cls token and per-block zero-init relative position bias, taps after every block
# rescaled to strides 4-32, UperNet at 128 channels, 128px crops, batch 2. Every number here is this
# project's choice (CPU-sized; no published recipe). Labels: 0 = void (ignored), line k of classes.txt = k.
_base_ = ["upernet_vit_tiny_coco128.py"]

root = "{{ $MAE_TRANSFER_DATA:../shared/data }}/camvid"
model = dict(
    backbone=dict(
        _delete_=True,
        type="MMSegBackbone",
        name="mae_vit_mini_p8",
        weights="",
        source="auto",
        img_size=128,
        taps=(0, 1, 2, 3),
        window_size=0,
        rel_pos="per_block",
        use_cls_token=True,
        drop_path_rate=0.1,
        pyramid_norm="BN",
    ),
    decode_head=dict(num_classes=11),
    auxiliary_head=dict(num_classes=11),
    test_cfg=dict(_delete_=True, mode="whole"),  # a 171x128 frame fits one forward
)
dataset = dict(type="LabelFolderDataset", classes_file=f"{root}/classes.txt", data_root="")
train_dataloader = dict(
    dataset=dict(
        data_prefix=dict(img_path=f"{root}/images/training", seg_map_path=f"{root}/annotations/training"),
        classes_file=f"{root}/classes.txt",
    )
)
val_dataloader = dict(
    dataset=dict(
        data_prefix=dict(img_path=f"{root}/images/validation", seg_map_path=f"{root}/annotations/validation"),
        classes_file=f"{root}/classes.txt",
    )
)
test_dataloader = dict(
    dataset=dict(
        data_prefix=dict(img_path=f"{root}/images/test", seg_map_path=f"{root}/annotations/test"),
        classes_file=f"{root}/classes.txt",
    )
)
test_after_training = True  # the 233 test frames, evaluated once after training (metrics.json's "test")
param_scheduler = [
    dict(type="LinearLR", start_factor=1e-6, by_epoch=False, begin=0, end=50),
    dict(type="PolyLR", eta_min=0.0, power=1.0, begin=50, end=2000, by_epoch=False),
]
train_cfg = dict(max_iters=2000, val_interval=2000)
default_hooks = dict(logger=dict(interval=50), checkpoint=dict(interval=100000))
optim_wrapper = dict(optimizer=dict(lr=4e-4))
work_dir = "output/seg/mini_upernet_vit_mini_p8_camvid"
