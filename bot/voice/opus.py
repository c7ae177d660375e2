"""Per-speaker Opus decoding to 48 kHz stereo int16, with FEC and loss concealment.

Uses the libopus that discord.py loads (``discord.opus``) through ctypes directly, because
discord.py's ``Decoder.decode`` sizes an FEC decode from the *next* packet, which is wrong
when the lost packet had another duration, and copies through ``array`` twice.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass

import numpy as np

SAMPLE_RATE = 48_000
CHANNELS = 2
FRAME_20MS = 960
# Discord sends this 3-byte Opus frame (CELT, 20 ms, digital silence) when a speaker stops.
SILENCE_FRAME = b"\xf8\xff\xfe"
# RFC 6716: a packet carries at most 120 ms.
MAX_PACKET_SAMPLES = 5760

_CTL_RESET_STATE = 4028


class OpusUnavailable(RuntimeError):
    """libopus could not be loaded (install the system package libopus0)."""


class OpusDecodeError(ValueError):
    """libopus rejected a packet."""


def _lib() -> ctypes.CDLL:
    from discord import opus as dopus

    if not dopus.is_loaded() and not dopus._load_default():
        raise OpusUnavailable("libopus is not loaded; install libopus0 (Debian) or opus (macOS)")
    return dopus._lib


def packet_samples(packet: bytes) -> int:
    """Samples per channel at 48 kHz in an Opus packet, from its TOC (RFC 6716 3.1).

    Parsing in Python keeps the jitter buffer independent of libopus and lets it size gaps
    before anything is decoded.
    """
    if not packet:
        raise OpusDecodeError("empty Opus packet")
    toc = packet[0]
    config = toc >> 3
    if config < 12:  # SILK: 10, 20, 40, 60 ms
        per_frame = (480, 960, 1920, 2880)[config & 3]
    elif config < 16:  # hybrid: 10, 20 ms
        per_frame = 480 if config & 1 == 0 else 960
    else:  # CELT: 2.5, 5, 10, 20 ms
        per_frame = (120, 240, 480, 960)[config & 3]
    code = toc & 3
    if code == 0:
        frames = 1
    elif code in (1, 2):
        frames = 2
    else:
        if len(packet) < 2:
            raise OpusDecodeError("code-3 Opus packet without a frame count")
        frames = packet[1] & 0x3F
        if frames == 0:
            raise OpusDecodeError("Opus packet with zero frames")
    samples = per_frame * frames
    if samples > MAX_PACKET_SAMPLES:
        raise OpusDecodeError(f"Opus packet of {samples} samples exceeds 120 ms")
    return samples


@dataclass(frozen=True, slots=True)
class DecodedAudio:
    pcm: np.ndarray  # (samples, 2) int16
    concealed: bool


class OpusStreamDecoder:
    """One libopus decoder per SSRC: Opus state is per stream and must see packets in order."""

    def __init__(self) -> None:
        lib = _lib()
        err = ctypes.c_int()
        self._lib = lib
        self._state = lib.opus_decoder_create(SAMPLE_RATE, CHANNELS, ctypes.byref(err))
        self._buf = np.zeros((MAX_PACKET_SAMPLES, CHANNELS), dtype=np.int16)
        self._buf_ptr = self._buf.ctypes.data_as(ctypes.POINTER(ctypes.c_int16))
        self._last_samples = FRAME_20MS
        self.decoded_any = False

    def __del__(self) -> None:
        state = getattr(self, "_state", None)
        if state is not None:
            self._lib.opus_decoder_destroy(state)
            self._state = None

    def _run(self, data: bytes | None, frame_size: int, fec: bool) -> np.ndarray:
        from discord.opus import OpusError

        try:
            n = self._lib.opus_decode(
                self._state, data, len(data) if data else 0, self._buf_ptr, frame_size, 1 if fec else 0
            )
        except OpusError as exc:
            raise OpusDecodeError(str(exc)) from exc
        return self._buf[:n].copy()

    def decode(self, packet: bytes) -> DecodedAudio:
        if packet == SILENCE_FRAME:
            # Pure zeros without touching libopus: the frame carries no signal and feeding it
            # would only flush the decoder's overlap into the next talk spurt.
            self._last_samples = FRAME_20MS
            return DecodedAudio(np.zeros((FRAME_20MS, CHANNELS), dtype=np.int16), concealed=False)
        samples = packet_samples(packet)
        pcm = self._run(packet, samples, fec=False)
        self._last_samples = samples
        self.decoded_any = True
        return DecodedAudio(pcm, concealed=False)

    def conceal(self, samples: int, next_packet: bytes | None) -> DecodedAudio:
        """Audio for a lost packet of ``samples`` length.

        With the following packet at hand, libopus rebuilds the lost frame from that packet's
        in-band FEC (LBRR) data and falls back to PLC by itself when it has none.
        """
        samples = max(120, min(samples, MAX_PACKET_SAMPLES))
        if not self.decoded_any:
            # Nothing to extrapolate from yet: silence is the honest concealment.
            return DecodedAudio(np.zeros((samples, CHANNELS), dtype=np.int16), concealed=True)
        if next_packet is not None and next_packet != SILENCE_FRAME:
            try:
                return DecodedAudio(self._run(next_packet, samples, fec=True), concealed=True)
            except OpusDecodeError:
                pass  # a corrupt successor: plain PLC below
        try:
            pcm = self._run(None, samples, fec=False)
        except OpusDecodeError:
            pcm = np.zeros((samples, CHANNELS), dtype=np.int16)
        if pcm.shape[0] != samples:
            # libopus conceals in whole frames of the last packet; keep the timeline exact.
            fixed = np.zeros((samples, CHANNELS), dtype=np.int16)
            n = min(samples, pcm.shape[0])
            fixed[:n] = pcm[:n]
            pcm = fixed
        return DecodedAudio(pcm, concealed=True)

    def reset(self) -> None:
        self._lib.opus_decoder_ctl(self._state, _CTL_RESET_STATE)
        self.decoded_any = False
