"""AudioReceiver end to end on real speech: LibriSpeech -> Opus -> Discord-style encrypted RTP
-> simulated network (loss, reordering, duplicates, jitter, silences) -> per-user PCM.

Timing is checked by aligning each talk spurt of a user's output with where the source audio
truly belongs in call time (its send time). libopus delays its output by its 312-sample
pre-skip (6.5 ms); the simulated network adds 5 ms plus jitter.

What a receiver cannot know bounds what these tests ask: it has no sender clock, so a
spurt is placed by the least network delay it has seen by the time the spurt starts to
play, and audio the network lost is concealed, not restored.
"""

from __future__ import annotations

import logging
import random
import threading

import numpy as np
import pytest

from bot.voice import AudioReceiver
from bot.voice.opus import OpusStreamDecoder
from bot.voice.rtp import build_rtp_header
from bot.voice.transport import AES256_GCM, XCHACHA20, XChaChaCipher, make_cipher
from tests.voice.conftest_core import (
    FRAME,
    SR,
    Collected,
    DiscordSender,
    FakeClock,
    best_alignment,
    encode_opus,
    load_speech,
    network,
    reference_timeline,
    run_network,
    speech_file,
)

KEY = bytes(range(32))
PRESKIP_MS = 312 / 48
NET_MIN_MS = 5.0  # conftest_core.network: 5 ms plus jitter, plus 25 ms when reordered
ALICE, BOB = 111, 222


@pytest.fixture(scope="module")
def voices() -> dict[int, tuple[np.ndarray, list[bytes]]]:
    out = {}
    for uid, spk in ((ALICE, "1998"), (BOB, "2033")):
        pcm = load_speech(speech_file(spk, 1), 6.0)
        out[uid] = (pcm, encode_opus(pcm))
    return out


def spurts(sent) -> list[tuple[int, int]]:
    """Sample ranges [a, b) of each talk spurt in call time."""
    ranges: list[list[int]] = []
    prev_end = None
    for s in sent:
        if s.frame_index is None:
            continue
        a = int(round(s.send_time * SR))
        if prev_end is None or a - prev_end > FRAME:
            ranges.append([a, a + FRAME])
        else:
            ranges[-1][1] = a + FRAME
        prev_end = a + FRAME
    return [(a, b) for a, b in ranges]


def check_spurts(
    col: Collected, uid: int, pcm: np.ndarray, sent, arrivals, length: int, *, playout_delay: float = 0.06
) -> list[tuple[float, float, float]]:
    """(lag ms, correlation, latest knowable lag ms) of each talk spurt, judged on what the
    receiver could know from ``arrivals`` ((arrival in call time, Sent) pairs).

    Correlation: over the audio that arrived (the frames the network lost and the one after
    each, which libopus decodes from the state its concealment left, are left out).
    Latest knowable lag: the spurt cannot start playing before its first send time plus the
    playout delay, less 20 ms for each frame lost right before it (the receiver conceals
    those, e.g. the previous spurt's trailing silence frames, right before the spurt, and
    they play first); by then it has seen at least the packets that arrived before that.
    The least delay among them is the latest it may place the spurt.
    """
    out = col.timeline(uid, length)
    ref = reference_timeline(pcm, sent, length)
    arrived: dict[int, float] = {}
    for t, s in arrivals:
        arrived.setdefault(id(s), t)
    results = []
    for a, b in spurts(sent):
        lo, hi = max(0, a - 4800), min(length, b + 4800)
        r = np.zeros_like(ref)
        r[a:b] = ref[a:b]
        lag, _ = best_alignment(out[lo:hi], r[lo:hi], 2400)
        frames = [s for s in sent if s.frame_index is not None and a <= int(round(s.send_time * SR)) < b]
        keep = np.ones(length, dtype=bool)
        for s in frames:
            if id(s) not in arrived:
                i = int(round(s.send_time * SR))
                keep[i : i + 2 * FRAME] = False
        keep[:lo] = keep[hi:] = False
        i0, i1 = max(lo, lo - lag), min(hi, hi - lag)  # ref samples whose output is in range
        x, y = out[i0 + lag : i1 + lag][keep[i0:i1]], r[i0:i1][keep[i0:i1]]
        corr = float((x * y).sum() / np.sqrt((x * x).sum() * (y * y).sum()))
        j = k = next(i for i, s in enumerate(sent) if s is frames[0])
        while k > 0 and id(sent[k - 1]) not in arrived:
            k -= 1
        deadline = frames[0].send_time - (j - k) * FRAME / SR + playout_delay
        seen = [arrived[id(s)] - s.send_time for s in frames if id(s) in arrived and arrived[id(s)] <= deadline]
        latest = PRESKIP_MS + 1000 * min(seen) if seen else PRESKIP_MS + NET_MIN_MS + 45.0
        results.append((lag / 48, corr, latest))
    return results


