"""Through the real bot and the voice-server double: when a speaker's packets stop, the pipeline
is told they are silent (no silence fed, no VAD over it) and ends their utterance with the
call times the audio had; a speaker who resumes sooner goes on with the same utterance; nothing
is lost. Speech: LibriSpeech test-other (CC BY 4.0). How soon it is stored is a benchmark
figure (benchmarks/bench_bot_session.py), not asserted here."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from storage import get_session
from tests.bounds import at_most
from tests.calls import librispeech_refs, speech_bounds, wer
from tests.voice.double import encode, librispeech, load_speech

ANN_FILE = librispeech("1688", 2)  # 2.8 s, 9 words
BEN_FILE = librispeech("2033", 9)  # 6.9 s, 17 words
RATE48 = 48_000


def _loudest_cut(pcm: np.ndarray, lo: float, hi: float) -> int:
    """A 20 ms frame boundary just after the loudest frame between ``lo`` and ``hi`` s: inside a
    word, as when a client's own voice detection cuts a speaker off mid-speech."""
    hop = RATE48 // 50
    first, last = int(lo * 50), int(hi * 50)
    energy = [float((pcm[i * hop : (i + 1) * hop].astype(np.float64) ** 2).mean()) for i in range(first, last)]
    return (first + int(np.argmax(energy)) + 1) * hop


def _onset(pcm: np.ndarray) -> float:
    return speech_bounds(pcm.mean(axis=1).astype(np.float32) / 32768.0, RATE48)[0]


async def _stored(h, session, count: int) -> list:
    """Wait (on the database: what a user would see) until ``count`` utterances are stored."""
    for _ in range(600):  # a guard against a hang only
        stored = get_session(h.db, session.session_id).utterances
        if len(stored) >= count:
            return stored
        await asyncio.sleep(0.1)
    raise AssertionError(f"only {len(stored)} of {count} utterances stored")


def _record_told(session) -> list[tuple[int, float]]:
    """What the session tells the feeder about silence, (user id, until), in order."""
    told: list[tuple[int, float]] = []
    watch = session.attachments.quiet
    tell = watch.silent_until

    def record(uid: int, until: float) -> None:
        told.append((uid, until))
        tell(uid, until)

    watch.silent_until = record
    return told


@pytest.mark.slow
async def test_an_utterance_cut_off_ends_when_packets_stop_with_its_call_times(make_bot) -> None:
    h = await make_bot(voice=True)
    await h.command("ann", "join")
    session = h.bot.sessions.get(h.guild.id)
    await h.server.wait_session()
    epoch = session.parts.epoch
    told = _record_told(session)
    ann = load_speech(ANN_FILE)
    cut = _loudest_cut(ann, 1.5, 2.5)
    sent = await h.server.stream(h.users["ann"], encode(ann[:cut]))
    # Ann stays quiet: her utterance is stored without her speaking again.
    (first,) = await _stored(h, session, 1)
    began = sent.send_log[0][1] - epoch  # call time of her first packet
    assert first.speaker == "Ann"
    assert abs(first.start - (began + _onset(ann[:cut]))) < 0.35
    assert began + cut / RATE48 - 0.3 < first.end < began + cut / RATE48 + 0.15
    assert first.transcribed_at >= first.end + 0.5  # ended by the silence that followed, not sooner
    ann_uid = h.users["ann"]
    assert any(uid == ann_uid and first.end < until for uid, until in told)
    # Then nothing more: told up to 0.6 s after her last frame (5 Opus silence frames after the cut).
    assert all(until <= first.end + 1.2 for uid, until in told if uid == ann_uid)

    # Ben speaks while Ann is quiet; then both have left nothing behind.
    ben = load_speech(BEN_FILE)
    sent_ben = await h.server.stream(h.users["ben"], encode(ben))
    stored = await _stored(h, session, 2)
    assert h.bot.sessions.get(h.guild.id) is session  # stored while the session runs
    await h.command("ann", "leave")
    detail = get_session(h.db, session.session_id)
    assert [u.speaker for u in detail.utterances][:1] == ["Ann"] and len(stored) >= 2
    bens = [u for u in detail.utterances if u.speaker == "Ben"]
    began_ben = sent_ben.send_log[0][1] - epoch
    assert bens and abs(bens[0].start - (began_ben + _onset(ben))) < 0.35
    text = " ".join(u.text for u in bens)
    at_most("bot.silence_ben_wer", wer([librispeech_refs()[BEN_FILE.stem]], [text]), 0.5, text)
    assert session.feeder.dropped == 0


@pytest.mark.slow
async def test_a_speaker_resuming_within_the_silence_continues_the_same_utterance(make_bot) -> None:
    h = await make_bot(voice=True)
    await h.command("ann", "join")
    session = h.bot.sessions.get(h.guild.id)
    await h.server.wait_session()
    told = _record_told(session)
    ann = load_speech(ANN_FILE)
    cut = _loudest_cut(ann, 0.8, 1.6)
    first = await h.server.stream(h.users["ann"], encode(ann[:cut]), trailing_silence_frames=0)
    # About 0.3 s with nothing sent (less than the 0.5 s that ends an utterance), during which
    # the bot is told she is silent; then the rest of her sentence.
    await asyncio.sleep(0.3)
    told_in_gap = list(told)
    second = await h.server.stream(h.users["ann"], encode(ann[cut:]))
    (utterance,) = await _stored(h, session, 1)
    await h.command("ann", "leave")
    detail = get_session(h.db, session.session_id)
    assert len(detail.utterances) == 1  # one utterance, not two
    began = first.send_log[0][1] - session.parts.epoch
    assert utterance.start < began + cut / RATE48 - 0.5 and utterance.end > began + cut / RATE48 + 0.5
    ref = librispeech_refs()[ANN_FILE.stem]
    at_most("bot.silence_resumed_wer", wer([ref], [utterance.text]), 0.5, utterance.text)
    # The bot did say she was silent in the gap, and went on with the same utterance.
    resumed = second.send_log[0][1] - session.parts.epoch
    assert any(began + cut / RATE48 < until < resumed for _, until in told_in_gap)
    assert session.feeder.silences > len(told_in_gap) > 0
