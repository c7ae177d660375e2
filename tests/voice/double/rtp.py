"""RTP packets as Discord's voice servers relay them, with the *_rtpsize transport encryption.

Written independently of bot/voice/transport.py on purpose: a shared bug would make both
sides agree and the tests pass against a wire format Discord does not use.

rtpsize modes (Discord voice docs, "Transport Encryption Modes"): the fixed header, any CSRCs
and the 4-byte extension preamble (0xBEDE + length in words) are authenticated but sent in
clear; the extension *body* is encrypted together with the payload. A 32-bit big-endian
counter is appended after the ciphertext; the nonce is that counter zero-padded to the
cipher's nonce size (24 bytes for XChaCha20, 12 for AES-GCM).
"""

from __future__ import annotations

import struct

import nacl.bindings
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

OPUS_PT = 0x78
OPUS_SILENCE = b"\xf8\xff\xfe"


def header(
    seq: int, timestamp: int, ssrc: int, *, extension: bytes | None, padding: bool = False
) -> tuple[bytes, bytes]:
    """Return (clear header incl. extension preamble, extension body to encrypt)."""
    first = 0x80 | (0x20 if padding else 0) | (0x10 if extension is not None else 0)
    fixed = struct.pack(">BBHII", first, OPUS_PT, seq & 0xFFFF, timestamp & 0xFFFFFFFF, ssrc)
    if extension is None:
        return fixed, b""
    if len(extension) % 4:
        raise ValueError("extension body must be whole 32-bit words")
    return fixed + struct.pack(">HH", 0xBEDE, len(extension) // 4), extension


def audio_level_extension(level: int = 30) -> bytes:
    # One-byte header extension id 1 (ssrc-audio-level, what Discord clients send), padded.
    return bytes([0x10, 0x80 | level, 0x00, 0x00])


def receiver_report(ssrc: int) -> bytes:
    """An empty RTCP receiver report (PT 201), as voice servers interleave with media."""
    return struct.pack(">BBHI", 0x80, 201, 1, ssrc)


def transport_feedback(sender_ssrc: int, media_ssrc: int) -> bytes:
    """RTCP transport-wide congestion control feedback (PT 205, FMT 15), as WebRTC sends it:
    base sequence 1, one run-length chunk of 2 packets, 2 small deltas, padded to 32 bits."""
    fci = struct.pack(">HHI", 1, 2, 0x00100000) + struct.pack(">H", 0x2002) + bytes([4, 8])
    body = struct.pack(">II", sender_ssrc, media_ssrc) + fci
    return struct.pack(">BBH", 0x80 | 15, 205, len(body) // 4) + body


def picture_loss(sender_ssrc: int, media_ssrc: int) -> bytes:
    """RTCP picture loss indication (PT 206, FMT 1, RFC 4585 6.3.1)."""
    return struct.pack(">BBHII", 0x80 | 1, 206, 2, sender_ssrc, media_ssrc)


def encrypt(mode: str, key: bytes, clear_header: bytes, plaintext: bytes, counter: int) -> bytes:
    suffix = struct.pack(">I", counter & 0xFFFFFFFF)
    if mode == "aead_xchacha20_poly1305_rtpsize":
        nonce = suffix + bytes(20)
        sealed = nacl.bindings.crypto_aead_xchacha20poly1305_ietf_encrypt(plaintext, clear_header, nonce, key)
    elif mode == "aead_aes256_gcm_rtpsize":
        sealed = AESGCM(key).encrypt(suffix + bytes(8), plaintext, clear_header)
    else:
        raise ValueError(f"the double does not speak {mode}")
    return clear_header + sealed + suffix


def packet(
    mode: str,
    key: bytes,
    *,
    seq: int,
    timestamp: int,
    ssrc: int,
    payload: bytes,
    counter: int,
    extension: bytes | None = None,
) -> bytes:
    clear, ext_body = header(seq, timestamp, ssrc, extension=extension)
    return encrypt(mode, key, clear, ext_body + payload, counter)


def padding_packet(
    mode: str, key: bytes, *, seq: int, timestamp: int, ssrc: int, counter: int, pad: int, extension: bytes | None
) -> bytes:
    """RTP with the padding bit and no payload: ``pad`` bytes of padding, the last one
    giving their count (RFC 3550 5.1), encrypted with the extension body."""
    if not 1 <= pad <= 255:
        raise ValueError("RTP padding is 1..255 bytes")
    clear, ext_body = header(seq, timestamp, ssrc, extension=extension, padding=True)
    return encrypt(mode, key, clear, ext_body + bytes(pad - 1) + bytes([pad]), counter)


def decrypt(mode: str, key: bytes, packet: bytes) -> tuple[int, bytes]:
    """Open an rtpsize packet: (clear header length, plaintext after the extension body)."""
    cc = packet[0] & 0x0F
    header_len = 12 + 4 * cc
    ext_words = 0
    if packet[0] & 0x10:
        ext_words = struct.unpack_from(">H", packet, header_len + 2)[0]
        header_len += 4
    clear, sealed, suffix = packet[:header_len], packet[header_len:-4], packet[-4:]
    if mode == "aead_xchacha20_poly1305_rtpsize":
        plain = nacl.bindings.crypto_aead_xchacha20poly1305_ietf_decrypt(sealed, clear, suffix + bytes(20), key)
    elif mode == "aead_aes256_gcm_rtpsize":
        plain = AESGCM(key).decrypt(suffix + bytes(8), sealed, clear)
    else:
        raise ValueError(f"the double does not speak {mode}")
    return header_len, plain[4 * ext_words :]
