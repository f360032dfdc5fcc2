# The miniature reproduction of Tables 4 and 5 (issue #6), real data, CPU, <= 2 hours on 2 cores.
# Entries: random init, supervised init (the tiny ViT trained with CIFAR-10 labels), MAE init (pretrained
# on the same CIFAR-10 images without labels); tasks: coco128 Mask R-CNN and coco128 semantic UperNet,
# both at 128px with the patch-4 encoder. Reduced protocol: 2x2 lr x wd grid (no edge extension), drop
# path {0, 0.1}, two schedule lengths. The checkpoints come from configs/mini/reproduce.sh (steps 1-2).
from mae_transfer.search import Entry, Protocol, SearchConfig

MINI = "output/mini"
WEIGHTS = {
    "random": "",
    "supervised": f"{MINI}/cifar10/finetune_random/checkpoint-last.pth",
    "mae": f"{MINI}/cifar10/pretrain/encoder.pth",
}
DET = [
    "--config",
    "configs/det/mini/mask_rcnn_vit_tiny_p4_coco128.py",
    "dataloader.train.total_batch_size=2",
    "train.checkpointer.period=100000",
]
SEG = [
    "--config",
    "configs/seg/mini/upernet_vit_tiny_p4_coco128.py",
    "model.test_cfg.mode=whole",
    "default_hooks.checkpoint.interval=100000",
]

entries = {}
for init, weights in WEIGHTS.items():
    entries[f"det/{init}/tiny"] = Entry(init=init, size="tiny", task="det", weights=weights, args=DET)
    entries[f"seg/{init}/tiny"] = Entry(init=init, size="tiny", task="seg", weights=weights, args=SEG)


def det_iters(n: int) -> list:
    return [f"train.max_iter={n}", f"train.eval_period={n}"]


def seg_iters(n: int) -> list:
    return [f"train_cfg.max_iters={n}", f"train_cfg.val_interval={n}", f"param_scheduler.1.end={n}"]


config = SearchConfig(
    name="mini_coco128",
    storage=f"journal:{MINI}/search/study.journal",
    output_dir=f"{MINI}/search",
    protocol=Protocol(
        name="mini",
        lrs=(1e-4, 3e-4),
        weight_decays=(0.05, 0.1),
        extend_edges=False,
        drop_paths=(0.0, 0.1),
        stage1_schedule="short",
        stage2_schedule="long",
        schedules=("short", "long"),
    ),
    schedules={
        "det": {"short": det_iters(60), "long": det_iters(120)},
        "seg": {"short": seg_iters(80), "long": seg_iters(160)},
    },
    entries=entries,
)
