"""The `vitkit` command.

    vitkit models 'vit_small*'            # list the registry
    vitkit --help                         # every subcommand

Each subcommand lives in its own module with `register(subparsers)` and `run(args) -> int`.
User errors print one line and exit 2; `--debug` shows the traceback instead.
"""
from __future__ import annotations

import argparse
import sys

from .. import __version__
from ..errors import EXIT_PREEMPTED, USER_ERRORS, CheckpointWriteFailed, ExportRefused, Preempted, TrainingDiverged
from . import (checkpoint_cmds, data_cmds, deploy_cmds, embed_cmds, eval_cmds, model_cmds, predict_cmds,
               runs_cmds, serve_cmds, demo_cmds, train_cmds, viz_cmds)

COMMAND_MODULES = [model_cmds, train_cmds, eval_cmds, predict_cmds, data_cmds, embed_cmds, checkpoint_cmds, deploy_cmds, serve_cmds, demo_cmds, viz_cmds, runs_cmds]


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse prints usage + message and exits 2; keep it to one line
        print(f"error: {message} (see `{self.prog} --help`)", file=sys.stderr)
        raise SystemExit(2)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="vitkit", description="Vision Transformers: train, evaluate, convert, explain.")
    parser.add_argument("--version", action="version", version=f"vitkit {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for module in COMMAND_MODULES:
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except USER_ERRORS as e:
        if args.debug:
            raise
        print(f"error: {e}", file=sys.stderr)
        return 2
    except (TrainingDiverged, CheckpointWriteFailed, ExportRefused) as e:  # a run that failed, not a bad argument: exit 1
        if args.debug:
            raise
        print(f"error: {e}", file=sys.stderr)
        return 1
    except Preempted as e:  # not an error of the run: it can go on (README "When a run is interrupted")
        print(f"vitkit: {e}", file=sys.stderr)
        return EXIT_PREEMPTED
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # anything unexpected: still one line unless --debug
        if args.debug:
            raise
        if isinstance(e, OSError) and e.filename and e.strerror:  # the file system said no: name the path
            print(f"error: {e.filename}: {e.strerror}", file=sys.stderr)
            return 1
        msg = str(e).strip().splitlines()[0] if str(e).strip() else ""
        print(f"error: {type(e).__name__}: {msg} (run with --debug for the traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
