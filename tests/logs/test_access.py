"""The access-control matrix: users x guilds x administrator or not x calls, through every
query the Discord cog and the command line use."""

from __future__ import annotations

import itertools

import pytest

from storage import get_session
from storage.access import Viewer
from storage.deletion import delete_session, may_delete
from storage.export import FORMATS, export_session
from storage.queries import find_sessions, list_page, list_sessions, show_page
from storage.search import search
from tests.logs.conftest import GUILDS, USERS

# Who attended what (the conftest table), written out rather than derived from the data.
ATTENDED = {
    "en_g1": {"u1", "u2"},
    "zh_g1": {"u3", "u2"},
    "en_g2": {"u1", "u5"},
    "zh_g2": set(),
    "ko_g3": {"u6", "u4"},
}
GUILD = {"en_g1": "G1", "zh_g1": "G1", "en_g2": "G2", "zh_g2": "G2", "ko_g3": "G3"}
# Expected visibility for members who are not administrators, per (user, guild).
MEMBER_SEES = {
    ("u1", "G1"): {"en_g1"},
    ("u1", "G2"): {"en_g2"},
    ("u1", "G3"): set(),
    ("u2", "G1"): {"en_g1", "zh_g1"},
    ("u2", "G2"): set(),
    ("u2", "G3"): set(),
    ("u3", "G1"): {"zh_g1"},
    ("u3", "G2"): set(),
    ("u3", "G3"): set(),
    ("u4", "G1"): set(),
    ("u4", "G2"): set(),
    ("u4", "G3"): {"ko_g3"},
    ("u5", "G1"): set(),
    ("u5", "G2"): {"en_g2"},
    ("u5", "G3"): set(),
    ("u6", "G1"): set(),
    ("u6", "G2"): set(),
    ("u6", "G3"): {"ko_g3"},
}
ADMIN_SEES = {"G1": {"en_g1", "zh_g1"}, "G2": {"en_g2", "zh_g2"}, "G3": {"ko_g3"}}
# A word said in each call, to search for.
SAID = {"en_g1": "reciter", "en_g2": "reciter", "zh_g1": "通车", "zh_g2": "通车", "ko_g3": "법원"}

CASES = [(u, g, admin) for u, g, admin in itertools.product(USERS, GUILDS, (False, True))]


def expected(user: str, guild: str, admin: bool) -> set[str]:
    return ADMIN_SEES[guild] if admin else MEMBER_SEES[(user, guild)]


def test_table_agrees_with_the_fixture() -> None:
    for key, users in ATTENDED.items():
        for user in USERS:
            assert (key in MEMBER_SEES[(user, GUILD[key])]) == (user in users)


@pytest.mark.parametrize(("user", "guild", "admin"), CASES)
def test_matrix(ro_db, library, user: str, guild: str, admin: bool) -> None:
    viewer = Viewer.member(user, guild, is_admin=admin)
    names = {v: k for k, v in library.ids.items()}
    sees = expected(user, guild, admin)

    listed = list_page(ro_db, viewer, page_size=100)
    assert {names[s.id] for s in listed.items} == sees and listed.total == len(sees)
    assert {names[s.id] for s in list_sessions(ro_db, viewer=viewer)} == sees
    assert {names[c.id] for c in find_sessions(ro_db, viewer, "")} == sees
    for key, sid in library.ids.items():
        allowed = key in sees
        assert (get_session(ro_db, sid, viewer) is not None) == allowed, key
        assert (show_page(ro_db, viewer, sid) is not None) == allowed, key
        for fmt in FORMATS:
            assert (export_session(ro_db, viewer, sid, fmt) is not None) == allowed, (key, fmt)
        assert {names[c.id] for c in find_sessions(ro_db, viewer, str(sid))} <= sees
    for word in set(SAID.values()):
        hits = search(ro_db, viewer, word, page_size=100)
        assert {names[h.session_id] for h in hits.items} == {k for k in sees if SAID[k] == word}
        assert hits.total == len(hits.items)


def test_operator_sees_everything_and_a_viewer_without_guild_nothing(ro_db, library) -> None:
    operator = Viewer.cli_operator()
    assert {s.id for s in list_page(ro_db, operator, page_size=100).items} == set(library.ids.values())
    for viewer in (Viewer(), Viewer(user_id="u1"), Viewer(user_id="u1", is_admin=True), Viewer(guild_id="G1")):
        assert list_page(ro_db, viewer).total == 0
        assert search(ro_db, viewer, "reciter").total == 0
        assert all(get_session(ro_db, sid, viewer) is None for sid in library.ids.values())


def test_titles_and_names_found_by_autocomplete_only_where_visible(ro_db, library) -> None:
    u2 = Viewer.member("u2", "G1")
    assert [c.id for c in find_sessions(ro_db, u2, "周会")] == [library.ids["zh_g1"]]
    assert [c.id for c in find_sessions(ro_db, u2, "张伟")] == [library.ids["zh_g1"]]
    assert find_sessions(ro_db, u2, "Book club") == []  # G2's, with u1 and u5 in it
    assert find_sessions(ro_db, Viewer.member("u1", "G2"), "读书会") == []  # u1 was not there
    assert [c.id for c in find_sessions(ro_db, Viewer.member("u1", "G2", is_admin=True), "读书会")] == [
        library.ids["zh_g2"]
    ]
    label = find_sessions(ro_db, u2, str(library.ids["zh_g1"]))[0].label
    assert label.startswith(f"#{library.ids['zh_g1']} ") and "周会" in label and len(label) <= 100


@pytest.mark.parametrize(
    ("viewer", "key", "outcome"),
    [
        (Viewer.member("u2", "G1"), "en_g1", "forbidden"),  # attended, did not start it
        (Viewer.member("u1", "G1"), "en_g1", "deleted"),  # started it
        (Viewer.member("u1", "G2"), "en_g1", "not_found"),  # started it, but asks from another guild
        (Viewer.member("u3", "G1"), "en_g1", "not_found"),  # not there: not told it exists
        (Viewer.member("u3", "G1", is_admin=True), "en_g1", "deleted"),  # the guild's administrator
        (Viewer.member("u1", "G2", is_admin=True), "en_g1", "not_found"),  # another guild's administrator
        (Viewer.cli_operator(), "zh_g2", "deleted"),
        (Viewer.member("u5", "G2"), "zh_g2", "not_found"),
    ],
)
def test_who_may_delete(lib, library, viewer: Viewer, key: str, outcome: str) -> None:
    sid = library.ids[key]
    assert may_delete(lib, viewer, sid) == {"deleted": "allowed"}.get(outcome, outcome)
    result = delete_session(lib, viewer, sid)
    assert result.status == outcome
    assert (get_session(lib, sid) is None) == (outcome == "deleted")
    others = set(library.ids.values()) - {sid}
    assert {s.id for s in list_page(lib, Viewer.cli_operator(), page_size=100).items} >= others


def test_a_call_still_being_recorded_is_not_deleted(lib, library) -> None:
    from sqlalchemy import update

    from storage.models import CallSession

    sid = library.ids["en_g1"]
    with lib.session() as s, s.begin():
        s.execute(update(CallSession).where(CallSession.id == sid).values(status="active"))
    for viewer in (Viewer.cli_operator(), Viewer.member("u9", "G1", is_admin=True), Viewer.member("u1", "G1")):
        assert may_delete(lib, viewer, sid) == "active"
        assert delete_session(lib, viewer, sid).status == "active"
    assert may_delete(lib, Viewer.member("u2", "G1"), sid) == "forbidden"  # not theirs to delete anyway
    assert get_session(lib, sid) is not None
