"""Page boundaries for Discord's buttons: sizes, first/last positions, the ends, and pages
that together show every row exactly once."""

from __future__ import annotations

import pytest

from storage import CallRecorder, NewSession, get_session
from storage.access import Viewer
from storage.paging import budget_bounds
from storage.queries import LINE_OVERHEAD, list_page, show_page
from storage.search import search

OPERATOR = Viewer.cli_operator()


@pytest.mark.parametrize("size", [1, 2, 3, 4, 5, 6, 100])
def test_list_pages(ro_db, library, size: int) -> None:
    total = len(library.ids)
    pages = -(-total // size)
    seen = []
    for n in range(pages):
        page = list_page(ro_db, OPERATOR, page=n, page_size=size)
        assert (page.page, page.pages, page.total) == (n, pages, total)
        assert (page.first, page.last) == (n * size + 1, min((n + 1) * size, total))
        assert len(page.items) == page.last - page.first + 1
        assert page.has_prev == (n > 0) and page.has_next == (n < pages - 1)
        seen += [s.id for s in page.items]
    assert seen == sorted(library.ids.values(), reverse=True)  # newest first, each once
    past = list_page(ro_db, OPERATOR, page=pages + 3, page_size=size)
    assert past.page == pages - 1 and [s.id for s in past.items] == seen[(pages - 1) * size :]


def test_member_pages_count_only_visible_calls(ro_db, library) -> None:
    u2 = Viewer.member("u2", "G1")
    first = list_page(ro_db, u2, page_size=1)
    assert (first.total, first.pages, first.has_next) == (2, 2, True)
    second = list_page(ro_db, u2, page=1, page_size=1)
    assert {first.items[0].id, second.items[0].id} == {library.ids["en_g1"], library.ids["zh_g1"]}
    assert not second.has_next


def test_empty_results_are_one_empty_page(ro_db) -> None:
    page = list_page(ro_db, Viewer.member("u6", "G1"), page=5)
    assert (page.items, page.page, page.pages, page.total, page.first, page.last) == ([], 0, 1, 0, 0, 0)
    assert not page.has_prev and not page.has_next
    hits = search(ro_db, OPERATOR, "zebra", page=2)
    assert (hits.items, hits.pages, hits.total) == ([], 1, 0)


@pytest.mark.parametrize("size", [1, 3, 7, 8, 9])
def test_transcript_pages(ro_db, library, size: int) -> None:
    detail = get_session(ro_db, library.ids["en_g1"])
    n = len(detail.utterances)
    assert n == 8
    shown = []
    page = show_page(ro_db, OPERATOR, detail.id, page_size=size)
    while True:
        assert page.utterances.total == n and page.utterances.pages == -(-n // size)
        assert page.session.id == detail.id and page.session.utterance_count == n
        shown += page.utterances.items
        if not page.utterances.has_next:
            break
        page = show_page(ro_db, OPERATOR, detail.id, page=page.utterances.page + 1, page_size=size)
    assert shown == detail.utterances


@pytest.mark.parametrize("budget", [200, 300, 500, 4096])
def test_transcript_pages_fit_a_character_budget(ro_db, library, budget: int) -> None:
    detail = get_session(ro_db, library.ids["en_g1"])
    shown = []
    page = 0
    while True:
        tp = show_page(ro_db, OPERATOR, detail.id, page=page, page_size=20, max_chars=budget)
        cost = [len(u.text) + len(u.speaker) + LINE_OVERHEAD for u in tp.utterances.items]
        assert sum(cost) <= budget or len(cost) == 1  # one overlong line gets a page of its own
        assert (tp.utterances.first, tp.utterances.last) == (len(shown) + 1, len(shown) + len(cost))
        shown += tp.utterances.items
        if not tp.utterances.has_next:
            break
        page += 1
    assert shown == detail.utterances
    whole = sum(len(u.text) + len(u.speaker) + LINE_OVERHEAD for u in detail.utterances)
    assert (tp.utterances.pages > 1) == (whole > budget)


def test_budget_bounds() -> None:
    assert budget_bounds([], 5, 100) == []
    assert budget_bounds([10] * 5, 2, None) == [(0, 2), (2, 4), (4, 5)]
    assert budget_bounds([60, 50, 40, 200, 10], 10, 100) == [(0, 1), (1, 3), (3, 4), (4, 5)]
    assert budget_bounds([100, 100], 10, 100) == [(0, 1), (1, 2)]


def test_empty_transcript_and_invisible_call(lib, library) -> None:
    sid = CallRecorder(lib).start_session(NewSession(source="discord", guild_id="G1", started_by="u1"))
    page = show_page(lib, Viewer.member("u1", "G1", is_admin=True), sid)
    assert page.utterances.items == [] and page.utterances.total == 0 and page.utterances.pages == 1
    assert show_page(lib, Viewer.member("u1", "G1"), sid) is None  # started it but never attended
    with pytest.raises(ValueError):
        show_page(lib, OPERATOR, sid, page=-1)
    with pytest.raises(ValueError):
        list_page(lib, OPERATOR, page_size=0)


@pytest.mark.parametrize("size", [1, 2, 3, 5])
def test_search_pages(ro_db, size: int) -> None:
    everything = search(ro_db, OPERATOR, "the", page_size=1000)
    assert everything.total > 5
    collected = []
    for n in range(everything.total // size + 2):  # includes a page past the end
        page = search(ro_db, OPERATOR, "the", page=n, page_size=size)
        if n >= page.pages:
            assert page.page == page.pages - 1
            break
        collected += page.items
    assert [h.utterance_id for h in collected] == [h.utterance_id for h in everything.items]


@pytest.mark.parametrize(("size", "budget"), [(1, None), (3, None), (20, 250)])
def test_jump_from_a_search_hit_to_its_transcript_page(ro_db, library, size: int, budget: int | None) -> None:
    for hit in search(ro_db, OPERATOR, "the", page_size=1000).items:
        tp = show_page(
            ro_db, OPERATOR, hit.session_id, page=99, page_size=size, max_chars=budget, at_utterance=hit.utterance_id
        )
        assert hit.utterance_id in [u.id for u in tp.utterances.items]
    # An utterance of another call (or gone) leaves the page asked for.
    other = search(ro_db, OPERATOR, "通车").items[0].utterance_id
    tp = show_page(ro_db, OPERATOR, library.ids["en_g1"], page=1, page_size=3, at_utterance=other)
    assert tp.utterances.page == 1
