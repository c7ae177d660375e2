"""Benchmark the voice receive path: CPU per active speaker and latency beyond the jitter delay.

Real speech (LibriSpeech, shared/data) is Opus-encoded, end-to-end encrypted by real davey
sessions (a local MLS group), transport-encrypted and sent through a simulated network
(2% loss, 20 ms jitter, 2% reordering). Packet preparation is not measured; feeding every
datagram to AudioReceiver and polling it every 10 ms (parse + transport decrypt + DAVE +
jitter buffer + Opus decode + sink) is.

Run from the repository root:  python benchmarks/bench_receive.py [--speakers 4] [--seconds 20]
Targets: < 2% of one core per speaker; p95 < 60 ms beyond the jitter-buffer delay.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.voice import AudioReceiver  # noqa: E402
from bot.voice.transport import AES256_GCM, XCHACHA20, make_cipher  # noqa: E402
from tests.voice.conftest_core import (  # noqa: E402
    DiscordSender,
    LocalDaveGroup,
    encode_opus,
    load_speech,
    network,
    speech_file,
)

SPEAKERS = ["1688", "1998", "2033", "2414", "2609", "3005"]
KEY = bytes(range(32))
BOT = 1
CHANNEL = 4242
POLL = 0.010


def prepare(n_speakers: int, seconds: float, mode: str, dave: bool, seed: int):
    rng = random.Random(seed)
    group = LocalDaveGroup(CHANNEL, 1000) if dave else None
    users = []
    for i in range(n_speakers):
        uid = 1000 + i
        if group is not None and uid not in group.members:
            group.add(uid)
        users.append(uid)
    bot_session = group.add(BOT) if group is not None else None
    arrivals = []
    for i, uid in enumerate(users):
        spk = SPEAKERS[i % len(SPEAKERS)]
        pcm = np.concatenate([load_speech(speech_file(spk, k)) for k in range(3)])[: int(seconds * 48_000)]
        packets = encode_opus(pcm)
        e2ee = group.members[uid].encrypt_opus if group is not None else None
        snd = DiscordSender(5000 + i, make_cipher(mode, KEY), e2ee=e2ee, seq=rng.randrange(65536))
        sent = snd.talk(packets, 0.1 + 0.013 * i)
        arrivals += [(t, d, 5000 + i, uid) for t, d, _ in network(sent, rng, loss=0.02, jitter=0.02, reorder=0.02)]
    arrivals.sort(key=lambda a: a[0])
    return users, bot_session, arrivals


def run(n_speakers: int, seconds: float, mode: str, dave: bool, delay: float) -> dict[str, float]:
    users, bot_session, arrivals = prepare(n_speakers, seconds, mode, dave, seed=1)
    delivered: list[float] = []
    current = {"poll_time": 0.0, "t0": 0.0}

    def sink(uid: int, frame) -> None:
        # when, in call time, this PCM left the receiver: the poll's time plus real work so far
        at = current["poll_time"] + (time.perf_counter() - current["t0"])
        due = frame.start + delay
        delivered.append(at - due)

    clock_now = [0.0]
    rx = AudioReceiver(sink, epoch=0.0, clock=lambda: clock_now[0], playout_delay=delay)
    rx.set_transport(mode, KEY)
    rx.set_dave_session(bot_session)
    for i, uid in enumerate(users):
        rx.map_ssrc(5000 + i, uid)

    end = arrivals[-1][0] + 0.5
    i = 0
    t = 0.0
    cpu0 = time.process_time()
    while t <= end:
        while i < len(arrivals) and arrivals[i][0] <= t:
            clock_now[0] = arrivals[i][0]
            rx.feed(arrivals[i][1], arrivals[i][0])
            i += 1
        clock_now[0] = t
        current["poll_time"] = t
        current["t0"] = time.perf_counter()
        rx.poll(t)
        t += POLL
    cpu = time.process_time() - cpu0
    stats = rx.stats()
    assert rx.totals().internal_errors == 0
    played = sum(s.played for s in stats.values())
    failures = sum(s.decrypt_failures + s.decode_failures for s in stats.values())
    beyond = np.array(delivered) * 1000.0
    audio_seconds = seconds
    return {
        "cpu_pct_per_speaker": 100.0 * cpu / (audio_seconds * n_speakers),
        "us_per_packet": 1e6 * cpu / max(1, len(arrivals)),
        "beyond_p50_ms": float(np.percentile(beyond, 50)),
        "beyond_p95_ms": float(np.percentile(beyond, 95)),
        "beyond_max_ms": float(beyond.max()),
        "played": played,
        "failures": failures,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--speakers", type=int, default=4)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--delay", type=float, default=0.06)
    args = ap.parse_args()
    print(
        f"{args.speakers} speakers x {args.seconds:.0f} s of speech, playout delay {args.delay * 1000:.0f} ms, poll every {POLL * 1000:.0f} ms"
    )
    print(
        f"{'mode':34s} {'DAVE':5s} {'CPU %/speaker':>13s} {'us/packet':>9s} {'beyond p50':>10s} {'p95':>7s} {'max':>7s}"
    )
    for mode, dave in ((XCHACHA20, True), (AES256_GCM, True), (XCHACHA20, False)):
        r = run(args.speakers, args.seconds, mode, dave, args.delay)
        print(
            f"{mode:34s} {'on' if dave else 'off':5s} {r['cpu_pct_per_speaker']:13.2f} {r['us_per_packet']:9.0f} "
            f"{r['beyond_p50_ms']:8.1f}ms {r['beyond_p95_ms']:5.1f}ms {r['beyond_max_ms']:5.1f}ms"
            + (f"  ({r['failures']} failures)" if r["failures"] else "")
        )
    print("targets: < 2% of one core per speaker; p95 < 60 ms beyond the jitter delay")


if __name__ == "__main__":
    main()
