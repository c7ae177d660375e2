"""Per-SSRC jitter buffer: reorders by RTP sequence, times playout by RTP timestamp.

Timing model: a stream's media clock is anchored to local arrival time. The audio with
(extended) RTP timestamp ``ts`` was spoken at ``anchor_arrival + (ts - anchor_ts) / 48000``
and is released ``delay`` seconds after that. Discord stops sending during silence and the
timestamp jumps when speech resumes, so a timestamp jump becomes a jump in ``start``: time
is neither stretched nor compressed.

The anchor follows the earliest implied send time seen (the packet with the least network
delay), and is re-set at the start of a talk spurt when the sender's timestamps and our
clock disagree (clock drift, a sender whose timestamp jumps ahead). A talk spurt starts
where the timestamps jump by a silence, or, for senders whose timestamps do not advance
during silence (discord.py's own sender continues them where the previous spurt ended),
where nothing arrived for more than ``spurt_gap`` and the packet is more than ``spurt_gap``
later than its timestamp implies: that silence is placed by arrival time. Inside a spurt
only the timestamps time the audio, so network jitter never reaches ``start``.
"""

from __future__ import annotations

import enum
from collections import deque
from dataclasses import dataclass
from typing import Generic, TypeVar

SAMPLE_RATE = 48_000
SEQ_MOD = 1 << 16
TS_MOD = 1 << 32
# A forward jump of more packets than a minute's worth is a renumbering, not a loss.
MAX_COUNTED_GAP = 3000
# Padding-only packets remembered until their place in the sequence has been played.
MAX_PADDING = 512

T = TypeVar("T")


class Insert(enum.Enum):
    ACCEPTED = "accepted"
    LATE = "late"
    DUPLICATE = "duplicate"


@dataclass(frozen=True, slots=True)
class Playout:
    """One unit released by the buffer: a received packet, or a lost one to conceal.

    ``payload`` is None for a lost packet; ``fec_source`` is then the payload of the packet
    right after it, whose in-band FEC can rebuild it.
    """

    sequence: int
    timestamp: int
    start: float
    samples: int
    payload: bytes | None
    fec_source: bytes | None = None

    @property
    def lost(self) -> bool:
        return self.payload is None


@dataclass(slots=True)
class _Entry:
    ts: int
    payload: bytes
    samples: int


@dataclass(slots=True)
class _Anchor:
    from_seq: int  # applies to packets with extended sequence >= from_seq
    arrival: float
    ts: int


def _unwrap(value: int, reference: int, modulus: int) -> int:
    half = modulus >> 1
    delta = ((value - reference + half) % modulus) - half
    return reference + delta


