"""`vitkit plot` (runs side by side) and `vitkit runs` (a table of the runs under a folder).

    vitkit plot runs/a runs/b --out cmp.png --x minutes --metric top1
    vitkit runs runs/
"""
from __future__ import annotations

import json
from pathlib import Path


def register(sub) -> None:
    from ..viz.runs import AXES, METRICS

    p = sub.add_parser("plot", help="runs side by side from their metrics.jsonl")
    p.add_argument("runs", nargs="+", help="run directories")
    p.add_argument("--out", required=True, metavar="FILE.png")
    p.add_argument("--x", choices=AXES, default="minutes", help="wall-clock minutes (default), steps or epochs")
    p.add_argument("--metric", choices=list(METRICS), default="top1", help="test top-1 (default), loss or lr")
    p.set_defaults(func=run_plot)
    p = sub.add_parser("runs", help="a table of the runs under a folder: best top-1, minutes, status")
    p.add_argument("folder")
    p.add_argument("--json", action="store_true", help="one JSON list")
    p.set_defaults(func=run_runs)


def run_plot(args) -> int:
    from ..checkpoint.io import check_out_file
    from ..viz.runs import plot_runs

    check_out_file(args.out, "--out")
    print(plot_runs([Path(r) for r in args.runs], Path(args.out), x=args.x, metric=args.metric))
    return 0


def run_runs(args) -> int:
    from ..viz.runs import format_table, run_rows

    table = run_rows(Path(args.folder))
    print(json.dumps(table) if args.json else format_table(table))
    return 0
