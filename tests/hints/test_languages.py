"""Hints in each recipient's own language when participants speak different languages."""

from __future__ import annotations

import pytest

from bot.asr.transcriber import Transcript
from bot.clock import VirtualClock
from bot.hints import Hint, HintEngine, RecipientResult
from bot.hints.languages import needed_languages, own_language
from bot.hints.terms import Line
from bot.pipeline import Speaker, UtteranceEvent
from storage import get_session, open_database
from storage.recorder import CallRecorder
from storage.records import NewSession
from tests.calls import RATE, librispeech_files, librispeech_refs, load16k, shared
from tests.hints.awkward_calls import ReferenceTranscriber
from tests.hints.conftest import hints_config, place, replay_call


def hangul(text: str) -> bool:
    return any("\uac00" <= c <= "\ud7a3" for c in text)


def test_languages_needed_and_own():
    lines = [
        Line("alice", "We sailed past the lighthouse before the storm hit the harbour.", 3.0, "en"),
        Line("minji", "등대 근처에서 배를 탔어요.", 6.0, "ko"),
        Line("alice", "The captain was not worried at all.", 9.0, "en"),
    ]
    assert needed_languages(lines, "en") == ["en", "ko"]
    assert needed_languages(lines, "en", limit=1) == ["en"]
    assert needed_languages([], "ko") == ["ko"]
    assert own_language([ln for ln in lines if ln.speaker == "minji"], "en") == "ko"
    assert own_language([], "en") == "en"  # has not spoken: the conversation's


ALICE, MINJI, BOB = Speaker("1", "alice", "111"), Speaker("2", "minji", "222"), Speaker("3", "bob", "333")
TALK = [
    (ALICE, 0.0, 3.0, "We sailed past the lighthouse before the storm hit the harbour.", "en"),
    (MINJI, 3.5, 6.0, "등대 근처에서 배를 타 본 적이 있어요.", "ko"),
    (ALICE, 6.5, 9.0, "The lighthouse keeper waved at us from the rocks.", "en"),
    (MINJI, 9.5, 11.0, "바다가 정말 아름다웠어요.", "ko"),
]


class Collect:
    def __init__(self) -> None:
        self.hints: list[Hint] = []

    def deliver(self, hint: Hint) -> list[RecipientResult]:
        self.hints.append(hint)
        return [RecipientResult(r, True) for r in hint.recipients]


def test_each_recipient_gets_the_fallback_in_their_language(tmp_path):
    db = open_database(str(tmp_path / "c.db"))
    recorder = CallRecorder(db)
    sid = recorder.start_session(NewSession(source="discord", title="t"))
    clock, delivery = VirtualClock(), Collect()
    engine = HintEngine(hints_config(llm_enabled=False), clock, delivery, recorder=recorder, session_id=sid)
    for s in (ALICE, MINJI, BOB):
        engine.on_join(s, 0.0)
    for speaker, start, end, text, lang in TALK:
        engine.on_speech_start(speaker, start)
        engine.on_speech_end(speaker, end)
        engine.on_utterance(
            UtteranceEvent(
                speaker, start, end, end + 0.5, end + 1.2, Transcript(text, lang, 0.99, -0.2, 0.01, 1.2), None
            )
        )
    t = 11.0
    while t < 20.0:
        t = round(t + 0.1, 3)
        clock.advance(t)
        engine.on_time(t)
    engine.close()
    detail = get_session(db, sid)
    db.close()
    by = {h.language: h for h in delivery.hints}
    assert set(by) == {"en", "ko"}, delivery.hints
    # bob has not spoken: the conversation's language (most of the words were English).
    assert [r.name for r in by["en"].recipients] == ["alice", "bob"]
    assert [r.name for r in by["ko"].recipients] == ["minji"]
    assert all(len(h.texts) == 3 and h.detected_at == 16.0 for h in by.values())
    assert all(hangul(x) for x in by["ko"].texts) and not any(hangul(x) for x in by["en"].texts)
    stored = {(s.text, s.language, tuple(s.recipients)) for s in detail.suggestions}
    assert stored == {(x, h.language, tuple(r.name for r in h.recipients)) for h in by.values() for x in h.texts}


def mixed_call(tmp_path):
    """alice speaks English (LibriSpeech 1998), minji Korean (Common Voice), one lull of 8 s."""
    refs = librispeech_refs()
    english = [f for f in librispeech_files("1998") if 2.0 < len(load16k(f)) / RATE < 9.5]
    folder = shared("data", "korean")
    korean = [line.split("\t") for line in (folder / "trans.tsv").read_text(encoding="utf-8").splitlines()][:6]
    script = []
    for i, gap in enumerate([0, 1.0, 1.0, 1.0, 1.0, 1.0, 8.0, 1.0]):
        if i % 2 == 0:
            f = english[i // 2]
            script.append(("alice", f, refs[f.stem].capitalize() + ".", gap))
        else:
            file, _, text = korean[i // 2]
            script.append(("minji", folder / file, text, gap))
    return place(tmp_path, script)


@pytest.mark.slow
def test_replayed_call_of_an_english_and_a_korean_speaker(tmp_path, scripted):
    call = mixed_call(tmp_path)
    config = hints_config(
        llm_base_url=scripted.url("words-mixed"),
        llm_model="scripted",
        hints_cooldown_seconds=20,
        hints_prepare_interval_seconds=0,
    )
    run = replay_call(config, call, tmp_path, ReferenceTranscriber(call), language="auto")
    assert len(run.hints) == 2, run.printed
    by = {h["language"]: h for h in run.hints}
    assert set(by) == {"en", "ko"}, run.printed
    assert by["ko"]["names"] == ["minji"] and by["en"]["names"] == ["alice"]
    assert by["en"]["silence"] == by["ko"]["silence"]  # the same lull
    # The model was asked in both languages and each recipient got its answer.
    assert by["en"]["source"] == by["ko"]["source"] == "scripted", run.printed
    assert all(hangul(x) for x in by["ko"]["texts"]) and not any(hangul(x) for x in by["en"]["texts"])
    systems = [b["messages"][0]["content"] for b in scripted.bodies("words-mixed")]
    assert any(hangul(s) for s in systems) and any(not hangul(s) for s in systems)
    stored = {(s.language, tuple(sorted(s.recipients))) for s in run.detail.suggestions}
    assert stored == {("en", ("alice",)), ("ko", ("minji",))}
