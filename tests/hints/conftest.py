from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from tests.calls import RATE, librispeech_files, librispeech_refs, load16k, models_env, shared, speech_bounds, write_wav
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


def place(
    tmp: Path,
    script: list[tuple[str, Path, str, float]],
    *,
    lead: float = 1.0,
    tail: float = 1.0,
    speakers: list[str] | None = None,
) -> LullCall:
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
        tracks[spk][i : i + len(audio)] += audio
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


# Two people talking, two long silences (9 s and 8 s) between short turn gaps (at most 1 s).
TWO_LULLS = [
    ("alice", 0),
    ("bob", 1.0),
    ("alice", 0.8),
    ("bob", 1.0),
    ("alice", 9.0),
    ("bob", 1.0),
    ("alice", 1.0),
    ("bob", 8.0),
    ("alice", 1.0),
]
# Three long silences about half a minute apart.
THREE_LULLS = TWO_LULLS + [("bob", 0.8), ("alice", 9.0), ("bob", 1.0)]


@pytest.fixture(scope="session")
def two_lulls(tmp_path_factory) -> LullCall:
    return place(tmp_path_factory.mktemp("two_lulls"), english_script(TWO_LULLS))


@pytest.fixture(scope="session")
def three_lulls(tmp_path_factory) -> LullCall:
    return place(tmp_path_factory.mktemp("three_lulls"), english_script(THREE_LULLS))


@dataclass
class Replayed:
    summary: object
    detail: object
    printed: str
    exported: dict
    hints: list[dict]  # parsed from what was printed: at, names, source, language, silence, signals, texts


def _secs(text: str) -> float:
    m, s = text.split(":")
    return int(m) * 60 + float(s)


def parse_hints(printed: str) -> list[dict]:
    import re

    hints, current = [], None
    for line in printed.splitlines():
        m = re.match(
            r"^\[(\d\d:\d\d\.\d\d)\] hint to (.*) \((.+), (\w+); silence since (\d\d:\d\d\.\d\d)(?:; ([\w, -]+))?\):$",
            line,
        )
        if m:
            current = {
                "at": _secs(m[1]),
                "names": m[2].split(", ") if m[2] else [],
                "source": m[3],
                "language": m[4],
                "silence": _secs(m[5]),
                "signals": m[6].split(", ") if m[6] else [],
                "texts": [],
            }
            hints.append(current)
        elif current is not None and line.startswith("    - "):
            current["texts"].append(line[6:])
        else:
            current = None
    return hints


def replay_call(config, call: LullCall, tmp: Path, transcriber, **kw) -> Replayed:
    import io
    import json

    from bot.replay import Track, replay
    from storage import get_session, open_database, session_to_json

    out = io.StringIO()
    db_path = tmp / "call.db"
    summary = replay(
        config,
        [Track(n, str(p)) for n, p in call.tracks.items()],
        db_url=str(db_path),
        speed=0,
        out=out,
        transcriber=transcriber,
        **kw,
    )
    db = open_database(str(db_path))
    try:
        detail = get_session(db, summary.session_id)
        exported = json.loads(json.dumps(session_to_json(detail), ensure_ascii=False))
    finally:
        db.close()
    printed = out.getvalue()
    return Replayed(summary, detail, printed, exported, parse_hints(printed))


def hints_config(**values):
    """The default config with [hints]/[llm] keys changed, e.g. hints_config(llm_enabled=False)."""
    from bot.config import load_config

    env = {f"STALK_{k.upper()}": str(v).lower() if isinstance(v, bool) else str(v) for k, v in values.items()}
    return load_config(None, env={**models_env(), **env})