# 1234: the original seed. Seeds the old expectations failed on, each for a reason a receiver
# cannot help: 34 (a coarse alignment search stepped over the correlation peak: "lag 24 ms,
# correlation 0.44"), 82 (Bob's first packets all ~22 ms delayed: his first spurt can only
# be placed by them), 21 (lossy spurt correlating 0.87 with the source, timing exact).
@pytest.mark.parametrize(
    "mode, seed", [(XCHACHA20, 1234), (AES256_GCM, 1234), (XCHACHA20, 34), (AES256_GCM, 82), (XCHACHA20, 21)]
)
def test_two_speakers_under_loss_reordering_duplicates_jitter_and_silence(voices, mode: str, seed: int) -> None:
    clock = FakeClock(100.0)
    col = Collected()
    rx = AudioReceiver(col, epoch=100.0, clock=clock)
    rx.set_transport(mode, KEY)
    rng = random.Random(seed)
    arrivals = []
    sent_by = {}
    net_by = {}
    for uid, ssrc, t0, pauses in ((ALICE, 1001, 0.3, {60: 2.5, 170: 0.8}), (BOB, 2002, 1.1, {100: 4.0})):
        rx.map_ssrc(ssrc, uid)
        snd = DiscordSender(ssrc, make_cipher(mode, KEY), seq=65_400 + ssrc % 7, ts=(2**32 - 30 * FRAME) + ssrc)
        sent = snd.talk(voices[uid][1], t0, silences=pauses)
        sent_by[uid] = sent
        net = network(sent, rng, loss=0.10, duplicate=0.05, jitter=0.02, reorder=0.08)
        net_by[uid] = [(t, s) for t, _, s in net]
        arrivals += [(t + 100.0, d, s) for t, d, s in net]
    arrivals.sort(key=lambda a: a[0])
    run_network(rx, clock, arrivals)

    length = int((max(s[-1].send_time for s in sent_by.values()) + 1.0) * SR)
    stats = rx.stats()
    for uid in (ALICE, BOB):
        pcm = voices[uid][0]
        for lag_ms, corr, latest_ms in check_spurts(col, uid, pcm, sent_by[uid], net_by[uid], length):
            # Opus hybrid (SILK) is not waveform-exact: even lossless, a spurt correlates
            # about 0.96 with the source, and less where frames next to losses are involved.
            assert corr > 0.85, (uid, lag_ms, corr)
            # never earlier than the network allows; never later than what was knowable
            assert PRESKIP_MS + NET_MIN_MS - 1.0 <= lag_ms <= latest_ms + 1.0, (uid, lag_ms, latest_ms)
        st = stats[uid]
        assert st.lost > 0 and st.duplicates > 0 and st.concealed == st.lost
        assert st.received == st.terminal_sum()
        assert st.accepted == st.played
        starts = [f.start for f in col.frames[uid]]
        assert starts == sorted(starts)
        assert all(f.pcm.dtype == np.int16 and f.pcm.shape[1] == 2 and f.sample_rate == 48_000 for f in col.frames[uid])
    # nothing of one speaker in the other's output
    cross = np.corrcoef(col.timeline(ALICE, length), reference_timeline(voices[BOB][0], sent_by[BOB], length))[0, 1]
    assert abs(cross) < 0.2


def test_silence_appears_as_a_jump_in_start(voices) -> None:
    clock = FakeClock(0.0)
    col = Collected()
    rx = AudioReceiver(col, epoch=0.0, clock=clock)
    rx.set_transport(XCHACHA20, KEY)
    rx.map_ssrc(5, ALICE)
    snd = DiscordSender(5, make_cipher(XCHACHA20, KEY))
    sent = snd.talk(voices[ALICE][1][:40], 1.0, silences={20: 3.0})
    run_network(rx, clock, network(sent, random.Random(2)))
    starts = [f.start for f in col.frames[ALICE]]
    gaps = [b - a for a, b in zip(starts, starts[1:])]
    # 20 speech + 5 silence frames, one 3 s jump, 20 speech frames; no other gaps
    assert len(starts) == 45
    assert sum(1 for g in gaps if g > 0.021) == 1
    assert abs(max(gaps) - (3.0 + FRAME / SR)) < 0.002
    assert abs(starts[0] - 1.005) < 0.002


def test_unmapped_ssrc_held_then_released_to_the_right_user(voices) -> None:
    clock = FakeClock(0.0)
    col = Collected()
    rx = AudioReceiver(col, epoch=0.0, clock=clock, unmapped_hold=1.0)
    rx.set_transport(XCHACHA20, KEY)
    rx.map_ssrc(9, BOB)
    sent = DiscordSender(7, make_cipher(XCHACHA20, KEY)).talk(voices[ALICE][1][:50], 0.0)
    arrivals = network(sent, random.Random(3))
    # the SPEAKING event for SSRC 7 arrives 0.6 s after its audio started
    run_network(rx, clock, [a for a in arrivals if a[0] < 0.6], until=0.6)
    assert col.frames == {}
    assert rx.unmapped_stats()[7].received > 0 and rx.totals().held > 0
    rx.map_ssrc(7, ALICE)
    run_network(rx, clock, [a for a in arrivals if a[0] >= 0.6])
    assert list(col.frames) == [ALICE]
    assert len(col.frames[ALICE]) == 50
    assert abs(col.frames[ALICE][0].start - 0.005) < 0.002  # timed by arrival, not by mapping
    st = rx.stats()[ALICE]
    assert st.received == 50 and st.played == 50 and st.unknown_ssrc == 0
    assert rx.unmapped_stats() == {} and rx.totals().held == 0


