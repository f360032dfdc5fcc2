# configs/mini/search_table4.py's random-init entry alone, in the same storage: configs/mini/
# reproduce_table4.sh's lane 2 runs it while lane 1 pretrains the encoders (random init needs no checkpoint).
# Each entry is its own study in the storage, so every search on it shares that entry's runs: none runs twice.
from mae_transfer.config import load_config

base = load_config("search_table4.py", relative_to=__file__)
config = base.replace(
    name="mini_table4_random",
    entries={name: e for name, e in base.entries.items() if e.init == "random"},
)
