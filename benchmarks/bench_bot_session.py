"""Benchmark: a live session through the bot, end to end.

The real bot (StalkBot, cogs, /join through the app-command tree) against the local REST
stand-in and the voice-server double (tests/bot, tests/voice/double), all in this process.
Two people take turns; each turn is a LibriSpeech sentence cut off mid-speech at a random
point, as when a client's voice detection stops sending. Prints, from what the pipeline
stored, how long after the last audio each utterance was stored (call time is wall time in a
live session), and the process CPU time per second of call (the double's encoding and
encryption included, so an upper bound for the bot).

    python benchmarks/bench_bot_session.py [--turns 8] [--model base|tiny.en] [--early-ms MS]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


async def main(turns: int, model: str, early_ms: int | None) -> None:
    import aiohttp

    from bot.asr.model import load_whisper
    from bot.asr.transcriber import WhisperTranscriber
    from bot.config import load_config
    from bot.discordbot.app import StalkBot
    from bot.replay import percentile
    from storage import get_session, open_database
    from tests.bot.conftest import _add_guild, _user
    from tests.bot.discord_rest import DiscordRest, snowflake
    from tests.calls import base_dir, models_env, tiny_en_dir
    from tests.voice.double import encode, librispeech, load_speech, make_tls_pair

    path = base_dir() if model == "base" else tiny_en_dir()
    transcriber = WhisperTranscriber(load_whisper(path, workers=2), model)
    tls = make_tls_pair()
    rest = DiscordRest(bot_user=_user(snowflake(), "s-talk", bot=True), application_id=snowflake())
    await rest.start()
    tmp = tempfile.TemporaryDirectory()
    db = open_database(str(Path(tmp.name) / "bench.db"))
    bot = StalkBot(
        load_config(None, env={**models_env(), **({} if early_ms is None else {"STALK_VAD_EARLY_MS": str(early_ms)})}),
        db,
        transcriber=transcriber,
        connector=aiohttp.TCPConnector(ssl=tls.client, limit=0),
    )
    await bot.login("bench-token")
    from bot.pipeline import PipelineListener

    events = []

    class Collect(PipelineListener):
        def on_utterance(self, event) -> None:
            events.append(event)

    bot.sessions.listener_factories.append(lambda session: Collect())
    h = await _add_guild(bot, rest, db, tls, voice=True, in_voice=("ann", "ben"))
    try:
        t0 = time.perf_counter()
        await h.command("ann", "join")
        join_s = time.perf_counter() - t0
        session = bot.sessions.get(h.guild.id)
        await h.server.wait_session()
        rng = random.Random(5)
        files = {"ann": [librispeech("1688", i) for i in range(4)], "ben": [librispeech("2033", i) for i in range(4)]}
        cpu0, wall0 = time.process_time(), time.perf_counter()
        for turn in range(turns):
            who = ("ann", "ben")[turn % 2]
            clip = load_speech(files[who][turn // 2 % 4], rng.uniform(1.5, 3.0))
            await h.server.stream(h.users[who], encode(clip))
            await asyncio.sleep(1.5)
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        sid = session.session_id
        early = session.pipeline.early
        await h.command("ann", "leave")
        detail = get_session(db, sid)
        detect = [e.ready_at - e.end for e in events]
        process = [e.processing_latency for e in events]
        total = [e.latency for e in events]
        print(
            f"model {model}; {len(detail.utterances)} utterances stored from {turns} turns; "
            f"/join answered in {join_s:.2f} s"
        )
        for label, values in (
            ("end of speech -> utterance end (silence, audio time)", detect),
            ("utterance end -> stored (queue, transcription)", process),
            ("end of speech -> stored", total),
        ):
            print(f"{label}: p50 {percentile(values, 50):.2f} s, p95 {percentile(values, 95):.2f} s")
        if bot.config.vad.early_ms:
            print(
                f"early transcription after {bot.config.vad.early_ms} ms of silence: {early.kept} kept, {early.discarded} discarded "
                f"({early.discarded_seconds:.1f} s of model time repeated)"
            )
        print(
            f"process CPU {cpu:.1f} s over {wall:.1f} s of call ({100 * cpu / wall:.0f}% of one core, double included)"
        )
    finally:
        await bot.close()
        await h.server.stop()
        await rest.stop()
        db.close()
        tmp.cleanup()


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--turns", type=int, default=8)
    ap.add_argument("--model", choices=("base", "tiny.en"), default="base")
    ap.add_argument(
        "--early-ms", type=int, help="[vad] early_ms, the early transcription (0: off; default: the config's)"
    )
    args = ap.parse_args()
    asyncio.run(main(args.turns, args.model, args.early_ms))