def test_unmapped_ssrc_dropped_after_hold_and_never_misattributed(voices) -> None:
    clock = FakeClock(0.0)
    col = Collected()
    rx = AudioReceiver(col, epoch=0.0, clock=clock, unmapped_hold=1.0)
    rx.set_transport(XCHACHA20, KEY)
    sent = DiscordSender(7, make_cipher(XCHACHA20, KEY)).talk(voices[ALICE][1][:100], 0.0)
    arrivals = network(sent, random.Random(4))
    run_network(rx, clock, [a for a in arrivals if a[0] < 1.5], until=1.5)
    dropped = rx.unmapped_stats()[7].unknown_ssrc
    assert 20 <= dropped <= 30  # those older than 1 s at each poll; about 0.5 s worth
    rx.map_ssrc(7, ALICE)
    run_network(rx, clock, [a for a in arrivals if a[0] >= 1.5])
    st = rx.stats()[ALICE]
    assert st.unknown_ssrc == dropped and st.received == 100
    assert st.played == 100 - dropped
    assert col.frames[ALICE][0].start >= 0.5


def test_opted_out_user_dropped_before_any_decryption(voices, monkeypatch) -> None:
    calls = {"transport": 0, "dave": 0, "opus": 0}
    real_decrypt = XChaChaCipher.decrypt
    real_decode = OpusStreamDecoder.decode

    def spy_decrypt(self, packet, header_len):
        calls["transport"] += 1
        return real_decrypt(self, packet, header_len)

    def spy_decode(self, packet):
        calls["opus"] += 1
        return real_decode(self, packet)

    class SpyDave:
        ready = True

        def decrypt(self, user_id, media_type, frame):
            calls["dave"] += 1
            raise AssertionError("no DAVE frames in this test")

        def can_passthrough(self, user_id):
            calls["dave"] += 1
            return True

    monkeypatch.setattr(XChaChaCipher, "decrypt", spy_decrypt)
    monkeypatch.setattr(OpusStreamDecoder, "decode", spy_decode)
    clock = FakeClock(0.0)
    col = Collected()
    rx = AudioReceiver(col, epoch=0.0, clock=clock, opted_out=[ALICE])
    rx.set_transport(XCHACHA20, KEY)
    rx.set_dave_session(SpyDave())
    rx.map_ssrc(1, ALICE)
    sent = DiscordSender(1, make_cipher(XCHACHA20, KEY)).talk(voices[ALICE][1][:30], 0.0)
    run_network(rx, clock, network(sent, random.Random(5)))
    assert calls == {"transport": 0, "dave": 0, "opus": 0}
    assert col.frames == {}
    st = rx.stats()[ALICE]
    assert st.dropped_opted_out == 30 == st.received

    # opting out mid-stream: what is buffered is not delivered either
    rx.set_opted_out([])
    rx.map_ssrc(2, BOB)
    snd = DiscordSender(2, make_cipher(XCHACHA20, KEY))
    sent = snd.talk(voices[BOB][1][:10], 1.0)
    for s in sent:
        rx.feed(s.datagram, s.send_time)
    assert calls["transport"] == 10
    rx.set_opted_out([BOB])
    rx.poll(5.0)
    rx.flush()
    assert BOB not in col.frames


def test_wrong_key_counts_decrypt_failures_and_nothing_escapes(voices, caplog) -> None:
    clock = FakeClock(0.0)
    col = Collected()
    rx = AudioReceiver(col, epoch=0.0, clock=clock)
    rx.set_transport(AES256_GCM, bytes(32))
    rx.map_ssrc(3, ALICE)
    sent = DiscordSender(3, make_cipher(AES256_GCM, KEY)).talk(voices[ALICE][1][:120], 0.0)
    with caplog.at_level(logging.WARNING, logger="bot.voice.stats"):
        run_network(rx, clock, network(sent, random.Random(6)))
    st = rx.stats()[ALICE]
    assert st.decrypt_failures == 120 == st.received and st.accepted == 0
    assert col.frames == {}
    # logged when the counter crosses each multiple of 50, not once per packet
    warnings = [r.getMessage() for r in caplog.records if "decrypt_failures" in r.getMessage()]
    assert len(warnings) == 2 and "user 111 has 50 decrypt_failures" in warnings[0]


