"""SilenceWatch: after a participant stops, the pipeline is told how far they are silent, only
as far as ends an utterance, and in order with their frames."""

from __future__ import annotations

import numpy as np
import pytest

from bot.audio.frames import PcmFrame
from bot.discordbot.quiet import SilenceWatch


def _frames(start: float, seconds: float) -> list[PcmFrame]:
    n = round(seconds / 0.02)
    return [PcmFrame(start + i * 0.02, np.full((960, 2), 1000, dtype=np.int16), 48_000) for i in range(n)]


def _watch(tail: float, margin: float) -> tuple[SilenceWatch, list[tuple[int, object]]]:
    got: list[tuple[int, object]] = []  # frames and silences, in the order the feeder would get them
    watch = SilenceWatch(
        lambda uid, f: got.append((uid, f)), lambda uid, t: got.append((uid, t)), tail=tail, margin=margin
    )
    return watch, got


def test_silence_is_told_after_the_last_frame_and_stops_after_the_tail() -> None:
    watch, got = _watch(tail=0.6, margin=0.1)
    for f in _frames(0.0, 1.0):
        watch(7, f)
    assert len(got) == 50 and all(isinstance(f, PcmFrame) for _, f in got)  # real audio passes untouched

    watch.tick(1.05)  # within the margin: a late packet may still come
    assert len(got) == 50
    watch.tick(1.3)
    assert got[50:] == [(7, pytest.approx(1.2))]
    watch.tick(1.3)  # nothing new is certain: nothing is said
    assert len(got) == 51
    watch.tick(1.5)
    watch.tick(9.0)
    assert got[51:] == [(7, pytest.approx(1.4)), (7, pytest.approx(1.6))]  # up to the tail, no further
    watch.tick(20.0)  # quiet for long: nothing more
    assert len(got) == 53

    # Speech again: it passes through with its own time, and its own silence follows later.
    for f in _frames(30.0, 0.2):
        watch(7, f)
    watch.tick(32.0)
    assert got[-1] == (7, pytest.approx(30.8))


def test_participants_are_independent() -> None:
    watch, got = _watch(tail=0.5, margin=0.1)
    for f in _frames(0.0, 0.4):
        watch(1, f)
    for f in _frames(0.0, 2.0):
        watch(2, f)
    watch.tick(2.0)
    assert [(uid, t) for uid, t in got if not isinstance(t, PcmFrame)] == [(1, pytest.approx(0.9))]  # 2 still talks
    watch.forget(1)
    watch.tick(5.0)
    assert [uid for uid, t in got if not isinstance(t, PcmFrame)] == [1, 2]
