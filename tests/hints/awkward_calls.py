"""Replayed calls of real speech that show one awkwardness signal each at known places, calls
that flow normally, and a transcriber that answers with the clips' reference text.

Each "awkward place" is followed by a silence of ``PAUSE`` seconds: longer than the signals'
threshold (3 s), shorter than the plain lull threshold (5 s), so plain silence detection never
fires there and a signal that works does. The backchannel places are a stretch of
backchannels 3 s apart, so there is never a silence of even 3 s.

Speech is real: LibriSpeech sentences (alice 1998, bob 2033, carol 2414, who asks
LibriSpeech's two questions), Common Voice Korean (minji, junho) and Free Spoken Digit Dataset
digits as answers of a word or two, with their reference text. ``../shared/data`` holds no recorded
backchannels, so short digit recordings (two takes of one digit) stand in as their sound, with "yeah", "mm-hmm", "응"
or "네" as their text: the detector is judged on the words, and the sound only has to be a
short stretch of speech for the voice activity detector.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bot.asr.transcriber import Transcript
from tests.calls import RATE, librispeech_files, librispeech_refs, load16k, shared, speech_bounds, write_wav
from tests.hints.conftest import LullCall, place

PAUSE = 4.2  # the silence after an awkward place
VOICES = {"alice": "1998", "bob": "2033", "carol": "2414"}
QUESTIONS_EN = {"2414-128291-0000": "What hath happened unto me?", "2414-128291-0003": "What do I here seek?"}
BACKCHANNELS_EN = ["Mm-hmm.", "Yeah.", "Right.", "Yeah, yeah."]
BACKCHANNELS_KO = ["응.", "네.", "아 네.", "응 응."]
DIGITS = "zero one two three four five six seven eight nine".split()


@dataclass
class AwkwardCall:
    name: str
    signal: str | None  # the signal its places show; None: a call that flows normally
    call: LullCall
    places: list[tuple[float, float]]  # (end of the awkward place's last line, when talk resumes)


def short_clips(tmp: Path) -> list[tuple[Path, str]]:
    """Two takes of one spoken digit, 0.15 s apart, at LibriSpeech's level: one take alone
    (0.2-0.4 s of 8 kHz telephone speech) is often below the voice activity detector's 250 ms."""
    folder = shared("data", "digits")
    out_dir = tmp / "short"
    out_dir.mkdir(parents=True, exist_ok=True)
    out = []
    for who in ("george", "jackson", "nicolas"):
        for d in range(10):
            takes = []
            for take in range(5):
                audio = load16k(folder / f"{d}_{who}_{take}.wav")
                lo, hi = speech_bounds(audio)
                takes.append(audio[int(lo * RATE) : int(hi * RATE)])
            pair = np.concatenate([takes[0], np.zeros(int(0.15 * RATE), np.float32), takes[1]])
            pair = 0.45 * pair / max(float(np.abs(pair).max()), 1e-6)
            pad = np.zeros(int(0.1 * RATE), np.float32)
            out.append((write_wav(out_dir / f"{d}_{who}.wav", np.concatenate([pad, pair, pad])), DIGITS[d]))
    return out


class Clips:
    """Real clips handed out in turn, so that a call does not repeat one too soon."""

    def __init__(self, tmp: Path) -> None:
        refs = librispeech_refs()
        self.long: dict[str, list[tuple[Path, str]]] = {}
        for name, spk in VOICES.items():
            files = [f for f in librispeech_files(spk) if 2.0 < len(load16k(f)) / RATE < 9.5]
            self.long[name] = [(f, refs[f.stem].capitalize() + ".") for f in files if f.stem not in QUESTIONS_EN]
        folder = shared("data", "librispeech", "2414")
        self.questions_en = [(folder / f"{k}.flac", v) for k, v in QUESTIONS_EN.items()]
        ko = shared("data", "korean")
        rows = [line.split("\t") for line in (ko / "trans.tsv").read_text(encoding="utf-8").splitlines()]
        self.questions_ko = [(ko / f, t) for f, _, t in rows if t.rstrip().endswith("?")]
        statements = [(ko / f, s, t) for f, s, t in rows if not t.rstrip().endswith("?")]
        by: dict[str, list[tuple[Path, str]]] = {}
        for f, s, t in statements:
            by.setdefault(s, []).append((f, t))
        voices = sorted(by, key=lambda s: -len(by[s]))
        # Two voices for the two Korean speakers; the other clips are shared between them.
        rest = [x for v in voices[2:] for x in by[v]]
        self.long["minji"] = by[voices[0]] + rest[::2]
        self.long["junho"] = by[voices[1]] + rest[1::2]
        self.digits = short_clips(tmp)
        self._used: dict[str, int] = {}

    def next(self, kind: str, speaker: str) -> tuple[Path, str]:
        if kind == "long":
            pool = self.long[speaker]
        elif kind == "question":
            pool = self.questions_ko if speaker in ("minji", "junho") else self.questions_en
        elif kind in ("digit", "backchannel"):
            pool = self.digits
        else:
            raise ValueError(kind)
        key = kind if kind in ("digit", "backchannel", "question") else f"{kind}:{speaker}"
        i = self._used.get(key, 0)
        self._used[key] = i + 1
        f, text = pool[(i * 7 + (3 if kind == "backchannel" else 0)) % len(pool)]
        if kind == "digit":
            text = f"{text.capitalize()}, {text}."
        if kind == "backchannel":
            words = BACKCHANNELS_KO if speaker in ("minji", "junho") else BACKCHANNELS_EN
            text = words[i % len(words)]
        return f, text


