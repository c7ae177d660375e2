"""The receive path against material from the real world (see tests/voice/data/README.md):
datagrams captured from real Discord voice calls (ntop/nDPI's test captures), and the DAVE
reference implementation's fuzzing corpus (discord/libdave), checked against davey.
"""

from __future__ import annotations

import asyncio
import json
import random
import struct
from pathlib import Path

import davey

from bot.voice import keepalive
from bot.voice.client import ReceivingVoiceClient
from bot.voice.dave import is_protocol_frame
from bot.voice.rtp import parse_rtp, rtcp_type
from tests.voice.conftest_core import LocalDaveGroup, encode_opus, load_speech, speech_file

DATA = Path(__file__).parent / "data"
ALICE, BOT, CHANNEL = 111, 999, 424242


def _captured() -> list[dict]:
    return json.loads((DATA / "ndpi_discord_udp.json").read_text())["datagrams"]


def _kind(data: bytes) -> str:
    if keepalive.parse(data) is not None:
        return "keepalive"
    if len(data) == 74 and data[:2] == b"\x00\x02":
        return "discovery"
    if rtcp_type(data) is not None:
        return "rtcp"
    return f"rtp{parse_rtp(data).payload_type}"


def test_our_keepalive_is_the_one_the_real_client_sends() -> None:
    pings = [d for d in _captured() if d["from"] == "client" and d["capture"] == "discord_mid_flow.pcap"]
    echoes = [d for d in _captured() if d["from"] == "server" and d["capture"] == "discord_mid_flow.pcap"]
    echoes = [d for d in echoes if keepalive.parse(bytes.fromhex(d["hex"])) is not None]
    assert len(pings) >= 4 and len(echoes) == len(pings)
    counters = [keepalive.parse(bytes.fromhex(d["hex"])) for d in pings]
    # a counter that goes up by one every 5 s, mid-call (0x1a9: some 35 minutes in)
    assert counters == list(range(counters[0], counters[0] + len(counters)))
    gaps = [b["t"] - a["t"] for a, b in zip(pings, pings[1:])]
    assert all(abs(g - keepalive.INTERVAL) < 0.05 for g in gaps), gaps
    for ping, echo in zip(pings, echoes):
        assert echo["hex"] == ping["hex"] and 0 < echo["t"] - ping["t"] < 0.1
        counter = keepalive.parse(bytes.fromhex(ping["hex"]))
        assert counter is not None and keepalive.payload(counter).hex() == ping["hex"]


def test_captured_server_datagrams_are_each_recognised_for_what_they_are() -> None:
    kinds: dict[str, int] = {}
    for d in _captured():
        if d["from"] != "server":
            continue
        data = bytes.fromhex(d["hex"])
        kind = _kind(data)
        kinds[kind] = kinds.get(kind, 0) + 1
        if kind.startswith("rtp"):
            header = parse_rtp(data)
            # Discord's one-byte extension, its prefix in clear: rtpsize AAD = 12 + 4 bytes
            assert header.extension_profile == 0xBEDE and header.header_len == 16
    assert set(kinds) == {"keepalive", "discovery", "rtcp", "rtp120", "rtp103"}, kinds


async def test_captured_traffic_through_the_real_client_is_never_played(make_call) -> None:
    """The captured voice servers' datagrams, sent to discord.py's real client with the
    captured SSRCs mapped to members: audio sealed under a key we do not have fails
    transport decryption and is never decoded; video, RTCP, discovery replies and
    keepalive echoes are told apart; nothing is malformed."""
    call = await make_call(members=2)
    vc: ReceivingVoiceClient = call.vc
    server = call.server
    datagrams = [bytes.fromhex(d["hex"]) for d in _captured() if d["from"] == "server"]
    audio_ssrcs = sorted({parse_rtp(d).ssrc for d in datagrams if _kind(d) == "rtp120"})
    for uid, ssrc in zip(call.users, audio_ssrcs):
        server.members[uid].ssrc = ssrc
        await server.announce(uid)
    before = vc.receiver.totals()
    k_before = vc.keepalive_counts
    for d in datagrams:
        server.send_raw(d)
        await asyncio.sleep(0.002)
    await asyncio.sleep(0.4)
    counts = {k: sum(1 for d in datagrams if _kind(d) == k) for k in ("rtp120", "rtp103", "rtcp", "discovery")}
    echoes = sum(1 for d in datagrams if _kind(d) == "keepalive")
    t = vc.receiver.totals()
    assert t.malformed == before.malformed and t.internal_errors == 0
    assert t.rtcp - before.rtcp == counts["rtcp"]
    assert t.other_payload_type - before.other_payload_type == counts["rtp103"]
    assert t.ip_discovery - before.ip_discovery == counts["discovery"]
    k = vc.keepalive_counts
    assert (k.answered - k_before.answered) + (k.unmatched - k_before.unmatched) >= echoes
    stats = vc.receive_stats()
    mapped = [s for uid, s in stats.items() if uid in call.users]
    assert sum(s.decrypt_failures for s in mapped) == sum(
        1 for d in datagrams if _kind(d) == "rtp120" and parse_rtp(d).ssrc in audio_ssrcs[:2]
    )
    assert all(s.played == s.accepted == 0 for s in mapped)
    assert not any(call.sink.frames.get(uid) for uid in call.users)


