"""Full-text search on replayed English, Mandarin and Korean calls, checked against a plain
substring scan of the stored transcripts."""

from __future__ import annotations

import sqlite3

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, text, update

from bot.errors import StalkError
from storage import Base, CallRecorder, UtteranceRecord, get_session, list_sessions, open_database
from storage.access import Viewer
from storage.migrate import alembic_config
from storage.models import Utterance
from storage.search import FTS_TABLE, FTS_TRIGGERS, OUTSIDE_MODELS, parse_query, search

OPERATOR = Viewer.cli_operator()


def all_rows(db) -> list[tuple[int, int, str]]:
    rows = []
    for summary in list_sessions(db, limit=1000):
        for u in get_session(db, summary.id).utterances:
            rows.append((summary.id, u.id, u.text))
    return rows


def oracle(rows, query: str) -> set[int]:
    """Utterance ids containing every term, case-insensitively: what search promises."""
    terms = parse_query(query)
    return {uid for _, uid, t in rows if all(term.casefold() in t.casefold() for term in terms)}


def found(db, query: str, viewer: Viewer = OPERATOR, **kw) -> set[int]:
    page = search(db, viewer, query, page_size=10_000, **kw)
    assert page.total == len(page.items)
    return {h.utterance_id for h in page.items}


def test_every_short_and_long_substring_of_the_cjk_calls_is_found(ro_db, library) -> None:
    rows = all_rows(ro_db)
    cjk = [t for sid, _, t in rows if sid in (library.ids["zh_g1"], library.ids["ko_g3"])]
    # Substrings of 1 to 5 characters: 1-2 go the LIKE way, 3+ through the trigram index.
    terms = {t[i : i + n].strip() for t in cjk for n in range(1, 6) for i in range(0, len(t) - n + 1, 2)}
    terms = {t for t in terms if t and '"' not in t}
    assert len(terms) > 150
    for term in sorted(terms):
        expected = oracle(rows, f'"{term}"')
        assert expected, term
        assert found(ro_db, f'"{term}"') == expected, term


def test_two_character_chinese_and_korean_words(ro_db, library) -> None:
    zh = {library.ids["zh_g1"], library.ids["zh_g2"]}
    hits = search(ro_db, OPERATOR, "通车", page_size=100)
    assert {h.session_id for h in hits.items} == zh and hits.total == 2
    assert all(h.speaker == "李娜" and "通车" in h.text for h in hits.items)
    assert {h.session_id for h in search(ro_db, OPERATOR, "协会").items} == zh
    ko = search(ro_db, OPERATOR, "법원", page_size=100)  # "court", inside 법원에
    assert [(h.session_id, h.speaker) for h in ko.items] == [(library.ids["ko_g3"], "서준")]
    # Several short terms must all be present, in any order.
    assert found(ro_db, "通车 2017") == oracle(all_rows(ro_db), "通车 2017") != set()


def test_english_words_phrases_and_case(ro_db, library) -> None:
    rows = all_rows(ro_db)
    reciter = found(ro_db, "reciter")
    assert len(reciter) == 4 and reciter == oracle(rows, "reciter")  # two utterances, two guilds' copies
    assert found(ro_db, "RECITER") == reciter
    # Substrings, not words: "who" is also inside "Whom so ever ... the reciter".
    assert found(ro_db, "reciter who") == reciter
    both = found(ro_db, "then reciter")
    assert both == oracle(rows, "then reciter") and len(both) == 2
    assert found(ro_db, '"the reciter"') == reciter
    assert found(ro_db, '"then reciter"') == set()  # not next to each other
    assert found(ro_db, "Thornton Margaret") == oracle(rows, "Thornton Margaret") != set()
    for word in {w.strip(".,?!") for _, _, t in rows for w in t.split()} - {""}:
        assert found(ro_db, word) == oracle(rows, word), word


@pytest.mark.parametrize("query", ["zebra", "鳄鱼", "고양이", "协会x", "reciter zebra", "通车 鳄"])
def test_misses(ro_db, query: str) -> None:
    assert search(ro_db, OPERATOR, query).total == 0


@pytest.mark.parametrize("query", ['he"s', "NEAR(the", "reciter*", "a OR b", "-", "%", "_", "\\", "the AND"])
def test_query_syntax_is_never_interpreted(ro_db, query: str) -> None:
    rows = all_rows(ro_db)
    assert found(ro_db, query) == oracle(rows, query)


def test_bad_queries_are_one_clear_error(ro_db) -> None:
    for query in ("", "   ", '""'):
        with pytest.raises(StalkError, match="empty search"):
            search(ro_db, OPERATOR, query)
    with pytest.raises(StalkError, match="too long"):
        search(ro_db, OPERATOR, "x" * 201)


