"""Calls recorded from fixed reference text, then arranged into guilds.

The tests of storage, search, export, deletion and access must not depend on what a model
happens to transcribe (Whisper's output differs by a word between machines). So the calls
here are recorded through the pipeline's own storage path (``CallRecorder``) with the
reference transcripts of real speech and the times that speech has when it is laid out as a
call (``tests.calls.build_call``); no model runs. One English, one Mandarin and one Korean
call go into a template database, and their transcripts are recorded again as the calls of
other guilds and people, giving the access-control matrix its cast:

| key      | guild | participants (user id)          | started by | speech   |
|----------|-------|---------------------------------|------------|----------|
| en_g1    | G1    | alice (u1), bob (u2)            | u1         | English  |
| zh_g1    | G1    | 李娜 (u3), 张伟 (u2)             | u3         | Mandarin |
| en_g2    | G2    | alice (u1), carol (u5)          | u5         | English (copy) |
| zh_g2    | G2    | 李娜, 张伟 (no Discord ids)       | nobody     | Mandarin (copy) |
| ko_g3    | G3    | 민지 (u6), 서준 (u4)             | u6         | Korean   |

Tests that change the database work on a copy of the template file (``lib``).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import update

from storage import CallRecorder, NewSession, SuggestionRecord, UtteranceRecord, get_session, open_database
from storage.db import Database
from storage.models import CallSession, Participant, Utterance, Voiceprint
from storage.queries import SessionDetail
from tests.calls import build_call, librispeech_files, librispeech_refs, shared

GUILDS = ("G1", "G2", "G3")
USERS = ("u1", "u2", "u3", "u4", "u5", "u6")


@dataclass(frozen=True)
class Library:
    path: Path
    ids: dict[str, int]  # key in the table above -> session id
    english_script: list[tuple[str, str]]  # (speaker, reference text) in call order
    mandarin_script: list[tuple[str, str]]
    korean_script: list[tuple[str, str]]


def english_script() -> list[tuple[str, Path, str]]:
    refs = librispeech_refs()
    alice, bob = librispeech_files("1688"), librispeech_files("2033")
    order = [
        ("alice", alice[2]),
        ("bob", bob[1]),
        ("alice", alice[3]),
        ("bob", bob[3]),
        ("alice", alice[1]),
        ("bob", bob[5]),
        ("alice", alice[4]),
        ("bob", bob[4]),
    ]
    return [(name, f, refs[f.stem]) for name, f in order]


def mandarin_script() -> list[tuple[str, Path, str]]:
    rows = [
        line.split("\t") for line in shared("data", "chinese", "trans.tsv").read_text(encoding="utf-8").splitlines()[1:]
    ]
    refs = {file: text for file, text in rows}
    files = ["BAC009S0764W0121.wav", "aishell-BAC009S0724W0121.wav", "fleurs_zh_1883_clip5.wav"]
    speakers = ["李娜", "张伟", "李娜"]
    return [(spk, shared("data", "chinese", f), refs[f]) for spk, f in zip(speakers, files)]


def korean_script() -> list[tuple[str, Path, str]]:
    """Two Common Voice speakers, two sentences each, taking turns."""
    by_speaker: dict[str, list[tuple[str, str]]] = {}
    for line in shared("data", "korean", "trans.tsv").read_text(encoding="utf-8").splitlines():
        file, speaker, text = line.split("\t")
        by_speaker.setdefault(speaker, []).append((file, text))
    a, b = [spk for spk, items in by_speaker.items() if len(items) >= 2][:2]
    script = []
    for i in range(2):
        for name, spk in (("민지", a), ("서준", b)):
            file, text = by_speaker[spk][i]
            script.append((name, shared("data", "korean", file), text))
    return script


def sentence(reference: str) -> str:
    """A reference transcript as a recogniser writes it: LibriSpeech's upper-case references in
    sentence case with a full stop; others (already cased and punctuated) unchanged."""
    if not reference.isupper():
        return reference
    text = reference.lower()
    text = " ".join("I" if w == "i" else w for w in text.split())
    return text[0].upper() + text[1:] + "."


def record_call(db_path: Path, tmp: Path, script, language: str, *, model: str = "reference") -> int:
    """Store ``script``'s reference text as a finished call, through the pipeline's storage
    path, at the times its speech has when laid out as a call (as a replay would store it)."""
    _, placed = build_call(tmp, script)
    with open_database(str(db_path)) as db:
        rec = CallRecorder(db)
        sid = rec.start_session(NewSession(source="replay", title=None, language=language, asr_model=model))
        pids: dict[str, int] = {}
        for p in placed:
            if p.speaker not in pids:
                pids[p.speaker] = rec.add_participant(sid, p.speaker, user_id=None, joined_at=0.0)
        for p in placed:
            start, end = round(p.speech_start, 3), round(p.speech_end, 3)
            rec.add_utterance(
                UtteranceRecord(
                    sid,
                    pids[p.speaker],
                    start,
                    end,
                    round(end + 1.0, 3),
                    sentence(p.text),
                    language=language,
                    language_probability=0.98,
                    avg_logprob=-0.25,
                    no_speech_prob=0.01,
                    compression_ratio=1.3,
                )
            )
        duration = round(max(p.speech_end for p in placed) + 1.0, 3)
        rec.finish_session(sid, "completed", duration=duration)
    return sid


def _stamp(
    db: Database, sid: int, *, guild: str, title: str, started_by: str | None, users: dict[str, str | None]
) -> None:
    """Make a replayed call look like a Discord one: its guild, starter and members' ids."""
    with db.session() as s, s.begin():
        s.execute(
            update(CallSession)
            .where(CallSession.id == sid)
            .values(source="discord", guild_id=guild, title=title, started_by=started_by)
        )
        for name, uid in users.items():
            s.execute(
                update(Participant).where(Participant.session_id == sid, Participant.name == name).values(user_id=uid)
            )


