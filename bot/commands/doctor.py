"""``python -m bot doctor``: check what running the bot needs, a line per check with its fix."""

from __future__ import annotations

import argparse
import json
import os
from typing import Any

from bot.config import load_config
from bot.doctor import CheckResult, DoctorContext, run_checks


def register(subparsers: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "doctor",
        parents=parents,
        help="check libopus, davey, the models and the database",
        description="Check everything the bot needs and say how to fix what fails.",
    )
    p.add_argument(
        "--json",
        action="store_true",
        help="print one JSON object (each check's name, status ok|warn|fail, detail and fix) for scripts and monitors",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    ctx = DoctorContext(config=config, db_url=args.db or config.storage.url, env=dict(os.environ))
    results = run_checks(ctx)
    failed = [r.name for r in results if not r.ok]
    if getattr(args, "json", False):
        print(json.dumps(as_json(results), ensure_ascii=False, indent=2), flush=True)
        return 1 if failed else 0
    for result in results:
        for line in result.lines():
            print(line, flush=True)
    warned = [r.name for r in results if r.warning]
    print(
        f"{len(results) - len(failed) - len(warned)} of {len(results)} checks passed"
        + (f"; warnings (the bot runs, with less): {', '.join(warned)}" if warned else "")
        + (f"; failed: {', '.join(failed)}" if failed else "")
    )
    return 1 if failed else 0


def as_json(results: list[CheckResult]) -> dict[str, Any]:
    """``doctor --json``: ``ok`` is the exit code's verdict (no FAIL); warnings leave it true."""
    return {
        "ok": all(r.ok for r in results),
        "checks": [
            {
                "name": r.name,
                "status": "warn" if r.warning else "ok" if r.ok else "fail",
                "detail": r.detail,
                "fix": r.fix,
            }
            for r in results
        ],
    }