def test_key_change_keeps_buffered_audio_and_in_flight_packets(voices) -> None:
    clock = FakeClock(0.0)
    col = Collected()
    rx = AudioReceiver(col, epoch=0.0, clock=clock)
    key2 = bytes(reversed(KEY))
    rx.set_transport(XCHACHA20, KEY)
    rx.map_ssrc(3, ALICE)
    snd = DiscordSender(3, make_cipher(XCHACHA20, KEY))
    first = snd.talk(voices[ALICE][1][:20], 0.0)
    for s in first[:18]:
        rx.feed(s.datagram, s.send_time + 0.005)
    rx.poll(0.2)  # some played, the rest still buffered
    rx.set_transport(AES256_GCM, key2)  # reconnect: new mode and key
    for s in first[18:]:  # in flight under the old key
        rx.feed(s.datagram, s.send_time + 0.005)
    snd.cipher = make_cipher(AES256_GCM, key2)
    second = snd.talk(voices[ALICE][1][20:40], 0.4)
    clock.t = 0.4
    run_network(rx, clock, network(second, random.Random(7)))
    st = rx.stats()[ALICE]
    assert st.decrypt_failures == 0 and st.played == 40
    starts = [f.start for f in col.frames[ALICE]]
    assert len(starts) == 40 and starts == sorted(starts)


def test_sink_exceptions_are_logged_not_raised(voices, caplog) -> None:
    seen = []

    def sink(uid, frame):
        seen.append(uid)
        raise RuntimeError("pipeline bug")

    clock = FakeClock(0.0)
    rx = AudioReceiver(sink, epoch=0.0, clock=clock)
    rx.set_transport(XCHACHA20, KEY)
    rx.map_ssrc(3, ALICE)
    sent = DiscordSender(3, make_cipher(XCHACHA20, KEY)).talk(voices[ALICE][1][:5], 0.0)
    with caplog.at_level(logging.ERROR, logger="bot.voice.receiver"):
        run_network(rx, clock, network(sent, random.Random(8)))
        rx.flush()
    assert len(seen) == 5
    assert sum("sink raised" in r.getMessage() for r in caplog.records) == 5


def test_remove_user_and_flush_release_buffered_audio(voices) -> None:
    clock = FakeClock(0.0)
    col = Collected()
    rx = AudioReceiver(col, epoch=0.0, clock=clock, playout_delay=10.0)
    rx.set_transport(XCHACHA20, KEY)
    rx.map_ssrc(1, ALICE)
    rx.map_ssrc(2, BOB)
    for ssrc in (1, 2):
        for s in DiscordSender(ssrc, make_cipher(XCHACHA20, KEY)).talk(voices[ALICE][1][:10], 0.0):
            rx.feed(s.datagram, s.send_time)
    rx.poll(1.0)
    assert col.frames == {}  # the 10 s delay holds everything
    rx.remove_user(ALICE)
    assert len(col.frames[ALICE]) == 10 and BOB not in col.frames
    rx.feed(DiscordSender(1, make_cipher(XCHACHA20, KEY)).talk(voices[ALICE][1][:1], 2.0)[0].datagram, 2.0)
    assert rx.unmapped_stats()[1].received == 1  # SSRC 1 is no longer Alice's
    rx.flush()
    assert len(col.frames[BOB]) == 10 and len(col.frames[ALICE]) == 10


def test_rtcp_and_non_audio_ignored(voices) -> None:
    col = Collected()
    rx = AudioReceiver(col, epoch=0.0, clock=FakeClock(0.0))
    rx.set_transport(XCHACHA20, KEY)
    rx.feed(bytes([0x81, 201, 0, 7]) + bytes(28))  # receiver report, one report block
    rx.feed(bytes([0x80, 200, 0, 6]) + bytes(24))  # sender report
    # Transport-layer feedback (205: WebRTC's transport-cc, FMT 15, padding bit set) and a
    # payload-specific PLI (206, FMT 1): once taken for RTP with payload type 77 / 78.
    rx.feed(bytes.fromhex("afcd000700000001dd586eb6000100095e91100020091c0c2c38000400081801"))
    rx.feed(bytes([0x81, 206, 0, 2]) + (1).to_bytes(4, "big") + (0xDD586EB6).to_bytes(4, "big"))
    rx.feed(bytes([0x80, 101]) + bytes(30))  # video payload type
    rx.feed(b"\x00\x02\x00\x46" + bytes(70))  # IP discovery reply on the same socket
    rx.feed(b"\x13\x37\xca\xfe\x05\x00\x00\x00")  # a UDP keepalive echo
    rx.feed(bytes([0x80, 0x78, 0, 1]))  # too short for an RTP header
    t = rx.totals()
    assert (t.datagrams, t.rtcp, t.rtcp_feedback, t.other_payload_type) == (8, 4, 2, 1)
    assert (t.ip_discovery, t.keepalives, t.malformed) == (1, 1, 1)
    rx.poll(10.0)
    assert col.frames == {} and rx.stats() == {}