Item = tuple[str, str, float]  # (speaker, kind: long/question/digit/backchannel, gap before)


def build(tmp: Path, name: str, signal: str | None, blocks: list[list[Item]], clips: Clips) -> AwkwardCall:
    """Blocks of turns; the silence after each block but the last is an awkward place when the
    block's ``gap`` says so (``PAUSE``), else normal."""
    script, ends = [], []
    for block in blocks:
        for spk, kind, gap in block:
            f, text = clips.next(kind, spk)
            script.append((spk, f, text, gap))
        ends.append(len(script) - 1)
    (tmp / name).mkdir(parents=True, exist_ok=True)
    call = place(tmp / name, script, lead=1.0, tail=2.0)
    places = []
    for last in ends[:-1]:
        nxt = call.turns[last + 1]
        if signal is not None:
            places.append((call.turns[last].speech_end, nxt.speech_start))
    return AwkwardCall(name, signal, call, places)


def _exchange(a: str, b: str, n: int, gap: float = 0.8) -> list[Item]:
    return [((a, b)[i % 2], "long", gap) for i in range(n)]


def monologue_call(tmp: Path, clips: Clips) -> AwkwardCall:
    block = [
        ("alice", "long", PAUSE),
        ("bob", "long", 0.7),
        ("bob", "long", 0.6),
        ("bob", "long", 0.6),
        ("alice", "backchannel", 0.4),
        ("bob", "long", 0.5),
        ("bob", "long", 0.6),
        ("bob", "long", 0.6),
    ]
    blocks = [block for _ in range(3)] + [[("alice", "long", PAUSE)]]
    blocks[0] = [("alice", "long", 0.0), *block[1:]]
    return build(tmp, "monologue", "monologue", blocks, clips)


def short_answers_call(tmp: Path, clips: Clips, korean: bool = False) -> AwkwardCall:
    a, b = ("minji", "junho") if korean else ("alice", "bob")
    block = [
        (a, "long", PAUSE),
        (b, "long", 0.8),
        (a, "long", 0.7),
        (b, "long", 0.9),
        (a, "digit", 1.0),
        (b, "digit", 1.2),
        (a, "digit", 1.4),
    ]
    blocks = [block for _ in range(3)] + [[(a, "long", PAUSE)]]
    blocks[0] = [(a, "long", 0.0), *block[1:]]
    return build(tmp, "short-answers-ko" if korean else "short-answers", "short-answers", blocks, clips)


def backchannel_call(tmp: Path, clips: Clips, korean: bool = False) -> AwkwardCall:
    a, b = ("minji", "junho") if korean else ("alice", "bob")
    bcs = [(b, "backchannel", 1.0), (a, "backchannel", 2.5), (b, "backchannel", 2.5), (a, "backchannel", 2.5)]
    block = [(a, "long", 2.5), (b, "long", 0.8), (a, "long", 0.7), (b, "long", 0.9), *bcs]
    blocks = [block for _ in range(3)] + [[(a, "long", 2.5)]]
    blocks[0] = [(a, "long", 0.0), *block[1:]]
    call = build(tmp, "backchannels-ko" if korean else "backchannels", "backchannels", blocks, clips)
    # The place: from the last real line to the speech that follows the backchannels.
    turns, places, i = call.call.turns, [], 0
    for _ in range(3):
        i += 4  # the real lines
        real_end = turns[i - 1].speech_end
        i += 4  # the backchannels
        places.append((real_end, turns[i].speech_start))
    call.places = places
    return call


def unanswered_call(tmp: Path, clips: Clips, korean: bool = False) -> AwkwardCall:
    a, b = ("minji", "junho") if korean else ("alice", "carol")
    block = [(a, "long", PAUSE), (b, "long", 0.8), (a, "long", 0.7), (b, "question", 0.9)]
    n = 4 if korean else 2
    blocks = [block for _ in range(n)] + [[(a, "long", PAUSE)]]
    blocks[0] = [(a, "long", 0.0), *block[1:]]
    return build(tmp, "unanswered-ko" if korean else "unanswered", "unanswered-question", blocks, clips)


