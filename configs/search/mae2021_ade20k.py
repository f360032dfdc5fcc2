# Table 5's search at full scale: "lr searched per entry" (MAE paper), everything else the recipe's
# (wd 0.05, 160k iterations; drop path 0.1 / 0.2 and layer decay 0.65 / 0.95 for B / L). One schedule, so
# stages 2-3 add nothing beyond stage 1. ViT-L's layer decay comes from BEiT's config for intermediate-fine-
# tuned models (no public source for self-supervised ViT-L), so ViT-L entries search it with lr over
# {0.65, 0.75, 0.85, 0.95}: mmseg's ViT-B value to BEiT's ViT-L value in 0.1 steps (this project's choice).
import os

from mae_transfer.config import load_config
from mae_transfer.search import Entry, Protocol, SearchConfig

WEIGHTS = load_config("li2021_coco.py", relative_to=__file__, name="WEIGHTS")  # the same checkpoints

ade = ["--data-root", os.environ.get("ADE20K_ROOT", "data/ade/ADEChallengeData2016")]
entries = {}
for init in ("supervised", "mocov3", "beit", "mae"):
    for size in ("B", "L"):
        cfg = f"configs/seg/upernet_vit_{size.lower()}_512x512_160k_ade20k.py"
        entries[f"seg/{init}/{size}"] = Entry(
            init=init,
            size=size,
            task="seg",
            weights=WEIGHTS[(init, size)],
            args=["--config", cfg, *ade],
            protocol={"layer_decays": (0.65, 0.75, 0.85, 0.95), "stage1_drop_path": 0.2, "drop_paths": (0.2,)}
            if size == "L"
            else {},
        )
config = SearchConfig(
    name="mae2021_ade20k",
    storage=os.environ.get("SEARCH_STORAGE", "journal:output/search/mae2021_ade20k/study.journal"),
    output_dir="output/search/mae2021_ade20k",
    protocol=Protocol(
        name="lr-only",
        lrs=(5e-5, 1e-4, 2e-4, 4e-4),
        weight_decays=(0.05,),
        stage1_drop_path=0.1,
        stage1_schedule="160k",
        drop_paths=(0.1,),
        stage2_schedule="160k",
        schedules=("160k",),
    ),
    schedules={"seg": {"160k": []}},
    entries=entries,
    gpus_per_trial=8,  # the recipe's batch 16 = 8 GPUs x 2 (mmseg_mae)
)
