# The miniature tables' MAE-vs-random comparison with the pretraining run counted (docs/miniature.md):
# each MAE entry fine-tunes three pretraining runs of its recipe -- pretraining seeds 0
# (configs/mini/reproduce.sh's encoder), 1 and 2 -- one per seed run, so its spread and the Δ interval hold
# the variance of pretraining as well as of fine-tuning. Selection (stage 1) runs on seed 0's encoder, as in
# the base. The supervised entries are left out (this project's choice, to fit the CPU budget: their one
# encoder is the base's). After reproduce.sh's encoders, the four more (two lanes, one core each):
#   export OMP_NUM_THREADS=1
#   for s in 1 2; do python tools/pretrain.py --config configs/pretrain/mini_camvid_balloon.py seed=$s \
#       output_dir=output/mini/pretrain_s$s; done &
#   for s in 1 2; do python tools/pretrain.py --config configs/pretrain/mini_camvid_balloon6.py seed=$s \
#       output_dir=output/mini/pretrain_balloon6_s$s; done; wait
#   python tools/search.py run --config configs/mini/search_pretraining_runs.py --workers 2
#   python tools/report.py --config configs/mini/search_pretraining_runs.py --out output/mini/report_runs
from mae_transfer.config import load_config

base = load_config("search_camvid_balloon.py", relative_to=__file__)
MINI = "output/mini"
RUNS = {  # task -> the MAE encoder's pretraining runs (seeds 0, 1, 2)
    "det": tuple(f"{MINI}/pretrain_balloon6{s}/encoder.pth" for s in ("", "_s1", "_s2")),
    "seg": tuple(f"{MINI}/pretrain{s}/encoder.pth" for s in ("", "_s1", "_s2")),
}

config = base.replace(
    name="mini_pretraining_runs",
    storage=f"journal:{MINI}/search_runs/study.journal",
    output_dir=f"{MINI}/search_runs",
    entries={
        name: e.replace(weights=RUNS[e.task]) if e.init == "mae" else e
        for name, e in base.entries.items()
        if e.init != "supervised"
    },
)
