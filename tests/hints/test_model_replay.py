"""Replayed calls with a language model behind the hints: a slow one in virtual time, a broken one,
and a Korean conversation."""

from __future__ import annotations

import logging
import re

import pytest

from bot.hints.terms import content_words
from tests.hints.conftest import hints_config, korean_script, place, replay_call

THRESHOLD = 5.0


def model_config(url: str, **values):
    return hints_config(
        llm_base_url=url, llm_model="scripted", hints_cooldown_seconds=20, hints_prepare_interval_seconds=0, **values
    )


@pytest.mark.slow
def test_slow_model_prepared_in_the_background_is_on_time(two_lulls, tmp_path, tiny_en, scripted):
    # Four seconds per answer (questions on words of the latest lines). At --speed 0 the audio is
    # fed far faster than that, so the replay must wait for answers a live call would have had by
    # the lull, and no longer.
    run = replay_call(model_config(scripted.url("varied-4")), two_lulls, tmp_path, tiny_en)
    silences = two_lulls.silences(THRESHOLD)
    assert len(run.hints) == 2, run.printed
    for hint, (quiet_from, _) in zip(run.hints, silences):
        assert quiet_from + THRESHOLD - 0.3 <= hint["at"] <= quiet_from + THRESHOLD + 1.0
        assert hint["source"] == "scripted", run.printed
        said = " ".join(u.text.lower() for u in run.detail.utterances if u.transcribed_at <= hint["at"])
        for text in hint["texts"]:
            word = re.search(r"the ([^ ?]+)", text)[1]
            assert word in said, (text, said)  # built from lines transcribed before the lull
    texts = [t for h in run.hints for t in h["texts"]]
    assert len(set(texts)) == len(texts)
    assert {s.source for s in run.detail.suggestions} >= {"scripted"}
    assert "model answers:" in run.printed


@pytest.mark.slow
def test_model_down_falls_back_with_one_warning(two_lulls, tmp_path, tiny_en, scripted, caplog):
    with caplog.at_level(logging.WARNING):
        run = replay_call(
            model_config(scripted.url("error500"), llm_retries=1, llm_backoff_seconds=0.5, llm_down_pause_seconds=5),
            two_lulls,
            tmp_path,
            tiny_en,
        )
    assert len(run.hints) == 2 and all(h["source"] == "fallback" and len(h["texts"]) == 3 for h in run.hints)
    warnings = [r.getMessage() for r in caplog.records if r.name == "bot.hints.preparer"]
    assert len(warnings) == 1 and "HTTP 500" in warnings[0] and "built-in suggestions" in warnings[0]
    assert "failed model request" in run.printed and "(s)" not in run.printed


@pytest.mark.slow
def test_model_that_never_answers_in_time(two_lulls, tmp_path, tiny_en, scripted):
    run = replay_call(
        model_config(scripted.url("hang"), llm_timeout_seconds=2, llm_retries=0), two_lulls, tmp_path, tiny_en
    )
    silences = two_lulls.silences(THRESHOLD)
    assert len(run.hints) == 2
    for hint, (quiet_from, _) in zip(run.hints, silences):
        assert hint["source"] == "fallback"
        assert hint["at"] <= quiet_from + THRESHOLD + 1.0


@pytest.mark.slow
def test_korean_conversation(tmp_path, base_model, scripted):
    call = place(
        tmp_path,
        korean_script([("minji", 0), ("junho", 1.0), ("minji", 1.0), ("junho", 1.0), ("minji", 8.0), ("junho", 1.0)]),
    )
    asked = len(scripted.bodies("good"))
    run = replay_call(model_config(scripted.url("good")), call, tmp_path, base_model)
    assert len(run.hints) == 1, run.printed
    hint = run.hints[0]
    assert hint["language"] == "ko" and hint["source"] == "scripted" and len(hint["texts"]) == 3
    said = " ".join(u.text for u in run.detail.utterances)
    words = set(content_words(said))  # stems: particles off
    # The model's own (a suggestion on a word Whisper was unsure of is dropped, and the built-in
    # ones fill the set up): questions on words said.
    from_model = [s.text for s in run.detail.suggestions if s.source == "scripted"]
    assert from_model and all(any(w in t for w in words) for t in from_model), (
        from_model,
        words,
    )  # the model's questions on words said
    system = [b["messages"][0]["content"] for b in scripted.bodies("good")[asked:]]
    assert system and all("한국어" in s for s in system)
    assert {s.language for s in run.detail.suggestions} == {"ko"}

    # A model answering in English is not passed on: the built-in suggestions, in Korean.
    (tmp_path / "again").mkdir()
    run = replay_call(model_config(scripted.url("english-for-korean")), call, tmp_path / "again", base_model)
    assert len(run.hints) == 1 and run.hints[0]["source"] == "fallback"
    assert all(any("\uac00" <= c <= "\ud7a3" for c in t) for t in run.hints[0]["texts"])