def test_feed_from_threads_while_polling(voices) -> None:
    col = Collected()
    clock = FakeClock(0.0)
    rx = AudioReceiver(col, epoch=0.0, clock=clock)
    rx.set_transport(XCHACHA20, KEY)
    streams = []
    for i, uid in enumerate((ALICE, BOB)):
        rx.map_ssrc(10 + i, uid)
        streams.append(DiscordSender(10 + i, make_cipher(XCHACHA20, KEY)).talk(voices[uid][1][:100], 0.0))
    stop = threading.Event()

    def poller():
        while not stop.is_set():
            rx.poll(0.0)

    def feeder(sent):
        for s in sent:
            rx.feed(s.datagram, s.send_time)

    p = threading.Thread(target=poller)
    p.start()
    feeders = [threading.Thread(target=feeder, args=(s,)) for s in streams]
    for f in feeders:
        f.start()
    for f in feeders:
        f.join()
    stop.set()
    p.join()
    rx.flush()
    for uid in (ALICE, BOB):
        assert rx.stats()[uid].played == 100 and len(col.frames[uid]) == 100


# --- DAVE with real davey sessions ------------------------------------------------------
# davey implements only the MLS member side; tests.voice.conftest_core.LocalDaveGroup plays
# the voice server's external sender, so these are real MLS groups and real DAVE frames.

BOT, CAROL, CHANNEL = 999, 333, 424242


# 9: the original seed; 25 and 84 used to fail: the first frame under the new epoch's keys
# (25) and the stream's first frame (84) were overtaken by their successors, and davey
# refused them for good when the receiver handed it frames in arrival order.
@pytest.mark.parametrize("seed", [9, 25, 84])
def test_dave_end_to_end_across_an_epoch_transition(voices, seed: int) -> None:
    from tests.voice.conftest_core import LocalDaveGroup

    group = LocalDaveGroup(CHANNEL, ALICE)
    bot_session = group.add(BOT)
    alice = group.members[ALICE]
    clock = FakeClock(0.0)
    col = Collected()
    rx = AudioReceiver(col, epoch=0.0, clock=clock)
    rx.set_transport(XCHACHA20, KEY)
    rx.set_dave_session(bot_session)
    rx.map_ssrc(77, ALICE)
    pcm, packets = voices[ALICE]
    snd = DiscordSender(77, make_cipher(XCHACHA20, KEY), e2ee=alice.encrypt_opus)
    half = len(packets) // 2
    first = snd.talk(packets[:half], 0.5)
    epoch_before = bot_session.epoch
    group.add(CAROL)  # someone joins: new MLS epoch, new keys
    assert bot_session.epoch == epoch_before + 1
    second = snd.talk(packets[half:], first[-1].send_time + FRAME / SR)
    second = [type(s)(s.send_time, s.timestamp, s.datagram, s.frame_index + half) for s in second]
    sent = first + second
    # the first half's frames reach us only after we moved to the new epoch: in flight
    arrivals = network(sent, random.Random(seed), loss=0.05, jitter=0.02, reorder=0.05)
    run_network(rx, clock, arrivals)
    length = int((sent[-1].send_time + 1.0) * SR)
    for lag_ms, corr, latest_ms in check_spurts(col, ALICE, pcm, sent, [(t, s) for t, _, s in arrivals], length):
        assert corr > 0.85 and PRESKIP_MS + NET_MIN_MS - 1.0 <= lag_ms <= latest_ms + 1.0, (lag_ms, corr, latest_ms)
    st = rx.stats()[ALICE]
    assert st.decrypt_failures == 0 and st.played == st.accepted > 0.9 * len(sent)
    assert bot_session.get_decryption_stats(ALICE).successes == st.received


def test_dave_frame_overtaken_at_a_stream_start_or_an_epoch_change_is_not_lost(voices) -> None:
    """davey refuses for good a frame older than the first one it decrypted under a sender's
    key ratchet: the start of a stream and every epoch transition. A frame overtaken by its
    successor right there arrived in time to play and must be decrypted and played."""
    from tests.voice.conftest_core import LocalDaveGroup

    group = LocalDaveGroup(CHANNEL, ALICE)
    bot_session = group.add(BOT)
    clock = FakeClock(0.0)
    col = Collected()
    rx = AudioReceiver(col, epoch=0.0, clock=clock)
    rx.set_transport(XCHACHA20, KEY)
    rx.set_dave_session(bot_session)
    rx.map_ssrc(77, ALICE)
    packets = voices[ALICE][1]
    snd = DiscordSender(77, make_cipher(XCHACHA20, KEY), seq=65_530, e2ee=group.members[ALICE].encrypt_opus)
    first = snd.talk(packets[:40], 0.5)
    group.add(CAROL)  # the sender's frames from 40 on are sealed under the new epoch's keys
    sent = first + snd.talk(packets[40:80], first[-1].send_time + FRAME / SR)
    arrivals = [(s.send_time + 0.005, s.datagram, s) for s in sent]
    for i in (0, 40):  # each overtaken by its successor: 22 ms late, long before it is due
        arrivals[i] = (arrivals[i][0] + 0.022, arrivals[i][1], arrivals[i][2])
    del arrivals[60]  # and a loss: its successors wait for it only briefly
    run_network(rx, clock, sorted(arrivals, key=lambda a: a[0]))
    st = rx.stats()[ALICE]
    assert st.decrypt_failures == 0 and st.late == 0 and st.received == 79 == st.terminal_sum()
    assert st.accepted == st.played == 79 and st.lost == st.concealed == 1
    assert bot_session.get_decryption_stats(ALICE).failures == 0
    starts = [f.start for f in col.frames[ALICE]]
    assert len(starts) == 80 and abs(starts[0] - 0.505) < 1e-9  # the overtaken first frame leads
    assert all(abs((b - a) - FRAME / SR) < 1e-9 for a, b in zip(starts, starts[1:]))


