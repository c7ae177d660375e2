"""Telling the pipeline that a participant is silent.

Discord sends nothing while a participant is silent, and the pipeline only hears a
participant's time pass when their next frame arrives. Without help, an utterance whose
speaker then stays quiet would only be finished when they speak again or the session ends:
no live transcript, no end of speech for lull detection. ``SilenceWatch`` sits in front of
the feeder and, once a participant's audio has stopped, says how far in call time they are
certainly silent (``feeder.silent_until``); the pipeline ends their utterance the moment its
end-of-utterance silence has passed, without any silence being fed or scored. It stops
telling ``tail`` seconds after their last frame, so quiet participants cost nothing.

It runs on one thread (the event loop: the receiver's sink and the ticking task both do),
and reaches the pipeline only through the feeder's queue, in order with the frames.
"""

from __future__ import annotations

from collections.abc import Callable

from bot.audio.frames import PcmFrame

# The receiver plays a packet out 60 ms (its jitter delay) after its call time, and its poll
# runs every 20 ms: a frame not delivered by ``now`` starts after ``now - MARGIN``, and a packet
# later than that is refused as late. So silence up to there is certain.
MARGIN = 0.1


class SilenceWatch:
    def __init__(
        self,
        sink: Callable[[int, PcmFrame], None],
        silent_until: Callable[[int, float], None],
        *,
        tail: float,
        margin: float = MARGIN,
    ) -> None:
        self.sink = sink
        self.silent_until = silent_until
        self.tail = tail
        self.margin = margin
        self._heard_to: dict[int, float] = {}  # end of each participant's last frame
        self._told: dict[int, float] = {}  # how far the pipeline has been told they are silent

    def __call__(self, user_id: int, frame: PcmFrame) -> None:
        end = frame.start + frame.duration
        self._heard_to[user_id] = max(end, self._heard_to.get(user_id, end))
        self._told[user_id] = max(end, self._told.get(user_id, end))
        self.sink(user_id, frame)

    def tick(self, now: float) -> None:
        """``now`` in call time: tell the silence that is certain by now."""
        for user_id, heard in self._heard_to.items():
            until = min(heard + self.tail, now - self.margin)
            if until > self._told[user_id]:
                self.silent_until(user_id, until)
                self._told[user_id] = until

    def forget(self, user_id: int) -> None:
        self._heard_to.pop(user_id, None)
        self._told.pop(user_id, None)
