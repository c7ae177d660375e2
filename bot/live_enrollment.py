"""Enrolment from live speech in a call: collect one participant's segments, then enrol.

Add a ``LiveEnrollment`` to the pipeline (``pipeline.add_listener``); it
keeps the accepted speech segments of one participant (``on_audio_segment``), reports net
speech so far through ``on_progress(seconds, needed)``, and ``finish()`` runs the same
gates as ``python -m bot enroll``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import numpy as np

from bot.audio.vad import SAMPLE_RATE, SileroModel
from bot.pipeline import PipelineListener, Speaker
from bot.speaker.enrollment import EnrollmentResult, SpeechMeter, enroll, speech_regions
from bot.speaker.model import SpeakerModel


class LiveEnrollment(PipelineListener):
    def __init__(
        self,
        model: SpeakerModel,
        speaker_key: str,
        *,
        needed: float = 10.0,
        max_seconds: float = 120.0,
        vad: SileroModel | None = None,
        on_progress: Callable[[float, float], None] | None = None,
    ) -> None:
        self.model = model
        self.key = speaker_key
        self.meter = SpeechMeter(vad, needed)
        self.max_samples = int(max_seconds * SAMPLE_RATE)  # enough is enough: memory stays bounded
        self.on_progress = on_progress
        self.segments: list[np.ndarray] = []
        self.regions: list[list[tuple[int, int]]] = []  # measured once: for progress, then by enroll()
        self._held = 0
        self._lock = threading.Lock()

    def on_audio_segment(self, speaker: Speaker, start: float, end: float, audio: np.ndarray) -> None:
        if speaker.key != self.key:
            return
        with self._lock:
            if self._held >= self.max_samples:
                return
            audio = np.array(audio, np.float32)
            regions = speech_regions(audio, self.meter.vad)
            self.segments.append(audio)
            self.regions.append(regions)
            self._held += len(audio)
            seconds = self.meter.count(regions)
        if self.on_progress is not None:
            self.on_progress(seconds, self.meter.needed)

    @property
    def speech_seconds(self) -> float:
        return self.meter.seconds

    @property
    def enough(self) -> bool:
        return self.meter.enough

    def finish(self) -> EnrollmentResult:
        """Enrol from what was heard; raises EnrollmentError when a gate fails."""
        with self._lock:
            segments, regions = list(self.segments), list(self.regions)
        return enroll(self.model, segments, min_speech=self.meter.needed, regions=regions)
