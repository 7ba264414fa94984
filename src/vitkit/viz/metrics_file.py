"""A run's metrics.jsonl as a list of records; read by the figures and by `vitkit runs`/`plot`.

Its own module so that `vitkit runs` (a table) does not load matplotlib with the figures.
"""
from __future__ import annotations

import json
from pathlib import Path

from ..errors import UsageError


def read_metrics(run: Path) -> list[dict]:
    path = Path(run) / "metrics.jsonl" if Path(run).is_dir() else Path(run)
    if not path.is_file():
        raise UsageError(f"{run}: no metrics.jsonl (is it a vitkit run directory?)")
    rows = []
    for i, line in enumerate(path.read_text().splitlines(), 1):
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            raise UsageError(f"{path}:{i}: not a JSON line") from None
    if not rows:
        raise UsageError(f"{path}: empty, nothing to plot")
    return rows
