"""The DAVE media protocol followed through the gateway's transitions (bot.voice.e2ee), and
what the DAVE step then lets through (bot.voice.dave), with real davey sessions and frames.

The sequences are the DAVE whitepaper's (discord/dave-protocol protocol.md): joining an E2EE
call, upgrade from and downgrade to transport-only encryption, sole member reset.
"""

from __future__ import annotations

import math

import davey

from bot.voice.dave import DaveDecryptor, E2eePolicy, FrameOutcome, is_protocol_frame
from bot.voice.e2ee import E2eeTracker, MediaProtocol
from tests.voice.conftest_core import LocalDaveGroup

ALICE, BOT, CHANNEL = 111, 999, 424242
OPUS = bytes.fromhex("fc") + bytes(range(1, 60))  # a CELT 20 ms frame's shape, no DAVE marker
SILENCE = b"\xf8\xff\xfe"


def _group() -> tuple[LocalDaveGroup, davey.DaveSession]:
    group = LocalDaveGroup(CHANNEL, ALICE)
    return group, group.add(BOT)


def test_joining_an_e2ee_call_refuses_plain_and_drops_what_does_not_decrypt() -> None:
    group, bot = _group()
    tracker = E2eeTracker()
    tracker.session_description(1, bot)
    dave = DaveDecryptor(tracker.policy)
    frame = group.members[ALICE].encrypt_opus(OPUS)
    assert is_protocol_frame(frame) and not is_protocol_frame(OPUS)
    assert dave.decrypt(ALICE, frame, 0.0) == (FrameOutcome.DECRYPTED, OPUS)
    assert dave.decrypt(ALICE, OPUS, 0.0) == (FrameOutcome.PLAIN_REFUSED, None)
    assert dave.decrypt(ALICE, SILENCE, 0.0) == (FrameOutcome.SILENCE, SILENCE)
    # a frame under keys we do not have (another group, as before our welcome)
    stranger = LocalDaveGroup(CHANNEL, ALICE)
    stranger.add(BOT)
    foreign = stranger.members[ALICE].encrypt_opus(OPUS)
    assert dave.decrypt(ALICE, foreign, 0.0) == (FrameOutcome.UNDECRYPTABLE, None)
    # and before our welcome: a session with no group yet
    pending = davey.DaveSession(1, BOT, CHANNEL)
    tracker.session_description(1, pending)
    dave.set_policy(tracker.policy)
    assert dave.decrypt(ALICE, frame, 0.0) == (FrameOutcome.UNDECRYPTABLE, None)
    assert dave.decrypt(ALICE, OPUS, 0.0)[0] is FrameOutcome.PLAIN_REFUSED
    assert dave.counts.undecryptable == 2 and dave.counts.plain_refused == 2


def test_downgrade_keeps_the_old_keys_for_the_transition_window() -> None:
    group, bot = _group()
    tracker = E2eeTracker(window=10.0)
    tracker.session_description(1, bot)
    tracker.prepare_transition(7, 0, now=100.0)  # a client without DAVE is joining
    assert tracker.state is MediaProtocol.DOWNGRADING
    dave = DaveDecryptor(tracker.policy)
    assert dave.decrypt(ALICE, OPUS, 100.5)[0] is FrameOutcome.PASSTHROUGH  # some already send plain
    tracker.execute_transition(7, now=101.0)
    assert tracker.state is MediaProtocol.TRANSPORT_ONLY
    dave.set_policy(tracker.policy)
    sender = group.members[ALICE]
    # a frame sealed before the execute, still in flight: decrypted with the kept keys
    assert dave.decrypt(ALICE, sender.encrypt_opus(OPUS), 105.0) == (FrameOutcome.DECRYPTED, OPUS)
    assert dave.decrypt(ALICE, OPUS, 105.0)[0] is FrameOutcome.PASSTHROUGH
    # after the window: ciphertext is dropped, never handed on as Opus
    assert dave.decrypt(ALICE, sender.encrypt_opus(OPUS), 111.5) == (FrameOutcome.UNDECRYPTABLE, None)
    assert dave.decrypt(ALICE, OPUS, 500.0)[0] is FrameOutcome.PASSTHROUGH


def test_upgrade_passes_plain_until_the_execute_and_for_the_window_after() -> None:
    tracker = E2eeTracker(window=10.0)
    tracker.session_description(0, None)  # transport-only call: discord.py has no session
    assert tracker.policy == E2eePolicy(None, math.inf, -math.inf)
    dave = DaveDecryptor(tracker.policy)
    assert dave.decrypt(ALICE, OPUS, 0.0)[0] is FrameOutcome.PASSTHROUGH
    group, bot = _group()  # discord.py creates the session on PREPARE_EPOCH(epoch 1)
    tracker.prepare_epoch(1, 1, bot)
    assert tracker.state is MediaProtocol.UPGRADING
    dave.set_policy(tracker.policy)
    assert dave.decrypt(ALICE, OPUS, 1.0)[0] is FrameOutcome.PASSTHROUGH
    # the welcome's transition (discord.py records it, the hook sees only the execute)
    tracker.execute_transition(3, now=2.0, version=1)
    assert tracker.state is MediaProtocol.E2EE and tracker.transitions == 1
    dave.set_policy(tracker.policy)
    assert dave.decrypt(ALICE, OPUS, 11.9)[0] is FrameOutcome.PASSTHROUGH  # in flight
    assert dave.decrypt(ALICE, OPUS, 12.1)[0] is FrameOutcome.PLAIN_REFUSED
    assert dave.decrypt(ALICE, group.members[ALICE].encrypt_opus(OPUS), 12.1)[0] is FrameOutcome.DECRYPTED


def test_transitions_that_keep_the_protocol_change_nothing() -> None:
    _, bot = _group()
    tracker = E2eeTracker()
    tracker.session_description(1, bot)
    before = tracker.policy
    tracker.execute_transition(4, now=5.0, version=1)  # someone joined: a commit, same protocol
    tracker.prepare_epoch(1, 1, bot)  # sole member reset: the group is re-created
    tracker.prepare_transition(0, 1, now=6.0)  # ... and transition 0 executes at once
    assert tracker.policy == before and tracker.state is MediaProtocol.E2EE and tracker.transitions == 0
    tracker.execute_transition(99, now=7.0)  # unknown id, no version: ignored
    assert tracker.policy == before


def test_davey_passthrough_flag_lets_no_ciphertext_through() -> None:
    """discord.py turns davey's passthrough on (downgrade prepare: 120 s; after an upgrade:
    for good). A frame that passes the protocol frame check but does not decrypt is still
    dropped, and plain frames still follow our policy, not davey's flag."""
    _, bot = _group()
    bot.set_passthrough_mode(True, 120)
    dave = DaveDecryptor(E2eePolicy.required(bot))
    # 20 bytes of "ciphertext", an 8-byte tag, nonce 5, supplemental size 12, the marker
    crafted = bytes(20) + bytes(8) + b"\x05" + bytes([8 + 1 + 1 + 2]) + b"\xfa\xfa"
    assert is_protocol_frame(crafted)
    assert dave.decrypt(ALICE, crafted, 0.0) == (FrameOutcome.UNDECRYPTABLE, None)
    assert dave.decrypt(ALICE, OPUS, 0.0) == (FrameOutcome.PLAIN_REFUSED, None)
