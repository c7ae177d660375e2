"""Chinese search across scripts, on fixed reference text: a transcript stored in Traditional
(older rows, a server storing Traditional) and one in Simplified are both found by a query in
either script, through the trigram index (3+ characters) and the LIKE path (1-2)."""

from __future__ import annotations

import pytest

from storage import CallRecorder, NewSession, UtteranceRecord, open_database
from storage.access import Viewer
from storage.search import search

# AISHELL-1 test BAC009S0724W0121's reference, and the same sentence in Traditional as
# Whisper base writes Mandarin at times; an English line that no Chinese query may find.
SIMPLIFIED = "广州市房地产中介协会分析"
TRADITIONAL = "廣州市房地產中介協會分析"
OTHER = "The reciter then read the list again."


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    path = tmp_path_factory.mktemp("scripts") / "scripts.db"
    with open_database(str(path)) as db:
        rec = CallRecorder(db)
        sid = rec.start_session(NewSession(source="replay", title=None, language="zh", asr_model="reference"))
        pid = rec.add_participant(sid, "李娜", user_id=None, joined_at=0.0)
        for i, text in enumerate((SIMPLIFIED, TRADITIONAL, OTHER)):
            rec.add_utterance(UtteranceRecord(sid, pid, 4.0 * i, 4.0 * i + 3.0, 4.0 * i + 3.5, text, language="zh"))
        rec.finish_session(sid, "completed", duration=12.0)
    db = open_database(str(path))
    yield db
    db.close()


def texts(db, query: str) -> set[str]:
    return {h.text for h in search(db, Viewer.cli_operator(), query, page_size=100).items}


@pytest.mark.parametrize(
    "query",
    ["广州", "廣州", "协会", "協會", "房地产", "房地產", "中介协会分析", "中介協會分析", "广州 協會", '"市房地產"'],
)
def test_either_script_finds_both(db, query) -> None:
    assert texts(db, query) == {SIMPLIFIED, TRADITIONAL}


def test_no_false_matches_and_highlights_in_the_stored_script(db) -> None:
    assert texts(db, "北京") == set()
    assert texts(db, "广州 北京") == set()
    assert texts(db, "reciter") == {OTHER}
    for hit in search(db, Viewer.cli_operator(), "協會", page_size=10).items:
        (span,) = hit.spans
        assert hit.text[span[0] : span[1]] in ("协会", "協會")
