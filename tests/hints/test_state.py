"""Conversation state and the lull detector fed with voice-activity events directly."""

from __future__ import annotations

from bot.hints.lull import LullDetector, LullOptions
from bot.hints.state import ConversationState


def talk(state: ConversationState, turns: list[tuple[str, float, float]]) -> None:
    for key, start, end in turns:
        state.speech_started(key, start)
        state.speech_ended(key, end)


def test_figures():
    s = ConversationState()
    s.joined("a"), s.joined("b")
    talk(s, [("a", 0, 4), ("b", 5, 7), ("a", 7.5, 9.5), ("b", 11, 12)])
    snap = s.snapshot(20.0, window=60.0)
    assert snap.present == {"a", "b"} and not snap.speaking and snap.silence_since == 12
    assert snap.turns == 4 and snap.speakers == 2 and snap.turn_rate == 4.0
    assert abs(snap.mean_gap - (1 + 0.5 + 1.5) / 3) < 1e-9
    assert abs(snap.share["a"] - 6 / 9) < 1e-9 and abs(snap.share["b"] - 3 / 9) < 1e-9
    s.speech_started("b", 21.0)
    assert s.snapshot(21.5).silence_since is None and s.snapshot(21.5).speaking == {"b"}


def detector(**kw) -> tuple[ConversationState, LullDetector]:
    s = ConversationState()
    s.joined("a"), s.joined("b")
    return s, LullDetector(s, LullOptions(**{"threshold": 5.0, "cooldown": 30.0, "max_per_session": 3, **kw}))


def fired(
    s: ConversationState, d: LullDetector, turns: list[tuple[str, float, float]], until: float, step: float = 0.1
) -> list[float]:
    """Feed the turns as time passes (an end is known when it happens) and check every ``step``."""
    events = sorted([(start, 0, key) for key, start, _ in turns] + [(end, 1, key) for key, _, end in turns])
    out, t, i = [], 0.0, 0
    while t <= until + 1e-9:
        while i < len(events) and events[i][0] <= t + 1e-9:
            at, kind, key = events[i]
            (s.speech_ended if kind else s.speech_started)(key, at)
            i += 1
        lull = d.check(t)
        if lull:
            out.append(round(lull.detected_at, 2))
        t = round(t + step, 6)
    return out


def test_fires_once_at_the_threshold_never_while_speaking():
    s, d = detector()
    assert fired(s, d, [("a", 0, 3), ("b", 3.5, 6), ("a", 6.5, 9)], 30) == [14.0]
    s.speech_started("b", 40.0)  # speaking (no end yet) through a long time: nothing
    assert d.check(60.0) is None


def test_speech_before_the_threshold_cancels_the_lull():
    s, d = detector()
    talk(s, [("a", 0, 3), ("b", 3.5, 6), ("a", 6.5, 9), ("b", 13.0, 14.0)])
    # Fed late (a coarse replay tick): the start at 13 was before the lull was due at 14.
    assert d.check(14.5) is None
    assert fired(s, d, [], 30) == [19.0]


def test_cooldown_and_maximum():
    s, d = detector(cooldown=30.0, max_per_session=2)
    turns, t = [], 0.0
    for _ in range(5):  # five conversations, each followed by 8 s of silence
        turns += [("a", t, t + 3), ("b", t + 3.5, t + 6), ("a", t + 6.5, t + 9)]
        t += 17.0
    # lulls due at 14, 31, 48, 65, 82: 31 is inside the cooldown, and the maximum is two.
    assert fired(s, d, turns, 100) == [14.0, 48.0]


def test_one_person_or_no_conversation():
    s = ConversationState()
    s.joined("a")
    d = LullDetector(s, LullOptions())
    assert fired(s, d, [("a", 0, 3), ("a", 3.5, 6), ("a", 6.5, 9)], 30) == []
    s2, d2 = detector()
    assert fired(s2, d2, [("a", 0, 3), ("b", 10, 12)], 30) == []  # two turns, far apart
    s3, d3 = detector()
    talk(s3, [("a", 0, 3), ("b", 3.5, 6), ("a", 6.5, 9)])
    s3.left("b", 10.0)  # left before the lull: one person present
    assert fired(s3, d3, [], 30) == []


def test_flagging_conversation_is_helped_sooner():
    # A lively half minute (a turn every 2 s), then slower and shorter turns, 2.5-3 s apart.
    turns = [("ab"[i % 2], 2.0 * i, 2.0 * i + 1.5) for i in range(15)]
    turns += [("a", 32.0, 33.0), ("b", 36.0, 37.0), ("a", 40.0, 41.0)]
    s, d = detector(flagging=True, flagging_threshold=3.5, active_window=12.0)
    assert fired(s, d, turns, 55) == [44.5]
    s2, d2 = detector(flagging=False, active_window=12.0)
    assert fired(s2, d2, turns, 55) == [46.0]
