"""Fixtures for the end-to-end voice client tests: discord.py 2.7.1's real voice client
against the local voice double (tests/voice/double), everything on 127.0.0.1.

Speech: LibriSpeech test-other (CC BY 4.0), speakers 1688 (male) and 1998 (female).
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

_ROOT = Path(__file__).resolve().parents[2]
if str(_ROOT) not in sys.path:  # `pytest` run without `python -m`
    sys.path.insert(0, str(_ROOT))

from bot.audio.frames import PcmFrame  # noqa: E402
from tests.voice.double import (  # noqa: E402
    EncodedSpeech,
    FakeDiscord,
    TlsPair,
    VoiceRoute,
    VoiceServerDouble,
    encode,
    fake_discord,
    librispeech,
    load_speech,
    make_tls_pair,
    restore_api_base,
    snowflake,
)

SR = 48_000


@pytest.fixture(scope="session")
def tls() -> TlsPair:
    return make_tls_pair()


@pytest.fixture(scope="session")
def speech() -> dict[str, EncodedSpeech]:
    """Two real speakers, 2 s each, Opus-encoded once per session (it is the slow part)."""
    return {
        "a": encode(load_speech(librispeech("1688", 1), 2.0, offset=0.5)),
        "b": encode(load_speech(librispeech("1998", 1), 2.0, offset=0.5)),
    }


@dataclass
class Collector:
    """The sink: every PcmFrame per user, and which thread delivered it."""

    frames: dict[int, list[PcmFrame]] = field(default_factory=lambda: defaultdict(list))

    def __call__(self, user_id: int, frame: PcmFrame) -> None:
        assert frame.sample_rate == SR and frame.pcm.dtype == np.int16 and frame.channels == 2
        self.frames[user_id].append(frame)

    def pcm_from(self, user_id: int, after: float) -> tuple[float, np.ndarray]:
        """The user's frames starting at or after call time ``after``, in time order,
        concatenated: (start of the first, int16 stereo samples).

        Judged by content and not by position in a timeline on purpose: if the test
        process stalls (2 shared cores), the receiver may rightly re-time later frames,
        and that must not read as wrong audio. Timing is checked separately."""
        frames = sorted((f for f in self.frames.get(user_id, []) if f.start >= after), key=lambda f: f.start)
        if not frames:
            return float("nan"), np.zeros((0, 2), dtype=np.int16)
        return frames[0].start, np.concatenate([f.pcm for f in frames])

    def duration(self, user_id: int) -> float:
        return sum(f.duration for f in self.frames.get(user_id, []))


CLEAN_MIN = 0.999  # a lossless, on-time path reproduces the reference decode exactly
STALLED_MIN = 0.8  # some frames concealed: still unmistakably the same speech, in order


def clean_min(res, jitter: float = 0.0) -> float:
    """The similarity a stream must reach: exact unless the double itself fell behind its
    schedule by more than the jitter it was asked for plus 40 ms (of the 60 ms playout
    delay), in which case late frames are the receiver's correct response."""
    return CLEAN_MIN if res.max_lateness() < jitter + 0.04 else STALLED_MIN


def on_time(res, jitter: float = 0.0) -> bool:
    return res.max_lateness() < jitter + 0.04


def similarity(got: np.ndarray, ref: np.ndarray, max_lag: int = 0) -> float:
    """Normalised correlation of two int16 stereo signals (mono mix) over ``ref``'s length,
    best over lags 0..``max_lag`` samples of ``got`` (for the codec delay vs a source)."""
    g = got.astype(np.float64).mean(axis=1)
    r = ref.astype(np.float64).mean(axis=1)
    best = 0.0
    for lag in range(0, max_lag + 1, 4 if max_lag else 1):
        w = g[lag : lag + r.shape[0]]
        rr = r[: w.shape[0]]
        denom = float(np.linalg.norm(w) * np.linalg.norm(rr)) or 1.0
        best = max(best, float(np.dot(w, rr) / denom))
    return best


