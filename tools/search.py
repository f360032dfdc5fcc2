#!/usr/bin/env python
"""Per-entry hyperparameter search (Li et al.'s protocol by default) over real train_det / train_seg runs.

Examples:
  python tools/search.py run --config configs/search/li2021_coco.py                 # one worker, here
  python tools/search.py run --config configs/search/li2021_coco.py --workers 2     # two local workers
  python tools/search.py run --config ... storage=postgresql://host/db             # workers on many machines
  python tools/search.py slurm --config ... --array 16 --partition learn            # a Slurm job array
  python tools/search.py status --config ...
A killed search resumes by running the same command: finished trials are never run again, the trial that
was running when the worker died is run again (and resumes from its own last checkpoint).
"""

from __future__ import annotations

import argparse
from typing import Sequence

from mae_transfer.cli import HelpFormatter, run_tool
from mae_transfer.config import apply_overrides, load_config


def main(argv: Sequence[str] | None = None) -> None:
    from mae_transfer.runlog import setup_logging
    from mae_transfer.search import SearchConfig
    from mae_transfer.search.runner import entry_status
    from mae_transfer.search.store import TrialStore
    from mae_transfer.search.workers import run_workers, submit_slurm_array

    parser = argparse.ArgumentParser(
        description=__doc__,
        formatter_class=HelpFormatter,
        epilog="config keys (override with key=value):\n" + SearchConfig.help_text(),
    )
    parser.add_argument("command", choices=["run", "slurm", "status"])
    parser.add_argument("--config", required=True, help="search config (configs/search/*.py)")
    parser.add_argument("--workers", type=int, default=1, help="local worker processes sharing the storage")
    parser.add_argument("--array", type=int, default=4, help="slurm: number of workers in the job array")
    parser.add_argument("--partition", default=None)
    parser.add_argument("--timeout-min", type=int, default=4320)
    parser.add_argument(
        "--no-reuse",
        action="store_true",
        help="run every trial, even one whose identity already finished in the storage (reuse_results=False)",
    )
    parser.add_argument("overrides", nargs="*", help="key=value overrides of the search config")
    args = parser.parse_intermixed_args(argv)
    setup_logging()
    if args.no_reuse:
        args.overrides.append("reuse_results=False")
    cfg = apply_overrides(load_config(args.config, expect=SearchConfig), args.overrides)
    cfg.validate()
    if args.command == "run":
        ran = run_workers(args.config, args.overrides, args.workers, gpus_per_worker=cfg.gpus_per_trial)
        print(f"trials run by this command: {sum(ran)} ({', '.join(map(str, ran))} per worker)")
    elif args.command == "slurm":
        jobs = submit_slurm_array(
            args.config,
            args.overrides,
            args.array,
            f"{cfg.output_dir}/submitit",
            args.partition,
            args.timeout_min,
            gpus_per_worker=cfg.gpus_per_trial,
        )
        print(f"submitted {len(jobs)} workers: {jobs[0].job_id.split('_')[0]}")
    store = TrialStore.for_search(cfg)
    unfinished = []
    for name in cfg.entries:
        _, best, done = entry_status(cfg, store, name)
        state = "done" if done else "running"
        result = f"best {best.value:.3f} ({best.key})" if best else "-"
        print(f"{name:<28} {state:<8} {store.counts(name)}  {result}")
        if not done:
            unfinished.append(name)
    if args.command == "run" and unfinished:
        # workers only return once every entry is done: one that did not ended abnormally (see its log above)
        raise SystemExit(
            f"error: the search is not complete ({', '.join(unfinished)}): a worker ended before it; "
            "run the same command again to go on"
        )


if __name__ == "__main__":
    run_tool(main)
