# UperNet (mmseg's UPerHead + FCN auxiliary head) on the contract backbone, as in MAE Table 5 / BEiT's
# semantic-segmentation code: taps after blocks 3, 5, 7, 11 rescaled 4x / 2x / 1x / 0.5x, all-global
# attention with the cls token kept in the sequence and a zero-initialized relative position bias per
# block (cls rows included), absolute position embeddings resized from the pretraining grid (14) to 32.
custom_imports = dict(imports=["mae_transfer.seg"], allow_failed_imports=False)
norm_cfg = dict(type="SyncBN", requires_grad=True)
crop_size = (512, 512)
data_preprocessor = dict(
    type="SegDataPreProcessor",
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    bgr_to_rgb=True,
    pad_val=0,
    seg_pad_val=255,
    size=crop_size,
)
model = dict(
    type="EncoderDecoder",
    data_preprocessor=data_preprocessor,
    backbone=dict(
        type="MMSegBackbone",
        name="mae_vit_b",  # any registered backbone (--backbone)
        weights="",  # any supported checkpoint (--weights); empty = random init
        source="auto",
        img_size=512,
        taps=(3, 5, 7, 11),
        window_size=0,  # global attention everywhere (BEiT / MAE segmentation setup)
        rel_pos="per_block",
        use_cls_token=True,
        drop_path_rate=0.1,
        pyramid_norm="SyncBN",
    ),
    decode_head=dict(
        type="UPerHead",
        in_channels=[768, 768, 768, 768],
        in_index=[0, 1, 2, 3],
        pool_scales=(1, 2, 3, 6),
        channels=768,
        dropout_ratio=0.1,
        num_classes=150,
        norm_cfg=norm_cfg,
        align_corners=False,
        loss_decode=dict(type="CrossEntropyLoss", use_sigmoid=False, loss_weight=1.0),
    ),
    auxiliary_head=dict(
        type="FCNHead",
        in_channels=768,
        in_index=2,
        channels=256,
        num_convs=1,
        concat_input=False,
        dropout_ratio=0.1,
        num_classes=150,
        norm_cfg=norm_cfg,
        align_corners=False,
        loss_decode=dict(type="CrossEntropyLoss", use_sigmoid=False, loss_weight=0.4),
    ),
    train_cfg=dict(),
    test_cfg=dict(mode="slide", crop_size=crop_size, stride=(341, 341)),
)
# The Table 5 entry this run belongs to; `recipe` names the published recipe its numbers claim (mae: Table 5
# as reproduced by mmseg's MAE config / BEiT's ViT-L config; '' = none) and selects the recipe card's
# reference.
entry = dict(init="mae", size="B", task="seg", recipe="mae")
