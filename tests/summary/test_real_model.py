"""The summary from a real model: llama.cpp's server (llama-cpp-python) with SmolLM2-135M."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.summary.make import EXTRACTIVE, summarize
from storage import get_session, open_database
from tests.hints.servers import LlamaServer
from tests.summary.conftest import MEETING_EN, store_call
from tests.summary.test_summary import assert_grounded, settings


@pytest.mark.slow
def test_smollm2_answers_and_only_grounded_points_stay(tmp_path: Path) -> None:
    path = tmp_path / "real.db"
    sid = store_call(path, MEETING_EN, "en")
    server = LlamaServer()
    try:
        with open_database(str(path)) as db:
            detail = get_session(db, sid)
            assert detail is not None
            record, note, pieces, answers = summarize(
                detail, settings(server.base_url, model=server.model, timeout=120)
            )
    finally:
        server.close()
    # The real model answered the one piece; whatever it wrote that the call did not say was
    # dropped, and with nothing usable left the summary is the extractive one, saying why.
    assert (pieces, answers) == (1, 1)
    assert record.source in (server.model, EXTRACTIVE)
    if record.source == EXTRACTIVE:
        assert note is not None and "no usable point" in note
    assert record.points
    from storage.summaries import SummaryInfo

    info = SummaryInfo(sid, record.source, record.language, record.points, None, None, detail.started_at)
    assert_grounded(detail, info)
