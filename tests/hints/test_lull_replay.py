"""Lulls in replayed calls of real speech, placed at known times; no language model at all."""

from __future__ import annotations

import re

import pytest

from bot.hints.terms import content_words
from storage.plaintext import has_link, has_mention
from tests.hints.conftest import english_script, hints_config, place, replay_call

THRESHOLD = 5.0


def speech_at(call, t: float, margin: float = 0.0) -> bool:
    return any(turn.speech_start - margin <= t <= turn.speech_end + margin for turn in call.turns)


@pytest.mark.slow
def test_one_hint_per_lull_during_the_silence_from_what_was_said(two_lulls, tmp_path, tiny_en):
    run = replay_call(hints_config(llm_enabled=False, hints_cooldown_seconds=20), two_lulls, tmp_path, tiny_en)
    silences = two_lulls.silences(THRESHOLD)
    assert len(silences) == 2
    assert len(run.hints) == len(silences), run.printed
    for hint, (quiet_from, quiet_to) in zip(run.hints, silences):
        # Declared from voice activity: the silence starts where the last word ended (energy
        # reference, independent of the VAD) and the hint comes at the threshold, before anyone speaks.
        assert abs(hint["silence"] - quiet_from) < 0.5
        assert quiet_from + THRESHOLD - 0.3 <= hint["at"] < min(quiet_from + THRESHOLD + 1.0, quiet_to)
        assert not speech_at(two_lulls, hint["at"], 0.2)
        assert hint["names"] == ["alice", "bob"]
        assert hint["source"] == "fallback" and hint["language"] == "en"
        assert len(hint["texts"]) == 3 and len(set(hint["texts"])) == 3
        # Grounded: the built-in suggestions name words said before the lull.
        said = {w for u in run.detail.utterances if u.transcribed_at <= hint["at"] for w in content_words(u.text)}
        named = [t for t in hint["texts"] if any(re.search(r"\b" + re.escape(w) + r"\b", t.lower()) for w in said)]
        assert len(named) >= 2, (hint["texts"], sorted(said))
    # Nothing repeats across the call.
    texts = [t for h in run.hints for t in h["texts"]]
    assert len(set(texts)) == len(texts)

    # Stored as printed, and exported.
    stored = run.detail.suggestions
    assert [(round(s.at, 2), s.text) for s in stored] == [(round(h["at"], 2), t) for h in run.hints for t in h["texts"]]
    assert all(s.source == "fallback" and list(s.recipients) == ["alice", "bob"] for s in stored)
    exported = run.exported["suggestions"]
    assert [e["text"] for e in exported] == texts
    assert all(set(e) >= {"at", "text", "source", "recipients"} for e in exported)
    assert "hints: 2 delivered" in run.printed


@pytest.mark.slow
def test_cooldown_skips_a_lull_too_soon_after_a_hint(three_lulls, tmp_path, tiny_en):
    silences = three_lulls.silences(THRESHOLD)
    assert len(silences) == 3
    gap12 = silences[1][0] - silences[0][0]
    gap13 = silences[2][0] - silences[0][0]
    cooldown = (gap12 + gap13) / 2  # the second lull falls inside it, the third after it
    run = replay_call(hints_config(llm_enabled=False, hints_cooldown_seconds=cooldown), three_lulls, tmp_path, tiny_en)
    assert [round(h["silence"]) for h in run.hints] == [round(silences[0][0]), round(silences[2][0])], run.printed


@pytest.mark.slow
def test_maximum_per_session(three_lulls, tmp_path, tiny_en):
    run = replay_call(
        hints_config(llm_enabled=False, hints_cooldown_seconds=0, hints_max_per_session=2),
        three_lulls,
        tmp_path,
        tiny_en,
    )
    silences = three_lulls.silences(THRESHOLD)
    assert [round(h["silence"]) for h in run.hints] == [round(s[0]) for s in silences[:2]], run.printed
    assert len(run.detail.suggestions) == 6


@pytest.mark.slow
def test_short_pauses_and_a_lull_without_conversation_before_it_get_nothing(tmp_path, tiny_en):
    # Long silences, but each after a single turn: no conversation had been going on.
    sparse = place(tmp_path, english_script([("alice", 0), ("bob", 9.0), ("alice", 9.0)]))
    run = replay_call(hints_config(llm_enabled=False), sparse, tmp_path, tiny_en)
    assert run.hints == []


@pytest.mark.slow
def test_opted_out_participant_is_not_a_recipient(two_lulls, tmp_path, tiny_en):
    run = replay_call(
        hints_config(llm_enabled=False, hints_cooldown_seconds=20, hints_replay_opt_out="bob"),
        two_lulls,
        tmp_path,
        tiny_en,
    )
    assert run.hints and all(h["names"] == ["alice"] for h in run.hints)
    assert all(list(s.recipients) == ["alice"] for s in run.detail.suggestions)


@pytest.mark.slow
def test_hints_can_be_turned_off(two_lulls, tmp_path, tiny_en):
    run = replay_call(hints_config(hints_enabled=False), two_lulls, tmp_path, tiny_en)
    assert run.hints == [] and run.detail.suggestions == [] and "hints:" not in run.printed
    (tmp_path / "flag").mkdir()
    run = replay_call(hints_config(llm_enabled=False), two_lulls, tmp_path / "flag", tiny_en, hints=False)
    assert run.hints == []


@pytest.mark.slow
def test_delivered_texts_are_plain_and_bounded(two_lulls, tmp_path, tiny_en):
    run = replay_call(hints_config(llm_enabled=False, hints_max_chars=60), two_lulls, tmp_path, tiny_en)
    assert run.detail.suggestions, run.printed  # else the checks below pass on nothing
    for s in run.detail.suggestions:
        assert len(s.text) <= 60 and "\n" not in s.text
        assert not has_link(s.text) and not has_mention(s.text) and "@" not in s.text
