"""QuietFiller: silence fed after a participant stops, only as much as ends an utterance."""

from __future__ import annotations

import numpy as np
import pytest

from bot.audio.frames import PcmFrame
from bot.discordbot.quiet import QuietFiller


def _frames(start: float, seconds: float) -> list[PcmFrame]:
    n = round(seconds / 0.02)
    return [PcmFrame(start + i * 0.02, np.full((960, 2), 1000, dtype=np.int16), 48_000) for i in range(n)]


def test_silence_follows_the_last_frame_and_stops_after_the_tail() -> None:
    got: list[tuple[int, PcmFrame]] = []
    quiet = QuietFiller(lambda uid, f: got.append((uid, f)), tail=0.8, margin=0.2)
    for f in _frames(0.0, 1.0):
        quiet(7, f)
    assert len(got) == 50 and all(f.pcm.any() for _, f in got)  # real audio passes untouched

    quiet.tick(1.1)  # within the margin: a late packet may still come
    assert len(got) == 50
    quiet.tick(1.5)
    ((uid, silence),) = got[50:]
    assert uid == 7 and silence.start == pytest.approx(1.0) and silence.duration == pytest.approx(0.3)
    assert not silence.pcm.any() and silence.pcm.shape[1] == 2 and silence.sample_rate == 48_000
    quiet.tick(9.0)
    assert got[-1][1].start == pytest.approx(1.3) and got[-1][1].start + got[-1][1].duration == pytest.approx(1.8)
    count = len(got)
    quiet.tick(20.0)  # quiet for long: nothing more is fed
    assert len(got) == count and quiet.silence_seconds == pytest.approx(0.8)

    # Speech again: it passes through with its own time (the pipeline skips the gap), and
    # its own silence follows later.
    for f in _frames(30.0, 0.2):
        quiet(7, f)
    quiet.tick(32.0)
    assert got[-1][1].start == pytest.approx(30.2) and got[-1][1].duration == pytest.approx(0.8)


def test_participants_are_independent() -> None:
    got: list[tuple[int, PcmFrame]] = []
    quiet = QuietFiller(lambda uid, f: got.append((uid, f)), tail=0.5, margin=0.1)
    for f in _frames(0.0, 0.4):
        quiet(1, f)
    for f in _frames(0.0, 2.0):
        quiet(2, f)
    quiet.tick(2.0)
    silences = [(uid, f.start) for uid, f in got if not f.pcm.any()]
    assert silences == [(1, pytest.approx(0.4))]  # 2 is still talking
