# configs/mini/gpu/search_tables.py in seconds per run on CPU (reproduce_gpu.sh --smoke, the test suite): the
# *_smoke.py task configs (64px, 2 iterations), seeds 1-2. Checks the pipeline, not the sizing.
from mae_transfer.config import load_config

base = load_config("search_tables.py", relative_to=__file__)
config = base.replace(
    name="mini_gpu_tables_smoke",
    protocol=base.protocol.replace(seeds=2),
    entries={
        name: e.replace(args=[a.replace(".py", "_smoke.py") if a.endswith(".py") else a for a in e.args])
        for name, e in base.entries.items()
    },
)
