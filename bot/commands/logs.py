"""``python -m bot logs``: the operator's view of stored calls.

list, show, search, export, delete and purge, on the database of ``--db`` or ``[storage]
url``. The operator sees every call of every guild (``Viewer.cli_operator()``); the same
queries serve Discord's ``/log`` with a member's viewer.
"""

from __future__ import annotations

import argparse
import os
import sys
import unicodedata
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TypeVar

from sqlalchemy.exc import DBAPIError

from bot.commands import values
from bot.config import load_config
from bot.errors import StorageError
from bot.summary.make import make_summary, summary_settings
from storage import Database, SessionDetail, SessionSummary, get_session, list_sessions, open_database
from storage.access import Viewer
from storage.db import describe_error
from storage.deletion import FileCleanup, delete_session, left_active
from storage.export import FORMATS, render, short_clock, summary_text
from storage.files import write_atomic
from storage.plaintext import plain
from storage.recorder import CallRecorder
from storage.recorders import RecorderState, describe, liveness
from storage.retention import purge_older_than
from storage.search import SearchHit, highlight, search
from storage.vocab import ExportFormat, SessionStatus, noun, plural

OPERATOR = Viewer.cli_operator()
# Bounds a page's SQL OFFSET (page x limit) stays far inside SQLite's 64-bit integers with.
LIMIT = values.count(1, 10_000, "a number of items per page")
PAGE = values.count(1, 1_000_000, "a page number")
CONTEXT = values.count(0, 100, "a number of utterances of context")
T = TypeVar("T")


