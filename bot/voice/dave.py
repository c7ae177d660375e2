"""The DAVE (end-to-end encryption) step of the receive path, as the DAVE whitepaper states it.

davey keeps the MLS group, the per-sender key ratchets and the previous epoch's keys for the
transition window; this step decides what it may be handed and what may reach the Opus
decoder (discord/dave-protocol, protocol.md: "Passthrough Mode", "Protocol Frame Check",
"Silence Packets"):

* Discord's 3-byte Opus silence frame is never end-to-end encrypted: it always passes.
* A frame that passes the *protocol frame check* (:func:`is_protocol_frame`) is a DAVE
  frame. It is decrypted with davey or dropped and counted; it is never passed through,
  in any state: undecryptable ciphertext fed to Opus is loud noise, and Whisper makes
  words of noise.
* Any other frame is plain Opus. It passes only while the call is transport-only or in an
  upgrade/downgrade transition (the policy's ``plain_until``); otherwise it is refused.
* After a downgrade the old keys stay usable for the transition window (``keys_until``)
  so that frames still in flight decrypt; after it protocol frames are dropped.

The policy comes from the voice gateway's transitions (see :mod:`bot.voice.e2ee`); times
are compared with the frame's arrival.
"""

from __future__ import annotations

import enum
import logging
import math
from dataclasses import dataclass
from typing import Any

from bot.voice.opus import SILENCE_FRAME

log = logging.getLogger(__name__)

# DAVE protocol: every encrypted media frame ends with this 2-byte marker, preceded by one
# byte giving the size of the supplemental data (tag, nonce, ranges, size byte, marker).
DAVE_MAGIC = b"\xfa\xfa"
_TAG_BYTES = 8  # AES-128-GCM tag, truncated
MIN_SUPPLEMENTAL = _TAG_BYTES + 1 + len(DAVE_MAGIC)
_LEB128_MAX = 10  # bytes of a ULEB128 that still fits 64 bits


class FrameOutcome(enum.StrEnum):
    DECRYPTED = "decrypted"
    SILENCE = "silence"
    PASSTHROUGH = "passthrough"  # plain Opus where the policy allows it
    UNDECRYPTABLE = "undecryptable"  # a DAVE frame davey could not decrypt: dropped
    PLAIN_REFUSED = "plain_refused"  # plain Opus where E2EE is required: dropped


def _uleb128(data: bytes, pos: int, end: int) -> tuple[int, int] | None:
    """(value, position after it), or None if it does not end before ``end`` (as libdave
    reads it: at most 10 bytes, the 10th carrying at most one bit)."""
    value = shift = 0
    for i in range(_LEB128_MAX):
        if pos >= end:
            return None
        byte = data[pos]
        pos += 1
        if i == _LEB128_MAX - 1:
            return (value | (byte << shift), pos) if byte <= 1 else None
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, pos
    return None


def is_protocol_frame(frame: bytes) -> bool:
    """The whitepaper's protocol frame check: big enough for the supplemental data, the
    0xFAFA marker, a plausible supplemental size, a ULEB128 nonce, and unencrypted ranges
    that are valid ULEB128 pairs, ascending, disjoint and inside the frame."""
    size = len(frame)
    if size < MIN_SUPPLEMENTAL or not frame.endswith(DAVE_MAGIC):
        return False
    supplemental = frame[-3]
    if supplemental < MIN_SUPPLEMENTAL or supplemental > size:
        return False
    pos = size - supplemental + _TAG_BYTES  # the nonce follows the truncated tag
    end = size - 3  # up to the size byte
    nonce = _uleb128(frame, pos, end)
    if nonce is None:
        return False
    pos = nonce[1]
    ranges: list[tuple[int, int]] = []
    while pos < end:
        start = _uleb128(frame, pos, end)
        if start is None:
            return False
        length = _uleb128(frame, start[1], end)
        if length is None:
            return False
        ranges.append((start[0], length[0]))
        pos = length[1]
    for i, (offset, count) in enumerate(ranges):
        limit = ranges[i + 1][0] if i + 1 < len(ranges) else size
        if offset + count > limit:
            return False
    return True


