"""DAVE in every group state, through discord.py's real client against the voice double:
the welcome arriving while someone already talks, a downgrade with encrypted frames still
in flight, an upgrade mid-sentence, and MLS proposals for someone not in the call. The rules
are the DAVE whitepaper's (discord/dave-protocol protocol.md): a frame that passes the
protocol frame check is decrypted or dropped, never decoded; plain Opus passes only in
transport-only calls and transitions; old keys stay for the transition window.
Speech: LibriSpeech (CC BY 4.0).
"""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest
from discord import opus

from bot.voice.client import ReceivingVoiceClient
from bot.voice.e2ee import MediaProtocol
from tests.voice.conftest import clean_min, on_time, similarity
from tests.voice.double import encode, librispeech, load_speech, snowflake

# Each test here takes seconds (real handshakes, real time, or a replay): not in the fast subset.
pytestmark = pytest.mark.slow

TIMING_TOLERANCE = 0.06


def _clip(seconds: float, speaker: str = "1688", index: int = 2):
    return encode(load_speech(librispeech(speaker, index), seconds))


def _fresh_decode(packets: list[bytes]) -> np.ndarray:
    """What a receiver that starts decoding at ``packets[0]`` must output."""
    decoder = opus.Decoder()
    return np.concatenate([np.frombuffer(decoder.decode(p), dtype=np.int16).reshape(-1, 2) for p in packets])


