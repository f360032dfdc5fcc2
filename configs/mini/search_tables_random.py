# configs/mini/search_tables.py's random-init entries alone, in the same storage: configs/mini/reproduce.sh's
# lane 1 runs them once its own encoder is made, while lane 2 still pretrains (random init needs no weights).
# Each entry is its own study in the storage, so every search on it shares that entry's runs: none runs twice.
from mae_transfer.config import load_config

base = load_config("search_tables.py", relative_to=__file__)
config = base.replace(
    name="mini_tables_random",
    entries={name: e for name, e in base.entries.items() if e.init == "random"},
)
