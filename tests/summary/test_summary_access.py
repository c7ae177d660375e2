"""Who may read a summary (exactly who may read the transcript), and that it goes with the call
and with a forgotten person's words: the access-control cast of tests/logs/conftest.py."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select

from bot.summary.make import make_summary, summary_for
from storage import get_session
from storage.access import Viewer
from storage.deletion import delete_session, forget_user
from storage.models import SummaryRow
from storage.summaries import get_summary
from tests.cli import run_cli
from tests.summary.conftest import Library

VIEWERS = [
    Viewer.cli_operator(),
    *(Viewer.member(u, g) for u in ("u1", "u2", "u3", "u4", "u5", "u6") for g in ("G1", "G2", "G3")),
    *(Viewer.member("u9", g, is_admin=True) for g in ("G1", "G2", "G3")),
    Viewer(user_id="u1"),  # a direct message: no guild
]


@pytest.fixture
def summarised(lib, library: Library):
    for sid in library.ids.values():
        assert make_summary(lib, sid, None) is not None
    return lib


def test_a_summary_is_visible_exactly_where_the_transcript_is(summarised, library: Library) -> None:
    seen = 0
    for viewer in VIEWERS:
        for sid in library.ids.values():
            transcript = get_session(summarised, sid, viewer)
            summary = get_summary(summarised, sid, viewer)
            assert (summary is None) == (transcript is None), (viewer, sid)
            seen += summary is not None
    assert 0 < seen < len(VIEWERS) * len(library.ids)  # the matrix has both answers
    ids = library.ids
    assert get_summary(summarised, ids["en_g1"], Viewer.member("u1", "G1")) is not None
    assert get_summary(summarised, ids["zh_g1"], Viewer.member("u1", "G1")) is None  # not in that call
    assert get_summary(summarised, ids["en_g1"], Viewer.member("u1", "G2")) is None  # asked from another guild
    assert get_summary(summarised, ids["zh_g2"], Viewer.member("u9", "G2", is_admin=True)) is not None
    assert get_summary(summarised, ids["en_g1"], Viewer.member("u9", "G2", is_admin=True)) is None
    # Made on demand with a viewer: refused for one who may not see the call.
    assert make_summary(summarised, ids["ko_g3"], None, viewer=Viewer.member("u1", "G3")) is None


def _summaries(db, sid: int) -> int:
    with db.session() as s:
        return int(s.scalar(select(func.count()).select_from(SummaryRow).where(SummaryRow.session_id == sid)) or 0)


def test_deleting_the_call_deletes_its_summary(summarised, library: Library) -> None:
    sid = library.ids["en_g1"]
    assert _summaries(summarised, sid) == 1
    assert delete_session(summarised, Viewer.cli_operator(), sid).status == "deleted"
    assert _summaries(summarised, sid) == 0
    assert _summaries(summarised, library.ids["zh_g1"]) == 1


def test_forget_takes_their_words_out_of_the_summary(summarised, lib_path: Path, library: Library) -> None:
    en, zh, ko = library.ids["en_g1"], library.ids["zh_g1"], library.ids["ko_g3"]
    before = get_summary(summarised, en)
    assert before is not None and any(p.speakers == ["bob"] for p in before.points)
    bob_lines = {u.id: u.text for u in get_session(summarised, en).utterances if u.speaker == "bob"}  # type: ignore[union-attr]
    assert any(r in bob_lines for p in before.points for r in p.refs)

    gone = forget_user(summarised, "u2")  # bob in en_g1, 张伟 in zh_g1 and en_g2's copy
    assert set(gone.summaries_dropped) == {en, zh}
    assert get_summary(summarised, en) is None and get_summary(summarised, zh) is None
    assert get_summary(summarised, ko) is not None  # not in that call: kept

    # Made again from what the others said: nothing of bob's left in it.
    again = summary_for(summarised, en, None)
    assert again is not None
    assert again.summary.points
    assert not any(r in bob_lines for p in again.summary.points for r in p.refs)
    assert not any("bob" in p.speakers for p in again.summary.points)
    bob_only = [t for t in bob_lines.values() if t not in {u.text for u in get_session(summarised, en).utterances}]  # type: ignore[union-attr]
    assert bob_only
    assert not any(t in p.text for t in bob_only for p in again.summary.points)


def test_logs_summary_on_the_command_line(capsys, lib_path: Path, library: Library) -> None:
    sid = library.ids["ko_g3"]
    code, out, err = run_cli(capsys, "logs", "summary", str(sid), "--db", str(lib_path), "--fallback")
    assert code == 0, err
    assert out.startswith("요약 (출처: extractive)")
    assert "대화의 모습:" in out and "민지:" in out and "서준:" in out
    # Stored: shown again without being made again.
    code, again, _ = run_cli(capsys, "logs", "summary", str(sid), "--db", str(lib_path))
    assert code == 0 and again == out
    code, _, err = run_cli(capsys, "logs", "summary", "99999", "--db", str(lib_path))
    assert code != 0 and "no session 99999" in err
