# The GPU miniature's Tables 4 and 5 (configs/mini/reproduce_gpu.sh): the CPU miniature's entries
# (configs/mini/search_camvid_balloon.py: random init, supervised on CIFAR-10 labels, MAE on the task's own
# unlabeled images) with the GPU configs of configs/mini/gpu/. Protocol: one lr per task (balloon 3e-4, the
# CPU balloon config's own, between the 2e-4 / 4e-4 its search picks from; CamVid 4e-4, every CamVid entry's
# pick on CPU) and seeds 1-5 (every cell: mean ± std of 5 runs, its difference to random init with a Welch
# 95% interval); 4 workers share the GPU. This project's first GPU sizing, not yet timed on a GPU. Output
# under $MAE_TRANSFER_MINI_OUT (reproduce_gpu.sh sets it).
import os

from mae_transfer.search import Entry, Protocol, SearchConfig

MINI = os.environ.get("MAE_TRANSFER_MINI_OUT", "output/mini_gpu")
SUPERVISED = f"{MINI}/supervised/checkpoint-last.pth"
WEIGHTS = {  # init -> task -> checkpoint
    "random": {"det": "", "seg": ""},
    "supervised": {"det": SUPERVISED, "seg": SUPERVISED},
    "mae": {"det": f"{MINI}/pretrain_balloon6/encoder.pth", "seg": f"{MINI}/pretrain/encoder.pth"},
}
TASKS = {
    "det": ["--config", "configs/mini/gpu/det_balloon.py"],
    "seg": ["--config", "configs/mini/gpu/seg_camvid.py"],
}
SEG = {"name": "mini_gpu_camvid", "lrs": (4e-4,)}

config = SearchConfig(
    name="mini_gpu_tables",
    storage=f"journal:{MINI}/search/study.journal",
    output_dir=f"{MINI}/search",
    protocol=Protocol(
        name="mini_gpu_balloon",
        lrs=(3e-4,),
        weight_decays=(0.05,),
        extend_edges=False,
        stage1_drop_path=0.1,
        drop_paths=(0.1,),
        stage1_schedule="config",
        stage2_schedule="config",
        schedules=("config",),
        seeds=5,
    ),
    schedules={"det": {"config": []}, "seg": {"config": []}},
    entries={
        f"{task}/{init}/mini": Entry(
            init=init,
            size="mini",
            task=task,
            weights=weights[task],
            args=args,
            protocol=SEG if task == "seg" else {},
        )
        for task, args in TASKS.items()
        for init, weights in WEIGHTS.items()
    },
)
