"""The unit of audio that crosses from a source (Discord receiver, file reader) into the pipeline."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, slots=True)
class PcmFrame:
    """A block of one participant's audio.

    ``start`` is in seconds of call time (0 = start of the session). Sources set it from
    their own clock (RTP timestamps, sample counts) so that gaps, e.g. Discord not sending
    during silence, show up as a jump in ``start`` instead of being lost.

    ``pcm`` is shaped ``(samples, channels)``, dtype int16 (Discord, WAV) or float32 in
    [-1, 1]; any sample rate.
    """

    start: float
    pcm: np.ndarray
    sample_rate: int

    @property
    def channels(self) -> int:
        return 1 if self.pcm.ndim == 1 else int(self.pcm.shape[1])

    @property
    def duration(self) -> float:
        return self.pcm.shape[0] / self.sample_rate
