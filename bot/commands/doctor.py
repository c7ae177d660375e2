"""``python -m bot doctor``: check what running the bot needs, a line per check with its fix."""

from __future__ import annotations

import argparse
import os

from bot.config import load_config
from bot.doctor import DoctorContext, run_checks


def register(subparsers: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "doctor",
        parents=parents,
        help="check libopus, davey, the models and the database",
        description="Check everything the bot needs and say how to fix what fails.",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    ctx = DoctorContext(config=config, db_url=args.db or config.storage.url, env=dict(os.environ))
    results = run_checks(ctx)
    for result in results:
        for line in result.lines():
            print(line, flush=True)
    failed = [r.name for r in results if not r.ok]
    warned = [r.name for r in results if r.warning]
    print(
        f"{len(results) - len(failed) - len(warned)} of {len(results)} checks passed"
        + (f"; warnings (the bot runs, with less): {', '.join(warned)}" if warned else "")
        + (f"; failed: {', '.join(failed)}" if failed else "")
    )
    return 1 if failed else 0
