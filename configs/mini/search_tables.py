# The miniature Tables 4 and 5 as configs/mini/reproduce.sh makes them (docs/miniature.md).
# Runs A and B's recipe (configs/mini/search_camvid_balloon.py: entries, encoders, schedules, balloon's
# protocol) with run D's protocol for the CamVid entries, on one encoder per entry:
#   - lr fixed at 4e-4 (every CamVid entry selected it on validation in runs A-C): one value on every axis,
#     so the protocol selects nothing and makes the seed runs only;
#   - seeds 1-5: at CamVid's seed std (~0.6 mIoU a side) five runs give a Welch interval of about +-1.0,
#     three runs about +-1.6 (runs A-D);
#   - balloon keeps the lr search in {2e-4, 4e-4} and seeds 1-3 (its pick flips between draws; more seeds on
#     13 validation photos do not buy a separation within the budget: docs/miniature_history.md).
# All of it this project's choice, sized for 2 CPU cores.
from mae_transfer.config import load_config

base = load_config("search_camvid_balloon.py", relative_to=__file__)
CAMVID = {"name": "mini_seeds5", "lrs": (4e-4,), "seeds": 5}

config = base.replace(
    name="mini_tables",
    storage="journal:output/mini/search_tables/study.journal",
    output_dir="output/mini/search_tables",
    entries={name: e.replace(protocol=CAMVID) if e.task == "seg" else e for name, e in base.entries.items()},
)
