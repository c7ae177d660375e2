"""Soak: a long call with four speakers through the whole bot, at real time.

The bot is the real one (StalkBot, /join through the app-command tree, ReceivingVoiceClient,
SilenceWatch, LiveFeeder, the speech pipeline with faster-whisper, SQLite), against the
Discord REST stand-in (tests/bot) in this process and the voice double (tests/voice/double)
in a child process, so the double's encoding and encryption do not share the bot's CPU or
event loop. The double behaves as Discord does where a long call meets it: it stops
forwarding media to a client whose UDP has been silent for ``--idle`` seconds, echoes
keepalives, sends an RTCP receiver report every second, re-sends buffered messages on a
resume, and during the call:

  * four people (LibriSpeech speakers 1688, 1998, 2033, 2414) take turns, whole utterances,
    sometimes overlapping, with 1 % loss, jitter, reordering, duplicates, padding-only
    packets and RTCP feedback;
  * at 25 % the voice websocket drops (4015) and resumes; at 15/60/85 % a silent guest joins
    and leaves (MLS commits, new epochs); at 40 % dan leaves, rejoins 15 s later and talks
    before his SPEAKING arrives (3 s late); at 50 % nobody says anything for ``--idle`` + 15 s.

Printed: a line per minute (memory, keepalives sent/answered, seconds of audio received per
speaker, lost/concealed, DAVE frames dropped, frames decoded that were not sent by that
speaker), then per speaker the audio sent and received per minute, the frame accounting
and the stored transcript's word error rate against LibriSpeech's reference.

    python benchmarks/bench_soak.py [--minutes 30] [--model base|tiny.en] [--idle 60]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import multiprocessing as mp
import random
import resource
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

NAMES = ("ann", "ben", "cat", "dan")
SPEAKERS = {"ann": "1688", "ben": "1998", "cat": "2033", "dan": "2414"}
SILENCE = b"\xf8\xff\xfe"


@dataclass
class Turn:
    at: float  # seconds after the start
    who: str
    clip: int  # index of the speaker's LibriSpeech file


@dataclass
class Plan:
    seconds: float
    idle: float
    turns: list[Turn] = field(default_factory=list)
    resume_at: float = 0.0
    guests_at: tuple[float, ...] = ()
    dan_leaves_at: float = 0.0
    dan_back_at: float = 0.0
    quiet: tuple[float, float] = (0.0, 0.0)


def make_plan(seconds: float, idle: float, durations: dict[str, list[float]], seed: int) -> Plan:
    rng = random.Random(seed)
    plan = Plan(seconds, idle, resume_at=0.25 * seconds, guests_at=tuple(f * seconds for f in (0.15, 0.6, 0.85)))
    plan.dan_leaves_at, plan.dan_back_at = 0.4 * seconds, 0.4 * seconds + 15.0
    plan.quiet = (0.5 * seconds, 0.5 * seconds + idle + 15.0)
    busy_until = dict.fromkeys(NAMES, 0.0)
    t, last = 2.0, None
    while t < seconds - 25.0:
        if plan.quiet[0] - 1.0 <= t < plan.quiet[1]:
            t = plan.quiet[1]
            continue
        who = rng.choice([n for n in NAMES if n != last])
        if who == "dan" and plan.dan_leaves_at - 20.0 <= t < plan.dan_back_at:
            continue
        start = max(t, busy_until[who] + 0.5)
        clip = rng.randrange(len(durations[who]))
        length = durations[who][clip]
        plan.turns.append(Turn(start, who, clip))
        busy_until[who] = start + length + 0.2
        last = who
        # the next speaker starts after a pause, or now and then cuts in a second early
        t = start + length + (rng.uniform(-1.0, -0.3) if rng.random() < 0.15 else rng.uniform(0.3, 2.0))
    return plan


# --- the voice double, in a child process -------------------------------------------------


def _double_process(conn, guild_id: int, channel_id: int) -> None:
    asyncio.run(_run_double(conn, guild_id, channel_id))


async def _run_double(conn, guild_id: int, channel_id: int) -> None:
    from tests.calls import librispeech_files
    from tests.voice.double import Impairment, VoiceServerDouble, encode, load_speech, snowflake, tls_from_pem
    from tests.voice.double import rtp as double_rtp

    cert_pem, key_pem, users, plan = conn.recv()
    tls = tls_from_pem(cert_pem, key_pem)
    clips = {n: [encode(load_speech(f)) for f in librispeech_files(SPEAKERS[n])] for n in NAMES}
    digests: dict[bytes, set[str]] = defaultdict(set)
    for n, cs in clips.items():
        for c in cs:
            for p in c.packets:
                digests[hashlib.blake2b(p, digest_size=12).digest()].add(n)
    server = VoiceServerDouble(
        tls,
        guild_id=guild_id,
        channel_id=channel_id,
        token="voice-token",
        udp_idle_timeout=plan.idle,
        redeliver_extra=20,
    )
    await server.start()
    for i, n in enumerate(NAMES):
        await server.add_member(users[n], via_client_connect=bool(i % 2))
    conn.send((server.endpoint, dict(digests)))
    await asyncio.get_running_loop().run_in_executor(None, conn.recv)  # the bot has joined
    await server.wait_session(timeout=60)
    t0 = time.monotonic()
    sent_per_minute: dict[str, dict[int, int]] = {n: defaultdict(int) for n in NAMES}
    totals = {n: {"sent": 0, "dropped": 0, "padding": 0} for n in NAMES}
    streams: list[asyncio.Task] = []
    log: list[str] = []

    async def at(offset: float) -> None:
        await asyncio.sleep(max(0.0, t0 + offset - time.monotonic()))

    async def speak(turn: Turn, k: int) -> None:
        await at(turn.at)
        impairment = Impairment(
            loss=0.01, reorder=0.01, jitter_ms=8, duplicate=0.003, padding=0.01, rtcp_feedback=0.01, seed=k
        )
        uid = users[turn.who]
        if uid not in server.members:
            return
        late_speaking = None
        if turn.who == "dan" and not dan_announced.is_set() and turn.at >= plan.dan_back_at:
            # dan talks before his SPEAKING reaches the bot: it comes 3 s late
            late_speaking = asyncio.create_task(_announce_later(uid, 3.0))
        res = await server.stream(uid, clips[turn.who][turn.clip], impairment)
        if late_speaking is not None:
            await late_speaking
        for _, when in res.send_log:
            sent_per_minute[turn.who][int((when - t0) // 60)] += 1
        totals[turn.who]["sent"] += res.sent
        totals[turn.who]["dropped"] += res.dropped
        totals[turn.who]["padding"] += res.padding

    dan_announced = asyncio.Event()
    dan_announced.set()

    async def _announce_later(uid: int, delay: float) -> None:
        await asyncio.sleep(delay)
        await server.announce(uid)
        dan_announced.set()
        log.append(f"{time.monotonic() - t0:7.1f} s  SPEAKING for dan, {delay:.0f} s after he started")

    async def rtcp() -> None:
        while True:
            await asyncio.sleep(1.0)
            try:
                server.send_raw(double_rtp.receiver_report(server.bot_ssrc))
            except ConnectionError:
                pass

    async def events() -> None:
        for i, when in enumerate(plan.guests_at):
            await at(when)
            guest = snowflake()
            await server.add_member(guest)
            log.append(f"{time.monotonic() - t0:7.1f} s  guest {i + 1} joined (MLS commit)")
            await asyncio.sleep(10.0)
            await server.remove_member(guest)
            log.append(f"{time.monotonic() - t0:7.1f} s  guest {i + 1} left (MLS commit)")
            if i == 0:
                await at(plan.resume_at)
                await server.close_ws(4015)
                log.append(f"{time.monotonic() - t0:7.1f} s  voice websocket closed 4015 (resume)")
                await at(plan.dan_leaves_at)
                await server.remove_member(users["dan"])
                log.append(f"{time.monotonic() - t0:7.1f} s  dan left")
                await at(plan.dan_back_at)
                dan_announced.clear()
                await server.add_member(users["dan"], announce=False)
                log.append(f"{time.monotonic() - t0:7.1f} s  dan back (new SSRC, not announced yet)")

    ticker = asyncio.create_task(rtcp())
    happenings = asyncio.create_task(events())
    streams = [asyncio.create_task(speak(t, k)) for k, t in enumerate(plan.turns)]
    await asyncio.gather(*streams)
    await happenings
    await at(plan.seconds)
    ticker.cancel()
    conn.send(
        {
            "sent_per_minute": {n: dict(v) for n, v in sent_per_minute.items()},
            "totals": totals,
            "keepalives_received": server.keepalives,
            "withheld": server.withheld,
            "resumes": server.resumes,
            "redelivered": server.redelivered,
            "epoch": server.group_epoch,
            "log": log,
        }
    )
    conn.recv()
    await server.stop()


# --- the bot ----------------------------------------------------------------------------------


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class Inspector:
    """Checks every packet the receiver decodes: sent by this speaker (its digest is one of
    their clips' Opus packets), by someone else (misattributed), or by no one (ciphertext
    or garbage decoded as audio)."""

    def __init__(self, digests: dict[bytes, set[str]], names: dict[int, str]) -> None:
        self.digests = digests
        self.names = names
        self.garbled: dict[str, int] = defaultdict(int)
        self.misattributed: dict[str, int] = defaultdict(int)
        self.checked = 0

    def install(self) -> None:
        from bot.voice.receiver import AudioReceiver

        original = AudioReceiver._render
        inspector = self

        def render(receiver, stream, playouts):
            who = inspector.names.get(stream.user_id, str(stream.user_id))
            for item in playouts:
                if item.payload is None or item.payload == SILENCE:
                    continue
                inspector.checked += 1
                owners = inspector.digests.get(hashlib.blake2b(item.payload, digest_size=12).digest())
                if owners is None:
                    inspector.garbled[who] += 1
                elif who not in owners:
                    inspector.misattributed[who] += 1
            return original(receiver, stream, playouts)

        AudioReceiver._render = render  # type: ignore[method-assign]


async def main(minutes: float, model: str, idle: float, seed: int) -> None:
    import aiohttp
    import av

    from bot.asr.model import load_whisper
    from bot.asr.transcriber import WhisperTranscriber
    from bot.config import load_config
    from bot.discordbot.app import StalkBot
    from bot.pipeline import PipelineListener
    from storage import get_session, open_database
    from tests.bot.conftest import _add_guild, _Gateway, _Gateways, _user
    from tests.bot.discord_rest import DiscordRest, snowflake
    from tests.calls import base_dir, librispeech_files, librispeech_refs, tiny_en_dir, wer
    from tests.voice.double import VoiceRoute, make_tls_pair

    durations = {}
    for n in NAMES:
        durations[n] = []
        for f in librispeech_files(SPEAKERS[n]):
            with av.open(str(f)) as c:
                durations[n].append(float(c.duration or 0) / 1e6)
    plan = make_plan(minutes * 60, idle, durations, seed)

    transcriber = WhisperTranscriber(load_whisper(base_dir() if model == "base" else tiny_en_dir(), workers=2), model)
    tls = make_tls_pair()
    rest = DiscordRest(bot_user=_user(snowflake(), "s-talk", bot=True), application_id=snowflake())
    await rest.start()
    tmp = tempfile.TemporaryDirectory()
    db = open_database(str(Path(tmp.name) / "soak.db"))
    bot = StalkBot(
        load_config(None, env={}), db, transcriber=transcriber, connector=aiohttp.TCPConnector(ssl=tls.client, limit=0)
    )
    await bot.login("soak-token")
    events: list = []

    class Collect(PipelineListener):
        def on_utterance(self, event) -> None:
            events.append(event)

    bot.sessions.listener_factories.append(lambda session: Collect())
    h = await _add_guild(bot, rest, db, tls, voice=False, in_voice=NAMES)
    loop = asyncio.get_running_loop()
    parent, child = mp.Pipe()
    proc = mp.get_context("spawn").Process(target=_double_process, args=(child, h.guild.id, h.voice.id), daemon=True)
    proc.start()
    parent.send((tls.cert_pem, tls.key_pem, {n: h.users[n] for n in NAMES}, plan))
    endpoint, digests = await loop.run_in_executor(None, parent.recv)
    h.gateway = _Gateway(
        state=bot._connection,
        guild_id=h.guild.id,
        user_id=int(rest.bot_user["id"]),
        route=VoiceRoute(endpoint, "voice-token"),
    )
    if not isinstance(bot.ws, _Gateways):
        bot.ws = _Gateways()
    bot.ws.by_guild[h.guild.id] = h.gateway
    names = {h.users[n]: n for n in NAMES}
    inspector = Inspector(digests, names)
    inspector.install()
    rows: list[str] = []
    try:
        await h.command("ann", "join")
        session = bot.sessions.get(h.guild.id)
        assert session is not None, "/join did not start a session"
        vc = session.vc
        parent.send("go")
        t0 = time.monotonic()
        print(f"plan: {len(plan.turns)} turns over {minutes:g} min; UDP idle cutoff {idle:g} s", flush=True)
        header = (
            " min  RSS MB  CPU %  keepalive sent/ans   audio s: "
            + " ".join(f"{n:>5}" for n in NAMES)
            + "   lost concealed  e2ee-drop plain-ref decrypt-fail  garbled misattr  held"
        )
        print(header, flush=True)
        played_before = dict.fromkeys(NAMES, 0)
        received_per_minute: dict[str, dict[int, float]] = {n: {} for n in NAMES}
        result_future = loop.run_in_executor(None, parent.recv)
        minute = 0
        cpu_before = time.process_time()
        while True:
            minute += 1
            deadline = t0 + 60 * minute
            done = False
            while time.monotonic() < deadline:
                if result_future.done():
                    done = True
                    break
                await asyncio.sleep(0.5)
            stats = vc.receive_stats()
            counters = vc.counters
            per_user = {n: stats.get(h.users[n]) for n in NAMES}
            audio = {}
            for n, s in per_user.items():
                played = s.played + s.concealed if s else 0
                audio[n] = (played - played_before[n]) * 0.02
                received_per_minute[n][minute - 1] = audio[n]
                played_before[n] = played
            tot = [s for s in per_user.values() if s]
            cpu_now = time.process_time()
            cpu = 100 * (cpu_now - cpu_before) / max(1e-9, time.monotonic() - (deadline - 60))
            cpu_before = cpu_now
            label = "end" if done else f"{minute:3d}"
            row = (
                f"{label:>4}  {_rss_mb():6.1f}  {cpu:5.0f}  {counters.keepalives_sent:8d}/{counters.keepalives_answered:<8d}"
                f"            "
                + " ".join(f"{audio[n]:5.1f}" for n in NAMES)
                + f"   {sum(s.lost for s in tot):4d} {sum(s.concealed for s in tot):9d}"
                f"  {sum(s.e2ee_failures for s in tot):9d} {sum(s.plain_refused for s in tot):9d}"
                f" {sum(s.decrypt_failures for s in tot):12d}"
                f"  {sum(inspector.garbled.values()):7d} {sum(inspector.misattributed.values()):7d}"
                f"  {vc.receiver.totals().held:4d}"
            )
            rows.append(row)
            print(row, flush=True)
            if done:
                break
        result = await result_future
        stats = vc.receive_stats()
        counters = vc.counters
        sid = session.session_id
        await h.command("ann", "leave")
        for _ in range(600):
            if bot.sessions.get(h.guild.id) is None:
                break
            await asyncio.sleep(0.5)
        parent.send("bye")
        detail = get_session(db, sid)
        refs = librispeech_refs()
        print("\nevents (double's clock):")
        for line in result["log"]:
            print("  " + line)
        print(
            f"\nkeepalives: sent {counters.keepalives_sent}, answered {counters.keepalives_answered}, "
            f"received by the double {result['keepalives_received']}; media withheld by the double "
            f"(UDP idle) {result['withheld']}; resumes {result['resumes']}, messages redelivered "
            f"{result['redelivered']} (handled once: {counters.redelivered} dropped as seen); "
            f"MLS epoch at the end {result['epoch']}; proposals refused {counters.proposals_refused}"
        )
        print("\naudio per minute, seconds sent -> received (received includes concealment of lost packets):")
        last_minute = max(received_per_minute["ann"]) + 1
        for n in NAMES:
            sent = result["sent_per_minute"][n]
            cells = [
                f"{sent.get(m, 0) * 0.02:4.0f}->{received_per_minute[n].get(m, 0.0):<4.0f}" for m in range(last_minute)
            ]
            print(f"  {n}: " + " ".join(cells))
        print(
            "\nper speaker: datagrams sent / received, played, lost, late, concealed, padding, "
            "e2ee-dropped, plain-refused, decrypt/decode/parse failures, garbled, misattributed; "
            "utterances stored, WER"
        )
        turns_by = defaultdict(list)
        for t in plan.turns:
            if t.at < plan.seconds:
                turns_by[t.who].append(t)
        for n in NAMES:
            s = stats.get(h.users[n])
            tot = result["totals"][n]
            pids = {p.id for p in detail.participants if p.user_id == str(h.users[n])}
            mine = sorted((u for u in detail.utterances if u.participant_id in pids), key=lambda u: u.start)
            files = librispeech_files(SPEAKERS[n])
            ref = " ".join(refs[files[t.clip].stem] for t in turns_by[n])
            hyp = " ".join(u.text for u in mine)
            w = wer([ref], [hyp]) if ref else float("nan")
            if s is None:
                print(f"  {n}: nothing received")
                continue
            print(
                f"  {n}: {tot['sent'] + tot['padding']}/{s.received}, {s.played}, {s.lost}, {s.late}, "
                f"{s.concealed}, {s.padding}, {s.e2ee_failures}, {s.plain_refused}, "
                f"{s.decrypt_failures}/{s.decode_failures}/{s.parse_failures}, "
                f"{inspector.garbled.get(n, 0)}, {inspector.misattributed.get(n, 0)}; "
                f"{len(mine)} utterances, WER {w:.2f}"
            )
        print(
            f"\npackets checked against what was sent: {inspector.checked}; "
            f"RSS at the end {_rss_mb():.1f} MB; feeder dropped {session.feeder.dropped} frames; "
            f"wall {time.monotonic() - t0:.0f} s"
        )
    finally:
        await bot.close()
        await rest.stop()
        db.close()
        tmp.cleanup()
        proc.join(15)


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, default=30.0)
    ap.add_argument("--model", choices=("base", "tiny.en"), default="base")
    ap.add_argument("--idle", type=float, default=60.0, help="the double's UDP idle cutoff, seconds")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    asyncio.run(main(args.minutes, args.model, args.idle, args.seed))
