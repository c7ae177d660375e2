"""``python -m bot logs``: list stored calls and export one as JSON."""

from __future__ import annotations

import argparse
import sys
import unicodedata
from datetime import datetime
from pathlib import Path

from sqlalchemy.exc import DBAPIError

from bot.config import load_config
from bot.errors import StorageError
from storage import Database, SessionSummary, dump_session_json, get_session, list_sessions, open_database
from storage.db import describe_error


def register(subparsers: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    logs = subparsers.add_parser("logs", help="list stored calls, export a transcript")
    actions = logs.add_subparsers(dest="logs_command", required=True, metavar="ACTION")

    # The common options (--db, --config) sit on each action: argparse would let an action's
    # defaults overwrite values given before it on the `logs` parser.
    listing = actions.add_parser("list", parents=parents, help="most recent calls first")
    listing.add_argument("--limit", type=_positive_int, default=20, metavar="N", help="how many (default 20)")
    listing.set_defaults(func=run_list)

    export = actions.add_parser("export", parents=parents, help="one call's transcript and suggestions")
    export.add_argument("session_id", type=int, metavar="ID", help="session id, as shown by `logs list`")
    export.add_argument("--format", choices=("json",), default="json", help="output format (default json)")
    export.add_argument("--output", "-o", metavar="FILE", help="write here instead of standard output (UTF-8)")
    export.set_defaults(func=run_export)


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be 1 or more")
    return value


def _open(args: argparse.Namespace) -> Database:
    url = args.db if args.db else load_config(args.config).storage.url
    # Reading must not leave an empty database behind where the user mistyped a path.
    return open_database(url, create=False)


def run_list(args: argparse.Namespace) -> int:
    with _open(args) as db:
        try:
            sessions = list_sessions(db, limit=args.limit)
        except DBAPIError as exc:  # e.g. locked after we opened it
            raise describe_error(exc, db.label) from exc
        if not sessions:
            print(f"no sessions in {db.label}")
            return 0
        print(_table(sessions))
    return 0


def run_export(args: argparse.Namespace) -> int:
    with _open(args) as db:
        try:
            detail = get_session(db, args.session_id)
        except DBAPIError as exc:
            raise describe_error(exc, db.label) from exc
        if detail is None:
            raise StorageError(
                f"no session {args.session_id} in {db.label}; `python -m bot logs list` shows the ids"
            )
    text = dump_session_json(detail)
    if args.output:
        path = Path(args.output).expanduser()
        try:
            path.write_text(text, encoding="utf-8")
        except OSError as exc:
            raise StorageError(f"cannot write {path} ({exc.strerror or exc})", "choose another --output") from exc
        print(f"wrote session {detail.id} ({len(detail.utterances)} utterances) to {path}", file=sys.stderr)
    else:
        _write_stdout(text)
    return 0


def _write_stdout(text: str) -> None:
    # The export is UTF-8 even where the console's encoding is not (Windows, LANG=C).
    encoding = (getattr(sys.stdout, "encoding", None) or "").lower().replace("-", "")
    buffer = getattr(sys.stdout, "buffer", None)
    if encoding != "utf8" and buffer is not None:
        sys.stdout.flush()
        buffer.write(text.encode("utf-8"))
        buffer.flush()
    else:
        sys.stdout.write(text)


HEADERS = ("ID", "STARTED", "STATUS", "DURATION", "PARTICIPANTS", "UTTERANCES")


def _table(sessions: list[SessionSummary]) -> str:
    rows = [HEADERS] + [
        (
            str(s.id),
            _local(s.started_at),
            s.status,
            _duration(s.duration),
            _shorten(", ".join(s.participants) or "-", 40),
            str(s.utterance_count),
        )
        for s in sessions
    ]
    widths = [max(_width(row[i]) for row in rows) for i in range(len(HEADERS))]
    right = {0, 3, 5}  # numbers line up on the right
    lines = []
    for row in rows:
        cells = [_pad(cell, widths[i], right=i in right) for i, cell in enumerate(row)]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def _local(when: datetime) -> str:
    return when.astimezone().strftime("%Y-%m-%d %H:%M")


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    total = int(round(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def _width(text: str) -> int:
    # Hangul and Han characters take two terminal columns; len() would misalign the table.
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def _pad(text: str, width: int, *, right: bool) -> str:
    fill = " " * (width - _width(text))
    return fill + text if right else text + fill


def _shorten(text: str, limit: int) -> str:
    if _width(text) <= limit:
        return text
    out = ""
    for ch in text:
        if _width(out + ch) > limit - 1:
            break
        out += ch
    return out + "…"
