"""Hint DMs promise "Only you see this" (issue 13, security case 5): an export or a read of a
call gives a member only the hints sent to them, with only themselves as recipient; the
operator's command line sees them all. The rule lives in the storage access layer
(``storage.access.own_hints``, applied by ``get_session``), so every path obeys it.

The fixture's en_g1 call (G1): alice (u1) and bob (u2); "Ask bob about the reciter" went to
alice and bob, "Tell alice about the eunuch" to bob alone.
"""

from __future__ import annotations

import json

import pytest

from storage import get_session
from storage.access import Viewer
from storage.export import export_session

BOTH = "Ask bob about the reciter"
BOBS = "Tell alice about the eunuch"


@pytest.mark.parametrize(
    ("viewer", "expected"),
    [
        (Viewer.member("u1", "G1"), [(BOTH, ["alice"])]),
        (Viewer.member("u2", "G1"), [(BOTH, ["bob"]), (BOBS, ["bob"])]),
        # An administrator reads every call of the guild, not other people's private hints.
        (Viewer.member("u9", "G1", is_admin=True), []),
        (Viewer.member("u1", "G1", is_admin=True), [(BOTH, ["alice"])]),
        (Viewer.cli_operator(), [(BOTH, ["alice", "bob"]), (BOBS, ["bob"])]),
    ],
    ids=["alice", "bob", "admin", "alice-admin", "operator"],
)
def test_each_viewer_reads_only_their_own_hints(ro_db, library, viewer: Viewer, expected) -> None:
    sid = library.ids["en_g1"]
    detail = get_session(ro_db, sid, viewer)
    assert [(g.text, g.recipients) for g in detail.suggestions] == expected
    data = json.loads(export_session(ro_db, viewer, sid, "json").data)
    assert [(g["text"], g["recipients"]) for g in data["suggestions"]] == expected
    for fmt in ("txt", "md"):
        text = export_session(ro_db, viewer, sid, fmt).text
        for hint in (BOTH, BOBS):
            assert (hint in text) == any(t == hint for t, _ in expected), (fmt, hint)
        for hint, to in expected:
            assert f"(to {', '.join(to)})" in text and hint in text, (fmt, text[-300:])
        assert ("(to alice, bob)" in text) == viewer.operator, fmt


def test_a_member_learns_no_other_recipient(ro_db, library) -> None:
    text = export_session(ro_db, Viewer.member("u1", "G1"), library.ids["en_g1"], "txt").text
    hints = text.split("Hints:")[1]
    assert "bob" not in hints.split(")")[0]  # "(to alice)", not "(to alice, bob)"