def register(subparsers: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    logs = subparsers.add_parser(
        "logs", parents=parents, help="review stored calls: list, show, summary, search, export, delete, purge"
    )
    actions = logs.add_subparsers(dest="logs_command", required=True, metavar="ACTION")

    # The common options (--db, --config) sit on each action too; they have no defaults there
    # (bot.cli), so one given before the action is kept.
    listing = actions.add_parser("list", parents=parents, help="most recent calls first")
    listing.add_argument("--limit", type=LIMIT, default=20, metavar="N", help="how many (default 20)")
    listing.set_defaults(func=run_list)

    show = actions.add_parser("show", parents=parents, help="one call's transcript with verification marks")
    show.add_argument("session_id", type=values.session_id, metavar="ID", help="session id, as shown by `logs list`")
    show.set_defaults(func=run_show)

    find = actions.add_parser(
        "search", parents=parents, help='utterances containing every word of QUERY (any language; "quoted phrase")'
    )
    find.add_argument("query", metavar="QUERY")
    find.add_argument("--session", type=values.session_id, metavar="ID", help="search this call only")
    find.add_argument("--limit", type=LIMIT, default=50, metavar="N", help="hits per page (default 50)")
    find.add_argument("--page", type=PAGE, default=1, metavar="P", help="which page of hits (default 1)")
    find.add_argument(
        "--context",
        type=CONTEXT,
        default=0,
        metavar="N",
        help="also show N utterances before and after each hit",
    )
    find.add_argument(
        "--color",
        choices=("auto", "always", "never"),
        default="auto",
        help="show the words found in bold: auto (default) on a terminal unless NO_COLOR is set",
    )
    find.set_defaults(func=run_search)

    summary = actions.add_parser(
        "summary", parents=parents, help="one call's summary and the shape of its conversation (made if missing)"
    )
    summary.add_argument("session_id", type=values.session_id, metavar="ID", help="session id, as shown by `logs list`")
    summary.add_argument("--remake", action="store_true", help="make the summary again, replacing the stored one")
    summary.add_argument(
        "--fallback", action="store_true", help="make it without the model: the extractive summary ([llm] unused)"
    )
    summary.set_defaults(func=run_summary)

    export = actions.add_parser("export", parents=parents, help="one call's transcript as a file")
    export.add_argument("session_id", type=values.session_id, metavar="ID", help="session id, as shown by `logs list`")
    export.add_argument("--format", choices=FORMATS, default=ExportFormat.JSON, help="output format (default json)")
    export.add_argument("--output", "-o", metavar="FILE", help="write here instead of standard output (UTF-8)")
    export.set_defaults(func=run_export)

    remove = actions.add_parser(
        "delete", parents=parents, help="delete one call for good (transcript, suggestions, search index)"
    )
    remove.add_argument("session_id", type=values.session_id, metavar="ID", help="session id, as shown by `logs list`")
    remove.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")
    remove.add_argument(
        "--force",
        action="store_true",
        help="also delete a call left active whose recorder cannot be checked (another machine, an older S-Talk)",
    )
    remove.set_defaults(func=run_delete)

    close = actions.add_parser("close", parents=parents, help="mark a call that a crash left active as interrupted")
    close.add_argument("session_id", type=values.session_id, metavar="ID", help="session id, as shown by `logs list`")
    close.add_argument(
        "--force",
        action="store_true",
        help="close it even though its recorder cannot be checked (another machine, an older S-Talk)",
    )
    close.set_defaults(func=run_close)

    purge = actions.add_parser("purge", parents=parents, help="delete calls older than the retention age")
    purge.add_argument(
        "--older-than", type=values.days, metavar="DAYS", help="age in days (default: [retention] max_age_days)"
    )
    purge.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")
    purge.set_defaults(func=run_purge)


def _open(args: argparse.Namespace) -> Database:
    # The configuration is read even when --db overrides its database: a broken --config
    # file must be an error, not silently ignored.
    config = load_config(args.config)
    url = args.db if args.db else config.storage.url
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
    _write_stdout(render(detail, ExportFormat.TXT))
    return 0


def run_summary(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    settings = None if args.fallback else summary_settings(config)
    with _open(args) as db:
        detail = _session(db, args.session_id)
        if detail.summary is None or args.remake or args.fallback:
            made = _query(db, lambda: make_summary(db, args.session_id, settings))
            if made is not None and made.model_note:
                print(f"warning: {plain(made.model_note)}; the summary is extractive", file=sys.stderr)
            detail = _session(db, args.session_id)
    _write_stdout(summary_text(detail))
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
    bold = _use_color(args.color)
    for hit in result.items:
        if lines and args.context:
            lines.append("")  # hits with their context read as separate passages
        lines += _hit_lines(hit, bold)
    shown = f"{result.first}-{result.last} of {result.total}" if result.total > len(result.items) else str(result.total)
    more = f"; --page {result.page + 2} for more" if result.has_next else ""
    lines.append(f"-- {shown} {noun(result.total, 'utterance')}{more}")
    _write_stdout("\n".join(lines) + "\n")
    return 0


BOLD, NORMAL = "\x1b[1m", "\x1b[22m"  # SGR bold on, normal intensity


def _use_color(choice: str) -> bool:
    if choice != "auto":
        return choice == "always"
    # https://no-color.org: any non-empty NO_COLOR turns colour off.
    out = sys.stdout
    tty = bool(getattr(out, "isatty", None) and out.isatty())
    return tty and not os.environ.get("NO_COLOR") and os.environ.get("TERM") != "dumb"


def _hit_lines(hit: SearchHit, bold: bool = False) -> list[str]:
    where = f"#{hit.session_id} {_local(hit.session_started_at)}"
    out = [f"   {where} [{short_clock(c.start)}] {plain(c.speaker)}: {plain(c.text)}" for c in hit.before]
    # The words found in bold; the text is made plain first, so only S-Talk's own escapes reach the terminal.
    text = highlight(hit.text, hit.spans, plain, BOLD, NORMAL) if bold else plain(hit.text)
    line = f"{where} [{short_clock(hit.start)}] {plain(hit.speaker)}: {text}"
    out.append(f">  {line}" if hit.before or hit.after else line)
    out += [f"   {where} [{short_clock(c.start)}] {plain(c.speaker)}: {plain(c.text)}" for c in hit.after]
    return out


def run_export(args: argparse.Namespace) -> int:
    with _open(args) as db:
        detail = _session(db, args.session_id)
    text = render(detail, args.format)
    if args.output:
        path = Path(args.output).expanduser()
        if path.is_dir():
            raise StorageError(f"cannot write {path}: it is a directory", "give a file name to --output")
        try:
            # Whole or not at all: a full disk must not leave a truncated export, nor take the old one.
            write_atomic(path, text)
        except OSError as exc:
            kept = " (the file that was there is unchanged)" if path.exists() else ""
            raise StorageError(
                f"cannot write {path} ({exc.strerror or exc}){kept}", "free some space, or choose another --output"
            ) from exc
        print(f"wrote session {detail.id} ({plural(len(detail.utterances), 'utterance')}) to {path}", file=sys.stderr)
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
        if detail.status == SessionStatus.ACTIVE and not left_active(
            detail.recorder, args.force, detail.heartbeat_at
        ):  # refused before asking
            raise _still_recording(detail.id, detail.recorder, detail.heartbeat_at)
        what = f"session {detail.id} ({plain(detail.title or 'untitled', 80)}, {_local(detail.started_at)})"
        left = " (left active by a process that stopped)" if detail.status == SessionStatus.ACTIVE else ""
        question = f"Delete {what}{left} with its {plural(len(detail.utterances), 'utterance')} for good?"
        if not _confirm(question, args, f"refusing to delete session {detail.id}"):
            print("nothing deleted")
            return 1
        result = _query(db, lambda: delete_session(db, OPERATOR, detail.id, force=args.force))
    if result.status == "active":
        raise _still_recording(detail.id, detail.recorder, detail.heartbeat_at)
    if result.status != "deleted":  # deleted by someone else meanwhile
        raise StorageError(f"session {args.session_id} is no longer in {db.label}")
    print(f"deleted {what}: {plural(result.utterances, 'utterance')}, {plural(result.suggestions, 'suggestion')}")
    _warn_unscrubbed(result.cleanup, db.label)
    return 0


def _warn_unscrubbed(cleanup: FileCleanup | None, label: str) -> None:
    if cleanup is not None and not cleanup.complete:
        print(
            f"note: another program is reading {label}, so the deleted text stays in the database file until "
            "it closes the database; S-Talk's next write then overwrites it (run the command again afterwards "
            "to be sure)",
            file=sys.stderr,
        )


def _still_recording(session_id: int, recorder: str | None, heartbeat_at: datetime | None) -> StorageError:
    if liveness(recorder, heartbeat_at) == RecorderState.ALIVE:
        return StorageError(
            f"session {session_id} is still being recorded by {describe(recorder)} (status active), nothing deleted",
            "end that call first (Ctrl+C, or /leave in Discord), then delete it",
        )
    return StorageError(
        f"session {session_id} is active and S-Talk cannot tell whether {describe(recorder)} still records it, "
        "nothing deleted",
        "if no S-Talk records it any more (a crash left it active), pass --force",
    )


def run_close(args: argparse.Namespace) -> int:
    with _open(args) as db:
        try:
            result = CallRecorder(db).close_left_active(args.session_id, force=args.force)
        except DBAPIError as exc:
            raise describe_error(exc, db.label) from exc
    if result.outcome == "not_found":
        raise StorageError(f"no session {args.session_id} in {db.label}; `python -m bot logs list` shows the ids")
    if result.outcome == "not_active":
        raise StorageError(f"session {args.session_id} has already ended ({result.status}), nothing to close")
    if result.outcome == "recording":
        raise StorageError(
            f"session {args.session_id} is still being recorded by {result.recorder}, nothing closed",
            "end that call (Ctrl+C, or /leave in Discord): it closes itself",
        )
    if result.outcome == "unknown":
        raise StorageError(
            f"S-Talk cannot tell whether {result.recorder} still records session {args.session_id}, nothing closed",
            "if no S-Talk records it any more (a crash left it active), pass --force",
        )
    print(f"closed session {args.session_id}: marked interrupted ({result.recorder} had stopped recording it)")
    return 0


def run_purge(args: argparse.Namespace) -> int:
    days = args.older_than
    if days is None:
        days = load_config(args.config).retention.max_age_days
        if days == 0:
            raise StorageError(
                "[retention] max_age_days is 0 (keep forever), so there is nothing to purge",
                "pass --older-than DAYS, or set max_age_days in the configuration",
            )
    if not _confirm(
        f"Delete every finished call older than {days:g} {noun(days, 'day')} for good?", args, "refusing to purge"
    ):
        print("nothing deleted")
        return 1
    with _open(args) as db:
        result = _query(db, lambda: purge_older_than(db, days))
    print(
        f"deleted {plural(result.sessions, 'session')} started before "
        f"{_local(result.cutoff) if result.cutoff else 'now'}: {plural(result.utterances, 'utterance')}, "
        f"{plural(result.suggestions, 'suggestion')}"
    )
    if result.recording:
        print(
            f"kept {plural(result.recording, 'session')} that {'is' if result.recording == 1 else 'are'} still being "
            "recorded (or whose recorder cannot be "
            "checked: `logs close ID --force` closes one a crash left active)",
            file=sys.stderr,
        )
    _warn_unscrubbed(result.cleanup, db.label)
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
            _shorten(", ".join(plain(p) for p in s.participants) or "-", 40),
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
