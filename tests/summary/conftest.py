"""Calls for the summary tests: written scripts with exact times, stored in a real SQLite file
through the pipeline's own storage path (``CallRecorder``), plus the reference-text calls of
tests/logs/conftest.py (real speech's reference transcripts at the times that speech has)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from storage import CallRecorder, NewSession, SuggestionRecord, UtteranceRecord, open_database
from tests.logs.conftest import Library, lib, lib_path, library, ro_db  # noqa: F401  (fixtures)


@dataclass(frozen=True)
class Line:
    speaker: str
    start: float
    end: float
    text: str


def store_call(
    path: Path,
    lines: list[Line],
    language: str,
    *,
    hints: list[tuple[float, str, list[str]]] = (),  # type: ignore[assignment]
    users: dict[str, str] | None = None,
    guild: str | None = None,
    started_by: str | None = None,
) -> int:
    """Store ``lines`` as a finished call (one participant row per speaker, in order of first
    speech) with ``hints`` (at, text, recipients); its id."""
    with open_database(str(path)) as db:
        rec = CallRecorder(db)
        sid = rec.start_session(
            NewSession(
                source="discord" if guild else "replay",
                language=language,
                asr_model="reference",
                guild_id=guild,
                started_by=started_by,
            )
        )
        pids: dict[str, int] = {}
        for line in lines:
            if line.speaker not in pids:
                uid = (users or {}).get(line.speaker)
                pids[line.speaker] = rec.add_participant(sid, line.speaker, user_id=uid, joined_at=0.0)
        for line in lines:
            rec.add_utterance(
                UtteranceRecord(
                    sid, pids[line.speaker], line.start, line.end, line.end + 1.0, line.text, language=language
                )
            )
        for at, text, to in hints:
            rec.add_suggestion(SuggestionRecord(sid, at=at, text=text, source="fallback", recipients=to))
        rec.finish_session(sid, "completed", duration=max(line.end for line in lines) + 1.0)
    return sid


# A planning call in English: decisions, to-dos and an open question, with known words.
MEETING_EN = [
    Line("alice", 1.0, 5.0, "Let's talk about the garden party on Saturday."),
    Line("bob", 5.5, 9.0, "The garden party needs a tent in case it rains."),
    Line("alice", 9.5, 13.0, "I will rent the tent from the hardware store tomorrow."),
    Line("carol", 13.5, 17.0, "We decided the garden party starts at noon."),
    Line("bob", 17.5, 21.0, "I can bake the lemon cake for the dessert table."),
    Line("carol", 21.5, 25.0, "The lemon cake was perfect last summer."),
    Line("alice", 25.5, 29.0, "Who is bringing the folding chairs for the guests?"),
    Line("bob", 29.5, 33.0, "The hardware store also rents folding chairs."),
    Line("carol", 33.5, 37.0, "Should we invite the neighbours to the garden party?"),
    Line("alice", 37.5, 41.0, "The neighbours helped with the fence in spring."),
]

MEETING_KO = [
    Line("민지", 1.0, 5.0, "토요일 바비큐 파티 장소를 정해야 해요."),
    Line("서준", 5.5, 9.0, "바비큐 파티는 한강 공원에서 하기로 했어요."),
    Line("민지", 9.5, 13.0, "제가 내일 고기를 사 올게요."),
    Line("서준", 13.5, 17.0, "한강 공원은 주말에 사람이 많아요."),
    Line("민지", 17.5, 21.0, "그러면 아침 일찍 자리를 잡아야겠네요."),
    Line("서준", 21.5, 25.0, "돗자리는 누가 가져올까요?"),
    Line("민지", 25.5, 29.0, "고기는 삼겹살로 준비할게요."),
    Line("서준", 29.5, 33.0, "한강 공원 바비큐 구역 예약이 필요한가요?"),
]
