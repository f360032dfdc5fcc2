# configs/mini/search_table4.py's supervised and MAE entries, in the same storage: configs/mini/
# reproduce_table4.sh's lane 1 runs them once their encoders exist, beside lane 2's random-init runs, so
# neither lane waits on a run the other holds (see search_table4_random.py).
from mae_transfer.config import load_config

base = load_config("search_table4.py", relative_to=__file__)
config = base.replace(
    name="mini_table4_pretrained",
    entries={name: e for name, e in base.entries.items() if e.init != "random"},
)
