"""Shared helpers for the receive-core tests: real speech, real Opus, Discord-style packets.

Imported explicitly (``from tests.voice.conftest_core import ...``); not a pytest conftest.
Speech: LibriSpeech test-other (CC BY 4.0) from shared/data.
"""

from __future__ import annotations

import functools
import os
import random
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bot.voice.rtp import build_rtp_header
from bot.voice.transport import TransportCipher

SR = 48_000
FRAME = 960


def _data_root() -> Path:
    here = Path(__file__).resolve()
    candidates = [Path(os.environ["STALK_SHARED_DATA"])] if "STALK_SHARED_DATA" in os.environ else []
    candidates += [p / "shared" / "data" for p in here.parents] + [Path("/work/shared/data")]
    for c in candidates:
        if (c / "librispeech").is_dir():
            return c
    raise FileNotFoundError("shared/data/librispeech not found (set STALK_SHARED_DATA)")


def speech_file(speaker: str, index: int = 0) -> Path:
    files = sorted((_data_root() / "librispeech" / speaker).glob("*.flac"))
    return files[index]


@functools.lru_cache(maxsize=16)
def load_speech(path: Path, seconds: float | None = None) -> np.ndarray:
    """Decode with PyAV and resample to 48 kHz stereo int16, shaped (samples, 2)."""
    import av

    chunks = []
    with av.open(str(path)) as container:
        resampler = av.AudioResampler(format="s16", layout="stereo", rate=SR)
        for frame in container.decode(audio=0):
            for out in resampler.resample(frame):
                chunks.append(out.to_ndarray().reshape(-1, 2))
        for out in resampler.resample(None):
            chunks.append(out.to_ndarray().reshape(-1, 2))
    pcm = np.concatenate(chunks).astype(np.int16)
    if seconds is not None:
        pcm = pcm[: int(seconds * SR)]
    return pcm


