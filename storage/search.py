"""Full-text search over what a viewer may see, for Korean and Chinese as well as English.

A query is split into terms (whitespace-separated words, or "quoted phrases"); an utterance
matches when it contains every term as a substring, case-insensitively. Substring rather
than word matching is what works without a word segmenter: Korean attaches particles to
words (회의를, 회의에서) and Chinese has no spaces at all.

* SQLite: terms of 3+ characters go through the FTS5 trigram index (``utterances_fts``,
  created by migration 0003_search and kept in step by triggers); shorter terms (common in
  Korean and Chinese: 회의, 北京) cannot be trigram-matched and are matched with LIKE over the
  rows the other conditions and the access rule leave (case-insensitive for ASCII only).
* PostgreSQL: ILIKE for every term, which the migration's pg_trgm GIN index speeds up for
  3+ character terms (tests/logs/test_postgres.py runs it on a throwaway local server).
* Any other database: LIKE.

Chinese terms match in either script: a term is looked for as written, in Simplified and in
Traditional (OpenCC, storage/script.py), so ``广州`` finds ``廣州`` stored before transcripts
were converted, or by a server that stores Traditional.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Connection, Select, and_, func, literal_column, or_, select, table
from sqlalchemy.orm import Session

from storage.access import Viewer, visible
from storage.db import Database
from storage.errors import StalkError
from storage.models import CallSession, Participant, Utterance
from storage.paging import Page, check_page, clamp, fixed_bounds, make_page
from storage.queries import like_escape
from storage.script import script_variants

FTS_TABLE = "utterances_fts"
TRIGRAM = 3
MAX_QUERY = 200

# Database objects that the migrations create and the models do not describe: the schema
# comparison (alembic check, tests) skips exactly these, and nothing else.
FTS_SHADOW_TABLES = tuple(f"{FTS_TABLE}_{suffix}" for suffix in ("data", "idx", "content", "docsize", "config"))
OUTSIDE_MODELS = frozenset({FTS_TABLE, *FTS_SHADOW_TABLES, "ix_utterances_text_trgm"})
FTS_TRIGGERS = ("utterances_fts_insert", "utterances_fts_delete", "utterances_fts_update")


def include_name(name: str | None, type_: str, parent_names: object) -> bool:
    """alembic ``include_name`` hook: leave the search index's own objects out of comparisons."""
    return name not in OUTSIDE_MODELS


@dataclass(frozen=True)
class ContextLine:
    speaker: str
    start: float
    text: str


@dataclass(frozen=True)
class SearchHit:
    session_id: int
    session_title: str | None
    session_started_at: datetime
    utterance_id: int
    speaker: str
    start: float  # call time, seconds
    end: float
    text: str
    verification: str | None
    spans: list[tuple[int, int]]  # [start, end) of each term found in ``text``
    before: list[ContextLine]  # the utterances just before, oldest first
    after: list[ContextLine]


def parse_query(query: str) -> list[str]:
    """Terms of a search: "quoted phrases" kept whole, the rest split on whitespace."""
    query = query.strip()
    if not query:
        raise StalkError("empty search", "give a word or phrase to look for")
    if len(query) > MAX_QUERY:
        raise StalkError(f"search of {len(query)} characters is too long", f"use at most {MAX_QUERY}")
    terms: list[str] = []
    for phrase, word in re.findall(r'"([^"]*)"|(\S+)', query):
        term = (phrase if phrase else word).strip()
        if term and term.casefold() not in (t.casefold() for t in terms):
            terms.append(term)
    if not terms:
        raise StalkError("empty search", "give a word or phrase to look for")
    return terms


def _fts_match(groups: list[list[str]]) -> str:
    # Each term as an FTS5 string (quotes doubled): a trigram "phrase" is a substring match,
    # and no character of user input is read as FTS5 query syntax. A term's script variants
    # are alternatives: ("廣州" OR "广州") AND ...
    def phrase(t: str) -> str:
        return '"' + t.replace('"', '""') + '"'

    return " AND ".join("(" + " OR ".join(map(phrase, g)) + ")" for g in groups)


def _any(variants: list[str], like) -> ColumnElement[bool]:
    conditions = [like("%" + like_escape(v) + "%", escape="\\") for v in variants]
    return conditions[0] if len(conditions) == 1 else or_(*conditions)


def _conditions(dialect: str, terms: list[str]) -> list[ColumnElement[bool]]:
    groups = [script_variants(t) for t in terms]
    if dialect == "postgresql":
        return [_any(g, Utterance.text.ilike) for g in groups]
    if dialect != "sqlite":
        return [_any(g, Utterance.text.like) for g in groups]
    # A term goes through the trigram index only when every variant of it can.
    like = [_any(g, Utterance.text.like) for g in groups if min(map(len, g)) < TRIGRAM]
    long_groups = [g for g in groups if min(map(len, g)) >= TRIGRAM]
    if not long_groups:
        return like
    fts = table(FTS_TABLE, literal_column("rowid"))
    matched: Select[Any] = (
        select(literal_column("rowid"))
        .select_from(fts)
        .where(literal_column(FTS_TABLE).op("MATCH")(_fts_match(long_groups)))
    )
    return [Utterance.id.in_(matched), *like]


