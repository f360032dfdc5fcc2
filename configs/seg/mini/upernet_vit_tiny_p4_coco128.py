# The miniature Table 5 setup: the CIFAR-pretrained tiny encoder (patch 4, 192 wide, 6 blocks) at 128px
# crops: a 32x32 token grid, global attention (cls token kept) with per-block zero-init relative position
# bias, taps at blocks 0, 2, 3, 5 rescaled to strides 4-32.
_base_ = ["upernet_vit_tiny_coco128.py"]
model = dict(
    backbone=dict(
        _delete_=True,
        type="MMSegBackbone",
        name="mae_vit_tiny_p4",
        weights="",
        source="auto",
        img_size=128,
        window_size=0,
        rel_pos="per_block",
        use_cls_token=True,
        drop_path_rate=0.1,
        pyramid_norm="BN",
    )
)
work_dir = "output/seg/mini_upernet_vit_tiny_p4_coco128"
