# The ablation setting of Table 1 (ViT-L, 800 epochs).
from mae_transfer.config import load_config

config = load_config("mae_vit_large_1600ep.py", relative_to=__file__).replace(
    epochs=800, recipe="mae_t8_ablation", output_dir="output/pretrain/mae_vit_large_800ep"
)
