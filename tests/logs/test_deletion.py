"""Deleting a call, purging old ones and forgetting a user leave nothing findable: not in
the tables, not in the search index, not in the bytes of the database file."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select, update

from storage import get_session, open_database
from storage.access import Viewer
from storage.deletion import delete_session, forget_user
from storage.models import CallSession, Participant, Suggestion, Utterance, Voiceprint, utcnow
from storage.queries import list_page
from storage.retention import purge_expired, purge_older_than
from storage.search import search
from tests.logs.test_search import index_terms, trigrams_of

OPERATOR = Viewer.cli_operator()


def file_bytes(path: Path) -> bytes:
    data = path.read_bytes()
    wal = path.with_name(path.name + "-wal")
    return data + (wal.read_bytes() if wal.exists() else b"")


def count(db, model, **where) -> int:
    with db.session() as s:
        q = select(func.count()).select_from(model)
        for key, value in where.items():
            q = q.where(getattr(model, key) == value)
        return int(s.scalar(q))


def unique_texts(db, sid: int) -> list[str]:
    """Texts of call ``sid`` said nowhere else (copies in other guilds share theirs)."""
    with db.session() as s:
        mine = [t for (t,) in s.execute(select(Utterance.text).where(Utterance.session_id == sid))]
        others = {t for (t,) in s.execute(select(Utterance.text).where(Utterance.session_id != sid))}
    return [t for t in mine if t not in others]


def assert_nothing_left(db, path: Path, texts: list[str]) -> None:
    assert texts
    for t in texts:
        assert search(db, OPERATOR, t[:3]).total == 0 or all(
            h.text != t for h in search(db, OPERATOR, t[:3], page_size=1000).items
        )
        assert search(db, OPERATOR, f'"{t}"').total == 0
    # The index holds the trigrams of the remaining text and not one more.
    assert index_terms(db) == trigrams_of(db)
    # fts5vocab hides terms that only delete markers cancel; the index's own blocks show
    # them. No trigram of the deleted text that no remaining text has may be in there.
    gone = {t.lower()[i : i + 3] for t in texts for i in range(len(t) - 2)} - trigrams_of(db)
    assert gone
    blocks = index_blocks(db)
    assert [g for g in gone if g.encode("utf-8") in blocks] == []
    raw = file_bytes(path)
    for t in texts:
        assert t.encode("utf-8") not in raw, t


def index_blocks(db) -> bytes:
    with db.engine.connect() as conn:
        return b"".join(row[0] for row in conn.exec_driver_sql("SELECT block FROM utterances_fts_data") if row[0])


def test_deleting_a_mandarin_call_leaves_nothing(lib, lib_path: Path, library) -> None:
    sid = library.ids["zh_g1"]
    # Make its speech its own: the copy in G2 goes first (G2's administrator deletes it).
    assert delete_session(lib, Viewer.member("u9", "G2", is_admin=True), library.ids["zh_g2"]).status == "deleted"
    texts = unique_texts(lib, sid)
    n = len(library.mandarin_script)
    assert len(texts) == n
    raw = file_bytes(lib_path)
    assert all(t.encode() in raw for t in texts)  # there before: the check below can fail
    result = delete_session(lib, Viewer.member("u3", "G1"), sid)  # its starter
    assert (result.status, result.utterances, result.participants) == ("deleted", n, 2)
    assert result.cleanup.complete
    assert get_session(lib, sid) is None
    assert count(lib, Utterance, session_id=sid) == count(lib, Participant, session_id=sid) == 0
    assert_nothing_left(lib, lib_path, texts)
    assert search(lib, OPERATOR, "通车").total == 0
    # The other calls are untouched.
    assert search(lib, OPERATOR, "reciter").total == 4 and search(lib, OPERATOR, "법원").total == 1


def test_deleting_an_english_call_with_suggestions(lib, lib_path: Path, library) -> None:
    sid = library.ids["en_g1"]
    # Make its speech its own: the copy in G2 goes first (and must not disturb this one).
    assert delete_session(lib, OPERATOR, library.ids["en_g2"]).status == "deleted"
    texts = unique_texts(lib, sid)
    assert len(texts) == len(library.english_script)
    result = delete_session(lib, OPERATOR, sid)
    assert (result.utterances, result.suggestions) == (len(texts), 2)
    assert count(lib, Suggestion) == 0
    assert_nothing_left(lib, lib_path, texts + ["Ask bob about the reciter", "Tell alice about the eunuch"])
    assert search(lib, OPERATOR, "reciter").total == 0


def test_purge_by_age(lib, lib_path: Path, library) -> None:
    old, old_active = library.ids["zh_g1"], library.ids["ko_g3"]
    with lib.session() as s, s.begin():
        s.execute(
            update(CallSession)
            .where(CallSession.id.in_([old, old_active]))
            .values(started_at=utcnow() - timedelta(days=40))
        )
        s.execute(update(CallSession).where(CallSession.id == old_active).values(status="active"))
        s.execute(
            update(CallSession)
            .where(CallSession.id == library.ids["en_g1"])
            .values(started_at=utcnow() - timedelta(days=29))
        )
    delete_session(lib, OPERATOR, library.ids["zh_g2"])
    texts = unique_texts(lib, old)
    assert len(texts) == len(library.mandarin_script)
    assert purge_expired(lib, 0).sessions == 0  # 0 keeps everything
    assert count(lib, CallSession) == 4
    result = purge_expired(lib, 30)
    assert (result.sessions, result.utterances) == (1, len(texts))
    remaining = {s.id for s in list_page(lib, OPERATOR, page_size=100).items}
    assert remaining == set(library.ids.values()) - {old, library.ids["zh_g2"]}  # the 'active' one is kept
    assert_nothing_left(lib, lib_path, texts)
    assert purge_older_than(lib, 28).sessions == 1  # the 29-day-old English call
    with pytest.raises(ValueError):
        purge_older_than(lib, 0)


def test_purge_in_batches(lib, library, monkeypatch: pytest.MonkeyPatch) -> None:
    import storage.retention

    monkeypatch.setattr(storage.retention, "BATCH", 2)
    with lib.session() as s, s.begin():
        s.execute(update(CallSession).values(started_at=utcnow() - timedelta(days=400)))
    result = purge_expired(lib, 365)
    assert result.sessions == 5 and count(lib, CallSession) == 0 and count(lib, Utterance) == 0
    assert index_terms(lib) == set()


def test_forget_user(lib, lib_path: Path, library) -> None:
    en, zh = get_session(lib, library.ids["en_g1"]), get_session(lib, library.ids["zh_g1"])
    bob_said = [u.text for u in en.utterances if u.speaker == "bob"]
    zhang_said = [u.text for u in zh.utterances if u.speaker == "张伟"]
    # u2 is bob in G1's English call and 张伟 in G1's Mandarin call; started neither.
    with lib.session() as s, s.begin():
        s.execute(update(CallSession).where(CallSession.id == zh.id).values(started_by="u2"))
    result = forget_user(lib, "u2")
    assert (result.participants, result.voiceprints) == (2, 1)
    assert result.utterances == len(bob_said) + len(zhang_said)
    assert (result.suggestions_deleted, result.suggestions_readdressed) == (1, 1)
    assert result.labels_cleared == 2  # alice's first line, attributed to bob's voice, in G1 and G2
    assert (result.sessions_unowned, result.sessions_deleted) == (1, 0)
    assert result.cleanup.complete

    en_after, zh_after = get_session(lib, en.id), get_session(lib, zh.id)
    assert [p.name for p in en_after.participants] == ["alice"]
    assert [u.speaker for u in en_after.utterances] == [s for s, _ in library.english_script if s == "alice"]
    assert [u.text for u in zh_after.utterances] == [u.text for u in zh.utterances if u.speaker == "李娜"]
    assert zh_after.started_by is None and en_after.started_by == "u1"
    assert [(g.text, g.recipients) for g in en_after.suggestions] == [("Ask bob about the reciter", ["alice"])]
    assert all(u.speaker_label is None for u in en_after.utterances)
    assert count(lib, Voiceprint, user_id="u2") == 0 and count(lib, Voiceprint, user_id="u1") == 1
    assert count(lib, Participant, user_id="u2") == 0
    # u2 sees nothing any more; the others keep their calls.
    assert list_page(lib, Viewer.member("u2", "G1")).total == 0
    assert {s.id for s in list_page(lib, Viewer.member("u1", "G1")).items} == {en.id}
    # Their words are gone from the index and the file; the copies in G2 (carol's, and
    # the unattributed Mandarin call) were other people's calls and stay.
    assert {h.session_id for h in search(lib, OPERATOR, "reciter", page_size=100).items} == {library.ids["en_g2"]}
    assert index_terms(lib) == trigrams_of(lib)
    assert search(lib, OPERATOR, "协会").total == 1  # only zh_g2's copy
    with lib.session() as s:
        assert s.scalar(select(func.count()).select_from(Utterance).where(Utterance.text.in_(zhang_said))) == 1


def test_forget_removes_a_call_nobody_else_was_in(lib, library) -> None:
    ko = library.ids["ko_g3"]
    forget_user(lib, "u4")
    assert get_session(lib, ko) is not None  # 민지 (u6) is still in it
    result = forget_user(lib, "u6")
    assert result.sessions_deleted == 1 and result.sessions_unowned == 0
    assert get_session(lib, ko) is None
    assert search(lib, OPERATOR, "법원").total == 0


def test_forget_keeps_a_call_still_being_recorded(lib, library) -> None:
    """/forget during a live call the user was alone in so far: their words go, the call stays
    for its pipeline to go on writing to and to close."""
    ko = library.ids["ko_g3"]
    forget_user(lib, "u4")
    with lib.session() as s, s.begin():
        s.execute(update(CallSession).where(CallSession.id == ko).values(status="active"))
    result = forget_user(lib, "u6")
    assert result.sessions_deleted == 0 and result.utterances > 0
    detail = get_session(lib, ko)
    assert detail is not None and detail.status == "active"
    assert detail.participants == [] and detail.utterances == []
    assert search(lib, OPERATOR, "법원").total == 0


def test_forgetting_someone_unknown_changes_nothing(lib, library) -> None:
    before = index_terms(lib)
    result = forget_user(lib, "nobody")
    assert (result.utterances, result.participants, result.voiceprints, result.sessions_deleted) == (0, 0, 0, 0)
    assert index_terms(lib) == before and count(lib, CallSession) == 5


def test_without_secure_delete_the_text_would_survive(tmp_path: Path, library) -> None:
    # Shows the byte check above can fail: the same deletion with secure_delete off leaves
    # the Mandarin text readable in the file.
    import shutil
    import sqlite3

    path = tmp_path / "plain.db"
    shutil.copyfile(library.path, path)
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("PRAGMA secure_delete=OFF")
    with open_database(str(path)) as db:
        texts = unique_texts(db, library.ids["ko_g3"])
    assert texts
    conn.execute("DELETE FROM sessions WHERE id = ?", (library.ids["ko_g3"],))
    conn.commit()
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    raw = file_bytes(path)
    assert any(t.encode() in raw for t in texts)
    with sqlite3.connect(path) as check:
        assert check.execute(
            "SELECT count(*) FROM utterances WHERE session_id = ?", (library.ids["ko_g3"],)
        ).fetchone() == (0,)


def test_without_optimizing_the_index_deleted_trigrams_would_remain(lib, library, monkeypatch) -> None:
    # Shows why deletion optimizes the FTS5 index, and that the block check can fail.
    import storage.deletion

    monkeypatch.setattr(storage.deletion, "_optimize", lambda s: None)
    delete_session(lib, OPERATOR, library.ids["zh_g2"])
    texts = unique_texts(lib, library.ids["zh_g1"])
    before = trigrams_of(lib)
    delete_session(lib, OPERATOR, library.ids["zh_g1"])
    gone = before - trigrams_of(lib)
    assert index_terms(lib) == trigrams_of(lib)  # looks clean through fts5vocab ...
    blocks = index_blocks(lib)
    assert any(g.encode("utf-8") in blocks for g in gone)  # ... but is not
    assert texts


def test_retention_worker_purges_at_start_and_then_periodically(lib, library) -> None:
    import queue

    from storage.retention import RetentionWorker

    old = library.ids["zh_g1"]
    with lib.session() as s, s.begin():
        s.execute(update(CallSession).where(CallSession.id == old).values(started_at=utcnow() - timedelta(days=40)))
    done: queue.Queue = queue.Queue()
    worker = RetentionWorker(lib, 30, every_s=0.05, on_purge=done.put)
    worker.start()
    try:
        first = done.get(timeout=120)  # a bound against hanging, not a timing assertion
        assert first.sessions == 1 and get_session(lib, old) is None
        # It keeps going: make another call expire and wait for a run that takes it.
        with lib.session() as s, s.begin():
            s.execute(
                update(CallSession)
                .where(CallSession.id == library.ids["en_g2"])
                .values(started_at=utcnow() - timedelta(days=31))
            )
        while done.get(timeout=120).sessions == 0:
            pass
        assert get_session(lib, library.ids["en_g2"]) is None
    finally:
        worker.stop(timeout=120)
    assert not worker.running
    off = RetentionWorker(lib, 0, every_s=1.0)
    off.start()
    assert not off.running  # 0 days: keep forever, no thread
