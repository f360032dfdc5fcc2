# Table 5, ViT-B: UperNet on ADE20K, 160k iterations at batch 16 (8 GPUs x 2), 512x512.
_base_ = ["_base_/upernet_contract.py", "_base_/ade20k_512.py", "_base_/schedule_160k.py"]
work_dir = "output/seg/upernet_vit_b_512x512_160k_ade20k"
