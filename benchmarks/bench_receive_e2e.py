"""Benchmark: CPU per active speaker through the real client (discord.py 2.7.1 + DAVE).

The voice double (tests/voice/double) runs in a child process and streams real speech
(LibriSpeech, shared/data) as N simultaneous speakers, DAVE- and transport-encrypted, over
UDP on 127.0.0.1. The bot side, in this process, is discord.py's real voice client with
ReceivingVoiceClient: socket reader thread, websocket hook, AudioReceiver (transport
decrypt, DAVE decrypt, jitter buffer, Opus decode) and the 20 ms poll task, delivering to
a sink that only counts samples. Only this process's CPU time is measured, so the double's
encoding and encryption are not counted.

    python benchmarks/bench_receive_e2e.py [--speakers 1 2 4] [--seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SPEAKERS = ["1688", "1998", "2033", "2414", "2609", "3005"]


def _double_process(conn, speakers: int, seconds: float, guild_id: int, channel_id: int) -> None:
    from tests.voice.double import VoiceServerDouble, encode, librispeech, load_speech, tls_from_pem

    async def main() -> None:
        cert_pem, key_pem = conn.recv()  # the parent's throwaway certificate, which it trusts
        tls = tls_from_pem(cert_pem, key_pem)
        clips = [encode(load_speech(librispeech(s, 0), seconds)) for s in SPEAKERS[:speakers]]
        server = VoiceServerDouble(tls, guild_id=guild_id, channel_id=channel_id, token="bench")
        await server.start()
        users = [1_000 + i for i in range(speakers)]
        for uid in users:
            await server.add_member(uid)
        conn.send((server.endpoint, users))
        await server.wait_session(timeout=30)
        conn.recv()  # parent ready to measure
        results = await asyncio.gather(*(server.stream(u, c) for u, c in zip(users, clips)))
        await asyncio.sleep(0.5)
        conn.send([r.sent for r in results])
        conn.recv()
        await server.stop()

    asyncio.run(main())


async def measure(speakers: int, seconds: float) -> dict[str, float]:
    from bot.voice.client import ReceivingVoiceClient
    from tests.voice.double import VoiceRoute, fake_discord, make_tls_pair, restore_api_base, snowflake

    tls = make_tls_pair()
    guild_id, channel_id, bot_id = snowflake(), snowflake(), snowflake()
    parent, child = mp.Pipe()
    proc = mp.get_context("spawn").Process(
        target=_double_process, args=(child, speakers, seconds, guild_id, channel_id), daemon=True
    )
    proc.start()
    loop = asyncio.get_running_loop()
    parent.send((tls.cert_pem, tls.key_pem))
    endpoint, users = await loop.run_in_executor(None, parent.recv)
    fake = await fake_discord(
        tls, VoiceRoute(endpoint, "bench"), guild_id=guild_id, channel_id=channel_id, bot_id=bot_id
    )
    samples = {u: 0 for u in users}

    def sink(user_id: int, frame) -> None:
        samples[user_id] += frame.pcm.shape[0]

    try:
        vc = await fake.channel.connect(cls=ReceivingVoiceClient, timeout=30)
        vc.listen(sink)
        await asyncio.sleep(1.0)  # DAVE join settles; then an idle baseline
        idle_cpu0, idle_t0 = time.process_time(), time.monotonic()
        await asyncio.sleep(2.0)
        idle = (time.process_time() - idle_cpu0) / (time.monotonic() - idle_t0)
        cpu0, t0 = time.process_time(), time.monotonic()
        parent.send("go")
        sent = await loop.run_in_executor(None, parent.recv)
        cpu = time.process_time() - cpu0
        wall = time.monotonic() - t0
        parent.send("done")
        stats = vc.receive_stats()
        audio = sum(samples.values()) / 48_000
        return {
            "speakers": speakers,
            "wall_s": wall,
            "cpu_s": cpu,
            "cpu_share": cpu / wall,
            "idle_cpu_share": idle,
            "audio_s": audio,
            "ms_cpu_per_speaker_second": 1000 * (cpu - idle * wall) / max(audio, 1e-9),
            "packets_sent": sum(sent),
            "packets_played": sum(s.played for s in stats.values()),
            "decrypt_failures": sum(s.decrypt_failures for s in stats.values()),
        }
    finally:
        await fake.close()
        restore_api_base()
        proc.join(10)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--speakers", type=int, nargs="+", default=[1, 2, 4])
    ap.add_argument("--seconds", type=float, default=10.0)
    args = ap.parse_args()
    print("speakers  cpu%  idle%  ms CPU per speaker-second  audio s  played/sent  decrypt fails")
    for n in args.speakers:
        r = asyncio.run(measure(n, args.seconds))
        print(
            f"{r['speakers']:8d}  {100 * r['cpu_share']:4.1f}  {100 * r['idle_cpu_share']:5.2f}"
            f"  {r['ms_cpu_per_speaker_second']:25.2f}  {r['audio_s']:7.1f}"
            f"  {r['packets_played']}/{r['packets_sent']}  {r['decrypt_failures']}"
        )


if __name__ == "__main__":
    main()
