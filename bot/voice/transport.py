"""Discord voice transport encryption: the two AEAD *_rtpsize modes Discord still accepts.

Packet layout for both modes: ``clear header || ciphertext || 16-byte tag || 4-byte counter``.
The clear header (fixed header, CSRCs, 4-byte extension prefix) is the AAD; the 32-bit
big-endian counter is left-aligned in an all-zero nonce of the cipher's length (24 bytes for
XChaCha20-Poly1305, 12 for AES-256-GCM), as discord.py 2.7.1 builds it when sending.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from nacl import bindings as sodium
from nacl.exceptions import CryptoError

XCHACHA20 = "aead_xchacha20_poly1305_rtpsize"
AES256_GCM = "aead_aes256_gcm_rtpsize"
SUPPORTED_MODES = (AES256_GCM, XCHACHA20)

NONCE_SUFFIX = 4
TAG_LEN = 16
KEY_LEN = 32


class TransportError(ValueError):
    """A packet that does not authenticate or is too short to hold tag and nonce."""


class TransportCipher(Protocol):
    mode: str

    def decrypt(self, packet: bytes, header_len: int) -> bytes: ...

    def encrypt(self, header: bytes, plaintext: bytes, counter: int) -> bytes: ...


def _split(packet: bytes, header_len: int) -> tuple[bytes, bytes, bytes]:
    if len(packet) < header_len + TAG_LEN + NONCE_SUFFIX:
        raise TransportError(f"packet of {len(packet)} bytes too short for tag and nonce")
    return packet[:header_len], packet[header_len:-NONCE_SUFFIX], packet[-NONCE_SUFFIX:]


@dataclass(slots=True)
class XChaChaCipher:
    key: bytes
    mode: str = XCHACHA20

    def decrypt(self, packet: bytes, header_len: int) -> bytes:
        aad, sealed, counter = _split(packet, header_len)
        try:
            return sodium.crypto_aead_xchacha20poly1305_ietf_decrypt(sealed, aad, counter + bytes(20), self.key)
        except CryptoError as exc:
            raise TransportError("xchacha20-poly1305 authentication failed") from exc

    def encrypt(self, header: bytes, plaintext: bytes, counter: int) -> bytes:
        suffix = struct.pack(">I", counter & 0xFFFFFFFF)
        sealed = sodium.crypto_aead_xchacha20poly1305_ietf_encrypt(plaintext, header, suffix + bytes(20), self.key)
        return header + sealed + suffix


@dataclass(slots=True)
class AesGcmCipher:
    key: bytes
    mode: str = AES256_GCM
    _aead: AESGCM | None = None

    def __post_init__(self) -> None:
        # Building the AESGCM object expands the key schedule; do it once per key.
        self._aead = AESGCM(self.key)

    def decrypt(self, packet: bytes, header_len: int) -> bytes:
        aad, sealed, counter = _split(packet, header_len)
        assert self._aead is not None
        try:
            return self._aead.decrypt(counter + bytes(8), sealed, aad)
        except InvalidTag as exc:
            raise TransportError("aes-256-gcm authentication failed") from exc

    def encrypt(self, header: bytes, plaintext: bytes, counter: int) -> bytes:
        assert self._aead is not None
        suffix = struct.pack(">I", counter & 0xFFFFFFFF)
        return header + self._aead.encrypt(suffix + bytes(8), plaintext, header) + suffix


_FACTORIES: dict[str, Callable[[bytes], TransportCipher]] = {
    XCHACHA20: XChaChaCipher,
    AES256_GCM: AesGcmCipher,
}


def make_cipher(mode: str, secret_key: bytes | bytearray | list[int]) -> TransportCipher:
    """Cipher for the ``mode`` and ``secret_key`` of a SESSION_DESCRIPTION (op 4).

    discord.py keeps the key as a list of ints, so any byte-like sequence is accepted.
    """
    key = bytes(secret_key)
    if len(key) != KEY_LEN:
        raise ValueError(f"voice secret key must be {KEY_LEN} bytes, got {len(key)}")
    try:
        factory = _FACTORIES[mode]
    except KeyError:
        raise ValueError(
            f"unsupported voice encryption mode {mode!r}; supported: {', '.join(SUPPORTED_MODES)}"
        ) from None
    return factory(key)
