"""Fuzz AudioReceiver with 24,000 random, truncated and mutated datagrams (fixed seed).

Besides "nothing escapes" (feed/poll swallow everything by contract, so the real check is
that no datagram reached the catch-all: ``internal_errors == 0``), every datagram must be
accounted for exactly once in the counters.
"""

from __future__ import annotations

import random
import time

from bot.voice import AudioReceiver
from bot.voice.rtp import build_rtp_header
from bot.voice.transport import XCHACHA20, make_cipher
from tests.voice.conftest_core import Collected, DiscordSender, FakeClock, encode_opus, load_speech, speech_file

KEY = bytes(range(32))
N = 24_000


def test_fuzz_no_escape_and_counters_add_up() -> None:
    rng = random.Random(20251121)
    packets = encode_opus(load_speech(speech_file("2414", 0), 2.0))
    cipher = make_cipher(XCHACHA20, KEY)
    senders = {
        ssrc: DiscordSender(ssrc, make_cipher(XCHACHA20, KEY), seq=rng.randrange(65536)) for ssrc in (1, 2, 3, 4, 5)
    }
    clock = FakeClock(0.0)
    col = Collected()
    rx = AudioReceiver(col, epoch=0.0, clock=clock, unmapped_hold=0.5, opted_out=[300])
    rx.set_transport(XCHACHA20, KEY)
    rx.map_ssrc(1, 100)
    rx.map_ssrc(2, 200)
    rx.map_ssrc(3, 300)  # opted out
    # SSRC 4 is mapped late, SSRC 5 never

    def valid(ssrc: int) -> bytes:
        s = senders[ssrc]
        d = s.datagram(rng.choice(packets))
        s.seq = (s.seq + rng.choice((1, 1, 1, 1, 2, -1, 0, 500, 30000))) & 0xFFFF
        s.ts = (s.ts + rng.choice((960, 960, 960, 48_000, -960, 2**31))) & 0xFFFFFFFF
        return d

    def sealed(body: bytes, **header) -> bytes:
        """Authentic transport encryption around a hostile body (past the AEAD check)."""
        h = build_rtp_header(rng.randrange(65536), rng.randrange(2**32), rng.choice((1, 2, 4, 5)), **header)
        return cipher.encrypt(h, body, rng.randrange(2**32))

    def mutate(d: bytes) -> bytes:
        b = bytearray(d)
        for _ in range(rng.randint(1, 4)):
            b[rng.randrange(len(b))] = rng.randrange(256)
        return bytes(b)

    kinds = [
        lambda: valid(rng.choice((1, 2, 3, 4, 5))),
        lambda: valid(rng.choice((1, 2)))[: rng.randrange(0, 60)],
        lambda: mutate(valid(rng.choice((1, 2, 4)))),
        lambda: rng.randbytes(rng.randrange(0, 200)),
        lambda: bytes([0x80 | rng.randrange(16), rng.randrange(200, 205)]) + rng.randbytes(rng.randrange(0, 60)),
        lambda: sealed(rng.randbytes(rng.randrange(0, 80))),  # garbage Opus behind a valid MAC
        lambda: sealed(rng.randbytes(rng.randrange(0, 12)), extension_words=rng.randrange(0, 8)),
        lambda: sealed(rng.randbytes(rng.randrange(1, 40)), padding=True),
        lambda: sealed(b"\xf8\xff\xfe"),
        lambda: make_cipher(XCHACHA20, bytes(32)).encrypt(build_rtp_header(1, 2, 1), b"\xfc\x00", 1),
    ]
    began = time.process_time()
    for i in range(N):
        clock.t += rng.choice((0.0, 0.001, 0.02, 0.05))
        rx.feed(rng.choice(kinds)(), clock.t + rng.uniform(-0.05, 0.05))
        if i % 7 == 0:
            rx.poll(clock.t)
        if i == N // 3:
            rx.map_ssrc(4, 400)
        if i == N // 2:
            rx.set_transport(XCHACHA20, KEY)  # same key again, as on a resumed session
            rx.set_opted_out([300, 200])
        if i == 2 * N // 3:
            rx.set_opted_out([300])
            rx.remove_user(400)
        if i % 5000 == 4999:
            rx.flush()
    rx.flush()
    assert time.process_time() - began < 30

    totals = rx.totals()
    assert totals.internal_errors == 0
    assert totals.datagrams == N
    users = rx.stats()
    unmapped = rx.unmapped_stats()
    received = sum(s.received for s in users.values()) + sum(s.received for s in unmapped.values())
    assert totals.datagrams == (
        totals.rtcp + totals.malformed + totals.other_payload_type + received + totals.unmapped_evicted
    )
    assert totals.unmapped_evicted > 0 and len(unmapped) <= 64  # random SSRCs cannot grow memory
    for uid, s in users.items():
        assert s.received == s.terminal_sum(), (uid, s)
        assert s.accepted == s.played + s.decode_failures + s.discarded, (uid, s)
    assert sum(s.received - s.terminal_sum() for s in unmapped.values()) == totals.held
    frames = sum(len(v) for v in col.frames.values())
    assert frames == sum(s.played + s.concealed + s.decode_failures for s in users.values() if s is not users.get(300))
    # every path was exercised, so the sums above are not vacuous
    for name in (
        "accepted",
        "played",
        "late",
        "duplicates",
        "decrypt_failures",
        "parse_failures",
        "lost",
        "decode_failures",
        "discarded",
        "concealed",
    ):
        assert sum(getattr(s, name) for s in users.values()) > 0, name
    assert users[300].dropped_opted_out > 0 and users[300].accepted == 0
    assert users[200].dropped_opted_out > 0
    assert unmapped[5].unknown_ssrc > 0 and 5 not in users
    assert totals.rtcp > 0 and totals.malformed > 0
    assert 300 not in col.frames
