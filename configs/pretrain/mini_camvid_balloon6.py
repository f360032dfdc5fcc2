# A detection-leaning variant of mini_camvid_balloon.py (docs/miniature_history.md): balloon's 61
# training photos listed six times beside CamVid's 367 frames (733 images an epoch, half of them balloon),
# 240 epochs: 2640 steps against the base's 2400, about its wall time. The balloon table's MAE encoder in
# configs/mini/search_camvid_balloon.py; this project's choice.
from mae_transfer.config import load_config
from mae_transfer.paths import shared_data

config = load_config("mini_camvid_balloon.py", relative_to=__file__).replace(
    data_path=",".join([shared_data("camvid", "images", "training")] + [shared_data("balloon", "train")] * 6),
    epochs=240,
    warmup_epochs=24,
    output_dir="output/mini/pretrain_balloon6",
)
