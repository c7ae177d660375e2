"""The shape of a conversation, from rows stored in a real SQLite file: exact figures for a
written call with known times, and for the reference-text calls against their own layout."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from storage import get_session, open_database
from storage.queries import detail_shape, session_to_json
from storage.shape import Spoken, conversation_shape
from tests.summary.conftest import Library, Line, store_call

SHAPED = [
    Line("alice", 0.0, 4.0, "Let's book the hall for Friday."),
    Line("bob", 3.0, 6.0, "Friday works, the hall is free."),  # over alice, who stops first: interruption
    Line("alice", 10.0, 12.0, "Then I will call them."),  # after 4 s of silence
    Line("alice", 12.5, 14.0, "And ask about the chairs."),  # the same turn
    Line("bob", 13.5, 13.8, "Yeah."),  # under alice, who goes on: an overlap, no interruption
    Line("carol", 20.0, 21.0, "Sorry I'm late."),  # after 6 s of silence
    Line("bob", 22.0, 27.0, "We booked the hall for Friday and alice calls about chairs."),
]


@pytest.fixture
def shaped(tmp_path: Path):
    path = tmp_path / "shape.db"
    sid = store_call(path, SHAPED, "en", hints=[(15.0, "Ask about the chairs", ["alice"]), (30.0, "Late?", ["bob"])])
    with open_database(str(path)) as db:
        detail = get_session(db, sid)
    assert detail is not None
    return detail


def test_talk_time_share_turns_and_longest_stretch(shaped) -> None:
    shape = detail_shape(shaped)
    by = {p.name: p for p in shape.participants}
    assert [p.name for p in shape.participants] == ["bob", "alice", "carol"]  # most talk first
    assert by["alice"].talk_seconds == pytest.approx(7.5)
    assert by["bob"].talk_seconds == pytest.approx(8.3)
    assert by["carol"].talk_seconds == pytest.approx(1.0)
    assert by["bob"].share == pytest.approx(8.3 / 16.8)
    assert sum(p.share for p in shape.participants) == pytest.approx(1.0)
    assert (by["alice"].turns, by["bob"].turns, by["carol"].turns) == (2, 3, 1)
    assert (by["alice"].utterances, by["bob"].utterances) == (3, 3)
    assert shape.turns == 6
    assert by["alice"].longest_turn_seconds == pytest.approx(4.0)  # 10.0 to 14.0, two utterances
    assert shape.longest is not None
    assert (shape.longest.speaker, shape.longest.start, shape.longest.seconds) == ("bob", 22.0, pytest.approx(5.0))
    assert shape.duration == pytest.approx(27.0)
    assert shape.speech_seconds == pytest.approx(15.5)  # 0-6, 10-12, 12.5-14, 20-21, 22-27


def test_who_answered_whom(shaped) -> None:
    answers = [(a.speaker, a.other, a.count) for a in detail_shape(shaped).answers]
    assert answers == [("bob", "alice", 2), ("alice", "bob", 1), ("bob", "carol", 1), ("carol", "bob", 1)]


def test_silences_overlaps_and_interruptions(shaped) -> None:
    shape = detail_shape(shaped)
    assert [(g.start, g.seconds) for g in shape.silences] == [(6.0, pytest.approx(4.0)), (14.0, pytest.approx(6.0))]
    assert shape.longest_silence is not None and shape.longest_silence.start == 14.0
    assert [(o.speaker, o.over, o.at, o.interruption) for o in shape.overlaps] == [
        ("bob", "alice", 3.0, True),
        ("bob", "alice", 13.5, False),
    ]
    assert shape.overlaps[0].seconds == pytest.approx(1.0)
    assert shape.overlaps[1].seconds == pytest.approx(0.3)
    assert [(p.speaker, p.other, p.count) for p in shape.interrupters] == [("bob", "alice", 1)]
    # A higher threshold counts only the longer silence.
    spoken = [Spoken(u.id, u.speaker, u.start, u.end) for u in shaped.utterances]
    assert len(conversation_shape(spoken, silence_seconds=5.0).silences) == 1


def test_hints_and_whether_talk_resumed(shaped) -> None:
    hints = detail_shape(shaped).hints
    assert [(h.at, h.resumed, h.by) for h in hints] == [(15.0, True, "carol"), (30.0, False, None)]
    assert hints[0].resumed_after == pytest.approx(5.0)
    assert hints[0].texts == ("Ask about the chairs",)
    data = session_to_json(shaped)["shape"]
    assert data["silences"]["count"] == 2 and data["interruptions"][0]["interrupted"] == "alice"
    assert [h["resumed"] for h in data["hints"]] == [True, False]


def test_an_empty_call_has_an_empty_shape() -> None:
    shape = conversation_shape([], names=["alice"])
    assert shape.turns == 0 and shape.longest is None and shape.longest_silence is None
    assert [(p.name, p.talk_seconds, p.share) for p in shape.participants] == [("alice", 0.0, 0.0)]


@pytest.mark.parametrize("key", ["en_g1", "ko_g3", "zh_g1"])
def test_reference_calls_against_their_layout(library: Library, ro_db, key: str) -> None:
    """The reference calls take turns one sentence each with 1.5 s between clips and no
    overlap: talk time is each speaker's sum of utterance lengths, every utterance a turn."""
    detail = get_session(ro_db, library.ids[key])
    assert detail is not None
    shape = detail_shape(detail)
    talk: Counter[str] = Counter()
    for u in detail.utterances:
        talk[u.speaker] += u.end - u.start
    assert {p.name: round(p.talk_seconds, 6) for p in shape.participants} == {k: round(v, 6) for k, v in talk.items()}
    speakers = [u.speaker for u in detail.utterances]
    changes = sum(1 for a, b in zip(speakers, speakers[1:]) if a != b)
    assert shape.turns == changes + 1
    assert not shape.overlaps
    gaps = [b.start - a.end for a, b in zip(detail.utterances, detail.utterances[1:])]
    assert len(shape.silences) == sum(1 for g in gaps if g >= shape.silence_seconds)
    assert all(g > 1.5 for g in gaps)  # the layout's gap, plus each clip's own quiet edges
