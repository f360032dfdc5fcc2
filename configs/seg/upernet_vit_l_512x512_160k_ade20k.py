# Table 5, ViT-L: taps after blocks 7, 11, 15, 23; 1024-wide heads; layer decay 0.65 over 24 blocks.
_base_ = ["upernet_vit_b_512x512_160k_ade20k.py"]
model = dict(
    backbone=dict(name="mae_vit_l", taps=(7, 11, 15, 23), use_checkpoint=True),
    decode_head=dict(in_channels=[1024, 1024, 1024, 1024], channels=1024),
    auxiliary_head=dict(in_channels=1024),
)
entry = dict(size="L")
work_dir = "output/seg/upernet_vit_l_512x512_160k_ade20k"