def test_hits_carry_session_speaker_time_spans_and_context(ro_db, library) -> None:
    zh = get_session(ro_db, library.ids["zh_g1"])
    (hit,) = search(ro_db, OPERATOR, "通车", session_id=zh.id, context=2).items
    last = zh.utterances[-1]
    assert (hit.session_id, hit.session_title, hit.utterance_id, hit.speaker) == (
        zh.id,
        "周会 · 房地产",
        last.id,
        "李娜",
    )
    assert (hit.start, hit.end, hit.text) == (last.start, last.end, last.text)
    assert hit.session_started_at == zh.started_at
    assert [hit.text[a:b] for a, b in hit.spans] == ["通车"]
    assert [(c.speaker, c.text) for c in hit.before] == [(u.speaker, u.text) for u in zh.utterances[-3:-1]]
    assert hit.after == []
    (first,) = search(ro_db, OPERATOR, zh.utterances[0].text[:4], session_id=zh.id, context=1).items
    assert first.before == [] and [c.text for c in first.after] == [zh.utterances[1].text]
    # Newest call first, call-time order within a call.
    hits = search(ro_db, OPERATOR, "reciter").items
    assert [h.session_id for h in hits] == sorted((h.session_id for h in hits), reverse=True)
    assert hits[0].start < hits[1].start


def test_index_follows_inserts_updates_and_deletes(lib, library) -> None:
    en = get_session(lib, library.ids["en_g1"])
    alice = next(p.id for p in en.participants if p.name == "alice")
    CallRecorder(lib).add_utterance(UtteranceRecord(en.id, alice, 40.0, 41.0, 41.5, "새로운 문장 新句子 quokka"))
    assert len(found(lib, "quokka")) == len(found(lib, "新句")) == len(found(lib, "새로운 문장")) == 1
    (uid,) = found(lib, "quokka")
    with lib.session() as s, s.begin():
        s.execute(update(Utterance).where(Utterance.id == uid).values(text="wombat 袋熊"))
    assert found(lib, "quokka") == found(lib, "새로운") == set()
    assert found(lib, "wombat") == found(lib, "袋熊") == {uid}
    with lib.session() as s, s.begin():
        s.execute(text("DELETE FROM utterances WHERE id = :id"), {"id": uid})
    assert found(lib, "wombat") == found(lib, "袋熊") == set()
    assert index_terms(lib) == trigrams_of(lib)


def index_terms(db) -> set[str]:
    """Every term the FTS5 index holds, read through fts5vocab."""
    with db.engine.connect() as conn:
        conn.exec_driver_sql(f"CREATE VIRTUAL TABLE IF NOT EXISTS temp.vocab USING fts5vocab(main, {FTS_TABLE}, 'row')")
        return {row[0] for row in conn.exec_driver_sql("SELECT term FROM temp.vocab")}


def trigrams_of(db) -> set[str]:
    """The trigrams of every stored utterance, folded as the tokenizer folds them."""
    with db.session() as s:
        texts = [t for (t,) in s.execute(text("SELECT text FROM utterances"))]
    return {t.lower()[i : i + 3] for t in texts for i in range(len(t) - 2)}


def test_index_holds_exactly_the_stored_text(ro_db) -> None:
    assert index_terms(ro_db) == trigrams_of(ro_db)


def test_migration_indexes_existing_rows_and_downgrades_cleanly(tmp_path) -> None:
    path = tmp_path / "old.db"
    engine = create_engine(f"sqlite:///{path}")
    with engine.begin() as conn:
        command.upgrade(alembic_config(connection=conn), "0001")
        conn.execute(
            text(
                "INSERT INTO sessions (id, source, status, guild_id, started_at) "
                "VALUES (7, 'discord', 'completed', 'G1', '2026-01-02 03:04:05.000000')"
            )
        )
        conn.execute(
            text("INSERT INTO participants (id, session_id, name, user_id, joined_at) VALUES (1, 7, '민수', 'u1', 0)")
        )
        conn.execute(
            text(
                'INSERT INTO utterances (session_id, participant_id, start, "end", transcribed_at, '
                "created_at, text) VALUES (7, 1, 1.0, 2.0, 2.5, '2026-01-02 03:04:07.000000', "
                "'안녕하세요 我们去北京')"
            )
        )
    engine.dispose()
    with open_database(str(path)) as db:  # migrates to head
        assert found(db, "北京") == found(db, "안녕하세요") == found(db, "我们去北") == {1}
        assert found(db, "北京", Viewer.member("u1", "G1")) == {1}
    with sqlite3.connect(path) as conn:
        names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
    assert {FTS_TABLE, *FTS_TRIGGERS} <= names

    engine = create_engine(f"sqlite:///{path}")
    with engine.begin() as conn:
        command.downgrade(alembic_config(connection=conn), "0001")
    engine.dispose()
    with sqlite3.connect(path) as conn:
        names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
        columns = {r[1] for r in conn.execute("PRAGMA table_info(sessions)")}
        kept = conn.execute("SELECT text FROM utterances").fetchall()
    assert not names & (set(OUTSIDE_MODELS) | set(FTS_TRIGGERS))
    assert "started_by" not in columns
    assert kept == [("안녕하세요 我们去北京",)]  # downgrading lost no speech
    with open_database(str(path)) as db:  # and up again
        assert found(db, "北京") == {1}


def test_schema_comparison_skips_exactly_the_index_tables(ro_db) -> None:
    # Without the filter the models and the database differ by the FTS tables and nothing
    # else; test_storage's comparison (with the filter) then proves the rest identical.
    with ro_db.engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        diffs = compare_metadata(ctx, Base.metadata)
    assert diffs and all(d[0] == "remove_table" for d in diffs)
    assert {d[1].name for d in diffs} == {n for n in OUTSIDE_MODELS if n.startswith(FTS_TABLE)} - {
        f"{FTS_TABLE}_content"
    }  # external content: FTS5 makes no _content table
