"""Real speech, decoded and Opus-encoded the way a Discord client would send it."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
from discord import opus

SAMPLE_RATE = 48_000
FRAME_SAMPLES = 960  # 20 ms, Discord's packet size


def _shared_data() -> Path:
    # STALK_SHARED_DATA first (as the receive-core tests do), then shared/ beside the
    # repository (CI's layout), then this workplace's fixed location.
    candidates = [Path(os.environ["STALK_SHARED_DATA"])] if "STALK_SHARED_DATA" in os.environ else []
    candidates += [Path(__file__).resolve().parents[4] / "shared" / "data", Path("/work/shared/data")]
    return next((c for c in candidates if (c / "librispeech").is_dir()), candidates[-1])


SHARED_DATA = _shared_data()


def load_speech(path: Path, seconds: float | None = None, offset: float = 0.0) -> np.ndarray:
    """Decode a file to 48 kHz stereo int16, shaped (samples, 2)."""
    resampler = av.AudioResampler(format="s16", layout="stereo", rate=SAMPLE_RATE)
    chunks: list[np.ndarray] = []
    with av.open(str(path)) as container:
        for frame in container.decode(audio=0):
            for out in resampler.resample(frame):
                chunks.append(out.to_ndarray().reshape(-1, 2))
        for out in resampler.resample(None):
            chunks.append(out.to_ndarray().reshape(-1, 2))
    pcm = np.concatenate(chunks)
    start = int(offset * SAMPLE_RATE)
    end = None if seconds is None else start + int(seconds * SAMPLE_RATE)
    return np.ascontiguousarray(pcm[start:end])


def librispeech(speaker: str, index: int = 0) -> Path:
    files = sorted((SHARED_DATA / "librispeech" / speaker).glob("*.flac"))
    return files[index]


@dataclass(frozen=True)
class EncodedSpeech:
    pcm: np.ndarray  # exactly what was encoded: whole 20 ms frames, (samples, 2) int16
    packets: list[bytes]  # one Opus packet per 20 ms
    # The packets decoded in order by a fresh libopus decoder: what a perfect receiver must
    # reproduce sample for sample (the source itself differs by the codec's loss and delay).
    reference: np.ndarray


def encode(pcm: np.ndarray, *, bitrate_kbps: int = 64) -> EncodedSpeech:
    if not opus.is_loaded():
        opus._load_default()
    encoder = opus.Encoder(application="voip", bitrate=bitrate_kbps, fec=True, expected_packet_loss=0.1)
    frames = pcm.shape[0] // FRAME_SAMPLES
    pcm = np.ascontiguousarray(pcm[: frames * FRAME_SAMPLES])
    packets = [
        encoder.encode(pcm[i * FRAME_SAMPLES : (i + 1) * FRAME_SAMPLES].tobytes(), FRAME_SAMPLES) for i in range(frames)
    ]
    decoder = opus.Decoder()
    reference = np.concatenate([np.frombuffer(decoder.decode(p), dtype=np.int16).reshape(-1, 2) for p in packets])
    return EncodedSpeech(pcm=pcm, packets=packets, reference=reference)
