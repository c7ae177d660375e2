"""Command line: ``python -m bot <command>`` (also installed as ``s-talk``).

Each command lives in ``bot.commands.<name>`` and exposes ``register(subparsers, parents)``
which adds its parser and sets ``func`` to a callable taking the parsed args and returning
an exit code.

The common options (``--config``, ``--db``, ``-v``) are accepted before the command as well as
after it (``python -m bot --db calls.db logs list`` and ``python -m bot logs list --db
calls.db``): the top parser holds their defaults, and the commands' copies default to
nothing (``SUPPRESS``), so a value given before the command is not overwritten by a
command's default; given in both places, the later one counts.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import signal
import sys
from typing import Any, NoReturn

from bot import __version__
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


SCRIPT = "s-talk"  # pyproject's [project.scripts]
MODULE = "python -m bot"  # how README runs it


def program_name(argv0: str | None = None) -> str:
    """The name usage lines show: the installed script's when run as ``s-talk``, else
    ``python -m bot``, the way README.md runs it (``sys.argv[0]`` is then ``.../bot/__main__.py``)."""
    arg = sys.argv[0] if argv0 is None else argv0
    return SCRIPT if os.path.basename(arg) in (SCRIPT, SCRIPT + ".exe") else MODULE


def _common_options(*, top: bool) -> argparse.ArgumentParser:
    # On the commands, no defaults: the top parser's (or the value given before the command) stand.
    none: Any = None if top else argparse.SUPPRESS
    common = Parser(add_help=False)
    common.add_argument(
        "--config", metavar="PATH", default=none, help="TOML configuration file (default: none, built-in defaults)"
    )
    common.add_argument(
        "--db", metavar="PATH_OR_URL", default=none, help="database file or SQLAlchemy URL (overrides [storage] url)"
    )
    common.add_argument(
        "-v", "--verbose", action="count", default=0 if top else argparse.SUPPRESS, help="more logging (-vv for debug)"
    )
    return common


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    parser = Parser(
        prog=prog or program_name(),
        description="S-Talk voice-call companion",
        parents=[_common_options(top=True)],
    )
    parser.add_argument("--version", action="version", version=f"S-Talk {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    common = _common_options(top=False)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers, [common])
    return parser


class PlainFormatter(logging.Formatter):
    """``warning: <message>``: a log line reads like the CLI's other messages (``error: ...``),
    not like a line of the transcript that ``replay`` prints meanwhile on standard output."""

    def format(self, record: logging.LogRecord) -> str:
        return f"{record.levelname.lower()}: {super().format(record)}"


class StderrHandler(logging.StreamHandler):
    """Log lines to standard error, each written whole after standard output is flushed: on a
    terminal (both streams on one screen) a line never lands inside a printed transcript line
    and never overtakes the lines printed before it."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stdout.flush()
        except (OSError, ValueError):  # closed or broken stdout: the log line still goes out
            pass
        super().emit(record)


def configure_logging(verbose: int) -> None:
    """Warnings and errors by default, plainly worded; with ``-v`` (info) or ``-vv`` (debug)
    each line also has its time and logger, for following what the threads did."""
    handler = StderrHandler()
    if verbose:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    else:
        handler.setFormatter(PlainFormatter("%(message)s"))
    logging.basicConfig(level=logging.WARNING - 10 * min(verbose, 2), handlers=[handler])


def main(argv: list[str] | None = None) -> int:
    from bot.shutdown import early

    try:
        with early():  # Ctrl+C while the commands' modules load is one line too
            parser = build_parser()
            args = parser.parse_args(argv)
            configure_logging(args.verbose)
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
