# Table 5, ViT-L: taps after blocks 7, 11, 15, 23, 1024-wide heads, layer decay 0.95 and drop path 0.2 from
# the only ViT-L/16 512px UperNet config of BEiT's segmentation code, which the MAE paper follows
# (microsoft/unilm @ 86f74f0, beit/semantic_segmentation/configs/beit/upernet/
# upernet_beit_large_24_512_slide_160k_ade20k_pt2ft.py). That config is for intermediate-fine-tuned BEiT,
# so Table 5's search (configs/search/mae2021_ade20k.py) also searches layer decay for ViT-L. lr is searched
# per entry (MAE App. A.4).
_base_ = ["upernet_vit_b_512x512_160k_ade20k.py"]
model = dict(
    backbone=dict(name="mae_vit_l", taps=(7, 11, 15, 23), drop_path_rate=0.2, act_checkpoint=True),
    decode_head=dict(in_channels=[1024, 1024, 1024, 1024], channels=1024),
    auxiliary_head=dict(in_channels=1024),
)
optim_wrapper = dict(paramwise_cfg=dict(layer_decay=0.95))
entry = dict(size="L")
work_dir = "output/seg/upernet_vit_l_512x512_160k_ade20k"
