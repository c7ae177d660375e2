"""Speech in, speech out: real Opus speech sent by the double's members through DAVE and
transport encryption comes out of ReceivingVoiceClient as each user's own, correctly timed
audio. Speech: LibriSpeech test-other (CC BY 4.0).
"""

from __future__ import annotations

import asyncio

import pytest

from bot.voice.client import ReceivingVoiceClient
from tests.voice.conftest import clean_min, on_time, similarity
from tests.voice.double import Impairment

# Output is compared with ``EncodedSpeech.reference``, the same packets decoded locally in
# order: a lossless path reproduces it sample for sample (similarity 1.0, see clean_min),
# while a shift of one sample, a dropped or misordered frame or another speaker's audio
# falls far below.
CROSS_MAX = 0.2
# Against the original recording (codec loss and delay included) these clips measure
# 0.83 and 0.94.
SOURCE_MIN = 0.75
# Where frame 0 lands in call time vs the window its datagrams' departures imply: the
# loopback adds well under a millisecond; the bound allows for the 2-core machine's
# scheduling of the receive thread and poll task.
TIMING_TOLERANCE = 0.06


async def _drain(seconds: float = 0.4) -> None:
    # Past the 60 ms playout delay and a few 20 ms polls, so everything sent was released.
    await asyncio.sleep(seconds)


@pytest.mark.slow
async def test_two_speakers_each_come_out_as_their_own_audio(make_call, speech) -> None:
    call = await make_call(members=2)
    vc: ReceivingVoiceClient = call.vc
    a, b = call.users
    # Overlapping talk, B starting 0.7 s after A.
    task_a = asyncio.create_task(call.server.stream(a, speech["a"]))
    await asyncio.sleep(0.7)
    res_b = await call.server.stream(b, speech["b"])
    res_a = await task_a
    await _drain()

    for res, src, other in ((res_a, speech["a"], speech["b"]), (res_b, speech["b"], speech["a"])):
        assert call.heard(res.user_id, src, res, tolerance=TIMING_TOLERANCE) > clean_min(res)
        _, pcm = call.sink.pcm_from(res.user_id, after=0.0)
        assert similarity(pcm, src.pcm, max_lag=960) > SOURCE_MIN  # and it is that person
        assert similarity(pcm, other.reference) < CROSS_MAX  # not the other one

    stats = vc.receive_stats()
    for res in (res_a, res_b):
        s = stats[res.user_id]
        assert s.received == res.sent and s.decrypt_failures == 0 and s.decode_failures == 0
        if on_time(res):
            assert s.accepted == res.sent == s.played and s.lost == 0 and s.late == 0
        else:
            assert s.accepted + s.late == res.sent and s.played == s.accepted
    # DAVE really decrypted every non-silence frame (silence frames are never E2EE'd).
    session = vc._connection.dave_session
    for res, src in ((res_a, speech["a"]), (res_b, speech["b"])):
        dstats = session.get_decryption_stats(res.user_id)
        assert dstats.successes >= len(src.packets) and dstats.failures == 0
    assert vc.counters.datagrams >= res_a.sent + res_b.sent


@pytest.mark.slow
async def test_speech_survives_loss_reordering_jitter_duplicates_and_garbage(make_call, speech) -> None:
    call = await make_call(members=2)
    vc: ReceivingVoiceClient = call.vc
    a, b = call.users
    bad = Impairment(loss=0.05, reorder=0.1, jitter_ms=25, duplicate=0.05, garbage=0.05, rtcp=0.05, seed=7)
    res_a, res_b = await asyncio.gather(
        call.server.stream(a, speech["a"], bad), call.server.stream(b, speech["b"], bad)
    )
    await _drain()
    assert res_a.dropped > 0 and res_b.dropped > 0, "the impairment did not bite"

    stats = vc.receive_stats()
    for res, src in ((res_a, speech["a"]), (res_b, speech["b"])):
        # ~5 % of 20 ms frames concealed by Opus PLC/FEC: still clearly the same speech,
        # and every frame in its place (a shifted or missing frame would misalign the rest).
        # The jitter (up to 25 ms) delays arrivals beyond what send_log shows.
        corr = call.heard(res.user_id, src, res, tolerance=TIMING_TOLERANCE + 0.03)
        assert corr > 0.8, (res.user_id, corr)  # measured 0.88-0.95 at this impairment
        s = stats[res.user_id]
        assert s.received == res.sent
        # Each duplicated datagram is discarded once, as a duplicate, before it reaches
        # DAVE (whose replay protection would otherwise call it a decryption failure). The
        # only frames DAVE may refuse are ones overtaken by the sender's very first frame
        # (see dave_early).
        early = res.dave_early()
        distinct_ok = len(set(res.emitted)) - len({i for i in res.emitted if i < res.emitted[0]})
        # A frame that arrived after its playout time is "late" instead of accepted.
        assert s.accepted + s.late == distinct_ok, (s, res)
        assert s.duplicates + s.decrypt_failures == res.sent - distinct_ok
        assert s.decrypt_failures <= early
        assert res.duplicated > 0
        # Every accepted frame is played; the dropped and late ones are concealed, so the
        # timeline has no holes.
        assert s.played == s.accepted and s.decode_failures == 0
        # Loss is counted from the first frame played on: frames the double dropped after it.
        missing = set(range(res.emitted[0], len(src.packets) + 5)) - set(res.emitted)
        assert len(missing) <= s.lost <= len(missing) + s.late
        assert abs(call.sink.duration(res.user_id) - (len(src.packets) + 5) * 0.02) < 0.1
    totals = vc.receiver.totals()
    assert totals.malformed > 0  # the garbage datagrams were seen and dropped
    assert totals.rtcp > 0  # and RTCP told apart from media


@pytest.mark.slow
async def test_transport_only_call_without_dave(make_call, speech) -> None:
    """A call whose server negotiates DAVE protocol 0 (passthrough): no E2EE layer at all."""
    call = await make_call(members=1, dave=False)
    vc: ReceivingVoiceClient = call.vc
    (a,) = call.users
    assert vc._connection.dave_protocol_version == 0
    res = await call.server.stream(a, speech["a"])
    await _drain()
    assert call.heard(a, speech["a"], res, tolerance=TIMING_TOLERANCE) > clean_min(res)
    assert vc.receive_stats()[a].decrypt_failures == 0


async def _two_spurts(call, speech, *, contiguous: bool) -> None:
    (a,) = call.users
    first = await call.server.stream(a, speech["a"], contiguous_timestamps=contiguous)
    await asyncio.sleep(1.0)
    second = await call.server.stream(a, speech["b"], contiguous_timestamps=contiguous)
    await _drain()
    for res, src in ((first, speech["a"]), (second, speech["b"])):
        assert call.heard(a, src, res, tolerance=TIMING_TOLERANCE) > clean_min(res)


@pytest.mark.slow
async def test_talk_spurts_keep_their_wall_clock_timing(make_call, speech) -> None:
    """Two talk spurts 1 s apart, RTP timestamps running through the silence as Discord's
    WebRTC clients send them: the second spurt lands where it was spoken."""
    await _two_spurts(await make_call(members=1), speech, contiguous=False)


@pytest.mark.slow
async def test_talk_spurts_with_contiguous_timestamps_keep_their_timing(make_call, speech) -> None:
    """The same, from a sender whose RTP timestamps do not advance during silence
    (discord.py's own sender): the receiver places the second spurt by its arrival."""
    await _two_spurts(await make_call(members=1), speech, contiguous=True)
