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
        declared = _declared_seconds(path, container)
        formats = set((container.format.name or "").split(","))
        samples, peak = 0, 0.0
        for block in _decode(path, container):
            samples += block.shape[0]
            if block.size:
                peak = max(peak, float(np.abs(block).max()))
    if samples == 0:
        raise AudioInputError(f"{path} holds no audio samples", "re-export the recording")
    check_complete(path, formats, samples / rate, declared)
    peak_db = 20 * math.log10(peak) if peak > 0 else -math.inf
    if peak_db < SILENT_DBFS:
        raise AudioInputError(
            f"{path} is silent (peak {peak_db:.0f} dBFS): there is no speech to transcribe",
            "check the file, or leave this participant out",
        )
    return AudioFileInfo(path, samples / rate, rate, channels, codec, peak_db)


# A file cut short (a copy interrupted, a recorder that died) decodes without an error in most
# formats: FFmpeg just stops where the bytes stop. Each format says how long it should be in
# its own way; where it does, a shortfall beyond this is reported.
TRUNCATION_TOLERANCE = 0.5


def _declared_seconds(path: str, container) -> float | None:
    """How long the file says it is, where that comes from the file itself (not an estimate
    from its size): a WAV data chunk, Matroska/WebM's Duration, an MP3 Xing/Info/VBRI header."""
    formats = set((container.format.name or "").split(","))
    if "wav" in formats:
        return _wav_declared_seconds(path)
    if formats & {"matroska", "webm"} or (formats & {"mp3"} and _mp3_has_length_header(path)):
        return container.duration / 1_000_000 if container.duration else None
    return None


def _wav_declared_seconds(path: str) -> float | None:
    """The data chunk's size over the byte rate, from the RIFF header (FFmpeg itself takes the
    length of what is there)."""
    import struct

    with open(path, "rb") as f:
        head = f.read(12)
        if head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return None  # RF64 and friends: sizes elsewhere; not checked
        byte_rate = None
        while True:
            chunk = f.read(8)
            if len(chunk) < 8:
                return None
            cid, size = chunk[:4], struct.unpack("<I", chunk[4:])[0]
            if cid == b"fmt ":
                fmt = f.read(size + (size & 1))
                if len(fmt) >= 12:
                    byte_rate = struct.unpack("<I", fmt[8:12])[0]
                continue
            if cid == b"data":
                # 0 and 0xFFFFFFFF mean "unknown" (written by a recorder still streaming).
                if not byte_rate or size in (0, 0xFFFFFFFF):
                    return None
                return size / byte_rate
            f.seek(size + (size & 1), 1)


def _mp3_has_length_header(path: str) -> bool:
    with open(path, "rb") as f:
        head = f.read(64 * 1024)
    return any(tag in head for tag in (b"Xing", b"Info", b"VBRI"))


def _ogg_complete(path: str) -> bool:
    """Whether an Ogg file ends with a whole page that marks the end of its stream (EOS)."""
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        f.seek(max(0, size - 128 * 1024))
        tail = f.read()
    at = tail.rfind(b"OggS")
    if at < 0 or len(tail) < at + 27:
        return False
    nseg = tail[at + 26]
    if len(tail) < at + 27 + nseg:
        return False
    body = sum(tail[at + 27 : at + 27 + nseg])
    whole = at + 27 + nseg + body <= len(tail)
    return whole and bool(tail[at + 5] & 0x04)


def check_complete(path: str, formats: set[str], decoded: float, declared: float | None) -> None:
    """Raise AudioInputError if the file was cut short (see ``TRUNCATION_TOLERANCE``)."""
    if "ogg" in formats and not _ogg_complete(path):
        raise AudioInputError(
            f"{path} is truncated: it stops at {decoded:.1f} s without the end of its stream (the file was cut short)",
            "copy or re-export the whole recording",
        )
    if declared is not None and declared - decoded > TRUNCATION_TOLERANCE:
        raise AudioInputError(
            f"{path} is truncated: its header says {declared:.1f} s of audio but the file holds {decoded:.1f} s",
            "copy or re-export the whole recording",
        )


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