class JitterBuffer:
    def __init__(
        self,
        *,
        epoch: float,
        delay: float = 0.06,
        resync: float = 0.25,
        spurt_gap: float = 0.15,
        max_conceal: int = 10,
        history: int = 1024,
    ) -> None:
        self.epoch = epoch
        self.delay = delay
        self.resync = resync
        self.spurt_gap = spurt_gap
        # Gaps of more packets than this are a discontinuity (sender restart, long outage):
        # counted as lost but not filled with synthetic audio.
        self.max_conceal = max_conceal
        self._history_len = history
        self.lost = 0
        self.discarded = 0
        self._reset_state()

    def _reset_state(self) -> None:
        self._buf: dict[int, _Entry] = {}
        self._anchors: list[_Anchor] = []
        self._seq_ref: int | None = None
        self._ts_ref: int | None = None
        self._next_seq: int | None = None
        self._next_ts: int | None = None
        self._last_samples = 960
        self._last_end: float | None = None
        self._last_arrival: float | None = None  # latest arrival of an accepted packet
        # Sequence numbers already played or refused as late (the last ``history`` of
        # them): another copy of one is a duplicate.
        self._seen: set[int] = set()
        self._seen_order: deque[int] = deque()
        # Sequence numbers taken by padding-only packets (WebRTC sends them, e.g. to probe
        # bandwidth): not media, so not a gap to conceal or count as lost.
        self._padding: set[int] = set()

    # --- time --------------------------------------------------------------------------

    def _anchor_for(self, seq: int) -> _Anchor:
        for anchor in reversed(self._anchors):
            if seq >= anchor.from_seq:
                return anchor
        return self._anchors[0]

    def _media_time(self, seq: int, ts: int) -> float:
        anchor = self._anchor_for(seq)
        return anchor.arrival + (ts - anchor.ts) / SAMPLE_RATE

    # --- input -------------------------------------------------------------------------

    def _known(self, seq: int) -> Insert | None:
        """How ``insert`` classifies extended ``seq`` without looking at its content: DUPLICATE
        (buffered, or already played or refused as late), LATE, or None (new, or so far
        behind that it means the sender restarted its numbering)."""
        if self._next_seq is not None and seq < self._next_seq:
            if self._next_seq - seq > SEQ_MOD // 4:
                return None
            return Insert.DUPLICATE if seq in self._seen else Insert.LATE
        return Insert.DUPLICATE if seq in self._buf or seq in self._padding else None

    def is_duplicate(self, sequence: int) -> bool:
        """Whether ``insert`` would refuse this RTP sequence number as a duplicate. A pure
        query, so a caller can skip work (decryption) for a packet it already has."""
        if self._seq_ref is None:
            return False
        return self._known(_unwrap(sequence, self._seq_ref, SEQ_MOD)) is Insert.DUPLICATE

    def insert(self, sequence: int, timestamp: int, payload: bytes, samples: int, arrival: float) -> Insert:
        if self._seq_ref is None:
            seq, ts = sequence, timestamp
        else:
            seq = _unwrap(sequence, self._seq_ref, SEQ_MOD)
            assert self._ts_ref is not None
            ts = _unwrap(timestamp, self._ts_ref, TS_MOD)
        if self._next_seq is not None and self._next_seq - seq > SEQ_MOD // 4:
            # Far behind everything played: the sender restarted its sequence. Start
            # over rather than calling every future packet late.
            self._restart()
            return self.insert(sequence, timestamp, payload, samples, arrival)
        known = self._known(seq)
        if known is Insert.LATE:
            self._remember(seq)  # so that another copy of it counts as a duplicate
        if known is not None:
            return known
        if self._seq_ref is None or seq > self._seq_ref:
            self._seq_ref, self._ts_ref = seq, ts
        self._update_anchor(seq, ts, arrival)
        if self._last_arrival is None or arrival > self._last_arrival:
            self._last_arrival = arrival
        self._buf[seq] = _Entry(ts, payload, samples)
        return Insert.ACCEPTED

    def note_padding(self, sequence: int) -> Insert:
        """A padding-only packet: it takes ``sequence`` and carries no audio, so playout
        steps over it without concealment and without counting it lost. Its timestamp is
        not media timing (WebRTC repeats the last media packet's), so it is not used."""
        if self._seq_ref is None:
            return Insert.ACCEPTED  # before the stream's first media packet: no gap to fill
        seq = _unwrap(sequence, self._seq_ref, SEQ_MOD)
        known = self._known(seq)
        if known is Insert.LATE:
            self._remember(seq)  # its place was already concealed; another copy is a duplicate
        if known is not None:
            return known
        if seq > self._seq_ref:
            self._seq_ref = seq
        self._padding.add(seq)
        if len(self._padding) > MAX_PADDING:
            self._padding.discard(min(self._padding))
        return Insert.ACCEPTED

    def _prune_padding(self) -> None:
        if self._padding and self._next_seq is not None:
            self._padding = {s for s in self._padding if s >= self._next_seq}

    def _restart(self) -> None:
        # Whatever is still buffered belongs to the old numbering; it is dropped with it.
        self.discarded += len(self._buf)
        self._reset_state()

    def note_arrival(self, sequence: int, timestamp: int, arrival: float) -> None:
        """Timing of a packet that arrived but is inserted only later (it waits to be
        decrypted in sequence order): its network delay counts from its arrival, so a
        packet with less delay than the anchor's improves the anchor now, before audio is
        released with the worse one. Nothing else changes."""
        if not self._anchors:
            return
        assert self._seq_ref is not None and self._ts_ref is not None
        seq = _unwrap(sequence, self._seq_ref, SEQ_MOD)
        if self._next_seq is not None and seq < self._next_seq:
            return  # late, or the sender restarted its numbering: no timing to learn
        self._better_anchor(seq, _unwrap(timestamp, self._ts_ref, TS_MOD), arrival)

    def _better_anchor(self, seq: int, ts: int, arrival: float) -> bool:
        anchor = self._anchors[-1]
        if seq >= anchor.from_seq and arrival - (ts - anchor.ts) / SAMPLE_RATE < anchor.arrival:
            # This packet had less network delay than the anchor packet: it is the better
            # reference. Released audio keeps its times (starts never move backwards); the
            # correction shows at the next silence gap.
            self._anchors[-1] = _Anchor(anchor.from_seq, arrival, ts)
            return True
        return False

    def _update_anchor(self, seq: int, ts: int, arrival: float) -> None:
        if not self._anchors:
            self._anchors.append(_Anchor(seq, arrival, ts))
            return
        if self._better_anchor(seq, ts, arrival):
            return
        if self._next_seq is None or self._buf or seq < self._next_seq:
            return
        assert self._next_ts is not None and self._last_arrival is not None
        # Nothing buffered and this packet is next: perhaps the start of a talk spurt.
        # Check the sender's clock against ours.
        expected = self._media_time(seq, ts)
        counted = ts - self._next_ts - (seq - self._next_seq) * self._last_samples
        if counted < 3 * self._last_samples:
            # The timestamps count no silence since the last packet played. Usually that is
            # mid-speech, where a late packet is network jitter, not a clock disagreement,
            # and re-anchoring would tear the timeline. But a sender whose timestamps stop
            # during silence looks the same: a long wait for this packet (far longer than
            # jitter, and not explained by its timestamp) is such an uncounted silence.
            if arrival - self._last_arrival <= self.spurt_gap or arrival - expected <= self.spurt_gap:
                return
        elif arrival - expected <= min(self.resync, self.delay / 2) and expected - arrival <= self.resync:
            return
        # A new talk spurt timed by our clock. It applies from the first sequence number not
        # yet played: packets of this spurt that are still on their way (overtaken by this
        # one) belong to it too.
        self._anchors.append(_Anchor(self._next_seq, arrival, ts))
        del self._anchors[:-2]

    # --- output ------------------------------------------------------------------------

    def _remember(self, seq: int) -> None:
        self._seen.add(seq)
        self._seen_order.append(seq)
        if len(self._seen_order) > self._history_len:
            self._seen.discard(self._seen_order.popleft())

    def _start_of(self, seq: int, ts: int) -> float:
        start = self._media_time(seq, ts) - self.epoch
        # Never overlap what was already released (rounding, re-anchoring).
        if self._last_end is not None and start < self._last_end:
            start = self._last_end
        return start

    def _emit_packet(self, seq: int, entry: _Entry) -> Playout:
        start = self._start_of(seq, entry.ts)
        del self._buf[seq]
        self._remember(seq)
        self._next_seq = seq + 1
        self._next_ts = entry.ts + entry.samples
        self._last_samples = entry.samples
        self._last_end = start + entry.samples / SAMPLE_RATE
        self._prune_padding()
        return Playout(seq, entry.ts, start, entry.samples, entry.payload)

    def pop_due(self, now: float) -> list[Playout]:
        out: list[Playout] = []
        while self._buf:
            head = min(self._buf)
            entry = self._buf[head]
            if self._next_seq is None or head == self._next_seq:
                if now < self._media_time(head, entry.ts) + self.delay:
                    break
                out.append(self._emit_packet(head, entry))
                continue
            # Gap before the head: sequence numbers that have not arrived (yet).
            assert self._next_ts is not None
            if self._next_seq in self._padding:
                # a padding-only packet's place: nothing to play, nothing lost
                self._padding.discard(self._next_seq)
                self._remember(self._next_seq)
                self._next_seq += 1
                continue
            missing = head - self._next_seq
            if self._padding:
                missing -= sum(1 for s in self._padding if self._next_seq < s < head)
            span = entry.ts - self._next_ts
            samples = self._last_samples
            if missing > self.max_conceal or span < samples:
                # Too long to fill, or no time between them to fill: a discontinuity.
                if now < self._media_time(head, entry.ts) + self.delay:
                    break
                if missing <= MAX_COUNTED_GAP:
                    self.lost += missing
                self._next_seq = head
                self._next_ts = entry.ts
                self._prune_padding()
                continue
            if span > missing * samples:
                # More time than missing packets: speech paused in between. The lost
                # packets most likely lead into the head (that is also where the head's FEC
                # applies), so place them right before it.
                self._next_ts = entry.ts - missing * samples
            if now < self._media_time(self._next_seq, self._next_ts) + self.delay:
                break
            fec = entry.payload if missing == 1 else None
            start = self._start_of(self._next_seq, self._next_ts)
            out.append(Playout(self._next_seq, self._next_ts, start, samples, None, fec))
            self.lost += 1
            self._last_end = start + samples / SAMPLE_RATE
            self._next_seq += 1
            self._next_ts += samples
        return out

    def drain(self) -> list[Playout]:
        """Everything buffered, gaps concealed as usual; then forget the stream's timing."""
        out = self.pop_due(float("inf"))
        self._reset_state()
        return out

    def __len__(self) -> int:
        return len(self._buf)