def encode_opus(pcm: np.ndarray) -> list[bytes]:
    """20 ms Opus packets from a real libopus encoder configured as discord.py sends (FEC on)."""
    from discord.opus import Encoder

    enc = Encoder()
    n = -(-pcm.shape[0] // FRAME)
    padded = np.zeros((n * FRAME, 2), dtype=np.int16)
    padded[: pcm.shape[0]] = pcm
    return [enc.encode(padded[i * FRAME : (i + 1) * FRAME].tobytes(), FRAME) for i in range(n)]


@dataclass
class Sent:
    send_time: float  # seconds since the receiver's epoch
    timestamp: int
    datagram: bytes
    frame_index: int | None  # index into the source's 20 ms frames; None for silence frames


@dataclass
class DiscordSender:
    """Builds datagrams the way a Discord client does: 0xBEDE extension, rtpsize AEAD."""

    ssrc: int
    cipher: TransportCipher
    seq: int = 0
    ts: int = 0
    counter: int = 0
    extension_words: int = 1
    rng: random.Random = field(default_factory=lambda: random.Random(7))
    e2ee: object | None = None  # callable(opus) -> frame, e.g. DaveSession.encrypt_opus

    def datagram(self, opus: bytes, ts: int | None = None) -> bytes:
        ext_body = bytes([0x10, self.rng.randrange(256), 0, 0]) * self.extension_words if self.extension_words else b""
        header = build_rtp_header(
            self.seq, self.ts if ts is None else ts, self.ssrc, extension_words=self.extension_words or None
        )
        frame = self.e2ee(opus) if self.e2ee is not None else opus
        out = self.cipher.encrypt(header, ext_body + frame, self.counter)
        self.counter = (self.counter + 1) & 0xFFFFFFFF
        return out

    def talk(self, packets: list[bytes], start: float, *, silences: dict[int, float] | None = None) -> list[Sent]:
        """Send ``packets`` from ``start``; before packet i in ``silences``, stop for that long.

        Like Discord: 5 silence frames end each spurt, then nothing is sent and the RTP
        timestamp jumps by the silent time when speech resumes.
        """
        silences = silences or {}
        out: list[Sent] = []
        t = start
        for i, opus in enumerate(packets):
            if i in silences:
                for _ in range(5):
                    out.append(Sent(t, self.ts, self.datagram(b"\xf8\xff\xfe"), None))
                    self.seq = (self.seq + 1) & 0xFFFF
                    self.ts = (self.ts + FRAME) & 0xFFFFFFFF
                    t += FRAME / SR
                gap = silences[i]
                t += gap
                self.ts = (self.ts + int(round(gap * SR))) & 0xFFFFFFFF
            out.append(Sent(t, self.ts, self.datagram(opus), i))
            self.seq = (self.seq + 1) & 0xFFFF
            self.ts = (self.ts + FRAME) & 0xFFFFFFFF
            t += FRAME / SR
        return out


def network(
    sent: list[Sent],
    rng: random.Random,
    *,
    loss: float = 0.0,
    duplicate: float = 0.0,
    jitter: float = 0.0,
    reorder: float = 0.0,
) -> list[tuple[float, bytes, Sent]]:
    """Arrivals (time, datagram, what was sent) after loss, duplication, jitter and reordering."""
    arrivals: list[tuple[float, bytes, Sent]] = []
    for s in sent:
        if rng.random() < loss:
            continue
        copies = 2 if rng.random() < duplicate else 1
        for _ in range(copies):
            delay = 0.005 + rng.uniform(0, jitter)
            if rng.random() < reorder:
                delay += 0.025  # overtaken by the next packet
            arrivals.append((s.send_time + delay, s.datagram, s))
    arrivals.sort(key=lambda a: a[0])
    return arrivals


class FakeClock:
    def __init__(self, t: float = 0.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


@dataclass
class Collected:
    frames: dict[int, list] = field(default_factory=dict)

    def __call__(self, user_id, frame) -> None:
        self.frames.setdefault(user_id, []).append(frame)

    def timeline(self, user_id: int, length: int) -> np.ndarray:
        """Mono float timeline of a user's output, each frame placed at its ``start``."""
        out = np.zeros(length, dtype=np.float64)
        for f in self.frames.get(user_id, []):
            i = int(round(f.start * SR))
            mono = f.pcm.astype(np.float64).mean(axis=1)
            j = min(length, i + mono.shape[0])
            if j > i >= 0:
                out[i:j] = mono[: j - i]
        return out


def run_network(receiver, clock: FakeClock, arrivals, *, poll_every: float = 0.01, until: float | None = None) -> None:
    """Feed arrivals at their times, polling on a fixed grid, as a client thread would."""
    end = (arrivals[-1][0] if arrivals else 0.0) + 1.0 if until is None else until
    i = 0
    t = clock.t
    while t <= end:
        while i < len(arrivals) and arrivals[i][0] <= t:
            clock.t = arrivals[i][0]
            receiver.feed(arrivals[i][1], arrivals[i][0])
            i += 1
        clock.t = t
        receiver.poll(t)
        t += poll_every


def best_alignment(out: np.ndarray, ref: np.ndarray, max_lag: int) -> tuple[int, float]:
    """(lag in samples, normalised correlation) maximising correlation of out vs ref shifted.

    Every lag in [-max_lag, max_lag] is tried (cross-correlation by FFT). The correlation
    peak of this speech after Opus is only a few samples wide, so a coarse grid can step
    over it and settle on a side lobe (a "lag 24 ms, correlation 0.44" that is a search
    miss, not a timing error).
    """
    n = min(out.shape[0], ref.shape[0])
    out, ref = out[:n].astype(np.float64), ref[:n].astype(np.float64)
    size = 1 << (2 * n - 1).bit_length()
    cc = np.fft.irfft(np.fft.rfft(out, size) * np.conj(np.fft.rfft(ref, size)), size)
    lags = np.arange(-max_lag, max_lag + 1)
    num = cc[lags % size]  # sum over i of out[i + lag] * ref[i]
    # energies of the overlapping parts, as a direct computation would take them
    eo = np.concatenate(([0.0], np.cumsum(out * out)))
    er = np.concatenate(([0.0], np.cumsum(ref * ref)))
    pos = lags >= 0
    e_out = np.where(pos, eo[n] - eo[np.clip(lags, 0, n)], eo[np.clip(n + lags, 0, n)])
    e_ref = np.where(pos, er[np.clip(n - lags, 0, n)], er[n] - er[np.clip(-lags, 0, n)])
    denom = np.sqrt(e_out * e_ref)
    corr = np.divide(num, denom, out=np.zeros_like(num), where=denom > 0)
    k = int(np.argmax(corr))
    return int(lags[k]), float(corr[k])


def reference_timeline(pcm: np.ndarray, sent: list[Sent], length: int) -> np.ndarray:
    """Where each source frame truly belongs in call time (its send time)."""
    ref = np.zeros(length, dtype=np.float64)
    mono = pcm.astype(np.float64).mean(axis=1)
    for s in sent:
        if s.frame_index is None:
            continue
        src = mono[s.frame_index * FRAME : (s.frame_index + 1) * FRAME]
        i = int(round(s.send_time * SR))
        j = min(length, i + src.shape[0])
        if j > i:
            ref[i:j] = src[: j - i]
    return ref


# --- DAVE: a local MLS external sender, so two real davey sessions can form a group -------
#
# In DAVE the voice server is the MLS external sender (RFC 9420 12.1.8.1): it publishes its
# signing key (gateway opcode 25) and sends Add proposals (opcode 27) that a member commits.
# davey implements only the member side, so this builds the server's two messages from the
# RFC 9420 wire format: ExternalSender, and PublicMessage proposals signed with
# SignWithLabel("FramedContentTBS") under ciphersuite 2 (P-256, SHA-256, DER ECDSA).


def _mls_varint(n: int) -> bytes:
    if n < 1 << 6:
        return bytes([n])
    if n < 1 << 14:
        return (0x4000 | n).to_bytes(2, "big")
    return (0x80000000 | n).to_bytes(4, "big")


def _mls_opaque(data: bytes) -> bytes:
    return _mls_varint(len(data)) + data


class LocalExternalSender:
    def __init__(self) -> None:
        from cryptography.hazmat.primitives.asymmetric import ec

        self._key = ec.generate_private_key(ec.SECP256R1())

    def package(self) -> bytes:
        """Opcode 25 body: SignaturePublicKey, then a basic Credential."""
        from cryptography.hazmat.primitives import serialization

        pub = self._key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        return _mls_opaque(pub) + (1).to_bytes(2, "big") + _mls_opaque(b"voice-server")

    def add_proposals(self, channel_id: int, epoch: int, key_packages: list[bytes]) -> bytes:
        """Opcode 27 body after the operation byte: MLSMessage proposal_messages<V>."""
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec

        messages = b""
        for kp in key_packages:
            content = (
                _mls_opaque(channel_id.to_bytes(8, "big"))  # DAVE: group id = channel id
                + epoch.to_bytes(8, "big")
                + bytes([2])
                + (0).to_bytes(4, "big")  # sender: external, index 0
                + _mls_opaque(b"")  # authenticated_data
                + bytes([2])  # content type: proposal
                + (1).to_bytes(2, "big")
                + kp  # Add(key_package)
            )
            head = (1).to_bytes(2, "big") + (1).to_bytes(2, "big")  # mls10, public_message
            tbs = head + content  # external senders sign no group context
            sign_content = _mls_opaque(b"MLS 1.0 FramedContentTBS") + _mls_opaque(tbs)
            signature = self._key.sign(sign_content, ec.ECDSA(hashes.SHA256()))
            messages += head + content + _mls_opaque(signature)
        return _mls_opaque(messages)


class LocalDaveGroup:
    """Real davey sessions joined into one MLS group the way the voice server drives them."""

    def __init__(self, channel_id: int, first_user: int) -> None:
        import davey

        self.channel_id = channel_id
        self.es = LocalExternalSender()
        first = davey.DaveSession(1, first_user, channel_id)
        first.get_serialized_key_package()
        first.set_external_sender(self.es.package())
        self.members: dict[int, object] = {first_user: first}
        self.committer = first

    def add(self, user_id: int) -> object:
        """Server proposes the newcomer, the committer commits, everyone moves one epoch on."""
        import davey

        new = davey.DaveSession(1, user_id, self.channel_id)
        kp = new.get_serialized_key_package()
        new.set_external_sender(self.es.package())
        c = self.committer
        proposals = self.es.add_proposals(self.channel_id, c.epoch or 0, [kp])
        # Every member gets the proposals (a commit can only reference proposals its
        # receivers hold); each would commit, the server keeps the first commit it gets.
        results = {
            uid: m.process_proposals(davey.ProposalsOperationType.append, proposals) for uid, m in self.members.items()
        }
        cw = results[next(uid for uid, m in self.members.items() if m is c)]
        for member in self.members.values():
            member.process_commit(cw.commit)
        new.process_welcome(cw.welcome)
        self.members[user_id] = new
        return new
