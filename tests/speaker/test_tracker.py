"""Verdicts from neighbouring evidence and online guest clustering, on real embeddings."""

from __future__ import annotations

import pytest

from bot.speaker.enrollment import enroll
from bot.speaker.tracker import StreamTracker
from tests.speaker.corpus import librispeech


@pytest.fixture(scope="module")
def voices(speaker_model, vad):
    ls = librispeech()
    vp = {
        spk: enroll(speaker_model, [u.audio for u in ls[spk][:3]], vad=vad, min_speech=8).embedding
        for spk in ("1688", "2414", "2609")
    }
    emb = lambda spk, i, lo=0, hi=None: speaker_model.embed(ls[spk][i].audio[lo:hi])  # noqa: E731
    return vp, emb


def test_a_weak_short_utterance_is_rescued_by_its_own_voice_around_it(voices):
    vp, emb = voices
    weak = emb("1688", 7, 0, 19200)  # 1.2 s of the owner that scores under the threshold alone
    alone = StreamTracker("alice", vp["1688"], threshold=0.533, context=0)
    alone.add(0, 5, emb("1688", 5))
    item, _ = alone.add(6, 7.2, weak)
    assert item.score < 0.533 and item.verdict.verification == "mismatch"

    tracker = StreamTracker("alice", vp["1688"], threshold=0.533, context=2)
    first, _ = tracker.add(6, 7.2, weak)
    assert first.verdict.verification == "mismatch"  # nothing to go on yet
    _, changed = tracker.add(0, 5, emb("1688", 5))  # arrives later (another worker), sounds alike
    assert changed == [first] and first.verdict.verification == "verified"
    assert first.verdict.score == item.score and first.verdict.evidence >= 0.533


def test_a_guest_does_not_borrow_the_owners_evidence(voices):
    vp, emb = voices
    tracker = StreamTracker("alice", vp["1688"], threshold=0.533, others={"dave": vp["2414"]})
    owner1, _ = tracker.add(0, 5, emb("1688", 4))
    guest1, _ = tracker.add(6, 10, emb("2609", 3))
    guest2, _ = tracker.add(11, 15, emb("2609", 5))
    dave, _ = tracker.add(16, 20, emb("2414", 5))
    owner2, _ = tracker.add(21, 25, emb("1688", 6))
    assert [i.verdict.verification for i in tracker.items] == [
        "verified",
        "mismatch",
        "mismatch",
        "mismatch",
        "verified",
    ]
    assert guest1.verdict.label == guest2.verdict.label == "guest on alice's mic"
    assert dave.verdict.label == "dave"
    assert owner1.verdict.label is None and owner2.verdict.label is None


def test_two_different_guests_are_told_apart(voices):
    vp, emb = voices
    tracker = StreamTracker("alice", vp["1688"], threshold=0.533)
    a, _ = tracker.add(0, 5, emb("2609", 3))
    b, _ = tracker.add(6, 10, emb("2414", 5))
    assert a.verdict.label == "guest on alice's mic" and b.verdict.label == "guest 2 on alice's mic"


def test_no_voiceprint_or_too_short_is_unknown(voices):
    vp, emb = voices
    unenrolled = StreamTracker("erin", None, threshold=0.533, others={"dave": vp["2414"]})
    item, _ = unenrolled.add(0, 4, emb("2414", 5))
    assert item.verdict.verification == "unknown" and item.verdict.score is None
    assert item.verdict.label == "dave"  # who it sounds like, without a verdict on erin
    short = StreamTracker("alice", vp["1688"], threshold=0.533, min_seconds=1.0)
    item, _ = short.add(0, 0.8, emb("1688", 5, 0, 12800))
    assert item.verdict.verification == "unknown" and item.verdict.score is None
