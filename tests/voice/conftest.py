"""Fixtures for the end-to-end voice client tests: discord.py 2.7.1's real voice client
against the local voice double (tests/voice/double), everything on 127.0.0.1.

Speech: LibriSpeech test-other (CC BY 4.0), speakers 1688 (male) and 1998 (female).
"""

from __future__ import annotations

import asyncio
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import AsyncIterator, Awaitable, Callable

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

    def timeline(self, user_id: int, seconds: float) -> np.ndarray:
        """The user's audio placed at its call-time ``start``: mono float, ``seconds`` long."""
        out = np.zeros(int(seconds * SR), dtype=np.float32)
        for f in self.frames.get(user_id, []):
            i = int(round(f.start * SR))
            mono = f.pcm.astype(np.float32).mean(axis=1) / 32768.0
            j = min(i + mono.shape[0], out.shape[0])
            if j > i >= 0:
                out[i:j] = mono[: j - i]
        return out

    def duration(self, user_id: int) -> float:
        return sum(f.duration for f in self.frames.get(user_id, []))


def locate(source: np.ndarray, timeline: np.ndarray, expected_at: float, search: float = 0.5) -> tuple[float, float]:
    """Where ``source`` (int16 stereo) sits in ``timeline`` near ``expected_at`` seconds.

    Returns (start seconds, normalised correlation at that lag). The lag search is done on
    the envelope-free waveform by FFT cross-correlation over +-``search`` seconds."""
    src = source.astype(np.float32).mean(axis=1) / 32768.0
    lo = max(0, int((expected_at - search) * SR))
    hi = min(timeline.shape[0], int((expected_at + search) * SR) + src.shape[0])
    seg = timeline[lo:hi]
    if seg.shape[0] < src.shape[0]:
        return float("nan"), 0.0
    n = 1 << int(np.ceil(np.log2(seg.shape[0] + src.shape[0])))
    xc = np.fft.irfft(np.fft.rfft(seg, n) * np.conj(np.fft.rfft(src, n)), n)[: seg.shape[0] - src.shape[0] + 1]
    lag = int(np.argmax(xc))
    window = seg[lag : lag + src.shape[0]]
    denom = float(np.linalg.norm(window) * np.linalg.norm(src)) or 1.0
    return (lo + lag) / SR, float(np.dot(window, src) / denom)


def correlation_at(source: np.ndarray, timeline: np.ndarray, start: float) -> float:
    src = source.astype(np.float32).mean(axis=1) / 32768.0
    i = int(round(start * SR))
    window = timeline[i : i + src.shape[0]]
    if window.shape[0] < src.shape[0]:
        src = src[: window.shape[0]]
    denom = float(np.linalg.norm(window) * np.linalg.norm(src)) or 1.0
    return float(np.dot(window, src) / denom)


@dataclass
class Call:
    server: VoiceServerDouble
    discord: FakeDiscord
    vc: "object"  # ReceivingVoiceClient; typed loosely to keep discord imports local
    sink: Collector
    users: list[int]
    epoch: float
    extra_servers: list[VoiceServerDouble] = field(default_factory=list)

    def call_time(self, monotonic: float) -> float:
        return monotonic - self.epoch


CallFactory = Callable[..., Awaitable[Call]]


@pytest.fixture
async def make_call(tls: TlsPair) -> AsyncIterator[CallFactory]:
    """Build a call: a voice double with ``members`` simulated users already in it, a
    discord.Client, and ``channel.connect(cls=ReceivingVoiceClient)`` through the real
    handshake, listening from the moment it is connected."""
    from bot.voice.client import ReceivingVoiceClient

    calls: list[Call] = []

    async def factory(*, members: int = 2, dave: bool = True, opted_out: tuple[int, ...] = (), listen: bool = True) -> Call:
        guild_id, channel_id, bot_id = snowflake(), snowflake(), snowflake()
        server = VoiceServerDouble(tls, guild_id=guild_id, channel_id=channel_id, token="voice-token", dave=dave)
        await server.start()
        users = [snowflake() for _ in range(members)]
        for i, uid in enumerate(users):
            await server.add_member(uid, via_client_connect=bool(i % 2))
        fake = await fake_discord(tls, VoiceRoute(server.endpoint, "voice-token"), guild_id=guild_id, channel_id=channel_id, bot_id=bot_id)
        vc = await fake.channel.connect(cls=ReceivingVoiceClient, timeout=15.0, self_deaf=False)
        sink = Collector()
        loop = asyncio.get_running_loop()
        epoch = loop.time()  # asyncio's clock is time.monotonic
        call = Call(server=server, discord=fake, vc=vc, sink=sink, users=users, epoch=epoch)
        calls.append(call)
        if listen:
            vc.listen(sink, epoch=epoch, opted_out=opted_out)
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
