"""Any rate, any channel count, int16 or float -> 16 kHz mono float32, streaming."""

from __future__ import annotations

import numpy as np
import soxr

TARGET_RATE = 16000


def to_mono_float(pcm: np.ndarray) -> np.ndarray:
    """Downmix by averaging channels; int16 is scaled to [-1, 1)."""
    data = pcm.astype(np.float32) / 32768.0 if pcm.dtype == np.int16 else pcm.astype(np.float32, copy=False)
    if data.ndim == 2:
        data = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]
    return data


class StreamResampler:
    """Stateful resampler for one stream.

    soxr keeps the output aligned with the input (its filter delay is compensated and
    held back until enough input has arrived), so output sample ``n`` is at input time
    ``n / 16000`` — that is what keeps call-time stamps exact. ``flush`` returns the
    held-back tail; call it before a gap in the stream.
    """

    def __init__(self, in_rate: int) -> None:
        self.in_rate = in_rate
        self._stream = (
            None
            if in_rate == TARGET_RATE
            else soxr.ResampleStream(in_rate, TARGET_RATE, 1, dtype="float32", quality="HQ")
        )

    def process(self, pcm: np.ndarray) -> np.ndarray:
        mono = to_mono_float(pcm)
        if self._stream is None:
            return mono
        return self._stream.resample_chunk(mono.reshape(-1, 1)).reshape(-1)

    def flush(self) -> np.ndarray:
        if self._stream is None:
            return np.zeros(0, dtype=np.float32)
        tail = self._stream.resample_chunk(np.zeros((0, 1), dtype=np.float32), last=True).reshape(-1)
        self._stream = soxr.ResampleStream(self.in_rate, TARGET_RATE, 1, dtype="float32", quality="HQ")
        return tail
