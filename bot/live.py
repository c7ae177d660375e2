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

from bot.audio.frames import PcmFrame
from bot.pipeline import CallPipeline

log = logging.getLogger(__name__)


class LiveFeeder:
    """``feeder(user_id, frame)`` is the sink to give the voice receiver."""

    def __init__(self, pipeline: CallPipeline, name_of: Callable[[int], str], *, max_seconds: float = 30.0) -> None:
        self.pipeline = pipeline
        self.name_of = name_of
        # 30 s of 20 ms frames per participant is far more than a healthy call ever queues;
        # past it frames are dropped (and counted) rather than stalling the receive thread.
        self._queue: queue.Queue[tuple[int, PcmFrame] | None] = queue.Queue(maxsize=int(max_seconds / 0.02) * 8)
        self.dropped = 0
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

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            user_id, frame = item
            key = str(user_id)
            try:
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
