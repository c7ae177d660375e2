"""UDP keepalive through discord.py's real client: the voice double, like Discord, stops
forwarding audio to a client whose UDP has been silent (Discord: after minutes, the double:
after ``IDLE`` s), and the bot, which never speaks, must keep its path alive for the whole
call and after reconnects. Speech: LibriSpeech (CC BY 4.0).
"""

from __future__ import annotations

import asyncio

import pytest

from bot.voice.client import ReceivingVoiceClient
from tests.voice.conftest import clean_min

# Each test here takes seconds (real handshakes, real time, or a replay): not in the fast subset.
pytestmark = pytest.mark.slow

IDLE = 1.5  # the double's cutoff, scaled down from Discord's minutes; the mechanism is the same
TIMING_TOLERANCE = 0.06


class FastKeepalive(ReceivingVoiceClient):
    keepalive_interval = 0.4  # Discord's client sends every 5 s against a cutoff of minutes


class NoKeepalive(ReceivingVoiceClient):
    keepalive_interval = None  # discord.py 2.7.1's behaviour: nothing after IP discovery


async def test_keepalives_keep_audio_coming_after_a_long_silence(make_call, speech) -> None:
    call = await make_call(members=1, client=FastKeepalive, udp_idle_timeout=IDLE)
    vc: ReceivingVoiceClient = call.vc
    (a,) = call.users
    await asyncio.sleep(3 * IDLE)  # nobody talks, and the bot never does
    res = await call.server.stream(a, speech["a"])
    await asyncio.sleep(0.4)
    assert call.server.withheld == 0
    assert call.heard(a, speech["a"], res, tolerance=TIMING_TOLERANCE) > clean_min(res)
    counters = vc.counters
    assert counters.keepalives_sent >= 3 * IDLE / FastKeepalive.keepalive_interval
    assert call.server.keepalives == counters.keepalives_sent  # every one reached the server
    assert counters.keepalives_sent - 1 <= counters.keepalives_answered <= counters.keepalives_sent
    assert counters.keepalive_errors == 0
    # The same counts come with the per-user receive stats, for one health line per call.
    stats = vc.receive_stats()
    assert stats[a].received > 0 and stats.keepalives_sent >= counters.keepalives_sent
    assert stats.keepalives_answered >= counters.keepalives_answered


async def test_without_keepalives_the_double_stops_forwarding_as_discord_does(make_call, speech) -> None:
    """The guard for the test above: the double's cutoff really bites."""
    call = await make_call(members=1, client=NoKeepalive, udp_idle_timeout=IDLE)
    (a,) = call.users
    await asyncio.sleep(2 * IDLE)
    res = await call.server.stream(a, speech["a"])
    await asyncio.sleep(0.3)
    assert call.server.withheld == res.sent and not call.sink.frames.get(a)
    assert call.vc.counters.keepalives_sent == 0


async def test_keepalives_go_on_after_a_reconnect_on_the_new_socket(make_call, speech) -> None:
    """A failed resume (4015 answered with 4006): a new voice session with a new UDP socket.
    The keepalive greets the new path at once and keeps it alive."""
    call = await make_call(members=1, client=FastKeepalive, udp_idle_timeout=IDLE)
    vc: ReceivingVoiceClient = call.vc
    server = call.server
    (a,) = call.users
    addr_before = server.client_addr
    server.resume_allowed = False
    await server.close_ws(4015)
    for _ in range(200):
        if vc.is_connected() and server.identifies == 2 and vc._connection.dave_session.ready:
            break
        await asyncio.sleep(0.05)
    assert server.identifies == 2 and server.client_addr != addr_before
    sent_then = vc.counters.keepalives_sent
    await asyncio.sleep(3 * IDLE)
    res = await server.stream(a, speech["b"])
    await asyncio.sleep(0.4)
    assert server.withheld == 0 and vc.counters.keepalives_sent > sent_then
    assert call.heard(a, speech["b"], res, tolerance=TIMING_TOLERANCE) > clean_min(res)
