# The GPU miniature's MAE encoder for the balloon table: configs/mini/gpu/pretrain.py on balloon's photos
# listed six times beside CamVid's frames (the CPU miniature's configs/pretrain/mini_camvid_balloon6.py).
from mae_transfer.config import load_config
from mae_transfer.paths import shared_data

config = load_config("pretrain.py", relative_to=__file__).replace(
    data_path=",".join([shared_data("camvid", "images", "training")] + [shared_data("balloon", "train")] * 6),
    epochs=120,
    warmup_epochs=12,
    output_dir="output/mini_gpu/pretrain_balloon6",
)
