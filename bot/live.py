"""Live audio into the pipeline: a bounded hand-off from the receive thread to a feeder thread.

The voice receiver delivers frames on the event loop every ~20 ms and must never wait; the
pipeline's ``feed`` runs VAD and may block while the transcription queue is full. A queue
and one feeder thread sit between them. Nothing here knows about Discord: participants are
keyed by whatever the source calls them (a Discord user id).
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass

from bot.audio.frames import PcmFrame
from bot.pipeline import CallPipeline

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Silent:
    """Queued like a frame: the participant is silent until call time ``until``."""

    until: float


class LiveFeeder:
    """``feeder(user_id, frame)`` is the sink to give the voice receiver."""

    def __init__(self, pipeline: CallPipeline, name_of: Callable[[int], str], *, max_seconds: float = 30.0) -> None:
        self.pipeline = pipeline
        self.name_of = name_of
        # 30 s of 20 ms frames per participant is far more than a healthy call ever queues;
        # past it frames are dropped (and counted) rather than stalling the receive thread.
        self._queue: queue.Queue[tuple[int, PcmFrame | Silent] | None] = queue.Queue(
            maxsize=int(max_seconds / 0.02) * 8
        )
        self.dropped = 0
        self.silences = 0  # silent_until calls that reached the pipeline
        self._known: set[int] = set()
        self._thread = threading.Thread(target=self._run, name="live-feeder", daemon=True)
        self._thread.start()

    def __call__(self, user_id: int, frame: PcmFrame) -> None:
        try:
            self._queue.put_nowait((user_id, frame))
        except queue.Full:
            self.dropped += 1
            if self.dropped in (1, 100) or self.dropped % 1000 == 0:
                log.warning("pipeline is %d frames behind; dropped %d frames", self._queue.qsize(), self.dropped)

    def silent_until(self, user_id: int, until: float) -> None:
        """``user_id`` sends nothing before call time ``until``: through the same queue as the
        frames, so the pipeline hears it after every frame received before it."""
        try:
            self._queue.put_nowait((user_id, Silent(until)))
        except queue.Full:
            pass  # behind already; the next tick says it again

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            user_id, frame = item
            key = str(user_id)
            try:
                if isinstance(frame, Silent):
                    if user_id in self._known:  # before their first frame there is nothing to end
                        self.pipeline.silent_until(key, frame.until)
                        self.silences += 1
                    continue
                if user_id not in self._known:
                    self.pipeline.add_speaker(key, self.name_of(user_id), user_id=key, joined_at=frame.start)
                    self._known.add(user_id)
                self.pipeline.feed(key, frame)
            except Exception:
                log.exception("feeding %s's audio failed", key)

    def close(self) -> None:
        """Feed what is queued, then stop."""
        self._queue.put(None)
        self._thread.join()
