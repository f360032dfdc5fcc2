# MAE ViT-L/16, released recipe: same as ViT-B except the model.
from mae_transfer.config import load_config

config = load_config("mae_vit_base_1600ep.py", relative_to=__file__).replace(
    model="mae_vit_large_patch16", output_dir="output/pretrain/mae_vit_large_1600ep"
)
