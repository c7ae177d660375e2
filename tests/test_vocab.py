"""The StrEnum vocabularies against a real migrated SQLite file: every member is a word the
database accepts, a word outside a vocabulary is refused there, and what comes back out is the
member again (so the bot and storage compare the same values)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from storage import CallRecorder, NewSession, UtteranceRecord, get_session, open_database
from storage.settings import consents, guild_settings, set_consent, update_guild_settings
from storage.vocab import ConsentChoice, ConsentMode, SessionSource, SessionStatus, Verification


def _sql_checks(path: Path) -> str:
    """The CREATE TABLE text the migrations left in the file, CHECK constraints included."""
    with sqlite3.connect(path) as conn:
        return "\n".join(r[0] for r in conn.execute("SELECT sql FROM sqlite_master WHERE type = 'table'") if r[0])


def test_every_member_is_in_the_migrated_constraints(tmp_path: Path) -> None:
    path = tmp_path / "calls.db"
    open_database(str(path)).close()
    schema = _sql_checks(path)
    # The migrations' own spelling: the enums changed no stored word.
    for column, vocab in (
        ("status", SessionStatus),
        ("source", SessionSource),
        ("verification", Verification),
        ("consent_mode", ConsentMode),
        ("choice", ConsentChoice),
    ):
        listed = ", ".join(f"'{m.value}'" for m in vocab)
        assert f"{column} IN ({listed})" in schema, (column, listed)


def test_members_round_trip_through_the_database(tmp_path: Path) -> None:
    with open_database(str(tmp_path / "calls.db")) as db:
        rec = CallRecorder(db)
        sid = rec.start_session(NewSession(source=SessionSource.DISCORD, title="t", guild_id="1"))
        pid = rec.add_participant(sid, "alice", user_id="7", joined_at=0.0)
        for n, verdict in enumerate([*Verification, None]):
            rec.add_utterance(UtteranceRecord(sid, pid, n, n + 0.5, n + 1.0, f"line {n}", verification=verdict))
        assert get_session(db, sid).status is SessionStatus.ACTIVE
        rec.finish_session(sid, SessionStatus.INTERRUPTED, duration=5.0)
        detail = get_session(db, sid)
        assert detail.status is SessionStatus.INTERRUPTED and detail.source is SessionSource.DISCORD
        assert [u.verification for u in detail.utterances] == [*Verification, None]

        update_guild_settings(db, 1, consent_mode=ConsentMode.OPT_IN)
        assert guild_settings(db, 1).consent_mode is ConsentMode.OPT_IN
        assert guild_settings(db, 2, default_mode="opt_in").consent_mode is ConsentMode.OPT_IN
        set_consent(db, 1, 7, ConsentChoice.OPT_OUT)
        set_consent(db, 1, 8, ConsentChoice.OPT_IN)
        assert consents(db, 1).opted_out == {7} and consents(db, 1).opted_in == {8}


def test_words_outside_a_vocabulary_are_refused(tmp_path: Path) -> None:
    with open_database(str(tmp_path / "calls.db")) as db:
        rec = CallRecorder(db)
        with pytest.raises(ValueError, match="source must be one of"):
            rec.start_session(NewSession(source="zoom"))  # type: ignore[arg-type]
        sid = rec.start_session(NewSession(source=SessionSource.REPLAY))
        with pytest.raises(ValueError, match="status must be one of"):
            rec.finish_session(sid, "done")  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="consent_mode must be one of"):
            update_guild_settings(db, 1, consent_mode="everyone")
