"""Jitter buffer: order, wraparound, loss, late, duplicates and silence timing."""

from __future__ import annotations

import pytest

from bot.voice.jitter import Insert, JitterBuffer, SequenceGate

F = 960
DT = F / 48_000
DELAY = 0.06


def make(epoch: float = 0.0) -> JitterBuffer:
    return JitterBuffer(epoch=epoch, delay=DELAY)


def drain_at(jb: JitterBuffer, t: float):
    return jb.pop_due(t)


def test_reorders_by_sequence_and_waits_for_the_playout_delay() -> None:
    jb = make()
    for i in (0, 2, 1, 3):
        assert jb.insert(100 + i, 5000 + i * F, bytes([i]), F, arrival=1.0 + i * DT) is Insert.ACCEPTED
    assert jb.pop_due(1.0 + DELAY - 0.001) == []
    out = jb.pop_due(1.0 + 3 * DT + DELAY)
    assert [p.payload for p in out] == [b"\x00", b"\x01", b"\x02", b"\x03"]
    assert [round(p.start - 1.0, 6) for p in out] == [round(i * DT, 6) for i in range(4)]


def test_sequence_and_timestamp_wraparound() -> None:
    jb = make()
    seqs = [(0xFFFE + i) & 0xFFFF for i in range(4)]
    tss = [(0xFFFFFFFF - F + 1 + i * F) & 0xFFFFFFFF for i in range(4)]
    for i in (1, 0, 3, 2):
        jb.insert(seqs[i], tss[i], bytes([i]), F, arrival=i * DT)
    out = jb.pop_due(10.0)
    assert [p.payload for p in out] == [bytes([i]) for i in range(4)]
    starts = [p.start for p in out]
    assert all(abs((b - a) - DT) < 1e-9 for a, b in zip(starts, starts[1:]))
    assert jb.lost == 0


def test_lost_packet_concealed_with_fec_from_its_successor() -> None:
    jb = make()
    for i in (0, 1, 3, 4):
        jb.insert(i, i * F, bytes([i]), F, arrival=i * DT)
    out = jb.pop_due(4 * DT + DELAY)
    assert [p.lost for p in out] == [False, False, True, False, False]
    gap = out[2]
    assert gap.fec_source == b"\x03" and gap.samples == F
    assert abs(gap.start - 2 * DT) < 1e-9
    assert jb.lost == 1


def test_two_lost_packets_only_the_second_gets_fec() -> None:
    jb = make()
    for i in (0, 3):
        jb.insert(i, i * F, bytes([i]), F, arrival=i * DT)
    out = jb.pop_due(1.0)
    assert [(p.sequence, p.lost, p.fec_source) for p in out] == [
        (0, False, None),
        (1, True, None),
        (2, True, b"\x03"),
        (3, False, None),
    ]


def test_loss_waits_until_the_missing_packet_was_due() -> None:
    jb = make()
    jb.insert(0, 0, b"a", F, arrival=0.0)
    jb.insert(2, 2 * F, b"c", F, arrival=2 * DT)
    assert [p.payload for p in jb.pop_due(DELAY)] == [b"a"]
    # seq 1 is due at DT + DELAY; before that the buffer must wait for it
    assert jb.pop_due(DT + DELAY - 0.002) == []
    jb.insert(1, F, b"b", F, arrival=DT + DELAY - 0.001)
    assert [p.payload for p in jb.pop_due(2 * DT + DELAY)] == [b"b", b"c"]
    assert jb.lost == 0


def test_late_and_duplicate_packets() -> None:
    jb = make()
    jb.insert(0, 0, b"a", F, arrival=0.0)
    assert jb.insert(0, 0, b"a", F, arrival=0.001) is Insert.DUPLICATE  # still buffered
    jb.insert(2, 2 * F, b"c", F, arrival=2 * DT)
    jb.pop_due(1.0)  # plays a, conceals 1, plays c
    assert jb.insert(1, F, b"b", F, arrival=1.0) is Insert.LATE
    assert jb.insert(2, 2 * F, b"c", F, arrival=1.0) is Insert.DUPLICATE  # already played
    assert jb.lost == 1


def test_silence_is_a_jump_in_start_not_a_loss() -> None:
    jb = make()
    for i in range(3):
        jb.insert(i, i * F, b"s", F, arrival=i * DT)
    jb.pop_due(1.0)
    # Discord stops sending for 2 s; the sequence continues, the timestamp jumps.
    ts = 3 * F + 2 * 48_000
    jb.insert(3, ts, b"t", F, arrival=3 * DT + 2.0)
    out = jb.pop_due(3 * DT + 2.0 + DELAY)
    assert len(out) == 1 and not out[0].lost
    assert abs(out[0].start - (3 * DT + 2.0)) < 1e-9
    assert jb.lost == 0


