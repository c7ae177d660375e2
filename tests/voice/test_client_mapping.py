"""Who is speaking, through discord.py's real client against the voice double: SPEAKING (5)
late, or only after a buffered resume; messages redelivered on resume handled once;
padding-only RTP and RTCP feedback taken for what they are. Speech: LibriSpeech (CC BY 4.0).
"""

from __future__ import annotations

import asyncio

import pytest

from bot.voice.client import ReceivingVoiceClient
from tests.voice.conftest import clean_min, on_time, similarity
from tests.voice.double import Impairment, encode, librispeech, load_speech, snowflake

# Each test here takes seconds (real handshakes, real time, or a replay): not in the fast subset.
pytestmark = pytest.mark.slow

TIMING_TOLERANCE = 0.06


def _clip(seconds: float):
    return encode(load_speech(librispeech("2033", 4), seconds))


async def _wait(predicate, timeout: float = 15.0) -> None:
    for _ in range(int(timeout / 0.05)):
        if predicate():
            return
        await asyncio.sleep(0.05)
    raise TimeoutError("condition not reached")


async def test_speech_before_its_speaking_event_is_held_and_attributed(make_call, speech) -> None:
    """Someone starts talking 3 s before Discord's SPEAKING for them reaches the bot (three
    times the old hold): all of it is theirs, in its place, none of it lost."""
    clip = _clip(4.0)
    call = await make_call(members=1)
    vc: ReceivingVoiceClient = call.vc
    server = call.server
    (other,) = call.users
    newcomer = snowflake()
    await server.add_member(newcomer, announce=False)  # in the call and the MLS group, SSRC unknown
    talking = asyncio.create_task(server.stream(newcomer, clip))
    await asyncio.sleep(3.0)
    assert vc.receiver.totals().held > 100 and newcomer not in call.sink.frames
    await server.announce(newcomer)
    res = await talking
    await asyncio.sleep(0.4)
    s = vc.receive_stats()[newcomer]
    assert s.received == res.sent and s.unknown_ssrc == 0 and s.e2ee_failures == 0
    assert call.heard(newcomer, clip, res, tolerance=TIMING_TOLERANCE) > clean_min(res)
    assert not call.sink.frames.get(other)  # nothing of it went to anyone else


async def test_speaking_event_sent_during_an_outage_arrives_with_the_resume(make_call) -> None:
    """The websocket drops (4015) as someone starts talking; their SPEAKING is sent while it
    is down and only arrives, redelivered, once the session resumes 2 s later."""
    clip = _clip(4.0)
    call = await make_call(members=1, resume_delay=2.0)
    vc: ReceivingVoiceClient = call.vc
    server = call.server
    newcomer = snowflake()
    await server.add_member(newcomer, announce=False)
    await server.close_ws(4015)
    talking = asyncio.create_task(server.stream(newcomer, clip))
    await asyncio.sleep(0.3)
    await server.announce(newcomer)  # buffered by the gateway
    await _wait(lambda: vc.counters.resumes == 1)
    res = await talking
    await asyncio.sleep(0.4)
    assert server.resumes == 1 and server.identifies == 1 and server.redelivered >= 1
    s = vc.receive_stats()[newcomer]
    assert s.received == res.sent and s.unknown_ssrc == 0
    assert call.heard(newcomer, clip, res, tolerance=TIMING_TOLERANCE) > clean_min(res)


async def test_messages_redelivered_after_a_resume_are_handled_once(make_call, speech) -> None:
    """After RESUMED the double re-sends the whole session so far (the gateway may re-send
    what the bot had): SESSION_DESCRIPTION, the DAVE external sender, welcome and
    transition, CLIENTS_CONNECT, SPEAKING. Handled again, SESSION_DESCRIPTION alone would
    re-create the DAVE session (a new key package, out of the group) and the welcome would
    fail into invalid-commit recovery."""
    call = await make_call(members=2, redeliver_extra=500)
    vc: ReceivingVoiceClient = call.vc
    server = call.server
    a, b = call.users
    session = vc._connection.dave_session
    epoch, key = session.epoch, bytes(vc.secret_key)
    key_packages = len(server.key_packages)
    leaver = await server.remove_member(b)  # a CLIENT_DISCONNECT in the history, too
    await server.close_ws(4015)
    await _wait(lambda: vc.counters.resumes == 1)
    await asyncio.sleep(0.3)
    assert server.redelivered >= 10 and vc.counters.redelivered == server.redelivered
    assert len(server.key_packages) == key_packages and not server.invalid_commit
    assert session.ready and session.epoch == epoch + 1 and bytes(vc.secret_key) == key
    assert vc.counters.transport_keys == 1 and vc.counters.user_disconnects == 1
    res = await server.stream(a, speech["a"])
    await asyncio.sleep(0.4)
    assert call.heard(a, speech["a"], res, tolerance=TIMING_TOLERANCE) > clean_min(res)
    assert vc.receive_stats()[a].e2ee_failures == 0
    assert leaver.ssrc not in vc._ssrc_users


async def test_padding_only_packets_and_rtcp_feedback_are_not_audio(make_call, speech) -> None:
    """Padding-only RTP (WebRTC's bandwidth probes: own sequence numbers, no media) inside
    and between talk spurts, and RTCP transport-cc (205) and PLI (206) alongside: no
    parse failures, no loss, no concealment, every frame in its place."""
    call = await make_call(members=1)
    vc: ReceivingVoiceClient = call.vc
    server = call.server
    (a,) = call.users
    mixed = Impairment(padding=0.08, rtcp=0.05, rtcp_feedback=0.1, seed=4)
    first = await server.stream(a, speech["a"], mixed)
    server.send_padding(a, 4)  # a few in the silence, before the next spurt
    await asyncio.sleep(0.5)
    second = await server.stream(a, speech["b"], Impairment(rtcp_feedback=0.1, seed=5))
    await asyncio.sleep(0.4)
    assert first.padding > 0
    s = vc.receive_stats()[a]
    assert s.padding == first.padding + 4 and s.parse_failures == 0
    assert s.received == first.sent + second.sent + s.padding
    if on_time(first) and on_time(second):
        assert s.lost == 0 and s.concealed == 0
    totals = vc.receiver.totals()
    assert totals.rtcp_feedback > 0 and totals.other_payload_type == 0 and totals.malformed == 0
    for res, src in ((first, speech["a"]), (second, speech["b"])):
        assert call.heard(a, src, res, tolerance=TIMING_TOLERANCE) > clean_min(res)
    _, pcm = call.sink.pcm_from(a, after=0.0)
    assert similarity(pcm, speech["a"].reference) > clean_min(first)
