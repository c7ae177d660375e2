"""Telling the pipeline that time passes while someone is quiet.

Discord sends nothing while a participant is silent, and the pipeline only hears a
participant's time pass when their next frame arrives. Without help, an utterance whose
speaker then stays quiet would only be finished when they speak again or the session ends:
no live transcript, no end of speech for lull detection. ``QuietFiller`` sits in front of the
feeder and, once a participant's audio has stopped for ``margin`` seconds, feeds digital
silence up to ``tail`` seconds after their last frame: enough for the segmenter to end the
utterance, then nothing more, so quiet participants cost nothing.

It runs on one thread (the event loop: the receiver's sink and the ticking task both do).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from bot.audio.frames import PcmFrame

FRAME = 960  # 20 ms at 48 kHz: silence is fed in whole Discord frames


class QuietFiller:
    def __init__(
        self,
        sink: Callable[[int, PcmFrame], None],
        *,
        tail: float,
        margin: float = 0.2,
        sample_rate: int = 48_000,
        channels: int = 2,
    ) -> None:
        self.sink = sink
        self.tail = tail
        # Longer than the receiver's 60 ms jitter delay: a packet still on its way must not
        # land inside silence we already fed.
        self.margin = margin
        self.sample_rate = sample_rate
        self.channels = channels
        self._heard_to: dict[int, float] = {}  # end of each participant's last real frame
        self._fed_to: dict[int, float] = {}  # end of what the pipeline has of them, silence included
        self.silence_seconds = 0.0

    def __call__(self, user_id: int, frame: PcmFrame) -> None:
        end = frame.start + frame.duration
        self._heard_to[user_id] = max(end, self._heard_to.get(user_id, end))
        self._fed_to[user_id] = max(end, self._fed_to.get(user_id, end))
        self.sink(user_id, frame)

    def tick(self, now: float) -> None:
        """``now`` in call time: feed the silence that is certain by now."""
        for user_id, heard in self._heard_to.items():
            fed = self._fed_to[user_id]
            until = min(heard + self.tail, now - self.margin)
            samples = int((until - fed) * self.sample_rate) // FRAME * FRAME
            if samples <= 0:
                continue
            pcm = np.zeros((samples, self.channels), dtype=np.int16)
            self.sink(user_id, PcmFrame(fed, pcm, self.sample_rate))
            self._fed_to[user_id] = fed + samples / self.sample_rate
            self.silence_seconds += samples / self.sample_rate

    def forget(self, user_id: int) -> None:
        self._heard_to.pop(user_id, None)
        self._fed_to.pop(user_id, None)