def test_losses_across_a_pause_are_placed_before_the_resumed_speech() -> None:
    jb = make()
    jb.insert(0, 0, b"a", F, arrival=0.0)
    jb.pop_due(1.0)
    # the first packet after a 1 s pause was lost; the second arrives
    ts2 = F + 48_000 + F
    jb.insert(2, ts2, b"c", F, arrival=DT + 1.0 + DT)
    out = jb.pop_due(5.0)
    assert [p.lost for p in out] == [True, False]
    assert abs(out[0].start - (DT + 1.0)) < 1e-9 and out[0].fec_source == b"c"


def test_sender_clock_disagreement_resyncs_at_a_talk_spurt() -> None:
    jb = make()
    jb.insert(0, 0, b"a", F, arrival=0.0)
    jb.pop_due(1.0)
    # The timestamp says 0.5 s of silence but 5 s passed: trust our clock at the spurt start.
    jb.insert(1, F + 24_000, b"b", F, arrival=5.0)
    out = jb.pop_due(5.0 + DELAY)
    assert [p.payload for p in out] == [b"b"]
    assert abs(out[0].start - 5.0) < 1e-9
    # ... and the other way round: a timestamp far ahead of our clock must not hold audio back
    jb.insert(2, F + 24_000 + F + 48_000 * 100, b"c", F, arrival=6.0)
    out = jb.pop_due(6.0 + DELAY)
    assert [p.payload for p in out] == [b"c"] and abs(out[0].start - 6.0) < 1e-9


def test_anchor_uses_least_delayed_packet_before_playout() -> None:
    jb = make(epoch=10.0)
    jb.insert(0, 0, b"a", F, arrival=10.030)  # delayed 30 ms
    jb.insert(1, F, b"b", F, arrival=10.021)  # delayed 1 ms
    out = jb.pop_due(11.0)
    assert abs(out[0].start - 0.0) < 0.0011


def test_drain_releases_everything_and_forgets_timing() -> None:
    jb = make()
    for i in (0, 1, 3):
        jb.insert(i, i * F, bytes([i]), F, arrival=i * DT)
    out = jb.drain()
    assert [p.sequence for p in out] == [0, 1, 2, 3] and out[2].lost
    assert len(jb) == 0
    # a new stream after drain is anchored afresh, not called late
    assert jb.insert(0, 0, b"x", F, arrival=50.0) is Insert.ACCEPTED
    assert abs(jb.pop_due(51.0)[0].start - 50.0) < 1e-9


def test_sender_restart_far_behind_is_not_late_forever() -> None:
    jb = make()
    for i in range(3):
        jb.insert(30000 + i, i * F, b"a", F, arrival=i * DT)
    jb.pop_due(1.0)
    assert jb.insert(5, 10 * F, b"n", F, arrival=2.0) is Insert.ACCEPTED
    assert [p.payload for p in jb.pop_due(3.0)] == [b"n"]


def test_huge_gap_is_a_discontinuity_not_concealed() -> None:
    jb = make()
    jb.insert(0, 0, b"a", F, arrival=0.0)
    jb.insert(500, 500 * F, b"z", F, arrival=500 * DT)
    out = jb.pop_due(100.0)
    assert [p.payload for p in out] == [b"a", b"z"]
    assert jb.lost == 499


def test_renumbering_jump_is_not_counted_as_loss() -> None:
    jb = make()
    jb.insert(0, 0, b"a", F, arrival=0.0)
    jb.insert(10_000, 10 * F, b"z", F, arrival=0.2)
    assert [p.payload for p in jb.pop_due(10.0)] == [b"a", b"z"]
    assert jb.lost == 0


@pytest.mark.parametrize("delay", [0.02, 0.2])
def test_playout_delay_is_configurable(delay: float) -> None:
    jb = JitterBuffer(epoch=0.0, delay=delay)
    jb.insert(0, 0, b"a", F, arrival=1.0)
    assert jb.pop_due(1.0 + delay - 0.001) == []
    assert len(jb.pop_due(1.0 + delay)) == 1


