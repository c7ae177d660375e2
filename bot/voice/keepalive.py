"""UDP keepalive on the voice socket: what keeps Discord sending audio to a bot that never speaks.

discord.py 2.7.1 sends nothing on the voice socket after IP discovery unless it plays audio,
and Discord stops forwarding media to a client whose UDP path has gone quiet (receivers
report audio stopping after minutes: discord-ext-voice-recv #8, py-cord #3388). Discord's own
desktop client sends an 8-byte datagram every 5 s for the whole call, ``13 37 CA FE``
followed by a little-endian 32-bit counter, and the voice server echoes it back unchanged
(seen in the real client captures of ntop/nDPI's test data: tests/cfgs/default/pcap/
discord*.pcap). This module builds those datagrams, recognises their echoes and keeps count;
the voice client owns the timer and the socket.
"""

from __future__ import annotations

import struct
import threading
from collections import OrderedDict
from dataclasses import dataclass

MAGIC = b"\x13\x37\xca\xfe"
SIZE = 8
INTERVAL = 5.0  # seconds, as Discord's client and discord.js send it
# Counters remembered while their echo may still come (a minute of them at 5 s).
_OUTSTANDING = 12


@dataclass(frozen=True, slots=True)
class KeepaliveCounts:
    sent: int = 0
    answered: int = 0  # echoes of a keepalive we sent (each counted once)
    send_errors: int = 0  # the socket refused it (closed or replaced mid-reconnect)
    unmatched: int = 0  # 8-byte keepalive-shaped datagrams that echo nothing we sent
    last_rtt: float | None = None  # seconds, from the latest answered keepalive


def payload(counter: int) -> bytes:
    return MAGIC + struct.pack("<I", counter & 0xFFFFFFFF)


def parse(datagram: bytes) -> int | None:
    """The counter of a keepalive (or its echo), or None if the datagram is not one."""
    if len(datagram) != SIZE or not datagram.startswith(MAGIC):
        return None
    return int(struct.unpack_from("<I", datagram, 4)[0])


class KeepaliveTracker:
    """Counts keepalives sent and answered. ``next`` runs on the event loop, ``echo`` on
    discord.py's socket reader thread, hence the lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counter = 0
        self._outstanding: OrderedDict[int, float] = OrderedDict()
        self._counts = KeepaliveCounts()

    def next(self, now: float) -> bytes:
        with self._lock:
            counter = self._counter
            self._counter = (self._counter + 1) & 0xFFFFFFFF
            self._outstanding[counter] = now
            while len(self._outstanding) > _OUTSTANDING:
                self._outstanding.popitem(last=False)
            c = self._counts
            self._counts = KeepaliveCounts(c.sent + 1, c.answered, c.send_errors, c.unmatched, c.last_rtt)
            return payload(counter)

    def send_failed(self) -> None:
        with self._lock:
            c = self._counts
            self._counts = KeepaliveCounts(c.sent, c.answered, c.send_errors + 1, c.unmatched, c.last_rtt)

    def echo(self, datagram: bytes, now: float) -> bool:
        """True if ``datagram`` is keepalive-shaped (answered or not): it is not media."""
        counter = parse(datagram)
        if counter is None:
            return False
        with self._lock:
            sent_at = self._outstanding.pop(counter, None)
            c = self._counts
            if sent_at is None:
                self._counts = KeepaliveCounts(c.sent, c.answered, c.send_errors, c.unmatched + 1, c.last_rtt)
            else:
                self._counts = KeepaliveCounts(c.sent, c.answered + 1, c.send_errors, c.unmatched, now - sent_at)
        return True

    @property
    def counts(self) -> KeepaliveCounts:
        return self._counts