def test_dave_frames_from_another_group_fail_and_nothing_escapes(voices) -> None:
    from tests.voice.conftest_core import LocalDaveGroup

    ours = LocalDaveGroup(CHANNEL, ALICE)
    bot_session = ours.add(BOT)
    theirs = LocalDaveGroup(CHANNEL, ALICE)
    theirs.add(BOT)  # same ids, different MLS group and keys
    col = Collected()
    clock = FakeClock(0.0)
    rx = AudioReceiver(col, epoch=0.0, clock=clock)
    rx.set_transport(XCHACHA20, KEY)
    rx.set_dave_session(bot_session)
    rx.map_ssrc(77, ALICE)
    snd = DiscordSender(77, make_cipher(XCHACHA20, KEY), e2ee=theirs.members[ALICE].encrypt_opus)
    sent = snd.talk(voices[ALICE][1][:30], 0.0)
    run_network(rx, clock, network(sent, random.Random(10)))
    st = rx.stats()[ALICE]
    assert st.e2ee_failures == 30 == st.received and col.frames == {}
    assert st.decrypt_failures == 0  # transport decryption was fine: it is the DAVE layer


def test_dave_plain_frames_pass_only_where_the_policy_allows(voices) -> None:
    """Plain Opus (frames that fail the protocol frame check) passes in a transport-only
    call and during transitions, never while E2EE is required; silence always passes."""
    import math

    from bot.voice.dave import E2eePolicy
    from tests.voice.conftest_core import LocalDaveGroup

    plain = voices[ALICE][1][:10]
    group = LocalDaveGroup(CHANNEL, ALICE)
    ready = group.add(BOT)
    col = Collected()
    rx = AudioReceiver(col, epoch=0.0, clock=FakeClock(0.0))
    rx.set_transport(XCHACHA20, KEY)
    rx.map_ssrc(77, ALICE)
    snd = DiscordSender(77, make_cipher(XCHACHA20, KEY))

    def feed_plain(t0: float) -> None:
        for s in snd.talk(plain, t0):
            rx.feed(s.datagram, s.send_time)

    feed_plain(0.0)  # no session: a transport-only call
    assert rx.stats()[ALICE].accepted == 10 == rx.stats()[ALICE].passthrough

    import davey

    pending = davey.DaveSession(1, BOT, CHANNEL)  # an E2EE call, before our welcome
    rx.set_dave_session(pending)
    feed_plain(1.0)  # senders in an E2EE call send no plain Opus: refused
    assert rx.stats()[ALICE].plain_refused == 10

    rx.set_dave_session(ready)
    ready.set_passthrough_mode(True, 10)  # davey's own flag does not open the door either
    feed_plain(2.0)
    assert rx.stats()[ALICE].plain_refused == 20

    # a transition (upgrade or downgrade) allows plain frames until plain_until
    rx.set_e2ee_policy(E2eePolicy(ready, plain_until=3.5, keys_until=math.inf))
    feed_plain(3.0)  # arrivals 3.00 .. 3.18
    feed_plain(3.45)  # 3.45 .. 3.63: the first three before the window closes
    st = rx.stats()[ALICE]
    assert st.accepted == 23 and st.plain_refused == 27
    # Discord's silence frame is never end-to-end encrypted
    rx.set_dave_session(ready)
    rx.feed(snd.talk([b"\xf8\xff\xfe"], 4.0)[0].datagram, 4.0)
    assert rx.stats()[ALICE].accepted == 24
    rx.flush()
    assert len(col.frames[ALICE]) >= 24


