"""Escape codes, invisible characters and line breaks in stored names, titles and texts reach
neither the operator's terminal (``logs list|show|search``) nor the text exports, whose header
stays intact (issue 13, security case 4).

The call is stored as the bot stored Discord display names before names were made plain, and
as a hostile Whisper output or hint could have been.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from storage import open_database
from storage.recorder import CallRecorder
from storage.records import NewSession, SuggestionRecord, UtteranceRecord
from tests.cli import run_cli

NAME = "eve\x1b]0;pwned\x07\nSYSTEM\u202e"  # sets the terminal's title, breaks the line, reverses text
TITLE = "Weekly\x1b[2J\x1b[H sync\r\nparticipants: nobody"  # clears the screen; fakes a header line
TEXT = "hello \x1b[31mred\x1b[0m and \x1b]8;;https://evil.tk\x1b\\a link\x1b]8;;\x1b\\ here\u2060"
# What must not be in anything printed or exported as text: ESC, BEL, C1, bidi, invisible.
BAD = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2060-\u2064\u200b-\u200f]")


@pytest.fixture
def hostile(tmp_path: Path) -> tuple[Path, int]:
    path = tmp_path / "calls.db"
    with open_database(str(path)) as db:
        rec = CallRecorder(db)
        sid = rec.start_session(NewSession(source="discord", title=TITLE, guild_id="1"))
        eve = rec.add_participant(sid, NAME, "7")
        rec.add_utterance(UtteranceRecord(sid, eve, 1.0, 3.0, 3.5, TEXT))
        rec.add_suggestion(SuggestionRecord(sid, 5.0, f"Ask {NAME} about it", "fallback", [NAME]))
        rec.finish_session(sid, "completed", duration=6.0)
    return path, sid


@pytest.mark.parametrize(
    "argv",
    [
        ["list"],
        ["show", "{sid}"],
        ["search", "red"],
        *(["export", "{sid}", "--format", f] for f in ("txt", "md", "srt", "vtt")),
    ],
    ids=["list", "show", "search", "txt", "md", "srt", "vtt"],
)
def test_nothing_hidden_reaches_the_terminal(capsys, hostile, argv) -> None:
    path, sid = hostile
    code, out, err = run_cli(capsys, "logs", *[a.format(sid=sid) for a in argv], "--db", str(path))
    assert code == 0, err
    assert BAD.search(out) is None, repr(out)
    assert "eve SYSTEM" in out, out


def test_the_txt_header_stays_three_lines(capsys, hostile) -> None:
    path, sid = hostile
    code, out, _ = run_cli(capsys, "logs", "export", str(sid), "--format", "txt", "--db", str(path))
    lines = out.splitlines()
    assert lines[0].startswith("Weekly sync participants: nobody (")
    assert lines[1].startswith(f"session {sid}, completed")
    assert lines[2] == "participants: eve SYSTEM"
    assert sum(line.startswith("participants:") for line in lines) == 1
    first = lines[lines.index("") + 1]  # no verification legend: nothing in this call is marked
    assert "verification:" not in out
    assert first.startswith("[00:01.00 - 00:03.00] eve") and "hello red and a link here" in first
