"""The background-speech gate (bot/audio/level.py) on real speech at known levels."""

from __future__ import annotations

import numpy as np

from bot.audio.level import LevelGate, LevelOptions, speech_level_db
from tests.calls import librispeech_files, load16k

RATE = 16000


def _speech() -> tuple[np.ndarray, np.ndarray]:
    files = librispeech_files("2609")
    return load16k(files[0]), load16k(files[1])


def _gain(audio: np.ndarray, db: float) -> np.ndarray:
    return (audio * 10 ** (db / 20)).astype(np.float32)


def test_level_follows_gain_and_ignores_pauses() -> None:
    a, _ = _speech()
    level = speech_level_db(a)
    assert abs(speech_level_db(_gain(a, -12)) - (level - 12)) < 0.01
    # A second of silence in the middle changes the loud half's mean little.
    paused = np.concatenate([a[: len(a) // 2], np.zeros(RATE, np.float32), a[len(a) // 2 :]])
    assert abs(speech_level_db(paused) - level) < 1.5


def test_quieter_speech_than_the_speakers_own_is_background() -> None:
    a, b = _speech()
    gate = LevelGate(LevelOptions(below_db=8.0))
    assert gate.judge(a, len(a) / RATE) is None  # the first utterance sets the level
    reason = gate.judge(_gain(b, -14), len(b) / RATE)
    assert reason is not None and reason.startswith("background speech") and "dB under the speaker's" in reason
    assert gate.judge(_gain(b, -3), len(b) / RATE) is None  # a softer sentence of the same voice


def test_a_short_loud_burst_does_not_set_the_level() -> None:
    a, b = _speech()
    gate = LevelGate(LevelOptions(below_db=8.0, min_reference_s=1.0))
    burst = _gain(a[: RATE // 2], 20)
    assert gate.judge(burst, 0.5) is None
    assert gate.reference_db is None
    assert gate.judge(b, len(b) / RATE) is None


def test_the_level_is_the_recent_speech_only() -> None:
    """A participant who moved away from the microphone is heard at their new level once a few
    utterances have been kept there."""
    a, _ = _speech()
    level = speech_level_db(a)
    gate = LevelGate(LevelOptions(below_db=8.0, memory=2))
    gate.judge(_gain(a, 6), len(a) / RATE)
    assert gate.reference_db is not None and abs(gate.reference_db - (level + 6)) < 0.01
    for _ in range(2):  # 6 dB under: kept, and they push the louder one out
        assert gate.judge(a, len(a) / RATE) is None
    assert gate.reference_db is not None and abs(gate.reference_db - level) < 0.01


def test_off_keeps_everything() -> None:
    a, b = _speech()
    gate = LevelGate(LevelOptions(below_db=0.0))
    gate.judge(_gain(a, 20), len(a) / RATE)
    assert gate.judge(_gain(b, -30), len(b) / RATE) is None
