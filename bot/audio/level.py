"""Background speech under a participant's own voice, told apart by level.

Silero VAD hears any speech, near or far: people talking in a participant's room (a meeting
next door, a television) score as speech as often as the participant does, and Whisper then
writes their words down as the participant's (docs/benchmarks.md#noise). What separates them
is the level: the participant is close to the microphone, the others are not. An utterance
much quieter than that participant's own recent speech is taken for background and dropped
before it is transcribed. Only whole utterances are judged: gating the VAD's windows by level
as well (so that an utterance ends when the participant stops though the others go on) was
measured and cut soft speech in clean calls (docs/benchmarks.md#noise-bench_noisepy).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

_FRAME = 512  # 32 ms at 16 kHz, the VAD's window


def speech_level_db(audio: np.ndarray) -> float:
    """The level of the speech in ``audio`` (16 kHz float32), in dB full scale: the mean power
    of its louder half of 32 ms frames, so that the pauses between words do not lower it."""
    n = len(audio) // _FRAME
    if n == 0:
        power = float(np.mean(audio.astype(np.float64) ** 2)) if len(audio) else 0.0
        return 10 * float(np.log10(power + 1e-12))
    frames = audio[: n * _FRAME].astype(np.float64).reshape(n, _FRAME)
    powers = np.sort((frames**2).mean(axis=1))
    return 10 * float(np.log10(powers[n // 2 :].mean() + 1e-12))


@dataclass(frozen=True)
class LevelOptions:
    below_db: float = 0.0  # drop an utterance this far under the speaker's level; 0: never
    memory: int = 8  # the speaker's level is the loudest of this many recent kept utterances
    min_reference_s: float = 1.0  # shorter utterances (a cough, a laugh) do not set the level


class LevelGate:
    """One participant's gate. Their level is the loudest of their recent kept utterances of
    ``min_reference_s`` or more; before there is one, everything passes."""

    def __init__(self, options: LevelOptions) -> None:
        self.options = options
        self._recent: deque[float] = deque(maxlen=options.memory)

    @property
    def reference_db(self) -> float | None:
        return max(self._recent) if self._recent else None

    def judge(self, audio: np.ndarray, duration: float) -> str | None:
        """Why the utterance whose speech is ``audio`` is background (then it does not count
        towards the level), or None to keep it."""
        if self.options.below_db <= 0:
            return None
        level = speech_level_db(audio)
        reference = self.reference_db
        if reference is not None and level < reference - self.options.below_db:
            return (
                f"background speech ({level:.0f} dBFS, {reference - level:.0f} dB under "
                f"the speaker's {reference:.0f} dBFS)"
            )
        if duration >= self.options.min_reference_s:
            self._recent.append(level)
        return None
