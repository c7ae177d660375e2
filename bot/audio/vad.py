"""Streaming Silero VAD (v6, the ONNX file faster-whisper ships) with per-stream state.

The model scores 512-sample windows of 16 kHz audio, each preceded by the last 64
samples of the previous window, and carries an LSTM state (h, c) from window to window.
One ONNX session serves every stream (``run`` is thread-safe); each stream keeps its
own state, so a stream's probabilities equal those of scoring its whole audio at once.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from bot.errors import ModelError

WINDOW = 512
CONTEXT = 64
SAMPLE_RATE = 16000


def silero_model_path() -> str:
    import faster_whisper

    return os.path.join(os.path.dirname(faster_whisper.__file__), "assets", "silero_vad_v6.onnx")


class SileroModel:
    def __init__(self, path: str | None = None) -> None:
        import onnxruntime

        self.path = path or silero_model_path()
        opts = onnxruntime.SessionOptions()
        # One thread: the VAD runs next to Whisper, which wants the cores.
        opts.inter_op_num_threads = 1
        opts.intra_op_num_threads = 1
        opts.log_severity_level = 4
        try:
            self.session = onnxruntime.InferenceSession(
                self.path, providers=["CPUExecutionProvider"], sess_options=opts
            )
        except Exception as exc:  # onnxruntime raises its own exception types
            raise ModelError(
                f"cannot load the Silero VAD model {self.path}: {exc}",
                "reinstall faster-whisper (pip install --force-reinstall faster-whisper==1.2.1)",
            ) from exc

    def new_stream(self) -> VadStream:
        return VadStream(self)


@dataclass
class VadStream:
    """Speech probability per 512-sample window for one participant's 16 kHz audio."""

    model: SileroModel
    _h: np.ndarray = field(default_factory=lambda: np.zeros((1, 1, 128), np.float32))
    _c: np.ndarray = field(default_factory=lambda: np.zeros((1, 1, 128), np.float32))
    _context: np.ndarray = field(default_factory=lambda: np.zeros(CONTEXT, np.float32))

    def reset(self) -> None:
        self._h = np.zeros((1, 1, 128), np.float32)
        self._c = np.zeros((1, 1, 128), np.float32)
        self._context = np.zeros(CONTEXT, np.float32)

    def probabilities(self, windows: np.ndarray) -> np.ndarray:
        """Score ``n * 512`` samples; returns ``n`` probabilities and advances the state."""
        n = windows.shape[0] // WINDOW
        if n == 0:
            return np.zeros(0, np.float32)
        frames = windows[: n * WINDOW].reshape(n, WINDOW)
        previous = np.concatenate([self._context[None, :], frames[:-1, -CONTEXT:]], axis=0)
        batch = np.ascontiguousarray(np.concatenate([previous, frames], axis=1), dtype=np.float32)
        probs, self._h, self._c = self.model.session.run(None, {"input": batch, "h": self._h, "c": self._c})
        self._context = frames[-1, -CONTEXT:].copy()
        return np.asarray(probs, np.float32).reshape(-1)
