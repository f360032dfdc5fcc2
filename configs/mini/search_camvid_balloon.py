# The miniature Tables 4 and 5, runs A and B's recipe (docs/miniature_history.md), and the base of
# configs/mini/search_tables.py (what configs/mini/reproduce.sh runs now: run D's protocol for the CamVid
# entries): real data, CPU, seeds.
# Table 4: Mask R-CNN on balloon (61 train / 13 val photos), Table 5: UperNet on CamVid (367 train / 101 val),
# both at 128px with the miniature encoder (patch 8, 192 wide, 4 blocks). Entries: random init, supervised
# (the encoder trained with CIFAR-10 labels, configs/cls/cifar10_mini_supervised.py) and MAE, pretrained on
# the unlabeled training images of the task's own domain: for CamVid the encoder of
# configs/pretrain/mini_camvid_balloon.py (CamVid frames + balloon photos), for balloon the one of
# configs/pretrain/mini_camvid_balloon6.py (balloon listed six times beside CamVid). At this scale an
# encoder's gain follows the images it saw most, and one encoder of this length does not serve both tasks
# (docs/miniature_history.md).
# Protocol (this project's choice, sized for 2 CPU cores): lr in {2e-4, 4e-4} at the configs' weight decay,
# drop path and schedule (selected on validation), then the selected lr re-run with seeds 1..3; each cell is
# the mean ± std of those three runs and its difference to random init carries a Welch 95% interval.
from mae_transfer.search import Entry, Protocol, SearchConfig

MINI = "output/mini"
SUPERVISED = f"{MINI}/supervised/checkpoint-last.pth"
WEIGHTS = {  # init -> task -> checkpoint
    "random": {"det": "", "seg": ""},
    "supervised": {"det": SUPERVISED, "seg": SUPERVISED},
    "mae": {"det": f"{MINI}/pretrain_balloon6/encoder.pth", "seg": f"{MINI}/pretrain/encoder.pth"},
}
TASKS = {
    "det": ["--config", "configs/det/mini/mask_rcnn_vit_mini_p8_balloon.py"],
    "seg": ["--config", "configs/seg/mini/upernet_vit_mini_p8_camvid.py"],
}

# the configs' own lengths: det 600, seg 2000 iterations
config = SearchConfig(
    name="mini_camvid_balloon",
    storage=f"journal:{MINI}/search/study.journal",
    output_dir=f"{MINI}/search",
    protocol=Protocol(
        name="mini_seeds",
        lrs=(2e-4, 4e-4),
        weight_decays=(0.05,),
        extend_edges=False,
        stage1_drop_path=0.1,
        drop_paths=(0.1,),
        stage1_schedule="config",
        stage2_schedule="config",
        schedules=("config",),
        seeds=3,
    ),
    schedules={
        "det": {"config": []},
        "seg": {"config": []},
    },
    entries={
        f"{task}/{init}/mini": Entry(init=init, size="mini", task=task, weights=weights[task], args=args)
        for task, args in TASKS.items()
        for init, weights in WEIGHTS.items()
    },
)
