"""Awkwardness signals on replayed calls of real speech (reference-text transcripts: the point is
the detector, not Whisper), and no false alarm on a call that flows normally."""

from __future__ import annotations

import pytest

from tests.hints.awkward_calls import Clips, ReferenceTranscriber, normal_call, unanswered_call
from tests.hints.conftest import hints_config, replay_call

SIGNALS = ("monologue", "short_answers", "backchannels", "unanswered")


def run(call, tmp, on: bool, language: str):
    config = hints_config(llm_enabled=False, hints_cooldown_seconds=15, **{f"hints_{k}": on for k in SIGNALS})
    return replay_call(config, call.call, tmp, ReferenceTranscriber(call.call), language=language)


@pytest.mark.slow
@pytest.mark.parametrize("korean", [False, True])
def test_unanswered_question_is_helped_before_talk_resumes(tmp_path, korean):
    call = unanswered_call(tmp_path, Clips(tmp_path), korean=korean)
    (tmp_path / "on").mkdir(), (tmp_path / "off").mkdir()
    on = run(call, tmp_path / "on", True, "ko" if korean else "en")
    for end, resume in call.places:
        hits = [h for h in on.hints if abs(h["silence"] - end) < 0.6 and h["at"] < resume]
        assert hits and "unanswered-question" in hits[0]["signals"], on.printed
    # Plain silence detection: these 4.2 s silences are no lull.
    off = run(call, tmp_path / "off", False, "ko" if korean else "en")
    assert off.hints == [], off.printed


@pytest.mark.slow
def test_a_normal_call_gets_no_hint(tmp_path):
    call = normal_call(tmp_path, Clips(tmp_path), "normal", ("alice", "bob", "carol"), 30, seed=0)
    assert run(call, tmp_path, True, "en").hints == []
