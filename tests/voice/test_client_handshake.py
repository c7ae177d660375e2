"""discord.py 2.7.1's real voice handshake against the local voice double.

Nothing of discord.py is mocked past the main gateway: the voice websocket (TLS, v8),
IDENTIFY/READY/SELECT_PROTOCOL/SESSION_DESCRIPTION, UDP IP discovery and DAVE's MLS join
(external sender, proposals, welcome, transition) all run for real; the double's members
are real davey sessions.
"""

from __future__ import annotations

import asyncio

import davey
import pytest

from bot.voice.client import ReceivingVoiceClient


async def test_handshake_negotiates_transport_and_joins_the_dave_group(make_call) -> None:
    call = await make_call(members=2)
    vc: ReceivingVoiceClient = call.vc
    server = call.server

    assert vc.is_connected()
    assert server.identifies == 1 and server.resumes == 0
    # The double offers AES-GCM first, as Discord does; discord.py 2.7.1 only implements
    # XChaCha20 of the two and must pick it.
    assert vc.mode == "aead_xchacha20_poly1305_rtpsize" == server.mode
    # IP discovery: what the bot announced is where its datagrams really come from.
    (selected,) = server.select_protocols
    assert (selected["address"], selected["port"]) == server.client_addr
    assert bytes(vc.secret_key) == server.secret_key

    session = vc._connection.dave_session
    assert session is not None and session.ready and session.status == davey.SessionStatus.active
    assert set(map(int, session.get_user_ids())) == {*call.users, vc.user.id}
    assert server.transition_ready, "the bot never confirmed the DAVE transition"
    # Everyone derives the same epoch authenticator (and so the same media keys) as the bot.
    for m in server.members.values():
        assert m.dave.get_epoch_authenticator() == session.get_epoch_authenticator()

    # One member's SSRC came by SPEAKING (5), the other's by CLIENT_CONNECT (12).
    assert vc._ssrc_users == {m.ssrc: uid for uid, m in server.members.items()}
    counters = vc.counters
    assert counters.transport_keys == 1 and counters.ssrc_mappings == 2


async def test_double_refuses_a_client_without_dave(tls) -> None:
    """The double enforces DAVE the way Discord does (close 4017); a guard that the
    handshake test above would notice if DAVE were silently skipped."""
    import aiohttp

    from tests.voice.double import VoiceServerDouble, snowflake

    server = VoiceServerDouble(tls, guild_id=snowflake(), channel_id=snowflake(), token="t")
    await server.start()
    try:
        async with aiohttp.ClientSession() as http:
            async with http.ws_connect(f"wss://{server.endpoint}/?v=8", ssl=tls.client) as ws:
                hello = await asyncio.wait_for(ws.receive_json(), 5)
                assert hello["op"] == 8
                await ws.send_json(
                    {
                        "op": 0,
                        "d": {
                            "server_id": str(server.guild_id),
                            "user_id": "1",
                            "session_id": "s",
                            "token": "t",
                            "max_dave_protocol_version": 0,
                        },
                    }
                )
                msg = await asyncio.wait_for(ws.receive(), 5)
                assert msg.type == aiohttp.WSMsgType.CLOSE and msg.data == 4017
    finally:
        await server.stop()


@pytest.mark.slow
async def test_bot_still_speaks_under_dave_while_listening(make_call, speech) -> None:
    """Receiving must not break discord.py's sending: Opus the bot sends is transport- and
    end-to-end encrypted so that a group member (a davey session in the double) can open it,
    while the bot goes on receiving."""
    call = await make_call(members=1)
    vc: ReceivingVoiceClient = call.vc
    (a,) = call.users
    packets = speech["b"].packets[:50]
    talking = asyncio.create_task(call.server.stream(a, speech["a"]))
    for p in packets:
        vc.send_audio_packet(p, encode=False)
        await asyncio.sleep(0.02)
    res = await talking
    await asyncio.sleep(0.2)
    assert call.server.bot_heard == packets
    stats = vc.receive_stats()[a]
    assert stats.received == res.sent and stats.accepted + stats.late == res.sent
    assert stats.decrypt_failures == 0
