"""RTP header parsing (RFC 3550) as Discord's voice UDP uses it.

Discord's *_rtpsize transport modes authenticate, but do not encrypt, the fixed header, the
CSRC list and the 4-byte header-extension prefix (profile + length); the extension *body* is
encrypted together with the payload. So parsing happens in two steps: :func:`parse_rtp` reads
what is in clear, and :func:`strip_after_decrypt` removes the extension body and any padding
from the decrypted bytes.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

RTP_VERSION = 2
FIXED_HEADER = 12
# RFC 8285 one-byte header extension profile, the only one Discord sends.
ONE_BYTE_EXTENSION_PROFILE = 0xBEDE
# RTCP's packet type sits where RTP has marker + payload type. RFC 5761 section 4 keeps
# 192..223 for RTCP when both share a port; Discord sends SR/RR (200, 201) and, from WebRTC
# clients, transport-layer (205: NACK, transport-cc) and payload-specific (206: PLI)
# feedback, which the old 200..204 range took for RTP with payload type 77/78.
RTCP_TYPES = range(192, 224)

_HEADER = struct.Struct(">BBHII")
_EXT_PREFIX = struct.Struct(">HH")


class RtpError(ValueError):
    """A datagram that is not a usable RTP packet. The receiver counts it and drops it."""


@dataclass(frozen=True, slots=True)
class RtpHeader:
    """The clear part of one RTP packet.

    ``header_len`` covers exactly the bytes the rtpsize modes use as AAD: fixed header, CSRCs
    and, when ``extension`` is set, the 4-byte extension prefix. ``extension_len`` is the
    length in bytes of the (encrypted) extension body that follows.
    """

    marker: bool
    payload_type: int
    sequence: int
    timestamp: int
    ssrc: int
    padding: bool
    extension: bool
    csrcs: tuple[int, ...]
    extension_profile: int | None
    extension_len: int
    header_len: int


def is_rtcp(datagram: bytes) -> bool:
    return len(datagram) >= 2 and datagram[1] in RTCP_TYPES and (datagram[0] >> 6) == RTP_VERSION


def rtcp_type(datagram: bytes) -> int | None:
    """The RTCP packet type (200 SR, 201 RR, 205 RTPFB, 206 PSFB ...), or None for non-RTCP."""
    return datagram[1] if is_rtcp(datagram) else None


def parse_rtp(datagram: bytes) -> RtpHeader:
    if len(datagram) < FIXED_HEADER:
        raise RtpError(f"datagram of {len(datagram)} bytes is shorter than an RTP header")
    b0, b1, sequence, timestamp, ssrc = _HEADER.unpack_from(datagram, 0)
    version = b0 >> 6
    if version != RTP_VERSION:
        raise RtpError(f"RTP version {version}, expected {RTP_VERSION}")
    if b1 in RTCP_TYPES:
        raise RtpError("RTCP packet, not RTP")
    padding = bool(b0 & 0x20)
    extension = bool(b0 & 0x10)
    cc = b0 & 0x0F
    offset = FIXED_HEADER + 4 * cc
    if len(datagram) < offset:
        raise RtpError(f"datagram too short for {cc} CSRCs")
    csrcs = struct.unpack_from(f">{cc}I", datagram, FIXED_HEADER) if cc else ()
    profile: int | None = None
    ext_len = 0
    if extension:
        if len(datagram) < offset + 4:
            raise RtpError("datagram too short for the header extension prefix")
        profile, words = _EXT_PREFIX.unpack_from(datagram, offset)
        offset += 4
        ext_len = 4 * words
    return RtpHeader(
        marker=bool(b1 & 0x80),
        payload_type=b1 & 0x7F,
        sequence=sequence,
        timestamp=timestamp,
        ssrc=ssrc,
        padding=padding,
        extension=extension,
        csrcs=tuple(csrcs),
        extension_profile=profile,
        extension_len=ext_len,
        header_len=offset,
    )


def strip_after_decrypt(header: RtpHeader, plaintext: bytes) -> bytes:
    """Return the media payload of a decrypted rtpsize packet body.

    The body starts with the extension body (if any) and may end with RTP padding whose last
    byte is its own length (RFC 3550 5.1).
    """
    end = len(plaintext)
    if header.padding:
        if end == 0:
            raise RtpError("padding bit set on an empty payload")
        pad = plaintext[-1]
        if pad == 0 or pad > end - header.extension_len:
            raise RtpError(f"invalid RTP padding length {pad}")
        end -= pad
    if header.extension_len > end:
        raise RtpError("header extension longer than the packet body")
    return plaintext[header.extension_len : end]


def build_rtp_header(
    sequence: int,
    timestamp: int,
    ssrc: int,
    *,
    payload_type: int = 0x78,
    marker: bool = False,
    csrcs: tuple[int, ...] = (),
    extension_words: int | None = None,
    padding: bool = False,
) -> bytes:
    """Clear header bytes (the AAD) as a Discord client sends them; for tests and benchmarks.

    ``extension_words`` adds the 0xBEDE prefix announcing that many 32-bit words of extension
    body; the caller puts the body at the start of the plaintext it encrypts.
    """
    b0 = (RTP_VERSION << 6) | (0x20 if padding else 0) | (0x10 if extension_words is not None else 0) | len(csrcs)
    b1 = (0x80 if marker else 0) | (payload_type & 0x7F)
    out = bytearray(_HEADER.pack(b0, b1, sequence & 0xFFFF, timestamp & 0xFFFFFFFF, ssrc & 0xFFFFFFFF))
    for csrc in csrcs:
        out += struct.pack(">I", csrc)
    if extension_words is not None:
        out += _EXT_PREFIX.pack(ONE_BYTE_EXTENSION_PROFILE, extension_words)
    return bytes(out)
