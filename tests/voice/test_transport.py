"""Transport ciphers against discord.py 2.7.1's own sender code, and failure behaviour."""

from __future__ import annotations

import os
import types

import pytest

from bot.voice.rtp import build_rtp_header, parse_rtp, strip_after_decrypt
from bot.voice.transport import AES256_GCM, XCHACHA20, TransportError, make_cipher

KEY = bytes(range(32))


def test_xchacha_decrypts_what_discord_py_sends() -> None:
    from discord.voice_client import VoiceClient

    # discord.py's encrypt method only reads secret_key and the nonce counter from self.
    fake = types.SimpleNamespace(secret_key=list(KEY), _incr_nonce=41, checked_add=lambda *a: None)
    header = build_rtp_header(5, 960 * 5, 99)
    packet = VoiceClient._encrypt_aead_xchacha20_poly1305_rtpsize(fake, header, b"opus-frame")
    cipher = make_cipher(XCHACHA20, KEY)
    assert cipher.decrypt(packet, parse_rtp(packet).header_len) == b"opus-frame"
    # and our encrypt produces byte-identical packets for the same counter
    assert cipher.encrypt(header, b"opus-frame", 41) == packet


@pytest.mark.parametrize("mode", [XCHACHA20, AES256_GCM])
def test_round_trip_with_extension_body(mode: str) -> None:
    cipher = make_cipher(mode, KEY)
    header = build_rtp_header(7, 1234, 55, extension_words=1)
    packet = cipher.encrypt(header, b"\x10\x01\x00\x00" + b"OPUS", 0xFFFFFFFF)
    h = parse_rtp(packet)
    assert strip_after_decrypt(h, cipher.decrypt(packet, h.header_len)) == b"OPUS"


@pytest.mark.parametrize("mode", [XCHACHA20, AES256_GCM])
def test_wrong_key_and_tampering_fail(mode: str) -> None:
    cipher = make_cipher(mode, KEY)
    header = build_rtp_header(7, 1234, 55)
    packet = cipher.encrypt(header, b"OPUS", 3)
    with pytest.raises(TransportError):
        make_cipher(mode, os.urandom(32)).decrypt(packet, 12)
    tampered_header = bytes([packet[0], packet[1], packet[2] ^ 1]) + packet[3:]  # sequence is AAD
    with pytest.raises(TransportError):
        cipher.decrypt(tampered_header, 12)
    with pytest.raises(TransportError):
        cipher.decrypt(packet[:-1], 12)
    with pytest.raises(TransportError):
        cipher.decrypt(packet[:20], 12)


def test_factory_rejects_unknown_mode_and_bad_key() -> None:
    with pytest.raises(ValueError, match="unsupported"):
        make_cipher("xsalsa20_poly1305", KEY)
    with pytest.raises(ValueError, match="32 bytes"):
        make_cipher(XCHACHA20, b"short")
    # discord.py hands the key over as a list of ints
    assert make_cipher(AES256_GCM, list(KEY)).mode == AES256_GCM
