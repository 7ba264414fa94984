"""`vitkit shards`: an ImageFolder → WebDataset tar shards for streaming training.

    vitkit shards DIR --out SHARDS/ [--shard-size 256MB] [--seed 0]
    vitkit train --data 'SHARDS/train-{000000..000099}.tar' --val-data SHARDS/ ...
"""
from __future__ import annotations

import sys
from pathlib import Path

from ..errors import UsageError


def register(sub) -> None:
    p = sub.add_parser("shards", help="write an ImageFolder as WebDataset tar shards")
    p.add_argument("data", help="ImageFolder root with train/ (and val/ or test/); 'sample' = bundled sample")
    p.add_argument("--out", required=True, help="a new folder for SPLIT-000000.tar ... and dataset.json")
    p.add_argument("--shard-size", default="256MB", help="bytes per shard: KB, MB or GB (default 256MB)")
    p.add_argument("--seed", type=int, default=0, help="the order samples are written in")
    p.set_defaults(func=run_shards)


def run_shards(args) -> int:
    from ..checkpoint.io import check_out_folder
    from ..data.folders import resolve_data_root
    from ..data.shards import parse_size, write_shards

    root = resolve_data_root(args.data)
    if not root.is_dir():
        raise UsageError(f"{root}: no such directory")
    check_out_folder(args.out, "--out")
    manifest = write_shards(root, Path(args.out), parse_size(args.shard_size), args.seed)
    for split, info in manifest["splits"].items():
        print(f"{args.out}: {split}: {info['samples']} images in {info['shards']} shard(s) "
              f"→ --data '{Path(args.out) / info['pattern']}'", file=sys.stderr)
    return 0
