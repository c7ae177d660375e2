"""AudioReceiver: Discord voice UDP datagrams in, each user's timed 48 kHz stereo PCM out.

Path of one datagram (``feed``, any thread):
  RTCP, keepalive echo, IP discovery? -> count, ignore | parse RTP header |
  SSRC not mapped -> hold (bounded, ``unmapped_hold``) | user opted out -> drop |
  transport decrypt | already buffered, waiting or played -> duplicate |
  with DAVE: into sequence order (a frame overtaken by its successor waits a moment) |
  strip extension body/padding (padding only: a sequence number without audio) |
  DAVE step (bot.voice.dave: decrypt, silence, passthrough or drop) | jitter buffer.
``poll`` (any thread) passes on frames whose wait for sequence order is over, releases due
packets from the jitter buffers, decodes or conceals them and calls
``sink(user_id, PcmFrame)`` outside the receiver's lock.

No gateway code here: the voice client tells the receiver the transport key, the DAVE
session and SSRC -> user mappings through the setters.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from bot.audio.frames import PcmFrame
from bot.voice import keepalive
from bot.voice.dave import DaveCounts, DaveDecryptor, E2eePolicy, FrameOutcome
from bot.voice.jitter import Insert, JitterBuffer, Playout, SequenceGate
from bot.voice.opus import SAMPLE_RATE, OpusDecodeError, OpusStreamDecoder, packet_samples
from bot.voice.rtp import RtpError, RtpHeader, parse_rtp, rtcp_type, strip_after_decrypt
from bot.voice.stats import FailureWatch, ReceiveStats
from bot.voice.transport import TransportCipher, TransportError, make_cipher

log = logging.getLogger(__name__)

# Discord's Opus payload type. Other types (video, RTX, probing) are not ours to decode.
OPUS_PAYLOAD_TYPE = 120
# After a key change, packets sealed with the old key are still in flight for a moment.
OLD_KEY_GRACE = 2.0
# How long audio of an SSRC nobody has claimed yet is kept for the mapping (SPEAKING) to
# arrive. Discord sends SPEAKING as someone starts to talk, but over a websocket that may
# be down for seconds (a resume redelivers what was missed): audio arriving before it is
# held, not dropped.
UNMAPPED_HOLD = 10.0
# Bounds on what is held, so a flood from SSRCs that never get mapped cannot grow memory:
# per SSRC (10 s of 20 ms packets) and in all (about 0.5 MB of datagrams).
MAX_HELD_PER_SSRC = 500
MAX_HELD_TOTAL = 2000
# Unmapped SSRCs cost memory before anything is authenticated (spoofed datagrams can carry
# any SSRC), so only this many are tracked; the stalest is evicted first.
MAX_UNMAPPED_SSRCS = 64
# SSRCs of people who left, remembered so that datagrams still arriving on them are
# dropped at once instead of being held (and perhaps handed to whoever is mapped next).
MAX_RETIRED_SSRCS = 256
# IP discovery reply (type 2, length 70): arrives on the voice socket after reconnects.
_DISCOVERY_REPLY = b"\x00\x02\x00\x46"

Sink = Callable[[int, PcmFrame], None]


@dataclass(slots=True)
class ReceiverTotals:
    """Datagrams that never reached a user's or an SSRC's counters."""

    datagrams: int = 0
    rtcp: int = 0
    rtcp_feedback: int = 0  # of which RTPFB/PSFB (205/206: NACK, transport-cc, PLI ...)
    keepalives: int = 0  # UDP keepalive echoes (bot.voice.keepalive), when fed here
    ip_discovery: int = 0
    malformed: int = 0  # not parseable as RTP at all: no SSRC to charge it to
    other_payload_type: int = 0
    held: int = 0  # currently waiting for an SSRC mapping
    unmapped_evicted: int = 0  # datagrams of unmapped SSRCs whose counters were evicted
    retired: int = 0  # datagrams on the SSRC of someone who left
    internal_errors: int = 0


# A transport-decrypted datagram waiting for its turn at DAVE: (plain, header, arrival).
_Sealed = tuple[bytes, RtpHeader, float]


@dataclass(slots=True)
class _Stream:
    ssrc: int
    user_id: int
    jitter: JitterBuffer
    # DAVE frames go to davey in sequence order (see SequenceGate); unused without DAVE.
    dave_order: SequenceGate[_Sealed]
    decoder: OpusStreamDecoder | None = None
    lost_reported: int = 0
    discarded_reported: int = 0


@dataclass(slots=True)
class _Held:
    packets: deque[tuple[bytes, RtpHeader, float]] = field(default_factory=deque)


class AudioReceiver:
    def __init__(
        self,
        sink: Sink,
        *,
        epoch: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        playout_delay: float = 0.06,
        unmapped_hold: float = UNMAPPED_HOLD,
        opted_out: Iterable[int] = (),
        dave_reorder: float | None = None,
    ) -> None:
        self._sink = sink
        self._clock = clock
        self.epoch = clock() if epoch is None else epoch
        self.playout_delay = playout_delay
        self.unmapped_hold = unmapped_hold
        # How long a DAVE frame waits for an overtaken predecessor before it is decrypted
        # anyway. Half the playout delay: the wait ends before the frame is due to play.
        self.dave_reorder = playout_delay / 2 if dave_reorder is None else dave_reorder
        self._lock = threading.RLock()
        self._sink_lock = threading.Lock()
        self._cipher: TransportCipher | None = None
        self._old_cipher: TransportCipher | None = None
        self._old_cipher_until = 0.0
        self._dave = DaveDecryptor()
        self._ssrc_user: dict[int, int] = {}
        self._streams: dict[int, _Stream] = {}
        self._held: dict[int, _Held] = {}
        self._retired: dict[int, None] = {}  # insertion-ordered set
        self._user_stats: dict[int, ReceiveStats] = {}
        self._ssrc_stats: dict[int, ReceiveStats] = {}
        self._opted_out: frozenset[int] = frozenset(opted_out)
        self._totals = ReceiverTotals()
        self._watch = FailureWatch()

    # --- configuration (voice gateway events) -----------------------------------------

    def set_transport(self, mode: str, secret_key: bytes) -> None:
        """Mode and key from SESSION_DESCRIPTION (op 4). Raises ValueError on a bad mode/key.

        Buffered audio is kept; the previous key stays usable for a short grace period so
        packets already in flight under it are not lost.
        """
        cipher = make_cipher(mode, secret_key)
        with self._lock:
            if self._cipher is not None:
                self._old_cipher = self._cipher
                self._old_cipher_until = self._clock() + OLD_KEY_GRACE
            self._cipher = cipher

    def set_e2ee_policy(self, policy: E2eePolicy) -> None:
        """What the DAVE step accepts (see bot.voice.dave), as the gateway's transitions
        decide it (bot.voice.e2ee)."""
        with self._lock:
            if policy.session is not self._dave.session:
                # Frames waiting for sequence order arrived under the session we had. The
                # drain forgets the order too: the next frame waits for overtaken ones.
                for stream in list(self._streams.values()):
                    self._admit_all(stream, stream.dave_order.drain())
            self._dave.set_policy(policy)

    def set_dave_session(self, session: Any | None) -> None:
        """Shorthand: E2EE required with ``session`` (None: transport-only)."""
        self.set_e2ee_policy(E2eePolicy.transport_only() if session is None else E2eePolicy.required(session))

    def map_ssrc(self, ssrc: int, user_id: int) -> None:
        released: list[tuple[int, PcmFrame]] = []
        with self._lock:
            previous = self._ssrc_user.get(ssrc)
            if previous == user_id:
                return
            if previous is not None:
                # The SSRC changed hands: what is buffered belongs to the previous user.
                stream = self._streams.pop(ssrc, None)
                if stream is not None:
                    released += self._drain_stream(stream)
            self._ssrc_user[ssrc] = user_id
            self._retired.pop(ssrc, None)
            stats = self._stats_for(user_id)
            pending = self._ssrc_stats.pop(ssrc, None)
            if pending is not None:
                stats.merge(pending)
            held = self._held.pop(ssrc, None)
            if held is not None:
                self._totals.held -= len(held.packets)
                for datagram, header, arrival in held.packets:
                    try:
                        self._process_mapped(datagram, header, arrival, user_id, stats)
                    except Exception:
                        # Called from the gateway's thread: one bad packet must not break it.
                        self._internal_error("map_ssrc")
        self._deliver(released)

    def remove_user(self, user_id: int) -> None:
        released: list[tuple[int, PcmFrame]] = []
        with self._lock:
            for ssrc in [s for s, u in self._ssrc_user.items() if u == user_id]:
                del self._ssrc_user[ssrc]
                self._retired[ssrc] = None
                while len(self._retired) > MAX_RETIRED_SSRCS:
                    del self._retired[next(iter(self._retired))]
                stream = self._streams.pop(ssrc, None)
                if stream is not None:
                    try:
                        released += self._drain_stream(stream)
                    except Exception:
                        self._internal_error("remove_user")
        self._deliver(released)

    def set_opted_out(self, user_ids: Iterable[int]) -> None:
        with self._lock:
            self._opted_out = frozenset(user_ids)
            # Audio already buffered for a user who just opted out must not reach the sink.
            for ssrc, stream in list(self._streams.items()):
                if stream.user_id in self._opted_out:
                    del self._streams[ssrc]
                    stats = self._stats_for(stream.user_id)
                    stats.discarded += len(stream.jitter)
                    # not decrypted yet, and now never will be
                    stats.dropped_opted_out += len(stream.dave_order.drain())

    # --- data path -------------------------------------------------------------------

    def feed(self, datagram: bytes, arrival: float | None = None) -> None:
        try:
            with self._lock:
                if arrival is None:
                    arrival = self._clock()
                self._feed(bytes(datagram), arrival)
        except Exception:
            self._internal_error("feed")

    def _feed(self, datagram: bytes, arrival: float) -> None:
        totals = self._totals
        totals.datagrams += 1
        kind = rtcp_type(datagram)
        if kind is not None:
            totals.rtcp += 1
            if kind in (205, 206):
                totals.rtcp_feedback += 1
            return
        if keepalive.parse(datagram) is not None:
            totals.keepalives += 1
            return
        if len(datagram) == 74 and datagram.startswith(_DISCOVERY_REPLY):
            totals.ip_discovery += 1
            return
        try:
            header = parse_rtp(datagram)
        except RtpError:
            totals.malformed += 1
            return
        if header.payload_type != OPUS_PAYLOAD_TYPE:
            totals.other_payload_type += 1
            return
        user_id = self._ssrc_user.get(header.ssrc)
        if user_id is None:
            if header.ssrc in self._retired:
                # Someone who left: not held, so nobody mapped later can be handed it.
                totals.retired += 1
                stats = self._unmapped_stats_for(header.ssrc)
                stats.received += 1
                stats.unknown_ssrc += 1
                return
            self._hold(datagram, header, arrival)
            return
        stats = self._stats_for(user_id)
        stats.received += 1
        self._process_mapped(datagram, header, arrival, user_id, stats)

    def _unmapped_stats_for(self, ssrc: int) -> ReceiveStats:
        stats = self._ssrc_stats.get(ssrc)
        if stats is None:
            if len(self._ssrc_stats) >= MAX_UNMAPPED_SSRCS:
                self._evict_unmapped()
            stats = self._ssrc_stats[ssrc] = ReceiveStats()
        return stats

    def _hold(self, datagram: bytes, header: RtpHeader, arrival: float) -> None:
        stats = self._unmapped_stats_for(header.ssrc)
        stats.received += 1
        held = self._held.get(header.ssrc)
        if held is None:
            held = self._held[header.ssrc] = _Held()
        held.packets.append((datagram, header, arrival))
        self._totals.held += 1
        if len(held.packets) > MAX_HELD_PER_SSRC:
            held.packets.popleft()
            self._totals.held -= 1
            stats.unknown_ssrc += 1
            self._watch.check("ssrc", header.ssrc, stats)
        if self._totals.held > MAX_HELD_TOTAL:
            # Over the bound in all: the oldest held packet of any SSRC goes.
            oldest = min(self._held, key=lambda s: self._held[s].packets[0][2])
            victim = self._held[oldest]
            victim.packets.popleft()
            self._totals.held -= 1
            self._ssrc_stats[oldest].unknown_ssrc += 1
            if not victim.packets:
                del self._held[oldest]

    def _evict_unmapped(self) -> None:
        # Prefer an SSRC with nothing held (its packets already expired), else the oldest.
        victim = next((ssrc for ssrc in self._ssrc_stats if ssrc not in self._held), None)
        if victim is None:
            victim = next(iter(self._ssrc_stats))
        stats = self._ssrc_stats.pop(victim)
        held = self._held.pop(victim, None)
        if held is not None:
            stats.unknown_ssrc += len(held.packets)
            self._totals.held -= len(held.packets)
        self._totals.unmapped_evicted += stats.received

    def _process_mapped(
        self, datagram: bytes, header: RtpHeader, arrival: float, user_id: int, stats: ReceiveStats
    ) -> None:
        if user_id in self._opted_out:
            # Before any decryption or decoding: an opted-out user's audio is never read.
            stats.dropped_opted_out += 1
            return
        plain = self._transport_decrypt(datagram, header, arrival)
        if plain is None:
            stats.decrypt_failures += 1
            self._watch.check("user", user_id, stats)
            return
        stream = self._streams.get(header.ssrc)
        # A copy of a packet already buffered, waiting for DAVE or played. Checked after the
        # transport decryption (which authenticates the header: a forged sequence number
        # cannot make a new packet pass for an old one) and before DAVE, which refuses a
        # replayed frame and would count every network duplicate as a decryption failure.
        if stream is not None and (
            stream.jitter.is_duplicate(header.sequence) or stream.dave_order.holds(header.sequence)
        ):
            stats.duplicates += 1
            return
        if self._dave.session is None:
            self._admit(plain, header, arrival, user_id, stats, stream)
            return
        # davey refuses for good a frame older than the first it decrypted under a sender's
        # key ratchet: frames go to it in sequence order, overtaken ones waited for briefly.
        if stream is None:
            stream = self._new_stream(header.ssrc, user_id)
        stream.jitter.note_arrival(header.sequence, header.timestamp, arrival)  # timing is by arrival
        self._admit_all(stream, stream.dave_order.push(header.sequence, (plain, header, arrival), arrival))

    def _new_stream(self, ssrc: int, user_id: int) -> _Stream:
        stream = self._streams[ssrc] = _Stream(
            ssrc, user_id, JitterBuffer(epoch=self.epoch, delay=self.playout_delay), SequenceGate(self.dave_reorder)
        )
        return stream

    def _admit_all(self, stream: _Stream, items: list[_Sealed]) -> None:
        if not items:
            return
        stats = self._stats_for(stream.user_id)
        for plain, header, arrival in items:
            try:
                self._admit(plain, header, arrival, stream.user_id, stats, stream)
            except Exception:
                # One bad frame must not take the others passed on with it.
                self._internal_error("admit")

    def _admit(
        self, plain: bytes, header: RtpHeader, arrival: float, user_id: int, stats: ReceiveStats, stream: _Stream | None
    ) -> None:
        """A transport-decrypted datagram, in its turn: padding, DAVE, Opus TOC, jitter buffer."""
        try:
            frame = strip_after_decrypt(header, plain)
        except RtpError:
            stats.parse_failures += 1
            self._watch.check("user", user_id, stats)
            return
        if not frame:
            if not header.padding:
                stats.parse_failures += 1  # an RTP packet that carries nothing at all
                self._watch.check("user", user_id, stats)
                return
            # Padding only (WebRTC sends these, e.g. to probe bandwidth): it takes a
            # sequence number, so the jitter buffer must know it is not a lost packet.
            if stream is None:
                stream = self._new_stream(header.ssrc, user_id)
            if stream.jitter.note_padding(header.sequence) is Insert.DUPLICATE:
                stats.duplicates += 1
            else:
                stats.padding += 1
            return
        payload = self._e2ee_decrypt(frame, user_id, stats, arrival)
        if payload is None:
            self._watch.check("user", user_id, stats)
            return
        try:
            samples = packet_samples(payload)
        except OpusDecodeError:
            stats.parse_failures += 1
            self._watch.check("user", user_id, stats)
            return
        if stream is None:
            stream = self._new_stream(header.ssrc, user_id)
        result = stream.jitter.insert(header.sequence, header.timestamp, payload, samples, arrival)
        if result is Insert.ACCEPTED:
            stats.accepted += 1
        elif result is Insert.LATE:
            stats.late += 1
            self._watch.check("user", user_id, stats)
        else:
            stats.duplicates += 1

    def _transport_decrypt(self, datagram: bytes, header: RtpHeader, arrival: float) -> bytes | None:
        cipher = self._cipher
        if cipher is None:
            return None
        try:
            return cipher.decrypt(datagram, header.header_len)
        except TransportError:
            old = self._old_cipher
            if old is None or arrival > self._old_cipher_until:
                return None
            try:
                return old.decrypt(datagram, header.header_len)
            except TransportError:
                return None

    def _e2ee_decrypt(self, frame: bytes, user_id: int, stats: ReceiveStats, arrival: float) -> bytes | None:
        outcome, opus = self._dave.decrypt(user_id, frame, arrival)
        if outcome is FrameOutcome.UNDECRYPTABLE:
            stats.e2ee_failures += 1
        elif outcome is FrameOutcome.PLAIN_REFUSED:
            stats.plain_refused += 1
        elif outcome is FrameOutcome.PASSTHROUGH:
            stats.passthrough += 1
        return opus

    # --- output ----------------------------------------------------------------------

    def poll(self, now: float | None = None) -> None:
        try:
            with self._lock:
                if now is None:
                    now = self._clock()
                self._expire_held(now)
                released: list[tuple[int, PcmFrame]] = []
                for stream in list(self._streams.values()):
                    self._admit_all(stream, stream.dave_order.due(now))
                    released += self._render(stream, stream.jitter.pop_due(now))
        except Exception:
            self._internal_error("poll")
            return
        self._deliver(released)

    def flush(self) -> None:
        try:
            with self._lock:
                released: list[tuple[int, PcmFrame]] = []
                for stream in list(self._streams.values()):
                    released += self._drain_stream(stream)
        except Exception:
            self._internal_error("flush")
            return
        self._deliver(released)

    def _expire_held(self, now: float) -> None:
        limit = now - self.unmapped_hold
        for ssrc in list(self._held):
            held = self._held[ssrc]
            stats = self._ssrc_stats[ssrc]
            while held.packets and held.packets[0][2] < limit:
                held.packets.popleft()
                self._totals.held -= 1
                stats.unknown_ssrc += 1
            if not held.packets:
                del self._held[ssrc]
            self._watch.check("ssrc", ssrc, stats)

    def _drain_stream(self, stream: _Stream) -> list[tuple[int, PcmFrame]]:
        self._admit_all(stream, stream.dave_order.drain())
        out = self._render(stream, stream.jitter.drain())
        if stream.decoder is not None:
            stream.decoder.reset()
        return out

    def _render(self, stream: _Stream, playouts: list[Playout]) -> list[tuple[int, PcmFrame]]:
        stats = self._stats_for(stream.user_id)
        jitter = stream.jitter
        stats.lost += jitter.lost - stream.lost_reported
        stream.lost_reported = jitter.lost
        stats.discarded += jitter.discarded - stream.discarded_reported
        stream.discarded_reported = jitter.discarded
        if not playouts:
            return []
        if stream.user_id in self._opted_out:
            stats.discarded += sum(1 for p in playouts if p.payload is not None)
            return []
        if stream.decoder is None:
            stream.decoder = OpusStreamDecoder()
        decoder = stream.decoder
        out: list[tuple[int, PcmFrame]] = []
        for item in playouts:
            if item.payload is None:
                audio = decoder.conceal(item.samples, item.fec_source)
                stats.concealed += 1
            else:
                try:
                    audio = decoder.decode(item.payload)
                    stats.played += 1
                except OpusDecodeError:
                    stats.decode_failures += 1
                    self._watch.check("user", stream.user_id, stats)
                    # Keep the timeline continuous: conceal what could not be decoded.
                    audio = decoder.conceal(item.samples, None)
            if audio.pcm.shape[0]:
                out.append((stream.user_id, PcmFrame(item.start, audio.pcm, SAMPLE_RATE)))
        self._watch.check("user", stream.user_id, stats)
        return out

    def _deliver(self, released: list[tuple[int, PcmFrame]]) -> None:
        if not released:
            return
        with self._sink_lock:
            for user_id, frame in released:
                try:
                    self._sink(user_id, frame)
                except Exception:
                    log.exception("voice receive: sink raised for user %d", user_id)

    # --- stats -----------------------------------------------------------------------

    def _stats_for(self, user_id: int) -> ReceiveStats:
        stats = self._user_stats.get(user_id)
        if stats is None:
            stats = self._user_stats[user_id] = ReceiveStats()
        return stats

    def stats(self) -> dict[int, ReceiveStats]:
        """Per user id; copies, safe to keep."""
        with self._lock:
            return {uid: s.copy() for uid, s in self._user_stats.items()}

    def unmapped_stats(self) -> dict[int, ReceiveStats]:
        """Per SSRC that has no user mapping yet (merged into the user's on ``map_ssrc``)."""
        with self._lock:
            return {ssrc: s.copy() for ssrc, s in self._ssrc_stats.items()}

    def totals(self) -> ReceiverTotals:
        with self._lock:
            return replace(self._totals)

    def dave_counts(self) -> DaveCounts:
        """Frames through the DAVE step since the start, by outcome."""
        with self._lock:
            return replace(self._dave.counts)

    @property
    def e2ee_policy(self) -> E2eePolicy:
        return self._dave.policy

    def buffered(self) -> dict[int, int]:
        """Packets waiting in each SSRC's jitter buffer (or, with DAVE, for their turn at it)."""
        with self._lock:
            return {ssrc: len(s.jitter) + len(s.dave_order) for ssrc, s in self._streams.items()}

    def _internal_error(self, where: str) -> None:
        try:
            self._totals.internal_errors += 1
            log.exception("voice receive: internal error in %s (dropped, receiver continues)", where)
        except Exception:
            pass