@dataclass
class Call:
    server: VoiceServerDouble
    discord: FakeDiscord
    vc: object  # ReceivingVoiceClient; typed loosely to keep discord imports local
    sink: Collector
    users: list[int]
    epoch: float
    extra_servers: list[VoiceServerDouble] = field(default_factory=list)

    def call_time(self, monotonic: float) -> float:
        return monotonic - self.epoch

    def now(self) -> float:
        """Current call time: timelines built up to here hold everything delivered so far."""
        return time.monotonic() - self.epoch

    def window(self, res) -> tuple[float, float]:
        """Call-time window where ``res``'s frame 0 belongs (see StreamResult.timing_window)."""
        lo, hi = res.timing_window()
        return self.call_time(lo), self.call_time(hi)

    def assert_placed(self, res, start: float, tolerance: float) -> None:
        lo, hi = self.window(res)
        assert lo - tolerance <= start <= hi + tolerance, (start, lo, hi)

    def heard(self, user_id: int, speech: EncodedSpeech, res, *, tolerance: float = 0.06) -> float:
        """Check ``res`` (one stream of ``speech`` by ``user_id``) came out: returns the
        similarity of the delivered audio to the reference decode, after checking that
        it starts where the stream was sent (within ``tolerance``)."""
        lo, hi = self.window(res)
        start, pcm = self.sink.pcm_from(user_id, after=lo - tolerance - 0.01)
        self.assert_placed(res, start, tolerance)
        assert pcm.shape[0] >= speech.reference.shape[0], (pcm.shape, speech.reference.shape)
        return similarity(pcm, speech.reference)


CallFactory = Callable[..., Awaitable[Call]]


@pytest.fixture
async def make_call(tls: TlsPair) -> AsyncIterator[CallFactory]:
    """Build a call: a voice double with ``members`` simulated users already in it, a
    discord.Client, and ``channel.connect(cls=ReceivingVoiceClient)`` through the real
    handshake, listening from the moment it is connected."""
    from bot.voice.client import ReceivingVoiceClient

    calls: list[Call] = []

    async def factory(
        *,
        members: int = 2,
        dave: bool = True,
        opted_out: tuple[int, ...] = (),
        listen: bool = True,
        wait_dave: bool = True,
        playout_delay: float = 0.06,
        client: type | None = None,
        in_channel: bool = False,
        **double: object,
    ) -> Call:
        """``double``: VoiceServerDouble options (udp_idle_timeout, welcome_delay, ...);
        ``client``: a ReceivingVoiceClient subclass (e.g. a shorter keepalive interval);
        ``in_channel``: the members' voice states are in discord.py's cache, as the main
        gateway reports them; ``wait_dave=False`` returns before the bot is in the MLS group."""
        guild_id, channel_id, bot_id = snowflake(), snowflake(), snowflake()
        server = VoiceServerDouble(
            tls, guild_id=guild_id, channel_id=channel_id, token="voice-token", dave=dave, **double
        )
        await server.start()
        users = [snowflake() for _ in range(members)]
        for i, uid in enumerate(users):
            await server.add_member(uid, via_client_connect=bool(i % 2))
        fake = await fake_discord(
            tls, VoiceRoute(server.endpoint, "voice-token"), guild_id=guild_id, channel_id=channel_id, bot_id=bot_id
        )
        if in_channel:
            for uid in users:
                fake.gateway.member_voice_state(uid, channel_id)
        vc = await fake.channel.connect(cls=client or ReceivingVoiceClient, timeout=15.0, self_deaf=False)
        sink = Collector()
        loop = asyncio.get_running_loop()
        epoch = loop.time()  # asyncio's clock is time.monotonic
        call = Call(server=server, discord=fake, vc=vc, sink=sink, users=users, epoch=epoch)
        calls.append(call)
        if listen:
            vc.listen(sink, epoch=epoch, opted_out=opted_out, playout_delay=playout_delay)
        if wait_dave:
            await server.wait_session()
        return call

    try:
        yield factory
    finally:
        for call in calls:
            try:
                await asyncio.wait_for(call.discord.close(), 10)
            finally:
                for s in [call.server, *call.extra_servers]:
                    await s.stop()
                    assert not s.errors, f"voice double failed: {s.errors!r}"
        restore_api_base()
