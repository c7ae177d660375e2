"""The delivery interface the Discord bot implements: per-recipient results, failures contained,
what reached whom stored. The engine is fed voice activity and transcripts as the pipeline would."""

from __future__ import annotations

import logging

from bot.asr.transcriber import Transcript
from bot.clock import VirtualClock
from bot.hints import Hint, HintEngine, Recipient, RecipientResult
from bot.pipeline import Speaker, UtteranceEvent
from storage import get_session, open_database
from storage.recorder import CallRecorder
from storage.records import NewSession
from tests.hints.conftest import hints_config

ALICE, BOB, CAROL = Speaker("1", "alice", "111"), Speaker("2", "bob", "222"), Speaker("3", "carol", "333")
TALK = [
    (ALICE, 0.0, 3.0, "We sailed past the lighthouse before the storm hit the harbour."),
    (BOB, 3.5, 6.0, "Was the captain worried about the storm?"),
    (CAROL, 6.5, 9.0, "The lighthouse keeper waved at us from the rocks."),
]


class DmDelivery:
    """Like a Discord bot: one DM per recipient, bob's DMs are closed."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, Hint]] = []

    def deliver(self, hint: Hint) -> list[RecipientResult]:
        results = []
        for r in hint.recipients:
            if r.name == "bob":
                results.append(RecipientResult(r, False, "cannot send messages to this user (DMs closed)"))
                continue
            self.sent.append((r.user_id, hint))
            results.append(RecipientResult(r, True))
        return results


class BrokenDelivery:
    def deliver(self, hint: Hint) -> list[RecipientResult]:
        raise ConnectionError("gateway gone")


def call(tmp_path, delivery, opted_in=("alice", "bob", "carol")):
    db = open_database(str(tmp_path / "c.db"))
    recorder = CallRecorder(db)
    sid = recorder.start_session(NewSession(source="discord", title="t"))
    clock = VirtualClock()
    engine = HintEngine(hints_config(llm_enabled=False), clock, delivery, recorder=recorder, session_id=sid)
    engine.recipients = lambda: [r for r in engine.present() if r.name in opted_in]
    for s in (ALICE, BOB, CAROL):
        engine.on_join(s, 0.0)
    for speaker, start, end, text in TALK:
        engine.on_speech_start(speaker, start)
        engine.on_speech_end(speaker, end)
        engine.on_utterance(
            UtteranceEvent(
                speaker, start, end, end + 0.5, end + 1.2, Transcript(text, "en", 0.99, -0.2, 0.01, 1.2), None
            )
        )
    t = 9.0
    while t < 20.0:  # silence: time passes for the lull check
        t = round(t + 0.1, 3)
        clock.advance(t)
        engine.on_time(t)
    engine.close()
    detail = get_session(db, sid)
    db.close()
    return engine.stats, detail


def test_closed_dm_does_not_stop_the_others(tmp_path, caplog):
    delivery = DmDelivery()
    with caplog.at_level(logging.WARNING, logger="bot.hints.engine"):
        stats, detail = call(tmp_path, delivery)
    done = stats.delivered
    assert len(done) == 1
    hint = done[0].hint
    assert hint.detected_at == 14.0 and hint.lull_start == 9.0
    # Building the fallback's texts is accounted in call time (milliseconds, more on a busy CPU).
    assert 14.0 <= hint.at < 14.5
    assert [r.name for r in hint.recipients] == ["alice", "bob", "carol"]
    assert hint.recipients[0] == Recipient("1", "alice", "111")
    assert [uid for uid, _ in delivery.sent] == ["111", "333"]
    assert hint.source == "fallback" and hint.language == "en" and len(hint.texts) == 3
    assert any("lighthouse" in t or "storm" in t for t in hint.texts)
    assert [s.text for s in detail.suggestions] == list(hint.texts)
    assert all(list(s.recipients) == ["alice", "carol"] for s in detail.suggestions)
    assert any("bob (cannot send messages" in r.getMessage() for r in caplog.records)


def test_delivery_that_raises_is_contained(tmp_path):
    stats, detail = call(tmp_path, BrokenDelivery())
    done = stats.delivered
    assert len(done) == 1 and all(not r.ok and "gateway gone" in r.error for r in done[0].results)
    assert len(detail.suggestions) == 3 and all(list(s.recipients) == [] for s in detail.suggestions)


def test_nobody_opted_in(tmp_path):
    delivery = DmDelivery()
    stats, detail = call(tmp_path, delivery, opted_in=())
    assert stats.lulls == 1  # the lull came: nothing sent because nobody wants hints, not for want of one
    assert delivery.sent == [] and detail.suggestions == []
