"""Command line: ``python -m bot <command>`` (also installed as ``s-talk``).

Each command lives in ``bot.commands.<name>`` and exposes ``register(subparsers, parents)``
which adds its parser and sets ``func`` to a callable taking the parsed args and returning
an exit code.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from bot.errors import StalkError

COMMAND_MODULES = (
    "bot.commands.replay",
    "bot.commands.logs",
    "bot.commands.run",
    "bot.commands.doctor",
    "bot.commands.voiceprint",
)


def _common_options() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", metavar="PATH", help="TOML configuration file (default: none, built-in defaults)")
    common.add_argument("--db", metavar="PATH_OR_URL", help="database file or SQLAlchemy URL (overrides [storage] url)")
    common.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-vv for debug)")
    return common


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="s-talk", description="S-Talk voice-call companion")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    common = _common_options()
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers, [common])
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.WARNING - 10 * min(args.verbose, 2)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args) or 0)
    except StalkError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