def test_is_duplicate_matches_insert_and_covers_late_copies() -> None:
    jb = make()
    assert not jb.is_duplicate(0xFFFE)  # nothing seen yet
    for i in (0, 2):
        seq = (0xFFFE + i) & 0xFFFF
        jb.insert(seq, i * F, bytes([i]), F, arrival=i * DT)
    assert jb.is_duplicate(0xFFFE) and jb.is_duplicate(0)  # buffered, across the wrap
    assert not jb.is_duplicate(0xFFFF) and not jb.is_duplicate(1)
    jb.pop_due(1.0)  # plays 0xFFFE, conceals 0xFFFF, plays 0
    assert jb.is_duplicate(0xFFFE) and jb.is_duplicate(0)  # played
    assert not jb.is_duplicate(0xFFFF)  # concealed, never received: a late arrival
    assert jb.insert(0xFFFF, F, b"b", F, arrival=1.0) is Insert.LATE
    assert jb.is_duplicate(0xFFFF)  # another copy of the late packet is a duplicate
    assert jb.insert(0xFFFF, F, b"b", F, arrival=1.0) is Insert.DUPLICATE
    # far behind: a sender restart, not a duplicate
    assert not jb.is_duplicate(0x8000)


def test_silence_not_counted_by_the_timestamps_is_placed_by_arrival() -> None:
    """discord.py's sender continues the timestamp after a pause as if none happened."""
    jb = make()
    for i in range(10):
        jb.insert(i, i * F, b"a", F, arrival=0.005 + i * DT)
    jb.pop_due(1.0)
    # 1.5 s of silence; the timestamps carry on from the previous packet
    spurt = 10 * DT + 1.5
    jitter = [0.012, 0.0, 0.004, 0.009, 0.001, 0.015, 0.003, 0.0, 0.007, 0.002]
    out = []
    for k in range(10):
        t = spurt + k * DT + 0.005 + jitter[k]
        jb.insert(10 + k, (10 + k) * F, b"b", F, arrival=t)
        out += jb.pop_due(t)
    out += jb.pop_due(5.0)
    assert len(out) == 10 and jb.lost == 0
    # placed by arrival (least-delayed packet: 5 ms network delay), within a millisecond;
    # the 12 ms jitter of its first packet does not shift the spurt
    assert abs(out[0].start - (spurt + 0.005)) < 0.001
    # inside the spurt the timestamps time the audio: no jitter in the starts
    assert all(abs((b.start - a.start) - DT) < 1e-9 for a, b in zip(out, out[1:]))


def test_network_stall_mid_speech_keeps_the_timestamps_timing() -> None:
    """A 200 ms stall, then the held packets in a burst: one continuous stream, not a
    silence; the burst re-anchors at once on its least-delayed packets."""
    jb = make()
    out = []
    arrivals = sorted((0.005 + i * DT if not 20 <= i < 30 else 20 * DT + 0.2 + 0.0001 * (i - 20), i) for i in range(40))
    t = 0.0
    k = 0
    while t < 2.0:
        while k < len(arrivals) and arrivals[k][0] <= t:
            a, i = arrivals[k]
            jb.insert(i, i * F, bytes([i]), F, arrival=a)
            k += 1
        out += jb.pop_due(t)
        t += 0.01
    assert [p.sequence for p in out] == list(range(40)) and jb.lost == 0
    # no gap opened by the stall (starts contiguous), and at most one frame late
    assert all(abs((b.start - a.start) - DT) < 1e-9 for a, b in zip(out, out[1:]))
    assert all(abs(p.start - (0.005 + p.sequence * DT)) <= DT for p in out)


def test_note_arrival_improves_the_anchor_before_the_packet_is_inserted() -> None:
    jb = make()
    jb.insert(0, 0, b"\x00", F, arrival=1.030)  # 30 ms of network delay
    jb.note_arrival(2, 2 * F, 1.045)  # 5 ms: inserted only later (waits for DAVE order)
    jb.note_arrival(0xFFFF, 0, 0.5)  # before the anchor packet: not for its timing
    out = jb.pop_due(1.045 - 2 * DT + DELAY)
    assert [round(p.start, 6) for p in out] == [round(1.045 - 2 * DT, 6)]
    assert len(jb) == 0 and jb.lost == 0  # note_arrival inserts nothing
    make().note_arrival(5, 5 * F, 0.0)  # no anchor yet: nothing to improve, no error


def gate() -> SequenceGate:
    return SequenceGate(0.03)


