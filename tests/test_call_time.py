"""At --speed 0 call time is virtual: stored times are those a live call would have had."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from bot.audio.frames import PcmFrame
from bot.clock import VirtualClock
from bot.pipeline import CallPipeline, PipelineListener
from tests.calls import RATE, librispeech_files, load16k, speech_bounds, wer


class Collect(PipelineListener):
    def __init__(self):
        self.events = []

    def on_utterance(self, event):
        self.events.append(event)


def simultaneous_call(n: int):
    """n speakers, each saying a LibriSpeech phrase, all ending at the same moment."""
    speakers = ["1688", "1998", "2033", "2414", "2609", "3005"]
    tracks = {}
    for i in range(n):
        clip = load16k(librispeech_files(speakers[i % len(speakers)])[3 + i // len(speakers)])
        lo, _ = speech_bounds(clip)
        phrase = clip[int(lo * RATE) : int(lo * RATE) + int(2.5 * RATE)]  # no pause long enough to end it
        tracks[f"s{i}"] = np.concatenate([np.zeros(RATE, np.float32), phrase, np.zeros(2 * RATE, np.float32)])
    return tracks


def run(config, transcriber, tracks, workers, batch_size=1):
    config = dataclasses.replace(config, asr=dataclasses.replace(config.asr, workers=workers, batch_size=batch_size))
    clock = VirtualClock()
    sink = Collect()
    p = CallPipeline(config, transcriber, clock=clock, listeners=[sink])
    for name in tracks:
        p.add_speaker(name, name)
    length = max(len(a) for a in tracks.values())
    for i in range(0, length, 1600):
        clock.advance((i + 1600) / RATE)
        for name, audio in tracks.items():
            if i < len(audio):
                p.feed(name, PcmFrame(i / RATE, audio[i : i + 1600], RATE))
    p.close()
    return sorted(sink.events, key=lambda e: e.transcribed_at)


@pytest.mark.slow
def test_backlog_is_accounted_in_call_time(config, tiny_en):
    """One worker, four people finishing at once: each waits for the ones before it."""
    events = run(config, tiny_en, simultaneous_call(4), workers=1)
    assert len(events) >= 4
    for e in events:
        assert e.transcribed_at >= e.ready_at + e.compute_seconds - 1e-6
    for prev, cur in zip(events, events[1:]):
        # A single worker: the next transcript cannot be ready before this one's work is done.
        assert cur.transcribed_at >= prev.transcribed_at + cur.compute_seconds - 1e-6
    # The lane worked without a break from the first utterance on: the last transcript is
    # as late as all the work put together, as it would be in a live call.
    first_ready = min(e.ready_at for e in events)
    assert events[-1].transcribed_at >= first_ready + sum(e.compute_seconds for e in events) - 1e-6


@pytest.mark.slow
def test_two_workers_work_side_by_side_in_call_time(config, tiny_en):
    """Two workers: two utterances are in work at the same call time (whether that is faster
    depends on free cores, which the benchmark measures)."""
    two = run(config, tiny_en, simultaneous_call(4), workers=2)
    spans = [(e.transcribed_at - e.compute_seconds, e.transcribed_at) for e in two]
    overlaps = sum(1 for i, a in enumerate(spans) for b in spans[i + 1 :] if a[0] < b[1] - 1e-6 and b[0] < a[1] - 1e-6)
    assert overlaps >= 1
    busy = max(sum(1 for s in spans if s[0] <= t < s[1]) for t, _ in spans)
    assert busy <= 2  # never more at once than there are workers


@pytest.mark.slow
def test_batching_transcribes_waiting_utterances_together(config, tiny_en):
    events = run(config, tiny_en, simultaneous_call(4), workers=1, batch_size=4)
    assert max(e.batch for e in events) > 1
    # Nearly the same words as one at a time: int8 arithmetic over a padded batch can
    # tip a close call on a mumbled word, nothing more.
    single = run(config, tiny_en, simultaneous_call(4), workers=1, batch_size=1)

    def by_start(evs):
        return [e.text for e in sorted(evs, key=lambda e: (e.speaker.name, e.start))]

    assert len(by_start(events)) == len(by_start(single))
    assert wer([" ".join(by_start(single))], [" ".join(by_start(events))]) < 0.1


def run_early(config, transcriber, audio: np.ndarray, early_ms: int):
    config = dataclasses.replace(config, vad=dataclasses.replace(config.vad, early_ms=early_ms))
    clock = VirtualClock()
    sink = Collect()
    p = CallPipeline(config, transcriber, clock=clock, listeners=[sink])
    p.add_speaker("s", "s")
    for i in range(0, len(audio), 320):  # 20 ms frames, as Discord's
        p.feed("s", PcmFrame(i / RATE, audio[i : i + 320], RATE))
    summary = p.close()
    return sorted(sink.events, key=lambda e: e.start), summary.early


@pytest.mark.slow
def test_an_early_transcript_is_kept_only_when_the_utterance_ended_there(config, tiny_en):
    """With ``[vad] early_ms``, the utterance is transcribed after a shorter silence; that
    transcript is the utterance's when it did end there (stored no sooner than the end was
    known), and is discarded when speech went on: the same utterances, times and text as
    without it, and every early transcription accounted for."""
    clips = [load16k(f) for f in librispeech_files("2609")[:2]]
    lo, hi = speech_bounds(clips[1])
    # Paused inside a word (the loudest 20 ms around the middle), so only the pause is silence.
    hop, around = RATE // 50, int((lo + hi) / 2 * RATE) - RATE // 2
    frames = clips[1][around : around + RATE].reshape(-1, hop)
    mid = around + (int(np.argmax((frames**2).mean(axis=1))) + 1) * hop
    silence = np.zeros(2 * RATE, np.float32)
    pause = np.zeros(int(0.35 * RATE), np.float32)  # longer than early_ms, shorter than min_silence_ms
    audio = np.concatenate([silence, clips[0], silence, clips[1][:mid], pause, clips[1][mid:], silence])

    plain, none = run_early(config, tiny_en, audio, 0)
    early, stats = run_early(config, tiny_en, audio, 200)
    assert none.kept == none.discarded == 0
    assert [(e.start, e.end, e.text) for e in early] == [(e.start, e.end, e.text) for e in plain]
    assert stats.kept == len(early) >= 2  # every utterance ended where it was guessed
    assert stats.discarded >= 1  # the pause inside the second sentence
    for e in early:
        assert e.transcribed_at >= e.ready_at  # never stored before the end was known
    spanning = [e for e in early if e.start < (4 + len(clips[0]) / RATE + mid / RATE) < e.end]
    assert len(spanning) == 1  # the paused sentence is one utterance
