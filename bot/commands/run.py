"""``python -m bot run``: the Discord bot. The token comes from DISCORD_TOKEN only."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from dataclasses import dataclass

from bot.config import Config, load_config
from bot.errors import StalkError
from bot.shutdown import STOP_SIGNALS, StopSignals
from storage.vocab import plural

log = logging.getLogger(__name__)

TOKEN_VAR = "DISCORD_TOKEN"


def register(subparsers: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "run",
        parents=parents,
        help="run the Discord bot (needs DISCORD_TOKEN)",
        description="Log in to Discord and serve the slash commands until stopped "
        "(Ctrl+C, SIGTERM or SIGHUP leave every call cleanly).",
    )
    p.set_defaults(func=run)


def token_from_env(env: dict[str, str] | os._Environ[str] | None = None) -> str:
    env = os.environ if env is None else env
    token = env.get(TOKEN_VAR, "").strip()
    if not token:
        raise StalkError(
            f"{TOKEN_VAR} is not set",
            f"copy the bot token from the Discord developer portal (your application, Bot page) and "
            f"run: {TOKEN_VAR}=<token> python -m bot run",
        )
    return token


def run(args: argparse.Namespace) -> int:
    """0 when stopped with no call in progress; 128 + N when signal N stopped calls in progress
    (each finished, stored and marked interrupted first)."""
    token = token_from_env()
    config = load_config(args.config)
    from bot.asr.transcriber import WhisperTranscriber
    from bot.replay import check_writable
    from storage.db import open_database

    load_opus(config)
    # A signal while the model loads stops at once; serve() handles them while the bot runs;
    # after it, while the last of the shutdown runs, they are only acknowledged.
    with StopSignals() as signals:
        db = open_database(args.db or config.storage.url)
        try:
            check_writable(db)
            # Loaded before logging in, so a missing model is one line now, not a failed /join later.
            transcriber = WhisperTranscriber.from_config(config)
            # Where Whisper runs decides how big a model keeps up: said once, before the bot is online.
            print(f"Whisper {config.asr.model!r} runs on {transcriber.device}", flush=True)
            signals.closing()  # from here serve() has its own handlers; what follows is shutdown
            stopped = asyncio.run(serve(config, db, token, transcriber))
        finally:
            db.close()
    if stopped.signum is not None and stopped.interrupted:
        print(
            f"stopped by {signal.Signals(stopped.signum).name}: {plural(stopped.interrupted, 'call')} in progress "
            f"{'was' if stopped.interrupted == 1 else 'were'} finished, stored and marked interrupted",
            file=sys.stderr,
        )
        return 128 + stopped.signum
    return 0


@dataclass
class Stopped:
    """How ``serve`` ended: the signal that stopped it (None: ``stop`` was set, or it failed)
    and how many calls in progress that interrupted."""

    signum: int | None = None
    interrupted: int = 0


def load_opus(config: Config) -> None:
    from discord import opus

    name = config.discord.opus_library
    try:
        if name:
            opus.load_opus(name)
        elif not opus.is_loaded() and not opus._load_default():
            raise OSError("not found")
    except OSError as exc:
        raise StalkError(
            f"cannot load libopus ({exc})",
            "apt-get install -y libopus0, or set [discord] opus_library; `python -m bot doctor` checks it",
        ) from None


async def serve(config: Config, db, token: str, transcriber, *, stop: asyncio.Event | None = None) -> Stopped:
    """Run the bot until SIGINT, SIGTERM or SIGHUP (or ``stop`` is set), then leave every call
    cleanly. Signals during that shutdown change nothing: it goes on until every call is
    stored (``bot.shutdown`` explains why a second Ctrl+C must not cut it short)."""
    stop = stop or asyncio.Event()
    stopped = Stopped()
    loop = asyncio.get_running_loop()

    def on_signal(signum: int) -> None:
        if stopped.signum is None:
            stopped.signum = signum
        elif stop.is_set():
            print(
                f"{signal.Signals(signum).name}: already stopping, finishing the calls in progress first",
                file=sys.stderr,
                flush=True,
            )
        stop.set()

    previous = {sig: signal.getsignal(sig) for sig in STOP_SIGNALS}
    for sig in STOP_SIGNALS:
        try:
            loop.add_signal_handler(sig, on_signal, sig)
        except (NotImplementedError, RuntimeError):  # not the main thread, or Windows
            pass
    try:
        stopped.interrupted = await _serve(config, db, token, transcriber, stop)
    finally:
        for sig in STOP_SIGNALS:
            try:
                loop.remove_signal_handler(sig)
                # asyncio puts back Python's defaults, not what was there (run()'s handlers).
                if previous[sig] is not None:
                    signal.signal(sig, previous[sig])
            except (NotImplementedError, RuntimeError, ValueError):
                pass
    return stopped


async def _serve(config: Config, db, token: str, transcriber, stop: asyncio.Event) -> int:
    from bot.discordbot.app import build_bot
    from bot.discordbot.metrics import start_metrics

    bot = build_bot(config, db, transcriber=transcriber)
    stop_metrics = start_metrics(bot, config)  # before logging in: a port in use is said at once
    try:
        return await _run_bot(bot, token, stop)
    finally:
        if stop_metrics is not None:
            stop_metrics()


async def _run_bot(bot, token: str, stop: asyncio.Event) -> int:
    import discord

    async with bot:
        runner = asyncio.create_task(bot.start(token), name="discord client")
        stopper = asyncio.create_task(stop.wait(), name="stop signal")
        done, _ = await asyncio.wait({runner, stopper}, return_when=asyncio.FIRST_COMPLETED)
        if stopper in done:
            log.warning("stopping: leaving voice channels and closing sessions")
        await bot.close()
        stopper.cancel()
        if runner in done:
            try:
                runner.result()
            except discord.LoginFailure:
                raise StalkError(
                    "Discord refused the token in DISCORD_TOKEN",
                    "copy it again from the developer portal (Bot page, Reset Token)",
                ) from None
            except discord.PrivilegedIntentsRequired:
                raise StalkError(
                    "Discord refused the bot's intents",
                    "the bot needs no privileged intents; check the application's settings",
                ) from None
            except Exception as exc:
                log.debug("the Discord connection failed", exc_info=True)
                raise StalkError(
                    f"the connection to Discord failed ({type(exc).__name__}: {exc})",
                    "check the network and try again; -vv shows the details",
                ) from None
        else:
            runner.cancel()
        return bot.interrupted
