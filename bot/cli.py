"""Command line: ``python -m bot <command>`` (also installed as ``s-talk``).

Each command lives in ``bot.commands.<name>`` and exposes ``register(subparsers, parents)``
which adds its parser and sets ``func`` to a callable taking the parsed args and returning
an exit code.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import signal
import sys
from typing import NoReturn

from bot.errors import StalkError

COMMAND_MODULES = (
    "bot.commands.replay",
    "bot.commands.logs",
    "bot.commands.run",
    "bot.commands.doctor",
    "bot.commands.voiceprint",
)


class Parser(argparse.ArgumentParser):
    """argparse with its usage errors as one ``error:`` line, like every other bad input."""

    def error(self, message: str) -> NoReturn:
        print(f"error: {message} (see: {self.prog} --help)", file=sys.stderr)
        raise SystemExit(2)


def _common_options() -> argparse.ArgumentParser:
    common = Parser(add_help=False)
    common.add_argument("--config", metavar="PATH", help="TOML configuration file (default: none, built-in defaults)")
    common.add_argument("--db", metavar="PATH_OR_URL", help="database file or SQLAlchemy URL (overrides [storage] url)")
    common.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-vv for debug)")
    return common


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="s-talk", description="S-Talk voice-call companion")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    common = _common_options()
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers, [common])
    return parser


def main(argv: list[str] | None = None) -> int:
    from bot.shutdown import early

    try:
        with early():  # Ctrl+C while the commands' modules load is one line too
            parser = build_parser()
            args = parser.parse_args(argv)
            level = logging.WARNING - 10 * min(args.verbose, 2)
            logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
            return int(args.func(args) or 0)
    except StalkError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        # bot.shutdown.Interrupted says which signal; a bare KeyboardInterrupt is Ctrl+C.
        code = getattr(exc, "exit_code", 128 + signal.SIGINT)
        print(f"interrupted ({getattr(exc, 'name', 'SIGINT')})", file=sys.stderr)
        return code


def entry() -> int:
    """The process's entry point (``python -m bot``, ``s-talk``): ``main``, then the exit code.

    Once the command is done, a stop signal (a second Ctrl+C while the interpreter shuts down)
    changes nothing: it is ignored rather than turning a clean exit into a death by signal.
    """
    code = main()
    from bot.shutdown import STOP_SIGNALS

    for sig in STOP_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)
    return code
