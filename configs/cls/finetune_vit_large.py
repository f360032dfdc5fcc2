# Table 9 for ViT-L: 50 epochs (everything else as ViT-B).
from mae_transfer.config import load_config

config = load_config("finetune_vit_base.py", relative_to=__file__).replace(
    model="mae_vit_large_patch16", epochs=50, output_dir="output/cls/finetune_vit_large"
)