def _davey_says_protocol_frame(session: davey.DaveSession, frame: bytes) -> bool:
    """davey (with passthrough on) hands back a frame that fails its protocol frame check
    unchanged, and fails to decrypt one that passes it."""
    try:
        out = bytes(session.decrypt(ALICE, davey.MediaType.audio, frame))
    except Exception:
        return True
    assert out == frame
    return False


def _oracle() -> davey.DaveSession:
    group = LocalDaveGroup(CHANNEL, ALICE)
    bot = group.add(BOT)
    bot.set_passthrough_mode(True, None)
    return bot


def test_protocol_frame_check_agrees_with_davey_on_libdave_fuzz_corpus() -> None:
    inputs = json.loads((DATA / "libdave_afl_inputs.json").read_text())["inputs"]
    session = _oracle()
    frames = [bytes.fromhex(i["hex"])[:-1] for i in inputs]  # the last byte is the media type
    frames = [f for f in frames if f != b"\xf8\xff\xfe"]
    verdicts = [(is_protocol_frame(f), _davey_says_protocol_frame(session, f)) for f in frames]
    assert all(ours == theirs for ours, theirs in verdicts), [
        (f.hex()[-40:], v) for f, v in zip(frames, verdicts) if v[0] != v[1]
    ]
    assert 5 <= sum(ours for ours, _ in verdicts) < len(frames)  # both kinds are in the corpus


def test_protocol_frame_check_agrees_with_davey_on_real_frames_and_their_mutations() -> None:
    """Real Opus (LibriSpeech through libopus) and the same packets DAVE-encrypted by a real
    davey sender, then mutated the ways a network or a bug would: truncated, a byte flipped
    in the supplemental data, the size byte changed."""
    group = LocalDaveGroup(CHANNEL, ALICE)
    group.add(BOT)
    sender = group.members[ALICE]
    session = _oracle()
    packets = encode_opus(load_speech(speech_file("1688", 0), 4.0))
    encrypted = [bytes(sender.encrypt_opus(p)) for p in packets]
    assert all(is_protocol_frame(e) for e in encrypted)
    assert sum(is_protocol_frame(p) for p in packets) == 0
    rng = random.Random(12)
    cases = list(packets)
    for e in encrypted:
        size = e[-3]
        cases.append(e[: rng.randrange(1, len(e))])  # truncated
        flip = bytearray(e)
        flip[len(e) - size + rng.randrange(8, size - 2)] ^= 1 << rng.randrange(8)
        cases.append(bytes(flip))
        resized = bytearray(e)
        resized[-3] = min(255, rng.choice([0, 10, 11, size + 1, size - 1, 255, len(e), len(e) + 1]))
        cases.append(bytes(resized))
        cases.append(e[:-1] + b"\xfb")  # marker broken
        # nonce or ranges no longer valid ULEB128: a continuation bit on their last byte
        cont = bytearray(e)
        cont[-4] |= 0x80
        cases.append(bytes(cont))
    disagreements = [c.hex() for c in cases if is_protocol_frame(c) != _davey_says_protocol_frame(session, c)]
    assert not disagreements, disagreements[:3]


def test_rtcp_types_in_discords_range_are_rtcp() -> None:
    # captured receiver reports (201) and sender reports (200) plus WebRTC feedback 205/206
    rr = next(bytes.fromhex(d["hex"]) for d in _captured() if d["hex"].startswith("81c9"))
    sr = struct.pack(">BBH", 0x80, 200, 6) + bytes(24)
    fb = [struct.pack(">BBHII", 0x80 | fmt, pt, 2, 1, 2) for fmt, pt in ((15, 205), (1, 206))]
    assert [rtcp_type(d) for d in (rr, sr, *fb)] == [201, 200, 205, 206]
    # Opus with and without the marker bit is not
    assert rtcp_type(bytes([0x90, 0x78]) + bytes(14)) is None and rtcp_type(bytes([0x90, 0xF8]) + bytes(14)) is None
