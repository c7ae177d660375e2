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