def copy_call(
    db: Database,
    detail: SessionDetail,
    *,
    guild: str,
    title: str,
    started_by: str | None,
    people: dict[str, tuple[str, str | None]],
) -> int:
    """Record ``detail``'s transcript again as another guild's call; ``people`` renames
    speakers and gives them user ids."""
    rec = CallRecorder(db)
    sid = rec.start_session(
        NewSession(
            source="discord",
            title=title,
            language=detail.language,
            asr_model=detail.asr_model,
            guild_id=guild,
            started_by=started_by,
        )
    )
    pids = {}
    for p in detail.participants:
        name, uid = people[p.name]
        pids[p.name] = rec.add_participant(sid, name, user_id=uid, joined_at=p.joined_at)
    for u in detail.utterances:
        rec.add_utterance(
            UtteranceRecord(
                sid,
                pids[u.speaker],
                u.start,
                u.end,
                u.transcribed_at,
                u.text,
                language=u.language,
                language_probability=u.language_probability,
                avg_logprob=u.avg_logprob,
                no_speech_prob=u.no_speech_prob,
                compression_ratio=u.compression_ratio,
                speaker_score=u.speaker_score,
                verification=u.verification,
                speaker_label=u.speaker_label,
            )
        )
    rec.finish_session(sid, "completed", duration=detail.duration)
    return sid


@pytest.fixture(scope="session")
def library(tmp_path_factory) -> Library:
    tmp = tmp_path_factory.mktemp("library")
    path = tmp / "template.db"
    en_script, zh_script, ko_script = english_script(), mandarin_script(), korean_script()
    en = record_call(path, tmp_path_factory.mktemp("en"), en_script, "en")
    zh = record_call(path, tmp_path_factory.mktemp("zh"), zh_script, "zh")
    ko = record_call(path, tmp_path_factory.mktemp("ko"), ko_script, "ko")
    with open_database(str(path)) as db:
        _stamp(db, en, guild="G1", title="Weekly sync", started_by="u1", users={"alice": "u1", "bob": "u2"})
        _stamp(db, zh, guild="G1", title="周会 · 房地产", started_by="u3", users={"李娜": "u3", "张伟": "u2"})
        _stamp(db, ko, guild="G3", title="스터디", started_by="u6", users={"민지": "u6", "서준": "u4"})
        rec = CallRecorder(db)
        # Suggestions and voiceprint labels for /forget to find.
        rec.add_suggestion(
            SuggestionRecord(
                en, at=20.0, text="Ask bob about the reciter", source="fallback", recipients=["alice", "bob"]
            )
        )
        rec.add_suggestion(
            SuggestionRecord(en, at=25.0, text="Tell alice about the eunuch", source="fallback", recipients=["bob"])
        )
        with db.session() as s, s.begin():
            first_alice = s.scalar(
                Utterance.__table__.select()
                .with_only_columns(Utterance.id)
                .where(
                    Utterance.session_id == en,
                    Utterance.participant_id
                    == s.scalar(
                        Participant.__table__.select()
                        .with_only_columns(Participant.id)
                        .where(Participant.session_id == en, Participant.name == "alice")
                    ),
                )
                .order_by(Utterance.start)
                .limit(1)
            )
            s.execute(
                update(Utterance).where(Utterance.session_id == en).values(verification="verified", speaker_score=0.8)
            )
            s.execute(
                update(Utterance)
                .where(Utterance.id == first_alice)
                .values(verification="mismatch", speaker_label="bob", speaker_score=0.7)
            )
            for name, uid in (("alice", "u1"), ("bob", "u2")):
                s.add(
                    Voiceprint(
                        name=name,
                        user_id=uid,
                        model_id="test",
                        model_name="test",
                        dim=2,
                        embedding=b"\0" * 8,
                        segments=1,
                        speech_seconds=5.0,
                    )
                )
        en_detail, zh_detail = get_session(db, en), get_session(db, zh)
        en2 = copy_call(
            db,
            en_detail,
            guild="G2",
            title="Book club",
            started_by="u5",
            people={"alice": ("alice", "u1"), "bob": ("carol", "u5")},
        )
        zh2 = copy_call(
            db,
            zh_detail,
            guild="G2",
            title="读书会",
            started_by=None,
            people={"李娜": ("李娜", None), "张伟": ("张伟", None)},
        )
    return Library(
        path=path,
        ids={"en_g1": en, "zh_g1": zh, "en_g2": en2, "zh_g2": zh2, "ko_g3": ko},
        english_script=[(s, t) for s, _, t in en_script],
        mandarin_script=[(s, t) for s, _, t in zh_script],
        korean_script=[(s, t) for s, _, t in ko_script],
    )


@pytest.fixture
def lib_path(library: Library, tmp_path: Path) -> Path:
    """A private copy of the template database, for tests that change it."""
    target = tmp_path / "calls.db"
    shutil.copyfile(library.path, target)
    return target


@pytest.fixture
def lib(lib_path: Path):
    db = open_database(str(lib_path))
    yield db
    db.close()


@pytest.fixture(scope="session")
def ro_db(library: Library):
    """The template database itself, for tests that only read."""
    db = open_database(str(library.path))
    yield db
    db.close()
