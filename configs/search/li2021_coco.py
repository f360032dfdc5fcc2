# Table 4's search at full scale (Li et al. 2021): every initialization x {ViT-B, ViT-L} on COCO.
# Checkpoints come from environment variables (official releases or this project's own pretraining).
# ViT-L entries reuse their ViT-B entry's lr / wd and re-tune drop path only. Random init runs longer: its
# stages 1 and 2 both use 100 epochs (its "short" schedule), stage 3 compares 100 / 200 / 400 epochs.
import os

from mae_transfer.recipes import det_iters
from mae_transfer.search import Entry, Protocol, SearchConfig


def schedule(size: str, epochs: int) -> list:
    iters = det_iters(epochs)
    return [
        "--config",
        f"configs/det/mask_rcnn_vit_{size.lower()}_100ep.py",
        f"train.max_iter={iters}",
        f"train.eval_period={iters}",
        f"lr_multiplier.warmup_length={0.25 / epochs}",
    ]


WEIGHTS = {  # (init, size) -> checkpoint
    ("supervised", "B"): os.environ.get("DEIT_VIT_B", "checkpoints/deit_base_patch16_224.pth"),
    ("supervised", "L"): os.environ.get("SUP_VIT_L", "checkpoints/vit_large_patch16_224_in1k.pth"),
    ("mocov3", "B"): os.environ.get("MOCOV3_VIT_B", "checkpoints/mocov3_vit_base_300ep.pth.tar"),
    ("mocov3", "L"): os.environ.get("MOCOV3_VIT_L", "checkpoints/mocov3_vit_large_300ep.pth.tar"),
    ("beit", "B"): os.environ.get("BEIT_VIT_B", "checkpoints/beit_base_patch16_224_pt22k.pth"),
    ("beit", "L"): os.environ.get("BEIT_VIT_L", "checkpoints/beit_large_patch16_224_pt22k.pth"),
    ("mae", "B"): os.environ.get("MAE_VIT_B", "checkpoints/mae_pretrain_vit_base.pth"),
    ("mae", "L"): os.environ.get("MAE_VIT_L", "checkpoints/mae_pretrain_vit_large.pth"),
}
coco = ["--coco-root", os.environ.get("DETECTRON2_DATASETS", "datasets")]
entries = {}
for init in ("random", "supervised", "mocov3", "beit", "mae"):
    for size in ("B", "L"):
        epochs = (100, 200, 400) if init == "random" else (25, 50, 100)
        entries[f"det/{init}/{size}"] = Entry(
            init=init,
            size=size,
            task="det",
            weights=WEIGHTS.get((init, size), ""),
            args=coco,
            schedules=dict(zip(("short", "medium", "long"), (schedule(size, e) for e in epochs))),
            reuse_lr_wd_from=f"det/{init}/B" if size == "L" else "",
            protocol={"stage2_schedule": "short"} if init == "random" else {},
        )

config = SearchConfig(
    name="li2021_coco",
    storage=os.environ.get("SEARCH_STORAGE", "journal:output/search/li2021_coco/study.journal"),
    output_dir="output/search/li2021_coco",
    protocol=Protocol(),  # 3x3 lr x wd grid with edge extension, drop path {0, .1, .2, .3}, 3 schedules
    entries=entries,
    # batch 64 = 8 GPUs x 8 images (this project's choice; Li et al. trained on 64 GPUs x 1)
    gpus_per_trial=8,
)
