"""Opus decoding of real speech: TOC durations, FEC recovery, concealment, Discord silence."""

from __future__ import annotations

import numpy as np
import pytest

from bot.voice.opus import SILENCE_FRAME, OpusDecodeError, OpusStreamDecoder, packet_samples
from tests.voice.conftest_core import FRAME, encode_opus, load_speech, speech_file


@pytest.fixture(scope="module")
def speech() -> tuple[np.ndarray, list[bytes]]:
    pcm = load_speech(speech_file("1998", 0), 4.0)
    return pcm, encode_opus(pcm)


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    a = a.astype(np.float64).ravel()
    b = b.astype(np.float64).ravel()
    d = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / d) if d else 0.0


def test_toc_durations_match_libopus(speech) -> None:
    from discord.opus import Decoder

    _, packets = speech
    for p in packets[:50] + [SILENCE_FRAME]:
        assert packet_samples(p) == Decoder.packet_get_nb_frames(p) * Decoder.packet_get_samples_per_frame(p)
    # code 3: 3 frames of 20 ms CELT
    assert packet_samples(bytes([(31 << 3) | 3, 3])) == 2880
    for bad in (b"", bytes([(31 << 3) | 3]), bytes([(31 << 3) | 3, 0]), bytes([(31 << 3) | 3, 7])):
        with pytest.raises(OpusDecodeError):
            packet_samples(bad)


def test_decodes_real_speech_to_48k_stereo_int16(speech) -> None:
    pcm, packets = speech
    dec = OpusStreamDecoder()
    out = np.concatenate([dec.decode(p).pcm for p in packets])
    assert out.dtype == np.int16 and out.shape[1] == 2
    assert out.shape[0] == len(packets) * FRAME
    # libopus delays by its 312-sample pre-skip at 48 kHz
    n = pcm.shape[0] - 1000
    assert _corr(out[312 : 312 + n], pcm[:n]) > 0.95


def test_fec_recovers_a_lost_frame_better_than_plc(speech) -> None:
    pcm, packets = speech
    # pick voiced frames so the comparison is about speech, not silence
    energy = [float(np.abs(pcm[i * FRAME : (i + 1) * FRAME]).mean()) for i in range(len(packets))]
    voiced = [i for i in range(10, len(packets) - 2) if energy[i] > np.percentile(energy, 70)][:15]
    fec_wins = 0
    for lost in voiced:
        ref_dec = OpusStreamDecoder()
        ref = [ref_dec.decode(p).pcm for p in packets[: lost + 1]][lost]
        with_fec = OpusStreamDecoder()
        plc = OpusStreamDecoder()
        for p in packets[:lost]:
            with_fec.decode(p)
            plc.decode(p)
        a = with_fec.conceal(FRAME, packets[lost + 1])
        b = plc.conceal(FRAME, None)
        assert a.concealed and a.pcm.shape == (FRAME, 2) and b.pcm.shape == (FRAME, 2)
        fec_wins += _corr(a.pcm, ref) > _corr(b.pcm, ref)
    assert fec_wins >= 0.7 * len(voiced)


def test_discord_silence_frame_is_zeros_and_keeps_state_clean(speech) -> None:
    _, packets = speech
    dec = OpusStreamDecoder()
    out = dec.decode(SILENCE_FRAME)
    assert out.pcm.shape == (FRAME, 2) and not out.pcm.any()
    # concealment before any real audio is silence, not noise
    assert not dec.conceal(FRAME, packets[0]).pcm.any()


def test_garbage_packet_raises_decode_error() -> None:
    dec = OpusStreamDecoder()
    with pytest.raises(OpusDecodeError):
        dec.decode(bytes([0x0F, 0xFF]) + b"\xff" * 3)  # code 3: 63 frames, over 120 ms
    with pytest.raises(OpusDecodeError):
        dec.decode(bytes([0x0A, 0xFF, 0x01]))  # code 2: first frame longer than the packet
