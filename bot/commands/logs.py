"""``python -m bot logs``: the operator's view of stored calls.

list, show, search, export, delete and purge, on the database of ``--db`` or ``[storage]
url``. The operator sees every call of every guild (``Viewer.cli_operator()``); the same
queries serve Discord's ``/log`` with a member's viewer.
"""

from __future__ import annotations

import argparse
import sys
import unicodedata
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TypeVar

from sqlalchemy.exc import DBAPIError

from bot.config import load_config
from bot.errors import StorageError
from storage import Database, SessionDetail, SessionSummary, get_session, list_sessions, open_database
from storage.access import Viewer
from storage.db import describe_error
from storage.deletion import delete_session
from storage.export import FORMATS, render, short_clock
from storage.retention import purge_older_than
from storage.search import SearchHit, search

OPERATOR = Viewer.cli_operator()
T = TypeVar("T")


def register(subparsers: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    logs = subparsers.add_parser("logs", help="review stored calls: list, show, search, export, delete, purge")
    actions = logs.add_subparsers(dest="logs_command", required=True, metavar="ACTION")

    # The common options (--db, --config) sit on each action: argparse would let an action's
    # defaults overwrite values given before it on the `logs` parser.
    listing = actions.add_parser("list", parents=parents, help="most recent calls first")
    listing.add_argument("--limit", type=_positive_int, default=20, metavar="N", help="how many (default 20)")
    listing.set_defaults(func=run_list)

    show = actions.add_parser("show", parents=parents, help="one call's transcript with verification marks")
    show.add_argument("session_id", type=int, metavar="ID", help="session id, as shown by `logs list`")
    show.set_defaults(func=run_show)

    find = actions.add_parser(
        "search", parents=parents, help='utterances containing every word of QUERY (any language; "quoted phrase")'
    )
    find.add_argument("query", metavar="QUERY")
    find.add_argument("--session", type=int, metavar="ID", help="search this call only")
    find.add_argument("--limit", type=_positive_int, default=50, metavar="N", help="hits per page (default 50)")
    find.add_argument("--page", type=_positive_int, default=1, metavar="P", help="which page of hits (default 1)")
    find.add_argument(
        "--context",
        type=_nonnegative_int,
        default=0,
        metavar="N",
        help="also show N utterances before and after each hit",
    )
    find.set_defaults(func=run_search)

    export = actions.add_parser("export", parents=parents, help="one call's transcript as a file")
    export.add_argument("session_id", type=int, metavar="ID", help="session id, as shown by `logs list`")
    export.add_argument("--format", choices=FORMATS, default="json", help="output format (default json)")
    export.add_argument("--output", "-o", metavar="FILE", help="write here instead of standard output (UTF-8)")
    export.set_defaults(func=run_export)

    remove = actions.add_parser(
        "delete", parents=parents, help="delete one call for good (transcript, suggestions, search index)"
    )
    remove.add_argument("session_id", type=int, metavar="ID", help="session id, as shown by `logs list`")
    remove.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")
    remove.set_defaults(func=run_delete)

    purge = actions.add_parser("purge", parents=parents, help="delete calls older than the retention age")
    purge.add_argument(
        "--older-than", type=_positive_number, metavar="DAYS", help="age in days (default: [retention] max_age_days)"
    )
    purge.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")
    purge.set_defaults(func=run_purge)


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be 1 or more")
    return value


def _nonnegative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must be 0 or more")
    return value


def _positive_number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError("must be a number of days above 0")
    return value


def _open(args: argparse.Namespace) -> Database:
    url = args.db if args.db else load_config(args.config).storage.url
    # Reading must not leave an empty database behind where the user mistyped a path.
    return open_database(url, create=False)


def _query(db: Database, work: Callable[[], T]) -> T:
    try:
        return work()
    except DBAPIError as exc:  # e.g. locked after we opened it
        raise describe_error(exc, db.label) from exc


def _session(db: Database, session_id: int) -> SessionDetail:
    detail = _query(db, lambda: get_session(db, session_id))
    if detail is None:
        raise StorageError(f"no session {session_id} in {db.label}; `python -m bot logs list` shows the ids")
    return detail


def run_list(args: argparse.Namespace) -> int:
    with _open(args) as db:
        sessions = _query(db, lambda: list_sessions(db, limit=args.limit))
        if not sessions:
            print(f"no sessions in {db.label}")
            return 0
        print(_table(sessions))
    return 0


def run_show(args: argparse.Namespace) -> int:
    with _open(args) as db:
        detail = _session(db, args.session_id)
    _write_stdout(render(detail, "txt"))
    return 0


def run_search(args: argparse.Namespace) -> int:
    with _open(args) as db:
        result = _query(
            db,
            lambda: search(
                db,
                OPERATOR,
                args.query,
                page=args.page - 1,
                page_size=args.limit,
                context=args.context,
                session_id=args.session,
            ),
        )
    if not result.total:
        print(f"no utterance contains {args.query!r}")
        return 0
    lines: list[str] = []
    for hit in result.items:
        if lines and args.context:
            lines.append("")  # hits with their context read as separate passages
        lines += _hit_lines(hit)
    shown = f"{result.first}-{result.last} of {result.total}" if result.total > len(result.items) else str(result.total)
    more = f"; --page {result.page + 2} for more" if result.has_next else ""
    lines.append(f"-- {shown} utterance{'s' if result.total != 1 else ''}{more}")
    _write_stdout("\n".join(lines) + "\n")
    return 0


def _hit_lines(hit: SearchHit) -> list[str]:
    where = f"#{hit.session_id} {_local(hit.session_started_at)}"
    out = [f"   {where} [{short_clock(c.start)}] {c.speaker}: {c.text}" for c in hit.before]
    out.append(
        f">  {where} [{short_clock(hit.start)}] {hit.speaker}: {hit.text}"
        if hit.before or hit.after
        else f"{where} [{short_clock(hit.start)}] {hit.speaker}: {hit.text}"
    )
    out += [f"   {where} [{short_clock(c.start)}] {c.speaker}: {c.text}" for c in hit.after]
    return out


def run_export(args: argparse.Namespace) -> int:
    with _open(args) as db:
        detail = _session(db, args.session_id)
    text = render(detail, args.format)
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


def _confirm(question: str, args: argparse.Namespace, refusal: str) -> bool:
    if args.yes:
        return True
    if not sys.stdin or not sys.stdin.isatty():
        raise StorageError(f"{refusal} without confirmation", "pass --yes (standard input is not a terminal)")
    answer = input(f"{question} [y/N] ").strip().lower()
    return answer in ("y", "yes")


def run_delete(args: argparse.Namespace) -> int:
    with _open(args) as db:
        detail = _session(db, args.session_id)
        if detail.status == "active":  # refused before asking, not after
            raise _still_recording(detail.id)
        what = f"session {detail.id} ({detail.title or 'untitled'}, {_local(detail.started_at)})"
        question = f"Delete {what} with its {len(detail.utterances)} utterances for good?"
        if not _confirm(question, args, f"refusing to delete session {detail.id}"):
            print("nothing deleted")
            return 1
        result = _query(db, lambda: delete_session(db, OPERATOR, detail.id))
    if result.status == "active":
        raise _still_recording(detail.id)
    if result.status != "deleted":  # deleted by someone else meanwhile
        raise StorageError(f"session {args.session_id} is no longer in {db.label}")
    print(f"deleted {what}: {result.utterances} utterances, {result.suggestions} suggestions")
    return 0


def _still_recording(session_id: int) -> StorageError:
    return StorageError(
        f"session {session_id} is still being recorded (status active), nothing deleted",
        "delete it once the call has ended; a call left active by a crash is closed when the bot next starts",
    )


def run_purge(args: argparse.Namespace) -> int:
    days = args.older_than
    if days is None:
        days = load_config(args.config).retention.max_age_days
        if days == 0:
            raise StorageError(
                "[retention] max_age_days is 0 (keep forever), so there is nothing to purge",
                "pass --older-than DAYS, or set max_age_days in the configuration",
            )
    if not _confirm(f"Delete every finished call older than {days:g} days for good?", args, "refusing to purge"):
        print("nothing deleted")
        return 1
    with _open(args) as db:
        result = _query(db, lambda: purge_older_than(db, days))
    print(
        f"deleted {result.sessions} session{'s' if result.sessions != 1 else ''} started before "
        f"{_local(result.cutoff) if result.cutoff else 'now'}: {result.utterances} utterances, {result.suggestions} suggestions"
    )
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
