"""Membership and connection changes during a call, through the real discord.py client:
leave and rejoin (new SSRC, MLS remove + add), opt-out, a 4015 resume while audio flows,
and a voice-server move (4014 + new VOICE_SERVER_UPDATE). Speech: LibriSpeech (CC BY 4.0).
"""

from __future__ import annotations

import asyncio

import pytest

from bot.voice.client import ReceivingVoiceClient
from tests.voice.conftest import clean_min, on_time
from tests.voice.double import VoiceRoute, VoiceServerDouble

TIMING_TOLERANCE = 0.06


def _assert_heard(call, user_id: int, speech, res) -> None:
    assert call.heard(user_id, speech, res, tolerance=TIMING_TOLERANCE) > clean_min(res)


@pytest.mark.slow
async def test_leave_and_rejoin_with_a_new_ssrc(make_call, speech) -> None:
    call = await make_call(members=2)
    vc: ReceivingVoiceClient = call.vc
    server = call.server
    a, b = call.users
    first = await server.stream(a, speech["a"])
    await asyncio.sleep(0.3)
    _assert_heard(call, a, speech["a"], first)
    epoch_before = vc._connection.dave_session.epoch

    departed = await server.remove_member(a)
    # The bot took part in the MLS removal: proposals answered, commit applied.
    session = vc._connection.dave_session
    assert session.epoch == epoch_before + 1
    assert str(a) not in session.get_user_ids()
    assert vc.counters.user_disconnects == 1

    # Datagrams still arriving on the departed SSRC are not anyone's audio any more.
    frames_before = len(call.sink.frames[a])
    for packet in speech["a"].packets[:10]:
        server.send_raw(server.media_packet(departed, packet))
    await asyncio.sleep(0.3)
    assert len(call.sink.frames[a]) == frames_before
    assert vc.receiver.unmapped_stats()[departed.ssrc].received == 10

    rejoined = await server.add_member(a)
    assert rejoined.ssrc != departed.ssrc
    assert str(a) in session.get_user_ids() and session.epoch == epoch_before + 2
    second = await server.stream(a, speech["b"])  # different words, same user
    other = await server.stream(b, speech["a"])  # B still fine after two epoch changes
    await asyncio.sleep(0.3)
    _assert_heard(call, a, speech["b"], second)
    _assert_heard(call, b, speech["a"], other)
    # The bot answered each external proposal with its own commit, as a member must.
    assert len(server.bot_commit_welcomes) == 2
    stats = vc.receive_stats()[a]
    assert stats.decrypt_failures == 0 and stats.received == first.sent + second.sent


@pytest.mark.slow
async def test_opted_out_user_is_never_decrypted_or_decoded(make_call, speech) -> None:
    call = await make_call(members=2, listen=False)
    vc: ReceivingVoiceClient = call.vc
    a, b = call.users
    vc.listen(call.sink, epoch=call.epoch, opted_out={b})
    res_a, res_b = await asyncio.gather(call.server.stream(a, speech["a"]), call.server.stream(b, speech["b"]))
    await asyncio.sleep(0.3)

    _assert_heard(call, a, speech["a"], res_a)
    assert b not in call.sink.frames
    stats = vc.receive_stats()[b]
    assert stats.received == res_b.sent and stats.dropped_opted_out == res_b.sent
    assert stats.accepted == stats.played == stats.decrypt_failures == 0
    # davey itself never saw B's frames: no decryption was even attempted.
    dstats = vc._connection.dave_session.get_decryption_stats(b)
    assert dstats is None or dstats.attempts == 0
    assert vc._connection.dave_session.get_decryption_stats(a).successes >= len(speech["a"].packets)

    # Opting back in takes effect for new packets.
    vc.set_opted_out(())
    res_b2 = await call.server.stream(b, speech["b"])
    await asyncio.sleep(0.3)
    _assert_heard(call, b, speech["b"], res_b2)


@pytest.mark.slow
async def test_resume_after_4015_keeps_listening_without_a_gap(make_call, speech) -> None:
    call = await make_call(members=2)
    vc: ReceivingVoiceClient = call.vc
    server = call.server
    a, b = call.users
    receiver = vc.receiver
    key_before = bytes(vc.secret_key)

    streaming = asyncio.create_task(server.stream(a, speech["a"]))
    await asyncio.sleep(1.0)
    await server.close_ws(4015)  # "voice server crashed": the client should RESUME
    res = await streaming
    await asyncio.sleep(0.5)

    assert server.resumes == 1 and server.identifies == 1, "expected a resume, not a new session"
    assert vc.is_connected() and vc.counters.resumes == 1
    assert vc.receiver is receiver and bytes(vc.secret_key) == key_before
    # UDP kept flowing while the websocket was down: the whole clip, unbroken.
    _assert_heard(call, a, speech["a"], res)
    if on_time(res):
        assert vc.receive_stats()[a].lost == 0
    # And the resumed websocket still works: heartbeats and later events reach the client.
    res_b = await server.stream(b, speech["b"])
    await asyncio.sleep(0.3)
    _assert_heard(call, b, speech["b"], res_b)
    joiner = await server.add_member(987654321)  # a DAVE commit over the resumed socket
    res_j = await server.stream(joiner.user_id, speech["a"])
    await asyncio.sleep(0.3)
    _assert_heard(call, joiner.user_id, speech["a"], res_j)


