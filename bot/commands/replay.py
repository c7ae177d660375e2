"""``python -m bot replay NAME=FILE ...``: run a recorded call through the live pipeline."""

from __future__ import annotations

import argparse
import signal
import sys

from bot.commands import values
from bot.config import load_config
from bot.errors import StalkError
from bot.replay import parse_track, replay
from bot.shutdown import StopSignals
from storage.vocab import SessionStatus


def register(subparsers: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "replay",
        parents=parents,
        help="transcribe a recorded call, one audio file per participant",
        description="Stream one audio file per participant through the same pipeline as a live call, "
        "show the transcript as it forms and store it.",
    )
    p.add_argument("tracks", nargs="+", metavar="NAME=FILE", help="a participant's name and their audio file")
    p.add_argument(
        "--speed",
        type=values.speed,
        default=None,
        help="1 = real time, 0 = as fast as possible with call time simulated (default: [replay] speed)",
    )
    p.add_argument("--language", metavar="CODE", help="spoken language (en, ko, ...) or auto (default: [asr] language)")
    p.add_argument(
        "--no-hints", action="store_true", help="no lull detection or topic hints (default: [hints] enabled)"
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """0 when the call was stored completely; 1 when it failed midway (the reason on stderr,
    what could not be stored in the recovery file it names); 128 + N when signal N stopped it
    (``bot.shutdown``: every utterance heard so far is stored first)."""
    tracks = [parse_track(a) for a in args.tracks]
    config = load_config(args.config)
    if args.language is not None:
        config = config.replace("asr", language=args.language)
    speed = config.replay.speed if args.speed is None else args.speed
    if speed != 0 and speed < values.MIN_SPEED:  # [replay] speed allows any number from 0
        raise StalkError(f"[replay] speed {speed:g} is too slow", f"use 0, or {values.MIN_SPEED:g} or more")
    db_url = args.db or config.storage.url
    with StopSignals() as stop:
        summary = replay(
            config, tracks, db_url=db_url, speed=speed, language=config.asr.language, hints=not args.no_hints, stop=stop
        )
    if summary.status != SessionStatus.COMPLETED:
        print(f"error: the call was not stored completely: {summary.error}", file=sys.stderr)
        return 1
    if stop.signum is not None:  # it came when the whole call had been heard: nothing was cut
        print(
            f"interrupted ({signal.Signals(stop.signum).name}) after the whole call was heard and stored",
            file=sys.stderr,
        )
        return 128 + stop.signum
    return 0