@dataclass(frozen=True, slots=True)
class E2eePolicy:
    """What the DAVE step accepts, decided by the gateway's protocol transitions.

    ``session`` is the davey.DaveSession (None when none exists). Plain frames arriving
    before ``plain_until`` pass; protocol frames arriving before ``keys_until`` are tried
    with the session. Times are ``time.monotonic()``; ``inf``/``-inf`` for always/never.
    """

    session: Any | None = None
    plain_until: float = math.inf
    keys_until: float = -math.inf

    @classmethod
    def transport_only(cls) -> E2eePolicy:
        return cls()

    @classmethod
    def required(cls, session: Any) -> E2eePolicy:
        return cls(session, -math.inf, math.inf)


@dataclass(slots=True)
class DaveCounts:
    decrypted: int = 0
    silence: int = 0
    passthrough: int = 0
    undecryptable: int = 0
    plain_refused: int = 0


def _audio_media_type() -> Any:
    import davey

    return davey.MediaType.audio


class DaveDecryptor:
    def __init__(self, policy: E2eePolicy | None = None) -> None:
        self._policy = policy or E2eePolicy.transport_only()
        self._audio: Any | None = None
        self.counts = DaveCounts()
        self._last_epoch: object = None

    @property
    def policy(self) -> E2eePolicy:
        return self._policy

    @property
    def session(self) -> Any | None:
        return self._policy.session

    def set_policy(self, policy: E2eePolicy) -> None:
        self._policy = policy
        self._last_epoch = None

    def decrypt(self, user_id: int, frame: bytes, arrival: float) -> tuple[FrameOutcome, bytes | None]:
        """(outcome, Opus to decode or None). ``arrival`` is when the datagram arrived."""
        counts = self.counts
        if frame == SILENCE_FRAME:
            counts.silence += 1
            return FrameOutcome.SILENCE, frame
        policy = self._policy
        if not is_protocol_frame(frame):
            if arrival < policy.plain_until:
                counts.passthrough += 1
                return FrameOutcome.PASSTHROUGH, frame
            counts.plain_refused += 1
            return FrameOutcome.PLAIN_REFUSED, None
        session = policy.session
        if session is None or arrival >= policy.keys_until:
            counts.undecryptable += 1
            return FrameOutcome.UNDECRYPTABLE, None
        if self._audio is None:
            self._audio = _audio_media_type()
        try:
            plain = bytes(session.decrypt(user_id, self._audio, frame))
        except Exception as exc:
            # No decryptor for this user (not in our group yet: before the welcome, after a
            # group re-creation), a key the epoch no longer has, a replay, or forged bytes.
            counts.undecryptable += 1
            self._note_failure(session, user_id, exc)
            return FrameOutcome.UNDECRYPTABLE, None
        if len(plain) >= len(frame):
            # davey passed it through untouched (its passthrough flag, set by discord.py, is
            # on and its parser disagreed with ours): a real decryption strips the
            # supplemental bytes, so this is still ciphertext.
            counts.undecryptable += 1
            return FrameOutcome.UNDECRYPTABLE, None
        counts.decrypted += 1
        return FrameOutcome.DECRYPTED, plain

    def _note_failure(self, session: Any, user_id: int, exc: Exception) -> None:
        # Failures cluster around epoch changes and joins (frames under keys we do not
        # have); logging the epoch makes that visible without logging every packet.
        try:
            epoch = session.epoch
        except Exception:
            epoch = None
        n = self.counts.undecryptable
        if epoch != self._last_epoch or n in (1, 10, 100) or n % 1000 == 0:
            log.info("DAVE frame of user %d not decryptable at epoch %s (%d so far): %s", user_id, epoch, n, exc)
            self._last_epoch = epoch
