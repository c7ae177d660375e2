from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from tests.calls import RATE, librispeech_files, librispeech_refs, load16k, shared, speech_bounds, write_wav
from tests.hints.servers import LlamaServer, ScriptedServer


@pytest.fixture(scope="session")
def llama_server():
    """The real llama-cpp-python server with SmolLM2-135M-Instruct, one thread."""
    server = LlamaServer()
    yield server
    server.close()


@pytest.fixture(scope="session")
def scripted():
    server = ScriptedServer()
    yield server
    server.close()


@dataclass(frozen=True)
class Turn:
    speaker: str
    speech_start: float
    speech_end: float
    text: str


@dataclass(frozen=True)
class LullCall:
    tracks: dict[str, Path]
    turns: list[Turn]
    length: float

    def silences(self, at_least: float) -> list[tuple[float, float]]:
        """(start, end) of group silences of at least ``at_least`` seconds between turns."""
        ordered = sorted(self.turns, key=lambda t: t.speech_start)
        out, end = [], ordered[0].speech_end
        for t in ordered[1:]:
            if t.speech_start - end >= at_least:
                out.append((end, t.speech_start))
            end = max(end, t.speech_end)
        return out


def place(tmp: Path, script: list[tuple[str, Path, str, float]], *, lead: float = 1.0, tail: float = 1.0,
          speakers: list[str] | None = None) -> LullCall:
    """One wav per speaker; each script item (speaker, file, text, gap) starts ``gap`` seconds after the
    previous item's speech ended (its file's silent edges are allowed for)."""
    clips = [(spk, load16k(f), text, gap) for spk, f, text, gap in script]
    turns, placed = [], []
    end = lead
    for i, (spk, audio, text, gap) in enumerate(clips):
        lo, hi = speech_bounds(audio)
        start = (end + gap - lo) if i else lead
        placed.append((spk, start, audio))
        turns.append(Turn(spk, float(start + lo), float(start + hi), text))
        end = float(start + hi)
    length = max(s + len(a) / RATE for _, s, a in placed) + tail
    total = int(length * RATE)
    names = speakers or sorted({spk for spk, *_ in clips})
    tracks = {n: np.zeros(total, np.float32) for n in names}
    for spk, start, audio in placed:
        i = int(round(start * RATE))
        tracks[spk][i:i + len(audio)] += audio
    paths = {n: write_wav(tmp / f"{n}.wav", a) for n, a in tracks.items()}
    return LullCall(paths, turns, length)


def english_script(pattern: list[tuple[str, float]]) -> list[tuple[str, Path, str, float]]:
    """LibriSpeech turns: alice is speaker 1998, bob 2033, carol 2414; ``pattern`` is (speaker, gap before)."""
    refs = librispeech_refs()
    ids = {"alice": "1998", "bob": "2033", "carol": "2414"}
    used: dict[str, int] = {}
    out = []
    for spk, gap in pattern:
        files = [f for f in librispeech_files(ids[spk]) if 2.0 < len(load16k(f)) / RATE < 9.5]
        f = files[used.get(spk, 0) % len(files)]
        used[spk] = used.get(spk, 0) + 1
        out.append((spk, f, refs[f.stem], gap))
    return out


def korean_script(pattern: list[tuple[str, float]]) -> list[tuple[str, Path, str, float]]:
    folder = shared("data", "korean")
    rows = [line.split("\t") for line in (folder / "trans.tsv").read_text(encoding="utf-8").splitlines()]
    by_speaker: dict[str, list[tuple[str, str]]] = {}
    for file, spk, text in rows:
        by_speaker.setdefault(spk, []).append((file, text))
    voices = sorted(by_speaker, key=lambda s: -len(by_speaker[s]))[:2]
    ids = dict(zip(("minji", "junho"), voices))
    used: dict[str, int] = {}
    out = []
    for spk, gap in pattern:
        file, text = by_speaker[ids[spk]][used.get(spk, 0) % len(by_speaker[ids[spk]])]
        used[spk] = used.get(spk, 0) + 1
        out.append((spk, folder / file, text, gap))
    return out
