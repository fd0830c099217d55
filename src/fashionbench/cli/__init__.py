"""Command-line interface: parse, call the Python API (fashionbench.api), print.

`fashionbench train | evaluate | models | recipes | data | cv | boost | ablate | reproduce |
epochs-table | sweep | report | compare | predict | export | serve`."""

from __future__ import annotations

import argparse
import logging
import sys

from .. import __version__
from ..errors import FashionbenchError
from . import commands, photos, reports, serving, studies


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="fashionbench", description="Train, compare and explain Fashion-MNIST "
                                "classifiers.")
    p.add_argument("--version", action="version", version=f"fashionbench {__version__}")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parsers(sub)  # train, evaluate, models, recipes, data
    studies.add_parsers(sub)  # cv, boost, ablate, reproduce, epochs-table
    reports.add_parsers(sub)  # report, compare
    photos.add_parsers(sub)  # predict
    serving.add_parsers(sub)  # export, serve
    return p


def _os_error_line(e: OSError) -> str:
    from ..runs import is_disk_full

    name = e.filename
    if is_disk_full(e):
        return (f"the disk is full{f' writing {name}' if name else ''}; free some space, then continue the run "
                "with `fashionbench train --resume RUN_DIR` (or start it again with --overwrite)")
    if name is None:
        return f"{e.strerror or e}; check the path and its permissions"
    if isinstance(e, (FileExistsError, NotADirectoryError)):
        return f"{name} is a file where a folder is needed; pass a folder path (or move the file away)"
    if isinstance(e, IsADirectoryError):
        return f"{name} is a folder where a file is needed; pass a file"
    return f"{e.strerror or e}: {name}; check the path and its permissions"


def _rank_tag() -> str:
    """' (rank N)' inside a torchrun job, where every process prints its own error line (the test of
    train.distributed.launched_by_torchrun, without importing torch on the error path)."""
    import os

    return f" (rank {os.environ['RANK']})" if int(os.environ.get("WORLD_SIZE", "1")) > 1 and "RANK" in os.environ else ""


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.func(args)
    except FashionbenchError as e:
        print(f"fashionbench: error{_rank_tag()}: {e}", file=sys.stderr)
        return e.exit_code
    except OSError as e:  # the environment (disk, permissions), not a bug: one line, not a traceback
        if args.verbose:
            raise
        print(f"fashionbench: error: {_os_error_line(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("fashionbench: interrupted; a run can be continued with `fashionbench train --resume RUN_DIR`",
              file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