def normal_call(tmp: Path, clips: Clips, name: str, speakers: tuple[str, ...], turns: int, seed: int) -> AwkwardCall:
    """A conversation that flows: short gaps (0.2-1.2 s), one in eight a thinking pause of
    2-4.5 s (never a lull of 5 s), a listener's backchannel now and then, questions answered."""
    rng = random.Random(seed)
    items: list[Item] = []
    prev = speakers[0]
    questions = 0
    for i in range(turns):
        others = [s for s in speakers if s != prev]
        spk = prev if rng.random() < 0.15 else rng.choice(others)
        gap = 0.0 if i == 0 else rng.uniform(2.0, 4.5) if rng.random() < 0.125 else rng.uniform(0.2, 1.2)
        can_ask = (spk == "carol" or spk in ("minji", "junho")) and questions < 2
        kind = "question" if can_ask and rng.random() < 0.25 else "long"
        if kind == "question":
            questions += 1
        items.append((spk, kind, gap))
        if kind == "question":  # answered, after a short gap or a thinking pause
            answer = rng.choice([s for s in speakers if s != spk])
            items.append((answer, "long", rng.uniform(0.3, 3.5)))
            spk = answer
        elif rng.random() < 0.2:  # a listener's "yeah", then the speaker goes on
            listener = rng.choice([s for s in speakers if s != spk])
            items.append((listener, "backchannel", rng.uniform(0.2, 0.8)))
            items.append((spk, "long", rng.uniform(0.3, 1.5)))
        prev = spk
    return build(tmp, name, None, [items], clips)


def awkward_calls(tmp: Path) -> list[AwkwardCall]:
    clips = Clips(tmp)
    return [
        monologue_call(tmp, clips),
        short_answers_call(tmp, clips),
        short_answers_call(tmp, clips, korean=True),
        backchannel_call(tmp, clips),
        backchannel_call(tmp, clips, korean=True),
        unanswered_call(tmp, clips),
        unanswered_call(tmp, clips, korean=True),
    ]


def normal_calls(tmp: Path, count: int = 3, turns: int = 40) -> list[AwkwardCall]:
    clips = Clips(tmp)
    out = []
    for i in range(count):
        if i % 3 == 2:
            out.append(normal_call(tmp, clips, f"normal-ko-{i}", ("minji", "junho"), turns, seed=i))
        else:
            out.append(normal_call(tmp, clips, f"normal-en-{i}", ("alice", "bob", "carol"), turns, seed=i))
    return out


# -- a transcriber that answers with the reference text ------------------------------------------

HOP = 160  # 10 ms at 16 kHz


def _envelope(audio: np.ndarray) -> np.ndarray:
    n = len(audio) // HOP
    return np.sqrt((audio[: n * HOP].reshape(n, HOP).astype(np.float64) ** 2).mean(axis=1))


class ReferenceTranscriber:
    """Answers each utterance with the reference text of the clip it was cut from: found by
    matching its loudness envelope against the call's tracks. Where the voice activity detector
    split a clip, each part gets the clip's words in proportion to the time it covers. For
    tests and benchmarks where transcription is not the point (the text is known)."""

    name = "reference"

    def __init__(self, call: LullCall) -> None:
        self.turns = call.turns
        self.tracks = {spk: _envelope(load16k(p)) for spk, p in call.tracks.items()}
        self.lock = threading.Lock()

    def _locate(self, audio: np.ndarray) -> tuple[str, float, float] | None:
        env = _envelope(audio)
        if len(env) == 0 or env.max() <= 0:
            return None
        best: tuple[float, str, int] | None = None
        for spk, track in self.tracks.items():
            if len(track) < len(env):
                continue
            corr = np.correlate(track, env, "valid")
            energy = np.convolve(track**2, np.ones(len(env)), "valid")
            dist = energy - 2 * corr + float((env**2).sum())
            i = int(np.argmin(dist))
            if best is None or dist[i] < best[0]:
                best = (float(dist[i]), spk, i)
        assert best is not None
        _, spk, i = best
        return spk, i * HOP / RATE, (i + len(env)) * HOP / RATE

    def text_for(self, audio: np.ndarray) -> tuple[str, str]:
        found = self._locate(audio)
        if found is None:
            return "", "en"
        spk, lo, hi = found
        parts, language = [], "en"
        for t in self.turns:
            if t.speaker != spk or t.speech_end <= lo or t.speech_start >= hi:
                continue
            words = t.text.split()
            span = t.speech_end - t.speech_start
            a = round(len(words) * max(0.0, (lo - t.speech_start) / span))
            b = round(len(words) * min(1.0, (hi - t.speech_start) / span))
            if b > a:
                parts.append(" ".join(words[a:b]))
            if any("\uac00" <= c <= "\ud7a3" for c in t.text):
                language = "ko"
        return " ".join(parts), language

    def transcribe_batch(self, requests, options) -> list[Transcript]:
        out = []
        for r in requests:
            text, language = self.text_for(r.audio)
            out.append(Transcript(text, language, 0.99, -0.2, 0.01, 1.2))
        return out