@pytest.mark.slow
async def test_voice_server_move_reconnects_and_keeps_buffered_audio(make_call, speech, tls) -> None:
    call = await make_call(members=1)
    vc: ReceivingVoiceClient = call.vc
    (a,) = call.users
    receiver = vc.receiver
    before = await call.server.stream(a, speech["a"])

    # Discord moves the call to another voice server: a new VOICE_SERVER_UPDATE arrives
    # on the main gateway while connected. The other server has its own MLS group.
    new_server = VoiceServerDouble(
        tls, guild_id=call.server.guild_id, channel_id=call.server.channel_id, token="voice-token-2"
    )
    call.extra_servers.append(new_server)
    await new_server.start()
    await new_server.add_member(a)
    call.discord.gateway.route = VoiceRoute(new_server.endpoint, "voice-token-2")
    call.discord.gateway.send_voice_server_update()
    await new_server.wait_session(timeout=20)
    for _ in range(100):
        if vc.is_connected():
            break
        await asyncio.sleep(0.05)
    assert vc.is_connected() and vc.endpoint == new_server.endpoint
    assert new_server.identifies == 1 and vc.counters.transport_keys == 2
    assert vc.receiver is receiver and vc._connection.dave_session.ready

    await asyncio.sleep(0.3)  # a pause between talk spurts, so the two are told apart
    after = await new_server.stream(a, speech["b"])
    await asyncio.sleep(0.3)
    # Audio from before the move is still there, and the new server's audio follows it.
    _assert_heard(call, a, speech["a"], before)
    _assert_heard(call, a, speech["b"], after)
    assert vc.receive_stats()[a].decrypt_failures == 0


@pytest.mark.slow
async def test_failed_resume_falls_back_to_a_new_session_and_keeps_listening(make_call, speech) -> None:
    """4015, but the server lost the session (RESUME answered with 4006): the client must
    identify afresh (new transport key, new DAVE membership) and keep its receiver."""
    call = await make_call(members=1)
    vc: ReceivingVoiceClient = call.vc
    server = call.server
    (a,) = call.users
    receiver = vc.receiver
    before = await server.stream(a, speech["a"])
    key_before = bytes(vc.secret_key)

    server.resume_allowed = False
    await server.close_ws(4015)
    for _ in range(200):
        if vc.is_connected() and server.identifies == 2 and vc._connection.dave_session.ready:
            break
        await asyncio.sleep(0.05)
    assert server.resume_attempts == 1 and server.resumes == 0 and server.identifies == 2
    assert vc.is_connected() and vc.receiver is receiver
    assert bytes(vc.secret_key) != key_before and vc.counters.transport_keys == 2
    assert vc._connection.dave_session.ready

    await asyncio.sleep(0.3)  # a pause between talk spurts, so the two are told apart
    after = await server.stream(a, speech["b"])
    await asyncio.sleep(0.3)
    _assert_heard(call, a, speech["a"], before)
    _assert_heard(call, a, speech["b"], after)
    assert vc.receive_stats()[a].decrypt_failures == 0


@pytest.mark.slow
async def test_dave_epoch_changes_during_speech_lose_nothing(make_call, speech) -> None:
    """People join and leave while A talks: each is an MLS commit (new epoch, new keys)
    that discord.py applies on the event loop while the socket reader thread is decrypting
    A's frames with the same davey session. The double's members switch keys at the DAVE
    transition, as real clients do, so not one of A's frames may fail."""
    call = await make_call(members=2)
    vc: ReceivingVoiceClient = call.vc
    a, b = call.users
    session = vc._connection.dave_session
    epoch0 = session.epoch
    talking = asyncio.create_task(call.server.stream(a, speech["a"]))
    for k in range(3):
        await asyncio.sleep(0.3)
        await call.server.add_member(7_000 + k)
    await call.server.remove_member(b)
    res = await talking
    await asyncio.sleep(0.4)

    assert session.epoch == epoch0 + 4
    assert session.get_decryption_stats(a).failures == 0
    s = vc.receive_stats()[a]
    assert s.decrypt_failures == 0 and s.received == res.sent
    _assert_heard(call, a, speech["a"], res)


@pytest.mark.slow
async def test_kicked_from_the_channel_stops_listening_and_flushes(make_call, speech) -> None:
    """Disconnected by Discord (VOICE_STATE_UPDATE with no channel, then 4014): the client
    ends for good, and audio still in the jitter buffer reaches the sink first."""
    call = await make_call(members=1)
    vc: ReceivingVoiceClient = call.vc
    (a,) = call.users
    talking = asyncio.create_task(call.server.stream(a, speech["a"]))
    await asyncio.sleep(1.0)
    call.discord.gateway.kick()
    await call.server.close_ws(4014)
    await talking
    for _ in range(100):
        if not vc.is_connected() and not vc.is_listening():
            break
        await asyncio.sleep(0.05)
    assert not vc.is_connected() and not vc.is_listening()
    assert call.server.identifies == 1  # it did not try to come back
    played = vc.receive_stats()[a].played
    assert played >= 40  # about a second of speech made it out before the kick
    assert sum(vc.receiver.buffered().values()) == 0  # the jitter buffer was flushed out
    frames_then = len(call.sink.frames[a])
    await asyncio.sleep(0.2)
    assert len(call.sink.frames[a]) == frames_then  # and nothing after it
