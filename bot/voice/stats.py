"""Per-speaker receive counters, and a log line when a failure counter grows past a threshold."""

from __future__ import annotations

import logging
from dataclasses import dataclass, fields

log = logging.getLogger(__name__)

FAILURE_COUNTERS = (
    "lost",
    "late",
    "decrypt_failures",
    "e2ee_failures",
    "plain_refused",
    "decode_failures",
    "parse_failures",
    "unknown_ssrc",
)


@dataclass(slots=True)
class ReceiveStats:
    """Counts for one user (or one not-yet-mapped SSRC).

    Every RTP datagram attributed to the stream is counted once in ``received`` and ends in
    exactly one of: ``accepted`` (into the jitter buffer), ``padding`` (a padding-only
    packet: it takes a sequence number and carries no audio), ``late``, ``duplicates``
    (another copy of a packet already accepted or counted late; recognised before DAVE,
    which would refuse it as a replay), ``decrypt_failures`` (transport decryption),
    ``e2ee_failures`` (a DAVE frame that did not decrypt: dropped, never decoded),
    ``plain_refused`` (a frame without DAVE where the call requires it), ``parse_failures``
    (bad header extension/padding or Opus TOC), ``dropped_opted_out`` or ``unknown_ssrc``
    (held too long without a user mapping, or sent on the SSRC of someone who left); or it
    is still held waiting for a mapping, or (with DAVE) for its turn to be decrypted in
    sequence order, a moment at most. Accepted packets are
    later ``played``, end in ``decode_failures`` (concealed instead), or are ``discarded``
    unplayed (the user opted out while they were buffered, or the sender restarted its
    sequence numbers). ``lost`` and ``concealed`` count missing packets, which were never
    received, so they are outside that sum; so is ``passthrough``, the accepted frames that
    were plain Opus in a call with DAVE (transport-only, or during a transition).
    """

    received: int = 0
    accepted: int = 0
    played: int = 0
    lost: int = 0
    concealed: int = 0
    late: int = 0
    duplicates: int = 0
    decrypt_failures: int = 0
    e2ee_failures: int = 0
    plain_refused: int = 0
    padding: int = 0
    decode_failures: int = 0
    discarded: int = 0
    parse_failures: int = 0
    unknown_ssrc: int = 0
    dropped_opted_out: int = 0
    passthrough: int = 0

    def copy(self) -> ReceiveStats:
        return ReceiveStats(**{f.name: getattr(self, f.name) for f in fields(self)})

    def merge(self, other: ReceiveStats) -> None:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))

    def terminal_sum(self) -> int:
        """Sum of the outcomes every received datagram ends in (see the class docstring)."""
        return (
            self.accepted
            + self.late
            + self.duplicates
            + self.decrypt_failures
            + self.e2ee_failures
            + self.plain_refused
            + self.padding
            + self.parse_failures
            + self.dropped_opted_out
            + self.unknown_ssrc
        )


class FailureWatch:
    """Logs a warning each time a failure counter reaches the next multiple of ``every``.

    Multiples rather than a single crossing: a stream that keeps failing should keep saying
    so, but not once per packet.
    """

    def __init__(self, every: int = 50) -> None:
        self.every = every
        self._next: dict[tuple[str, int, str], int] = {}

    def check(self, kind: str, key: int, stats: ReceiveStats) -> None:
        for name in FAILURE_COUNTERS:
            value = getattr(stats, name)
            mark = self._next.get((kind, key, name), self.every)
            if value >= mark:
                log.warning("voice receive: %s %d has %d %s (%s)", kind, key, value, name, _summary(stats))
                self._next[(kind, key, name)] = (value // self.every + 1) * self.every


def _summary(stats: ReceiveStats) -> str:
    return ", ".join(f"{f.name}={getattr(stats, f.name)}" for f in fields(stats) if getattr(stats, f.name))