async def _until(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not reached")
        await asyncio.sleep(0.02)


async def test_speech_before_the_welcome_is_dropped_never_decoded(make_call) -> None:
    """The bot joins while A talks: A's frames are sealed under the group's current keys,
    which the bot never gets (the welcome is for the next epoch). They must be dropped and
    counted, not handed to Opus as if they were plain, and A is heard from the transition."""
    clip = _clip(4.0)
    call = await make_call(members=2, welcome_delay=1.5, wait_dave=False)
    vc: ReceivingVoiceClient = call.vc
    server = call.server
    a, _ = call.users
    await server.wait_transport()
    assert not vc._connection.dave_session.ready
    res = await server.stream(a, clip)  # the welcome comes about 1.5 s into it
    await asyncio.sleep(0.4)
    assert vc._connection.dave_session.ready and server.executed_at is not None

    s = vc.receive_stats()[a]
    assert s.received == res.sent and s.plain_refused == 0 and s.decode_failures == 0
    assert 40 <= s.e2ee_failures < res.sent  # at least 0.8 s of speech was undecryptable
    assert s.e2ee_failures + s.accepted + s.late == res.sent
    # nothing reached the sink before the switch to the keys the bot has
    frames = call.sink.frames[a]
    assert min(f.start for f in frames) >= call.call_time(server.executed_at) - 0.1
    # and what did is A's speech from there on, exactly as a decoder starting there hears it
    if on_time(res):
        assert s.played == s.accepted == res.sent - s.e2ee_failures
        tail = (clip.packets + [b"\xf8\xff\xfe"] * 5)[-s.played :]
        _, pcm = call.sink.pcm_from(a, after=0.0)
        assert similarity(pcm, _fresh_decode(tail)) > 0.999


class ShortWindow(ReceivingVoiceClient):
    dave_transition_window = 1.0  # the whitepaper's ten seconds, shortened for the test


async def test_downgrade_with_encrypted_frames_in_flight_loses_nothing(make_call) -> None:
    """A client without DAVE joins mid-sentence: the call downgrades. Frames sealed just
    before the execute arrive after it; they must still decrypt (the old keys are kept
    for the transition window), the plain frames after it must pass, and past the window
    ciphertext is dropped, not decoded."""
    clip = _clip(4.0)
    call = await make_call(members=2, client=ShortWindow, playout_delay=0.5)
    vc: ReceivingVoiceClient = call.vc
    server = call.server
    a, _ = call.users
    talking = asyncio.create_task(server.stream(a, clip))
    await asyncio.sleep(1.2)
    await server.downgrade(hold=True)
    await _until(lambda: vc._e2ee.state is MediaProtocol.TRANSPORT_ONLY)
    held = server.release_held()  # sealed before the execute, arriving after it
    res = await talking
    await asyncio.sleep(0.8)
    assert held >= 4

    s = vc.receive_stats()[a]
    assert s.e2ee_failures == 0 and s.plain_refused == 0 and s.decode_failures == 0
    assert s.received == res.sent and s.passthrough > 0
    member = server.members[a]
    dave = vc.receiver.dave_counts()
    assert dave.decrypted == member.encrypted and dave.passthrough >= s.passthrough
    assert call.heard(a, clip, res, tolerance=0.1) > clean_min(res, jitter=0.2)

    # Past the window the old keys are gone: a sender still encrypting is dropped.
    await asyncio.sleep(ShortWindow.dave_transition_window)
    member.plain = False
    late = _clip(1.0, "1998", 1)
    res2 = await server.stream(a, late)
    await asyncio.sleep(0.8)
    s2 = vc.receive_stats()[a]
    assert s2.e2ee_failures == len(late.packets) and s2.decode_failures == 0
    assert s2.played - s.played == res2.sent - len(late.packets)  # only its silence frames


async def test_upgrade_to_e2ee_mid_sentence_loses_nothing(make_call) -> None:
    """The last client without DAVE leaves: the call upgrades while A talks. Plain frames
    pass until the transition executes, encrypted ones decrypt after it."""
    clip = _clip(4.0)
    call = await make_call(members=2, dave=False)
    vc: ReceivingVoiceClient = call.vc
    server = call.server
    a, _ = call.users
    assert vc._connection.dave_session is None
    talking = asyncio.create_task(server.stream(a, clip))
    await asyncio.sleep(1.0)
    await server.upgrade()
    await server.wait_session()
    res = await talking
    await asyncio.sleep(0.4)

    session = vc._connection.dave_session
    assert session is not None and session.ready and vc._e2ee.state is MediaProtocol.E2EE
    member = server.members[a]
    assert member.encrypted > 20  # it really switched to E2EE mid-clip
    s = vc.receive_stats()[a]
    assert s.e2ee_failures == 0 and s.plain_refused == 0 and s.decode_failures == 0
    assert s.received == res.sent and s.passthrough > 20
    assert session.get_decryption_stats(a).successes == member.encrypted
    assert call.heard(a, clip, res, tolerance=TIMING_TOLERANCE) > clean_min(res)


async def test_proposal_for_someone_not_in_the_call_is_refused(make_call, speech) -> None:
    """An add proposal for a user the bot was never told is in the call (no CLIENTS_CONNECT,
    no voice state) is refused; the gateway's commit then fails to apply, the bot recovers
    with a new key package, and everyone expected is still heard."""
    call = await make_call(members=2)
    vc: ReceivingVoiceClient = call.vc
    server = call.server
    a, _ = call.users
    commits_before = len(server.bot_commit_welcomes)
    stranger = snowflake()
    await server.add_member(stranger, connect=False)
    await server.wait_session()
    assert vc.counters.proposals_refused == 1 and stranger not in vc.expected_members()
    assert len(server.bot_commit_welcomes) == commits_before  # no commit from us for it
    assert len(server.invalid_commit) == 1 and vc._connection.dave_session.ready

    # Someone announced the way Discord does is accepted, and our commit goes out.
    joiner = snowflake()
    await server.add_member(joiner)
    assert joiner in vc.expected_members() and vc.counters.proposals_refused == 1
    assert len(server.bot_commit_welcomes) == commits_before + 1
    res = await server.stream(a, speech["a"])
    await asyncio.sleep(0.4)
    assert call.heard(a, speech["a"], res, tolerance=TIMING_TOLERANCE) > clean_min(res)


async def test_a_voice_state_in_the_channel_makes_a_member_expected(make_call) -> None:
    """Discord's other word on who is in the call: the main gateway's voice states."""
    call = await make_call(members=2, in_channel=True)
    vc: ReceivingVoiceClient = call.vc
    server = call.server
    newcomer = snowflake()
    call.discord.gateway.member_voice_state(newcomer, call.discord.channel.id)
    commits_before = len(server.bot_commit_welcomes)
    await server.add_member(newcomer, connect=False)  # no CLIENTS_CONNECT this time
    assert vc.counters.proposals_refused == 0
    assert len(server.bot_commit_welcomes) == commits_before + 1
    assert set(call.users) | {newcomer, vc.user.id} == set(vc.expected_members())


async def test_plain_opus_in_an_e2ee_call_is_refused_silence_passes(make_call, speech) -> None:
    """Outside a transition, frames without DAVE are not the call's media (the SFU could
    inject them; a member cannot be heard that way): refused and counted. Discord's silence
    frame is the whitepaper's one exception."""
    call = await make_call(members=2)
    vc: ReceivingVoiceClient = call.vc
    a, _ = call.users
    call.server.members[a].plain = True
    res = await call.server.stream(a, speech["a"])
    await asyncio.sleep(0.4)
    s = vc.receive_stats()[a]
    assert s.plain_refused == len(speech["a"].packets) and s.e2ee_failures == 0
    assert s.played == res.sent - len(speech["a"].packets)  # the 5 silence frames
    assert all(not f.pcm.any() for f in call.sink.frames[a])
