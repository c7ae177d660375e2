"""Small pieces of the voice gateway handling: keepalive bookkeeping, who the call's members
are for the MLS group, and the redelivery filter of the voice websocket."""

from __future__ import annotations

from bot.voice import keepalive
from bot.voice.members import CallMembers
from bot.voice.voice_ws import ReceivingVoiceWebSocket


def test_keepalive_tracker_counts_sent_answered_and_strangers() -> None:
    tracker = keepalive.KeepaliveTracker()
    sent = [tracker.next(float(i)) for i in range(3)]
    assert [keepalive.parse(s) for s in sent] == [0, 1, 2]
    assert tracker.echo(sent[1], 1.02) and tracker.echo(sent[0], 5.0)
    assert tracker.echo(sent[1], 6.0)  # a second echo of the same one answers nothing new
    assert not tracker.echo(b"\x80\x78" + bytes(6), 6.0)  # 8 bytes, not a keepalive
    counts = tracker.counts
    assert (counts.sent, counts.answered, counts.unmatched) == (3, 2, 1)
    assert abs(counts.last_rtt - 5.0) < 1e-9
    tracker.send_failed()
    assert tracker.counts.send_errors == 1
    # the counter wraps like the real client's 32-bit one
    assert keepalive.parse(keepalive.payload(2**32 + 5)) == 5


def test_expected_members_come_from_the_gateway_and_the_voice_states() -> None:
    in_channel = {21, 22}
    members = CallMembers(1, lambda: in_channel)
    assert members.expected() == [1, 21, 22]
    members.connected([30, 31])  # CLIENTS_CONNECT
    assert members.expected() == [1, 21, 22, 30, 31]
    members.disconnected(22)  # CLIENT_DISCONNECT: not expected, although its voice state lingers
    members.disconnected(31)
    assert members.expected() == [1, 21, 30]
    members.connected([22])  # reconnected
    assert 22 in members.expected()


def _ws() -> ReceivingVoiceWebSocket:
    # Only the sequence bookkeeping is exercised: no socket needed.
    return object.__new__(ReceivingVoiceWebSocket)


def test_redelivered_messages_are_recognised_by_sequence_number() -> None:
    ws = _ws()
    assert [ws._is_new(s) for s in (1, 2, 3, 2, 3, 4, None, 4)] == [True, True, True, False, False, True, True, False]
    assert ws.redelivered == 3
    # across the 16-bit wrap of the binary messages' numbering
    ws.last_seq = 65_534
    assert [ws._is_new(s) for s in (65_535, 0, 1, 65_535, 2)] == [True, True, True, False, True]
    # a resumed socket carries on from the one it replaces; a new session starts afresh
    resumed = _ws()
    resumed.continue_from(ws)
    assert not resumed._is_new(2) and resumed._is_new(3)
    fresh = _ws()
    assert fresh._is_new(1)