def test_gate_holds_a_streams_first_item_then_passes_in_order() -> None:
    g = gate()
    assert g.push(11, "b", arrival=1.000) == []  # first: what overtook it?
    assert g.push(10, "a", arrival=1.020) == []
    assert g.holds(10) and g.holds(11) and not g.holds(12) and len(g) == 2
    assert g.due(1.029) == []
    assert g.due(1.030) == ["a", "b"]  # 11's wait is over: everything before it too
    assert g.push(12, "c", arrival=1.040) == ["c"]  # in order: at once
    assert g.push(13, "d", arrival=1.060) == ["d"]


def test_gate_waits_for_an_overtaken_predecessor_at_most_the_window() -> None:
    g = gate()
    g.push(0, "0", 0.0)
    assert g.due(0.03) == ["0"]
    assert g.push(2, "2", 0.040) == []  # 1 missing
    assert g.push(3, "3", 0.060) == []
    assert g.push(1, "1", 0.065) == ["1", "2", "3"]  # it came: order kept
    assert g.push(5, "5", 0.100) == []  # 4 missing ...
    assert g.push(6, "6", 0.120) == []
    assert g.due(0.1299) == []
    assert g.due(0.130) == ["5", "6"]  # ... lost: the successors go on after the window
    assert g.push(4, "4", 0.150) == ["4"]  # straggler after the wait: at once
    assert g.push(8, "8", 0.160) == []
    assert g.push(9, "9", 0.195) == ["8", "9"]  # a later arrival ends an expired wait too


def test_gate_sequence_wrap_restart_drain_and_limit() -> None:
    g = gate()
    g.push(0xFFFE, "a", 0.0)
    assert g.due(1.0) == ["a"]
    assert g.push(0xFFFF, "b", 1.01) == ["b"]
    assert g.push(1, "d", 1.02) == [] and g.holds(1)
    assert g.push(0, "c", 1.03) == ["c", "d"]  # across the wrap
    assert g.push(30000, "r", 2.0) == []  # far behind: the sender restarted, start over
    assert g.push(30001, "s", 2.01) == []
    assert g.drain() == ["r", "s"] and len(g) == 0
    assert g.push(7, "x", 3.0) == []  # after drain the order is forgotten: waits again
    g = SequenceGate(10.0, limit=3)
    g.push(0, 0, 0.0)
    assert g.due(20.0) == [0]
    out = [g.push(s, s, 20.0 + s / 100) for s in (2, 3, 4, 5)]
    assert out == [[], [], [], [2, 3, 4, 5]]  # over the limit: the missing 1 is given up
    assert g.drain() == []


# --- padding-only packets -----------------------------------------------------------------


def test_padding_only_packets_between_spurts_are_not_loss() -> None:
    """WebRTC's padding-only packets take sequence numbers: a few between two talk spurts
    must not turn into concealed audio before the second one, nor count as lost."""
    jb = make()
    for i in range(5):
        jb.insert(i, i * F, bytes([i]), F, arrival=i * DT)
    for seq in (5, 6, 7):  # their timestamp is the last media packet's
        assert jb.note_padding(seq) is Insert.ACCEPTED
    resume = 2.0
    ts = int(resume * 48_000)
    for k, seq in enumerate((8, 9)):
        jb.insert(seq, ts + k * F, bytes([seq]), F, arrival=resume + k * DT)
    out = jb.pop_due(10.0)
    assert [p.payload for p in out] == [bytes([i]) for i in (0, 1, 2, 3, 4, 8, 9)]
    assert jb.lost == 0 and abs(out[5].start - resume) < 1e-9
    assert jb.note_padding(6) is Insert.DUPLICATE  # a copy of one already stepped over


def test_a_loss_next_to_padding_is_concealed_with_the_right_fec() -> None:
    jb = make()
    for i in (0, 1):
        jb.insert(i, i * F, bytes([i]), F, arrival=i * DT)
    jb.note_padding(3)  # 2 lost, 3 padding, 4 the next media packet
    jb.insert(4, 3 * F, b"\x04", F, arrival=3 * DT)
    out = jb.pop_due(10.0)
    assert [p.lost for p in out] == [False, False, True, False]
    assert out[2].fec_source == b"\x04" and abs(out[2].start - 2 * DT) < 1e-9
    assert jb.lost == 1


def test_padding_before_the_first_media_packet_is_ignored() -> None:
    jb = make()
    assert jb.note_padding(40) is Insert.ACCEPTED  # nothing to fill yet
    jb.insert(41, 0, b"a", F, arrival=0.0)
    assert [p.payload for p in jb.pop_due(1.0)] == [b"a"] and jb.lost == 0
