"""RTP header parsing as Discord's rtpsize modes need it (RFC 3550, RFC 8285 one-byte ext)."""

from __future__ import annotations

import struct

import pytest

from bot.voice.rtp import RtpError, build_rtp_header, is_rtcp, parse_rtp, strip_after_decrypt


def test_plain_header_fields() -> None:
    raw = build_rtp_header(0xFFFE, 0xDEADBEEF, 0x01020304, marker=True) + b"payload"
    h = parse_rtp(raw)
    assert (h.sequence, h.timestamp, h.ssrc) == (0xFFFE, 0xDEADBEEF, 0x01020304)
    assert h.marker and h.payload_type == 0x78
    assert h.header_len == 12 and not h.extension and h.csrcs == ()


def test_csrcs_and_extension_prefix_are_part_of_the_clear_header() -> None:
    raw = build_rtp_header(1, 2, 3, csrcs=(7, 8), extension_words=2) + b"\x00" * 8 + b"opus"
    h = parse_rtp(raw)
    assert h.csrcs == (7, 8)
    assert h.extension_profile == 0xBEDE
    assert h.extension_len == 8
    # 12 fixed + 8 CSRC + 4 extension prefix: exactly what is authenticated, not encrypted.
    assert h.header_len == 24


def test_extension_body_and_padding_stripped_after_decrypt() -> None:
    h = parse_rtp(build_rtp_header(1, 2, 3, extension_words=1, padding=True) + b"x" * 20)
    body = b"\x10\xaa\x00\x00" + b"OPUSDATA" + b"\x00\x00\x03"
    assert strip_after_decrypt(h, body) == b"OPUSDATA"


@pytest.mark.parametrize("pad", [0, 200])
def test_invalid_padding_rejected(pad: int) -> None:
    h = parse_rtp(build_rtp_header(1, 2, 3, padding=True) + b"x" * 20)
    with pytest.raises(RtpError):
        strip_after_decrypt(h, b"abc" + bytes([pad]))


def test_extension_longer_than_body_rejected() -> None:
    h = parse_rtp(build_rtp_header(1, 2, 3, extension_words=4) + b"x" * 20)
    with pytest.raises(RtpError):
        strip_after_decrypt(h, b"short")


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"\x80\x78\x00",
        b"\x40" + b"\x78" + b"\x00" * 10,  # version 1
        bytes([0x80 | 0x0F, 0x78]) + b"\x00" * 20,  # 15 CSRCs announced, not present
        bytes([0x90, 0x78]) + b"\x00" * 10,  # extension bit without a prefix
    ],
)
def test_malformed_headers_raise_rtp_error(raw: bytes) -> None:
    with pytest.raises(RtpError):
        parse_rtp(raw)


@pytest.mark.parametrize("pt", [200, 201, 202, 203, 204])
def test_rtcp_recognised_and_not_parsed_as_rtp(pt: int) -> None:
    # A receiver report as Discord sends them: V=2, RC=0, PT, length, SSRC.
    rr = struct.pack(">BBHI", 0x80, pt, 1, 1234)
    assert is_rtcp(rr)
    with pytest.raises(RtpError):
        parse_rtp(rr + b"\x00" * 8)


def test_rtp_with_marker_is_not_rtcp() -> None:
    assert not is_rtcp(build_rtp_header(1, 2, 3, marker=True))
