"""``python -m bot enroll | verify | voiceprint``: enrol a voice, check a recording, manage voiceprints."""

from __future__ import annotations

import argparse
import json

import numpy as np
from sqlalchemy.exc import DBAPIError

from bot.commands import values
from bot.config import Config, load_config
from bot.errors import StalkError
from bot.names import check_name
from storage.db import Database, describe_error, open_database
from storage.vocab import plural


def register(subparsers: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "enroll",
        parents=parents,
        help="enrol a person's voice from recordings of them",
        description="Build a voiceprint from recordings of one person (at least "
        "[speaker] min_enroll_speech_s of speech in all) and store it under NAME; "
        "enrolling a NAME again replaces its voiceprint.",
    )
    p.add_argument("name", metavar="NAME", help="the person, as named in calls (replay NAME=FILE)")
    p.add_argument("files", nargs="+", metavar="FILE", help="recordings of that person alone")
    p.add_argument(
        "--user-id",
        type=values.user_id,
        metavar="ID",
        help="their Discord user id, to find the voiceprint in live calls",
    )
    p.set_defaults(func=run_enroll)

    v = subparsers.add_parser(
        "verify",
        parents=parents,
        help="is this recording NAME's voice? (one JSON line)",
        description="Score a recording against NAME's voiceprint. Prints one JSON line; "
        "exit status 0 when verified, 1 when not, 2 on bad input.",
    )
    v.add_argument("name", metavar="NAME")
    v.add_argument("file", metavar="FILE")
    v.set_defaults(func=run_verify)

    vp = subparsers.add_parser("voiceprint", parents=parents, help="list or delete enrolled voiceprints")
    actions = vp.add_subparsers(dest="voiceprint_command", required=True, metavar="ACTION")
    listing = actions.add_parser("list", parents=parents, help="every enrolled voiceprint")
    listing.set_defaults(func=run_list)
    delete = actions.add_parser("delete", parents=parents, help="remove NAME's voiceprint")
    delete.add_argument("name", metavar="NAME")
    delete.set_defaults(func=run_delete)


def _config(args: argparse.Namespace) -> Config:
    return load_config(args.config)


def _db(args: argparse.Namespace, config: Config, *, create: bool) -> Database:
    return open_database(args.db or config.storage.url, create=create)


def _check_name(name: str) -> str:
    return check_name(name, "name", 100)


def _unknown(db: Database, name: str) -> StalkError:
    from storage.voiceprints import list_voiceprints

    known = [vp.name for vp in list_voiceprints(db)]
    return StalkError(
        f"no voiceprint enrolled as {name!r} in {db.label}",
        ("enrolled: " + ", ".join(known)) if known else f"enrol first: python -m bot enroll {name} FILE ...",
    )


def run_enroll(args: argparse.Namespace) -> int:
    from bot.speaker.calibration import threshold_for
    from bot.speaker.enrollment import enroll, load_enrollment_audio
    from bot.speaker.model import load_speaker_model
    from storage.voiceprints import get_voiceprint, save_voiceprint

    config = _config(args)
    name = _check_name(args.name)
    audio = [load_enrollment_audio(f) for f in args.files]  # every file readable before anything else
    model = load_speaker_model(config)
    result = enroll(model, audio, min_speech=config.speaker.min_enroll_speech_s, sources=args.files)
    # Opened only now: a refused enrolment leaves no new database file behind.
    with _db(args, config, create=True) as db:
        try:
            old = get_voiceprint(db, name)
            save_voiceprint(db, result.voiceprint(name, args.user_id or (old.user_id if old else None)))
        except DBAPIError as exc:
            raise describe_error(exc, db.label) from exc
        threshold = threshold_for(model.model_id, model.info.name, config.speaker.threshold)
        print(
            f"{'re-enrolled' if old else 'enrolled'} {name}: {result.speech_seconds:.1f} s of speech from "
            f"{plural(len(args.files), 'file')}, model {model.info.name}, consistency {result.consistency:.2f} "
            f"(threshold {threshold:.2f})"
        )
    return 0


def run_verify(args: argparse.Namespace) -> int:
    from bot.audio.vad import SAMPLE_RATE, SileroModel
    from bot.speaker.calibration import threshold_for
    from bot.speaker.enrollment import load_enrollment_audio, speech_regions
    from bot.speaker.model import load_speaker_model
    from bot.speaker.verifier import check_model
    from storage.voiceprints import get_voiceprint

    args.name = _check_name(args.name)
    config = _config(args)
    with _db(args, config, create=False) as db:
        vp = get_voiceprint(db, args.name)
        if vp is None:
            raise _unknown(db, args.name)
    audio = load_enrollment_audio(args.file)
    model = load_speaker_model(config)
    check_model(vp, model)
    regions = speech_regions(audio, SileroModel())
    seconds = sum(hi - lo for lo, hi in regions) / SAMPLE_RATE
    if seconds < config.speaker.min_utterance_s:
        raise StalkError(
            f"only {seconds:.1f} s of speech in {args.file}: too little to judge",
            f"give a recording with at least {config.speaker.min_utterance_s:g} s of speech",
        )
    speech = np.concatenate([audio[lo:hi] for lo, hi in regions])
    score = float(model.embed(speech) @ vp.embedding)
    threshold = threshold_for(model.model_id, model.info.name, config.speaker.threshold)
    verified = score >= threshold
    print(
        json.dumps(
            {
                "name": vp.name,
                "file": args.file,
                "score": round(score, 4),
                "threshold": threshold,
                "verified": verified,
                "speech_seconds": round(seconds, 2),
                "model": model.info.name,
            }
        )
    )
    return 0 if verified else 1


def run_list(args: argparse.Namespace) -> int:
    from storage.voiceprints import list_voiceprints

    config = _config(args)
    with _db(args, config, create=False) as db:
        prints = list_voiceprints(db)
        if not prints:
            print(f"no voiceprints in {db.label}")
            return 0
        width = max(len(p.name) for p in prints)
        for p in prints:
            when = p.updated_at.strftime("%Y-%m-%d %H:%M") if p.updated_at else ""
            print(
                f"{p.name:<{width}}  {p.speech_seconds:6.1f} s speech  model {p.model_name} ({p.model_id[:12]})"
                f"  {when} UTC" + (f"  user {p.user_id}" if p.user_id else "")
            )
    return 0


def run_delete(args: argparse.Namespace) -> int:
    from storage.voiceprints import delete_voiceprint

    args.name = _check_name(args.name)
    config = _config(args)
    with _db(args, config, create=False) as db:
        try:
            if not delete_voiceprint(db, args.name):
                raise _unknown(db, args.name)
        except DBAPIError as exc:
            raise describe_error(exc, db.label) from exc
        print(f"deleted the voiceprint of {args.name}")
    return 0