def test_dave_duplicates_are_duplicates_not_decrypt_failures(voices, caplog) -> None:
    """davey refuses a replayed frame, so a network duplicate must be recognised before DAVE."""
    from tests.voice.conftest_core import LocalDaveGroup

    group = LocalDaveGroup(CHANNEL, ALICE)
    bot_session = group.add(BOT)
    # a second receiving member decrypts the stream without duplicates, for comparison
    # (one session cannot decrypt the same frames twice)
    carol_session = group.add(CAROL)
    pcm, packets = voices[ALICE]
    packets = packets[:150]
    snd = DiscordSender(77, make_cipher(XCHACHA20, KEY), seq=65_500, e2ee=group.members[ALICE].encrypt_opus)
    sent = snd.talk(packets, 0.5)  # sequence numbers wrap at packet 36
    clean = [(s.send_time + 0.005, s.datagram, s) for s in sent]
    late_one = 60  # arrives after its playout time: concealed, counted late
    clean[late_one] = (clean[late_one][0] + 0.2, clean[late_one][1], clean[late_one][2])
    # copies right behind the original (still buffered), 0.3 s later (long played), of
    # packets on both sides of the sequence wrap, and of the late packet
    copies = [(a + 0.001, d, s) for a, d, s in clean[5:150:9]]
    copies += [(a + 0.3, d, s) for a, d, s in clean[30:42:2]]
    copies += [(clean[late_one][0] + 0.01, clean[late_one][1], clean[late_one][2])]
    expected_duplicates = len(copies)

    def run(session, arrivals) -> tuple[Collected, object]:
        clock = FakeClock(0.0)
        col = Collected()
        rx = AudioReceiver(col, epoch=0.0, clock=clock)
        rx.set_transport(XCHACHA20, KEY)
        rx.set_dave_session(session)
        rx.map_ssrc(77, ALICE)
        run_network(rx, clock, sorted(arrivals, key=lambda a: a[0]))
        return col, rx.stats()[ALICE]

    base_col, base = run(carol_session, clean)
    assert base.decrypt_failures == 0 and base.duplicates == 0 and base.late == 1
    with caplog.at_level(logging.INFO):
        col, st = run(bot_session, clean + copies)
    assert st.duplicates == expected_duplicates
    assert st.decrypt_failures == 0 and st.late == 1
    assert st.received == len(sent) + expected_duplicates == st.terminal_sum()
    assert st.accepted == st.played == base.played == len(sent) - 1
    # the copies never reached davey: no failures there either, and nothing logged
    dstats = bot_session.get_decryption_stats(ALICE)
    assert dstats.failures == 0 and dstats.successes == len(sent)
    assert not [r for r in caplog.records if "decrypt" in r.getMessage()]
    # and the audio is exactly what the stream without duplicates gave
    assert [f.start for f in col.frames[ALICE]] == [f.start for f in base_col.frames[ALICE]]
    assert all(np.array_equal(a.pcm, b.pcm) for a, b in zip(col.frames[ALICE], base_col.frames[ALICE]))


def test_timestamps_continuing_across_a_pause_are_timed_by_arrival(voices) -> None:
    """discord.py's sender: after a pause the next talk spurt's RTP timestamp continues
    where the previous spurt ended. The second spurt must land where it was spoken."""
    clock = FakeClock(0.0)
    col = Collected()
    rx = AudioReceiver(col, epoch=0.0, clock=clock)
    rx.set_transport(XCHACHA20, KEY)
    rx.map_ssrc(5, ALICE)
    pcm, packets = voices[ALICE]
    snd = DiscordSender(5, make_cipher(XCHACHA20, KEY), seq=65_520)
    first = snd.talk(packets[:100], 0.3)
    t = first[-1].send_time + FRAME / SR
    silence = snd.talk([b"\xf8\xff\xfe"] * 5, t)  # discord.py ends a spurt like this too
    silence = [type(s)(s.send_time, s.timestamp, s.datagram, None) for s in silence]
    resume = silence[-1].send_time + FRAME / SR + 1.5
    second = snd.talk(packets[100:250], resume)  # timestamps carry on: no 1.5 s jump
    second = [type(s)(s.send_time, s.timestamp, s.datagram, s.frame_index + 100) for s in second]
    assert second[0].timestamp == (silence[-1].timestamp + FRAME) & 0xFFFFFFFF
    sent = first + silence + second
    arrivals = network(sent, random.Random(11), loss=0.03, jitter=0.02, reorder=0.05)
    run_network(rx, clock, arrivals)
    arrived = {id(s) for _, _, s in arrivals}
    tail_lost = next(k for k, s in enumerate(reversed(sent)) if id(s) in arrived)  # not concealable

    frames = col.frames[ALICE]
    st = rx.stats()[ALICE]
    assert st.late == 0 and st.received == st.terminal_sum()
    later = [f for f in frames if f.start > silence[-1].send_time + 0.5]
    # lost ones concealed in place; a lost last silence frame is concealed right before
    # the new spurt (where the FEC of the spurt's first packet applies)
    extra = len(later) - (len(second) - tail_lost)
    assert extra in (0, 1)
    spurt = later[extra:]
    # the second spurt starts within 40 ms of its true send time (not ~1.5 s early) ...
    assert abs(spurt[0].start - second[0].send_time) < 0.04, (spurt[0].start, second[0].send_time)
    # ... and inside it the timestamps time the audio: the jitter does not reach ``start``
    starts = [f.start for f in later]
    assert all(abs((b - a) - FRAME / SR) < 1e-9 for a, b in zip(starts, starts[1:]))
    length = int((sent[-1].send_time + 1.0) * SR)
    for lag_ms, corr, latest_ms in check_spurts(col, ALICE, pcm, sent, [(t, s) for t, _, s in arrivals], length):
        assert corr > 0.85 and PRESKIP_MS + NET_MIN_MS - 1.0 <= lag_ms <= latest_ms + 1.0, (lag_ms, corr, latest_ms)


