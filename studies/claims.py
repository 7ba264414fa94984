"""The tables of docs/claims.md, made from the committed studies/results/<claim>/runs.jsonl alone.

    python studies/claims.py            # rewrite the tables between the markers in docs/claims.md
    python studies/claims.py --check    # exit 1 when a table differs from what the rows give (tests run this)

docs/claims.md holds, per claim, `<!-- table:NAME -->` … `<!-- /table:NAME -->`; everything
outside the markers (the claims in our words, verdicts) is written by hand and left alone.
Smoke rows (`"smoke": true`) are never counted.
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import data_hunger  # noqa: E402
import distillation  # noqa: E402
import relative_position  # noqa: E402
import two_step  # noqa: E402
from runner import count_runs, markdown_table, read_rows  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "studies" / "results"
CLAIMS = ROOT / "docs" / "claims.md"
STUDIES = {m.STUDY.name: m.STUDY for m in (data_hunger, distillation, relative_position, two_step)}


def rows_of(name: str, results: Path = RESULTS) -> list[dict]:
    return [r for r in read_rows(results / name / "runs.jsonl") if not r.get("smoke")]


def block(name: str, results: Path = RESULTS) -> str:
    """What stands between the markers of one claim."""
    rows = rows_of(name, results)
    if not rows:
        return "No runs committed yet."
    machines = "; ".join(sorted({r["machine"] for r in rows}))
    procs = sorted({f"{r.get('processes', 1)} process(es) × {r.get('threads', '?')} thread(s)" for r in rows})
    head = (f"{count_runs(rows)} from `studies/results/{name}/runs.jsonl` ({machines}; {', '.join(procs)}). "
            f"Top-1 (%) mean ± std (n, 95% t interval); Δ = arm − {STUDIES[name].reference}, paired over seeds.")
    return "\n".join([head, ""] + markdown_table(STUDIES[name], rows))


def render(text: str, results: Path = RESULTS) -> str:
    for name in STUDIES:
        pattern = re.compile(rf"(<!-- table:{name} -->\n)(.*?)(\n<!-- /table:{name} -->)", re.S)
        if not pattern.search(text):
            raise SystemExit(f"error: {CLAIMS} has no <!-- table:{name} --> … <!-- /table:{name} --> block")
        text = pattern.sub(lambda m: m.group(1) + block(name, results) + m.group(3), text)
    return text


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="compare, do not write")
    args = ap.parse_args()
    text = CLAIMS.read_text()
    new = render(text)
    if args.check:
        if new != text:
            print(f"error: the tables in {CLAIMS} differ from studies/results/*/runs.jsonl: run python studies/claims.py",
                  file=sys.stderr)
            return 1
        return 0
    CLAIMS.write_text(new)
    print(CLAIMS)
    return 0


if __name__ == "__main__":
    sys.exit(main())