def search(
    db: Database,
    viewer: Viewer,
    query: str,
    *,
    page: int = 0,
    page_size: int = 10,
    context: int = 1,
    session_id: int | None = None,
) -> Page[SearchHit]:
    """Utterances containing every term of ``query`` in the calls ``viewer`` may see, newest
    call first and in call-time order within a call; ``context`` neighbouring utterances on
    each side of a hit; ``session_id`` limits the search to one call (``/log search`` within
    a transcript)."""
    check_page(page, page_size)
    terms = parse_query(query)
    where = [visible(viewer), *_conditions(db.engine.dialect.name, terms)]
    if session_id is not None:
        where.append(CallSession.id == session_id)
    base = (
        select(Utterance, Participant.name, CallSession.title, CallSession.started_at)
        .join(CallSession, CallSession.id == Utterance.session_id)
        .join(Participant, Participant.id == Utterance.participant_id)
        .where(and_(*where))
    )
    with db.session() as s:
        total = int(s.scalar(select(func.count()).select_from(base.subquery())) or 0)
        bounds = fixed_bounds(total, page_size)
        page = clamp(page, bounds)
        hits: list[SearchHit] = []
        if bounds:
            start, end = bounds[page]
            rows = s.execute(
                base.order_by(CallSession.started_at.desc(), CallSession.id.desc(), Utterance.start, Utterance.id)
                .offset(start)
                .limit(end - start)
            ).all()
            for u, speaker, title, started_at in rows:
                before, after = _context(s, u, context)
                hits.append(
                    SearchHit(
                        session_id=u.session_id,
                        session_title=title,
                        session_started_at=started_at,
                        utterance_id=u.id,
                        speaker=speaker,
                        start=u.start,
                        end=u.end,
                        text=u.text,
                        verification=u.verification,
                        spans=find_spans(u.text, [v for t in terms for v in script_variants(t)]),
                        before=before,
                        after=after,
                    )
                )
    return make_page(hits, page, bounds, total)


def _context(s: Session, u: Utterance, n: int) -> tuple[list[ContextLine], list[ContextLine]]:
    if n <= 0:
        return [], []
    base = (
        select(Participant.name, Utterance.start, Utterance.text)
        .join(Participant, Participant.id == Utterance.participant_id)
        .where(Utterance.session_id == u.session_id, Utterance.id != u.id)
    )
    earlier = (Utterance.start < u.start) | ((Utterance.start == u.start) & (Utterance.id < u.id))
    later = (Utterance.start > u.start) | ((Utterance.start == u.start) & (Utterance.id > u.id))
    before = s.execute(base.where(earlier).order_by(Utterance.start.desc(), Utterance.id.desc()).limit(n)).all()
    after = s.execute(base.where(later).order_by(Utterance.start, Utterance.id).limit(n)).all()
    return ([ContextLine(*row) for row in reversed(before)], [ContextLine(*row) for row in after])


def find_spans(text: str, terms: list[str]) -> list[tuple[int, int]]:
    """Where each term occurs in ``text`` (for highlighting), in order, overlaps merged."""
    spans = sorted((m.start(), m.end()) for t in terms for m in re.finditer(re.escape(t), text, re.IGNORECASE))
    merged: list[tuple[int, int]] = []
    for a, b in spans:
        if merged and a <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(b, merged[-1][1]))
        else:
            merged.append((a, b))
    return merged


# Private-use characters mark the hits while the text is made safe: the cleaners keep them
# (storage.plaintext.plain does), and they are taken out of the text first, so none is a hit's.
_ON, _OFF = "\ue000", "\ue001"


def highlight(text: str, spans: list[tuple[int, int]], clean: Callable[[str], str], on: str, off: str) -> str:
    """``text`` made safe by ``clean`` as a whole (a link split by a hit is still found and
    defanged; a cut stays within the limit), each span of ``spans`` between ``on`` and ``off``:
    ``**`` for Discord's /log search, bold on a terminal for ``logs search``."""
    text = text.replace(_ON, "").replace(_OFF, "")
    out, at = [], 0
    for a, b in spans:
        out += [text[at:a], _ON, text[a:b], _OFF]
        at = b
    out.append(text[at:])
    shown = clean("".join(out))
    if shown.count(_ON) > shown.count(_OFF):  # cut inside a hit
        shown += _OFF
    return shown.replace(_ON, on).replace(_OFF, off)


def optimize_index(connection: Connection) -> None:
    """Merge the FTS5 index into one b-tree (SQLite only; ``connection`` a SQLAlchemy one).

    FTS5 deletes by appending delete markers: the deleted text's trigrams stay in older
    segments until those are merged. Optimizing after a deletion removes them for good.
    """
    connection.exec_driver_sql(f"INSERT INTO {FTS_TABLE}({FTS_TABLE}) VALUES ('optimize')")
