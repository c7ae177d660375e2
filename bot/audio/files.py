"""Reading recorded participant tracks (wav, flac, ogg, mp3, m4a ... through PyAV)."""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bot.audio.frames import PcmFrame
from bot.errors import AudioInputError

# Quieter than this everywhere is not a recording of anyone talking.
SILENT_DBFS = -60.0


@dataclass(frozen=True)
class AudioFileInfo:
    path: str
    duration: float
    sample_rate: int
    channels: int
    codec: str
    peak_dbfs: float


def _open(path: str):
    import av

    p = Path(path)
    if not p.exists():
        raise AudioInputError(f"{path}: no such file", "check the path")
    if p.is_dir():
        raise AudioInputError(f"{path} is a directory, not an audio file")
    if not os.access(p, os.R_OK):
        raise AudioInputError(f"{path}: permission denied", "make the file readable (chmod +r)")
    if p.stat().st_size == 0:
        raise AudioInputError(f"{path} is empty (0 bytes)", "re-export the recording")
    try:
        container = av.open(str(p))
    except (av.error.InvalidDataError, av.error.EOFError):
        # EOFError: the demuxer picked by the file's extension (.ogg, .mp3 ...) found none of
        # its structure before the end of the file, e.g. random bytes named .ogg.
        raise AudioInputError(
            f"{path} is not a recognised audio file (unknown format or corrupt header)",
            "convert it to wav, flac, ogg or mp3",
        ) from None
    except (av.error.FFmpegError, OSError) as exc:
        raise AudioInputError(f"{path} cannot be opened ({_reason(exc)})", "check that it is an audio file") from None
    if not container.streams.audio:
        container.close()
        raise AudioInputError(f"{path} has no audio stream", "give one audio file per participant")
    return container


def _reason(exc: BaseException) -> str:
    """FFmpeg's message without its errno and file name: "Invalid data found when processing input"."""
    return getattr(exc, "strerror", None) or str(exc)


# FFmpeg skips a damaged packet and decodes on: without this check a corrupt stretch in the
# middle of a file would silently vanish and shift everything after it earlier in the call.
GAP_TOLERANCE = 0.1


def _decode(path: str, container) -> Iterator[np.ndarray]:
    """(samples, channels) float32 arrays in file order.

    Raises AudioInputError when the file is corrupt, including when FFmpeg drops damaged
    frames in the middle (seen as a jump in the frames' timestamps past the audio decoded).
    """
    import av

    stream = container.streams.audio[0]
    # Verify checksums (FLAC frames, MP3 CRCs) so damaged data is dropped rather than
    # decoded into noise; the timestamp check below then reports it.
    stream.codec_context.options = {**stream.codec_context.options, "err_detect": "crccheck+explode"}
    resampler = None
    position = 0.0
    first_time: float | None = None
    try:
        for frame in container.decode(stream):
            if frame.time is not None:
                if first_time is None:
                    first_time = frame.time - position
                missing = frame.time - first_time - position
                if missing > GAP_TOLERANCE:
                    raise AudioInputError(
                        f"{path} is corrupt: {missing:.1f} s of audio at {position:.1f} s could not be decoded",
                        "re-export or repair the recording",
                    )
            if resampler is None:
                # Same rate and layout, planar float: conversion only, no resampling.
                resampler = av.AudioResampler(format="fltp", layout=frame.layout, rate=frame.sample_rate)
            for out in resampler.resample(frame):
                data = out.to_ndarray().T
                position += data.shape[0] / out.sample_rate
                yield np.ascontiguousarray(data, dtype=np.float32)
    except av.error.FFmpegError as exc:
        raise AudioInputError(
            f"{path} is corrupt or truncated: decoding stopped at {position:.1f} s ({_reason(exc)})",
            "re-export or repair the recording",
        ) from None


def probe_audio(path: str) -> AudioFileInfo:
    """Decode the whole file once to prove it is usable before any of it is stored."""
    container = _open(path)
    with container:
        stream = container.streams.audio[0]
        rate, channels = stream.codec_context.sample_rate, stream.codec_context.channels
        codec = stream.codec_context.name
        samples, peak = 0, 0.0
        for block in _decode(path, container):
            samples += block.shape[0]
            if block.size:
                peak = max(peak, float(np.abs(block).max()))
    if samples == 0:
        raise AudioInputError(f"{path} holds no audio samples", "re-export the recording")
    peak_db = 20 * math.log10(peak) if peak > 0 else -math.inf
    if peak_db < SILENT_DBFS:
        raise AudioInputError(
            f"{path} is silent (peak {peak_db:.0f} dBFS): there is no speech to transcribe",
            "check the file, or leave this participant out",
        )
    return AudioFileInfo(path, samples / rate, rate, channels, codec, peak_db)


def read_frames(path: str, block_seconds: float = 0.02) -> Iterator[PcmFrame]:
    """The file as consecutive frames of ``block_seconds``, stamped from sample counts."""
    container = _open(path)
    with container:
        rate = container.streams.audio[0].codec_context.sample_rate
        size = max(1, round(block_seconds * rate))
        pending: list[np.ndarray] = []
        held = 0
        emitted = 0
        for block in _decode(path, container):
            pending.append(block)
            held += block.shape[0]
            if held < size:
                continue
            data = np.concatenate(pending)
            n = (held // size) * size
            for i in range(0, n, size):
                yield PcmFrame(start=(emitted + i) / rate, pcm=data[i : i + size], sample_rate=rate)
            emitted += n
            pending, held = [data[n:]], held - n
        if held:
            yield PcmFrame(start=emitted / rate, pcm=np.concatenate(pending), sample_rate=rate)
