"""The feature front end a WeSpeaker-format model expects: Kaldi fbank with per-utterance CMN.

Parameters come from the model's ONNX metadata where its exporter wrote them (sherpa-onnx
style keys), else from WeSpeaker's export defaults, which is what its VoxCeleb models use.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

SAMPLE_RATE = 16000


@dataclass(frozen=True)
class FrontEnd:
    num_mel_bins: int = 80
    frame_length_ms: float = 25.0
    frame_shift_ms: float = 10.0
    dither: float = 0.0
    window_type: str = "hamming"
    sample_rate: int = SAMPLE_RATE
    # WeSpeaker feeds Kaldi int16-range samples; our audio is float in [-1, 1].
    waveform_scale: float = 32768.0
    cmn: bool = True

    @classmethod
    def from_metadata(cls, meta: Mapping[str, str], default: FrontEnd | None = None) -> FrontEnd:
        base = default or cls()

        def num(key: str, cast, fallback):
            try:
                return cast(meta[key]) if key in meta else fallback
            except ValueError:
                return fallback

        cmn = meta.get("cmn", "mean-over-time" if base.cmn else "none").lower()
        return cls(
            num_mel_bins=num("num_mel_bins", int, base.num_mel_bins),
            frame_length_ms=num("frame_length_ms", float, base.frame_length_ms),
            frame_shift_ms=num("frame_shift_ms", float, base.frame_shift_ms),
            dither=num("dither", float, base.dither),
            window_type=meta.get("window_type", base.window_type),
            sample_rate=num("sample_rate", int, base.sample_rate),
            waveform_scale=num("waveform_scale", float, base.waveform_scale),
            cmn=cmn not in ("none", "false", "0", "no"),
        )

    def min_samples(self) -> int:
        """Audio shorter than one analysis frame has no features."""
        return int(self.sample_rate * self.frame_length_ms / 1000)

    def features(self, audio: np.ndarray) -> np.ndarray:
        """[frames, num_mel_bins] float32 for 16 kHz mono float audio."""
        import kaldi_native_fbank as knf

        opts = knf.FbankOptions()
        opts.frame_opts.samp_freq = self.sample_rate
        opts.frame_opts.frame_length_ms = self.frame_length_ms
        opts.frame_opts.frame_shift_ms = self.frame_shift_ms
        opts.frame_opts.dither = self.dither
        opts.frame_opts.window_type = self.window_type
        opts.frame_opts.snip_edges = True
        opts.mel_opts.num_bins = self.num_mel_bins
        opts.energy_floor = 0.0
        fbank = knf.OnlineFbank(opts)
        fbank.accept_waveform(self.sample_rate, np.asarray(audio, np.float32) * np.float32(self.waveform_scale))
        fbank.input_finished()
        n = fbank.num_frames_ready
        feats = np.empty((n, self.num_mel_bins), np.float32)
        for i in range(n):
            feats[i] = fbank.get_frame(i)
        if self.cmn and n:
            feats -= feats.mean(axis=0, keepdims=True)
        return feats
