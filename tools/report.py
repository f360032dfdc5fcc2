#!/usr/bin/env python
"""Tables 4 and 5 (markdown + CSV, paper numbers side by side) and plots from a search: mean ± std over
seeds per cell, the difference to a reference entry with Welch's 95% interval, every seed in seeds.csv.

  python tools/report.py --config configs/search/li2021_coco.py --out output/report
  python tools/report.py --config configs/mini/search_camvid_balloon.py --reference supervised
"""

from __future__ import annotations

import argparse
from typing import Sequence

from mae_transfer.cli import run_tool
from mae_transfer.config import apply_overrides, load_config
from mae_transfer.errors import ConfigError


def main(argv: Sequence[str] | None = None) -> None:
    from mae_transfer.search import SearchConfig
    from mae_transfer.search.report import write_report

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", required=True, help="the search config whose results to report")
    parser.add_argument("--out", default=None, help="report folder (default: OUTPUT_DIR/report)")
    parser.add_argument(
        "--reference",
        default=None,
        help="entry name or initialization every Δ column is measured against (default: random init; a "
        "search without one gets no Δ)",
    )
    parser.add_argument(
        "overrides", nargs="*", help="key=value overrides of the search config (e.g. storage=...)"
    )
    args = parser.parse_args(argv)
    cfg = apply_overrides(load_config(args.config, expect=SearchConfig), args.overrides)
    cfg.validate()
    if args.reference is None:
        args.reference = "random"  # where the search has no random init entry, the Δ cells are "-"
    elif args.reference not in cfg.entries and all(e.init != args.reference for e in cfg.entries.values()):
        raise ConfigError(
            f"--reference {args.reference!r} is neither an entry nor an initialization of search {cfg.name!r}"
        )
    path = write_report(cfg, args.out or f"{cfg.output_dir}/report", args.reference)
    print(path.read_text().split("## Trials")[0])
    print(f"report: {path}")


if __name__ == "__main__":
    run_tool(main)
