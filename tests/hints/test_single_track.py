"""A replay of one participant: no hint, no model request, and nothing on stderr."""

from __future__ import annotations

import pytest

from tests.hints.conftest import english_script, hints_config, place, replay_call


@pytest.mark.slow
def test_one_person_present_gets_nothing_and_the_model_is_not_asked(tmp_path, tiny_en, scripted, capfd):
    alone = place(
        tmp_path, english_script([("alice", 0), ("alice", 1.0), ("alice", 1.0), ("alice", 9.0), ("alice", 1.0)])
    )
    assert alone.silences(5.0)
    before = scripted.count("good")
    run = replay_call(
        hints_config(llm_base_url=scripted.url("good"), hints_prepare_interval_seconds=0), alone, tmp_path, tiny_en
    )
    assert run.hints == [] and run.detail.suggestions == []
    assert len(run.detail.utterances) >= 4  # the call itself went through
    assert scripted.count("good") == before
    assert "hints: 0 delivered" in run.printed
