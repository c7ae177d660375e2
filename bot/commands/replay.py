"""``python -m bot replay NAME=FILE ...``: run a recorded call through the live pipeline."""

from __future__ import annotations

import argparse

from bot.config import load_config
from bot.replay import parse_track, replay


def _speed(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if value < 0:
        raise argparse.ArgumentTypeError("must be 0 (as fast as possible) or more (1 = real time)")
    return value


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
        type=_speed,
        default=None,
        help="1 = real time, 0 = as fast as possible with call time simulated (default: [replay] speed)",
    )
    p.add_argument("--language", metavar="CODE", help="spoken language (en, ko, ...) or auto (default: [asr] language)")
    p.add_argument(
        "--no-hints", action="store_true", help="no lull detection or topic hints (default: [hints] enabled)"
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    tracks = [parse_track(a) for a in args.tracks]
    config = load_config(args.config)
    if args.language is not None:
        config = config.replace("asr", language=args.language)
    speed = config.replay.speed if args.speed is None else args.speed
    db_url = args.db or config.storage.url
    replay(config, tracks, db_url=db_url, speed=speed, language=config.asr.language, hints=not args.no_hints)
    return 0