class SequenceGate(Generic[T]):
    """Passes a stream's items on in RTP sequence order, waiting briefly for overtaken ones.

    For DAVE: davey accepts a sender's frames out of order only after it has decrypted one
    under the sender's current key ratchet; a frame older than the *first* one it decrypted
    under a ratchet (the start of a stream, every MLS epoch transition) it refuses for good.
    So a frame overtaken by its successor right there would be lost as a decryption
    failure although it arrived in time to play. Decrypting in sequence order avoids that.

    An item whose predecessor has not been passed on waits at most ``window`` after its
    arrival (the start of a stream: whatever may still be on its way); an item whose
    successors have already gone on passes at once. Items in order pass at once, so with
    no loss and no reordering nothing waits but the first item of a stream.
    """

    def __init__(self, window: float, limit: int = 64) -> None:
        self.window = window
        self.limit = limit  # bound on items held, whatever arrives
        self._next: int | None = None  # extended sequence number expected next
        self._ref: int | None = None  # highest extended sequence number seen, for unwrapping
        self._held: dict[int, tuple[float, T]] = {}  # extended seq -> (deadline, item)

    def __len__(self) -> int:
        return len(self._held)

    def _extend(self, sequence: int) -> int:
        return sequence if self._ref is None else _unwrap(sequence, self._ref, SEQ_MOD)

    def holds(self, sequence: int) -> bool:
        """Whether an item with this RTP sequence number is waiting here."""
        return bool(self._held) and self._extend(sequence) in self._held

    def push(self, sequence: int, item: T, arrival: float) -> list[T]:
        """Items to pass on now, in order (``item`` among them or not); ``arrival`` is now.

        The caller keeps duplicates out (``holds``)."""
        out: list[T] = []
        seq = self._extend(sequence)
        if self._next is not None and self._next - seq > SEQ_MOD // 4:
            # Far behind everything passed on: the sender restarted its numbering.
            out += self.drain()
            seq = sequence
        if self._ref is None or seq > self._ref:
            self._ref = seq
        if self._next is not None and seq < self._next:
            # Came after the wait for it was given up: no order left to keep.
            out.append(item)
            return out + self.due(arrival)
        self._held[seq] = (arrival + self.window, item)
        return out + self.due(arrival)

    def due(self, now: float) -> list[T]:
        """Items to pass on at ``now``: the next in order, and those whose wait is over
        (with everything held before them)."""
        if not self._held:
            return []
        upto = max((s for s, (deadline, _) in self._held.items() if deadline <= now), default=None)
        if len(self._held) > self.limit:
            lowest = min(self._held)
            upto = lowest if upto is None else max(upto, lowest)
        out: list[T] = []
        while self._held:
            seq = min(self._held)
            if seq != self._next and (upto is None or seq > upto):
                break
            out.append(self._held.pop(seq)[1])
            self._next = seq + 1
        return out

    def drain(self) -> list[T]:
        """Everything held, in order; then forget the order (the next item waits again)."""
        out = [self._held[s][1] for s in sorted(self._held)]
        self._held.clear()
        self._next = self._ref = None
        return out