def test_padding_only_packets_count_as_padding_not_parse_failures_or_loss(voices) -> None:
    clock = FakeClock(0.0)
    col = Collected()
    rx = AudioReceiver(col, epoch=0.0, clock=clock)
    rx.set_transport(XCHACHA20, KEY)
    rx.map_ssrc(4, ALICE)
    cipher = make_cipher(XCHACHA20, KEY)
    snd = DiscordSender(4, cipher)
    first = snd.talk(voices[ALICE][1][:20], 0.0)
    pads = []
    for _ in range(3):  # padding bit, 0xBEDE extension body, 20 bytes of padding, own seq
        header = build_rtp_header(snd.seq, snd.ts - FRAME, 4, extension_words=1, padding=True)
        pads.append(cipher.encrypt(header, bytes([0x10, 0xFF, 0, 0]) + bytes(19) + bytes([20]), 9000 + snd.seq))
        snd.seq += 1
    second = snd.talk(voices[ALICE][1][20:40], 1.0, silences={0: 0.0})
    for s in first:
        rx.feed(s.datagram, s.send_time)
    for i, p in enumerate(pads):
        rx.feed(p, 0.5 + i * 0.02)
    for s in second:
        rx.feed(s.datagram, s.send_time)
    rx.poll(5.0)
    st = rx.stats()[ALICE]
    assert st.padding == 3 and st.parse_failures == 0
    assert st.lost == 0 and st.concealed == 0 and st.played == 45
    assert st.received == 48 == st.terminal_sum()


def test_unmapped_audio_is_held_ten_seconds_within_bounds(voices) -> None:
    from bot.voice.receiver import MAX_HELD_PER_SSRC, MAX_HELD_TOTAL, UNMAPPED_HOLD

    assert UNMAPPED_HOLD == 10.0
    clock = FakeClock(0.0)
    col = Collected()
    rx = AudioReceiver(col, epoch=0.0, clock=clock)  # the default hold
    rx.set_transport(XCHACHA20, KEY)
    packets = voices[ALICE][1]
    sent = DiscordSender(7, make_cipher(XCHACHA20, KEY)).talk((packets * 3)[:400], 0.0)  # 8 s
    run_network(rx, clock, [(s.send_time, s.datagram, s) for s in sent], until=8.5)
    assert col.frames == {} and rx.totals().held == 400  # nothing dropped yet
    rx.map_ssrc(7, ALICE)  # SPEAKING 8 s late: all of it is Alice's, in its place
    rx.poll(9.0)
    rx.flush()
    st = rx.stats()[ALICE]
    assert st.played == 400 and st.unknown_ssrc == 0
    assert abs(col.frames[ALICE][0].start) < 1e-6
    # a flood of SSRCs nobody claims stays bounded, per SSRC and in all
    for ssrc in range(100, 110):
        snd = DiscordSender(ssrc, make_cipher(XCHACHA20, KEY))
        for s in snd.talk((packets * 3)[: MAX_HELD_PER_SSRC + 20], 20.0):
            rx.feed(s.datagram, s.send_time)
    assert rx.totals().held <= MAX_HELD_TOTAL
    assert all(s.received - s.unknown_ssrc <= MAX_HELD_PER_SSRC for s in rx.unmapped_stats().values())


def test_audio_on_the_ssrc_of_someone_who_left_is_dropped_not_held(voices) -> None:
    clock = FakeClock(0.0)
    col = Collected()
    rx = AudioReceiver(col, epoch=0.0, clock=clock)
    rx.set_transport(XCHACHA20, KEY)
    rx.map_ssrc(7, ALICE)
    snd = DiscordSender(7, make_cipher(XCHACHA20, KEY))
    for s in snd.talk(voices[ALICE][1][:10], 0.0):
        rx.feed(s.datagram, s.send_time)
    rx.remove_user(ALICE)  # CLIENT_DISCONNECT
    for s in snd.talk(voices[ALICE][1][10:20], 1.0):
        rx.feed(s.datagram, s.send_time)
    assert rx.totals().held == 0 and rx.totals().retired == 10
    assert rx.unmapped_stats()[7].unknown_ssrc == 10
    rx.map_ssrc(7, BOB)  # the SSRC given to someone else later: none of Alice's is Bob's
    rx.poll(5.0)
    assert BOB not in col.frames and len(col.frames[ALICE]) == 10
