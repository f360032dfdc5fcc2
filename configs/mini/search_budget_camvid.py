# Budgeted search against the grid on the miniature (issue: search beyond every anchor): CamVid UperNet with
# the miniature MAE encoder, 12 candidates (6 learning rates x weight decay 0.05 (BEiT / mmseg) or 0.1
# (ViTDet)), each run 1000 iterations (half the miniature schedule) evaluated every 125 -- the same runs, same
# evaluations, for both strategies (this project's choice to fit a CPU session). STRATEGY=grid runs every
# candidate to the end; STRATEGY=halving (RATE=3) stops runs at rungs of 1 and 3 evaluations (RATE=4: 1 and
# 4). Each has its own storage. Side by side, one core each:
#   OMP_NUM_THREADS=1 STRATEGY=grid python tools/search.py run --config configs/mini/search_budget_camvid.py &
#   OMP_NUM_THREADS=1 STRATEGY=halving python tools/search.py run \
#       --config configs/mini/search_budget_camvid.py
import os

from mae_transfer.search import Entry, Protocol, SearchConfig

STRATEGY = os.environ.get("STRATEGY", "halving")
RATE = int(os.environ.get("RATE", "3"))  # halving: 4 puts the rungs at 1 and 4 of the 4 evaluations
OUT = f"output/mini/budget_{STRATEGY}" + (f"_rate{RATE}" if STRATEGY == "halving" and RATE != 3 else "")

config = SearchConfig(
    name=OUT.rsplit("/", 1)[-1],
    storage=f"journal:{OUT}/study.journal",
    output_dir=OUT,
    protocol=Protocol(
        name=OUT.rsplit("/", 1)[-1],
        strategy=STRATEGY,
        halving_rate=RATE,
        lrs=(5e-5, 1e-4, 2e-4, 4e-4, 8e-4, 1.6e-3),
        weight_decays=(0.05, 0.1),
        extend_edges=False,
        stage1_drop_path=0.1,
        drop_paths=(0.1,),
        stage1_schedule="half",
        stage2_schedule="half",
        schedules=("half",),
    ),
    schedules={"seg": {"half": ["--iters", "1000", "train_cfg.val_interval=125"]}},
    entries={
        "seg/mae/mini": Entry(
            init="mae",
            size="mini",
            task="seg",
            weights="output/mini/pretrain/encoder.pth",
            args=["--config", "configs/seg/mini/upernet_vit_mini_p8_camvid.py"],
        )
    },
)
