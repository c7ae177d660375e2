"""Benchmark: transcripts in noise, the pipeline against plain faster-whisper on the same audio, in one run.

Calls built like bench_accuracy's (real speech from ../shared/data, speakers taking turns,
one track per speaker), then noise put under every track all along, as each participant's
microphone would pick it up, at a signal-to-noise ratio measured over that speaker's speech:
- babble: three streams of other people's real speech (AMI meeting excerpts under the English
  call, Korean Common Voice speakers not in the call under the Korean one), summed;
- pink or brown: stationary 1/f or 1/f^2 noise from a fixed seed.

Two disjoint sets of voices (``--set``): ``tune`` to choose settings on, ``report`` (the voices
of bench_accuracy, with babble from other sources than the tune set's) to report them on.

Printed per call, condition and system: WER (English) or CER with spaces and space-insensitive
(Korean); turns lost (no text credited to them); invented words (text at times where that
speaker says nothing: in noise only); seconds. Each output segment or utterance is credited to
the turn of its speaker it overlaps most (the turn widened by 0.3 s each side); none: invented.

    flock /tmp/stalk-cpu.lock nice -n 19 python benchmarks/bench_noise.py --set report --calls en \
        [--conditions clean babble10 babble5 pink10 pink5] [--variants default ...] [--turns 3] [--show]
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import tempfile
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.calls import (  # noqa: E402
    RATE,
    Placed,
    add_noise,
    babble,
    base_dir,
    build_call,
    cer,
    coloured_noise,
    korean_refs,
    librispeech_files,
    librispeech_refs,
    load16k,
    normalise_text,
    offline_config,
    shared,
    wer,
    write_wav,
)

MAX_SECONDS = 20.0
WIDEN = 0.3
AMI = sorted(shared("data", "ami-debug").glob("*.wav"))


@dataclass(frozen=True)
class VoiceSet:
    english: tuple[tuple[str, str], ...]  # (name, LibriSpeech speaker)
    english_first_file: int
    english_babble: tuple[Path, ...]
    korean: slice  # of the Common Voice speakers with three clips, in file order
    korean_babble: slice


SETS = {
    # The report set is bench_accuracy's held-out call; the tune set uses the other voices.
    "tune": VoiceSet((("Ash", "1998"), ("Bea", "2033"), ("Cyr", "2414")), 0, tuple(AMI[:6]), slice(2, 6), slice(6, 10)),
    "report": VoiceSet(
        (("Wren", "2609"), ("Odile", "3005"), ("Piotr", "1688")), 4, tuple(AMI[6:]), slice(-4, None), slice(10, 14)
    ),
}
NOISES = {"babble": -1.0, "white": 0.0, "pink": 1.0, "brown": 2.0}
# Pipeline variants: settings over the defaults ("asr.key" or "vad.key").
VARIANTS: dict[str, dict[str, object]] = {
    "default": {},
    "vad0.6": {"vad.threshold": 0.6},
    "vad0.7": {"vad.threshold": 0.7},
    "vad0.35": {"vad.threshold": 0.35},
    "nospeech0.4": {"asr.no_speech_threshold": 0.4},
    "logprob-0.8": {"asr.log_prob_threshold": -0.8},
    "minspeech400": {"vad.min_speech_ms": 400},
    "bg6": {"vad.background_db": 6.0},
    "bg8": {"vad.background_db": 8.0},
    "bg10": {"vad.background_db": 10.0},
    "bg12": {"vad.background_db": 12.0},
}


@dataclass(frozen=True)
class Call:
    name: str
    language: str
    tracks: dict[str, Path]
    placed: list[Placed]
    babble: tuple[Path, ...]


def english_call(tmp: Path, voices: VoiceSet, turns: int) -> Call:
    refs = librispeech_refs()
    pools = {
        name: [f for f in librispeech_files(spk)[voices.english_first_file :] if len(load16k(f)) / RATE <= MAX_SECONDS]
        for name, spk in voices.english
    }
    script = [(name, pools[name][t], refs[pools[name][t].stem]) for t in range(turns) for name, _ in voices.english]
    tracks, placed = build_call(tmp, script, gap=0.8)
    return Call(f"English, {len(voices.english)} people", "en", tracks, placed, voices.english_babble)


def korean_call(tmp: Path, voices: VoiceSet, turns: int) -> Call:
    by_speaker: dict[str, list[tuple[str, str]]] = {}
    for file, speaker, text in korean_refs():
        by_speaker.setdefault(speaker, []).append((file, text))
    three = [s for s, items in by_speaker.items() if len(items) >= 3]
    speakers = three[voices.korean]
    names = ["하늘", "도윤", "서연", "지호"]
    script = [
        (names[i], shared("data", "korean", by_speaker[s][t][0]), by_speaker[s][t][1])
        for t in range(min(turns, 3))
        for i, s in enumerate(speakers)
    ]
    tracks, placed = build_call(tmp, script, gap=0.8)
    sources = tuple(shared("data", "korean", f) for s in three[voices.korean_babble] for f, _ in by_speaker[s])
    return Call(f"Korean, {len(speakers)} people", "auto", tracks, placed, sources)


def noisy(call: Call, condition: str, tmp: Path) -> Call:
    """The call with ``condition`` ("clean", "babble10", "pink5", ...) under every track."""
    if condition == "clean":
        return call
    kind = condition.rstrip("0123456789-")
    snr = float(condition[len(kind) :])
    tracks = {}
    for speaker, path in call.tracks.items():
        audio = load16k(path)
        seed = zlib.crc32(f"{call.name}/{condition}/{speaker}".encode())
        if kind == "babble":
            noise = babble(len(audio), list(call.babble), talkers=3, seed=seed)
        else:
            noise = coloured_noise(len(audio), NOISES[kind], seed)
        spans = [(p.speech_start, p.speech_end) for p in call.placed if p.speaker == speaker]
        tracks[speaker] = write_wav(tmp / f"{speaker}.wav", add_noise(audio, noise, snr, spans))
    return Call(call.name, call.language, tracks, call.placed, call.babble)


@dataclass(frozen=True)
class Item:
    speaker: str
    start: float
    end: float
    text: str


@dataclass(frozen=True)
class Result:
    turns: list[str]
    invented: list[str]  # texts credited to no turn
    seconds: float


def credit(call: Call, items: list[Item], seconds: float) -> Result:
    turns = [""] * len(call.placed)
    invented = []
    for item in items:
        overlaps = [
            (min(item.end, p.speech_end + WIDEN) - max(item.start, p.speech_start - WIDEN), i)
            for i, p in enumerate(call.placed)
            if p.speaker == item.speaker
        ]
        best, i = max(overlaps)
        if best > 0:
            turns[i] = f"{turns[i]} {item.text}".strip()
        elif item.text.strip():
            invented.append(item.text.strip())
    return Result(turns, invented, seconds)


def run_plain(model, call: Call) -> Result:
    t0 = time.perf_counter()
    language = None if call.language == "auto" else call.language
    items = []
    for speaker, path in call.tracks.items():
        segments, _ = model.transcribe(str(path), language=language, beam_size=1, vad_filter=True)
        items += [Item(speaker, s.start, s.end, s.text.strip()) for s in segments]
    return credit(call, items, time.perf_counter() - t0)


def run_pipeline(transcriber, call: Call, settings: dict[str, object]) -> Result:
    from bot.replay import Track, replay
    from storage import get_session, open_database

    config = offline_config().replace("asr", language=call.language)
    for key, value in settings.items():
        section, _, name = key.partition(".")
        config = config.replace(section, **{name: value})
    tmp = Path(tempfile.mkdtemp())
    t0 = time.perf_counter()
    summary = replay(
        config,
        [Track(n, str(p)) for n, p in call.tracks.items()],
        db_url=str(tmp / "bench.db"),
        speed=0,
        out=io.StringIO(),
        transcriber=transcriber,
        language=call.language,
        hints=False,
    )
    seconds = time.perf_counter() - t0
    db = open_database(str(tmp / "bench.db"))
    utts = get_session(db, summary.session_id).utterances
    db.close()
    return credit(call, [Item(u.speaker, u.start, u.end, u.text) for u in utts], seconds)


def scores(call: Call, result: Result) -> str:
    refs = [p.text for p in call.placed]
    lost = sum(not t.strip() for t in result.turns)
    invented = sum(len(normalise_text(t).split()) for t in result.invented)
    if call.language == "en":
        figures = f"WER {wer(refs, result.turns):6.1%}"
    else:
        figures = (
            f"CER {cer(refs, result.turns, spaces=True, language='ko'):6.1%}, "
            f"space-insensitive {cer(refs, result.turns, language='ko'):6.1%}"
        )
    return f"{figures}  lost {lost:2d}/{len(refs)}  invented {invented:3d} words  {result.seconds:5.1f} s"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--set", choices=list(SETS), default="report", help="voices: tune on one, report on the other")
    ap.add_argument("--calls", nargs="+", choices=["en", "ko"], default=["en", "ko"])
    ap.add_argument(
        "--conditions",
        nargs="+",
        default=["clean", "babble10", "babble5", "pink10", "pink5"],
        help="clean, or babble/pink/brown/white followed by the SNR in dB",
    )
    ap.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=["default"], help="pipeline settings")
    ap.add_argument("--no-plain", action="store_true", help="skip plain faster-whisper")
    ap.add_argument("--turns", type=int, default=3, help="turns per speaker (Korean has at most 3)")
    ap.add_argument("--model", default=base_dir(), help="Whisper model (default: ../shared/models/whisper-base)")
    ap.add_argument("--show", action="store_true", help="print every turn's reference and hypotheses, and inventions")
    args = ap.parse_args()
    for condition in args.conditions:
        kind = condition.rstrip("0123456789-")
        if condition != "clean" and (kind not in NOISES or kind == condition):
            ap.error(f"unknown condition {condition!r}: use clean, or babble/pink/brown/white and an SNR, e.g. pink5")

    from bot.asr.model import load_whisper
    from bot.asr.transcriber import WhisperTranscriber

    asr = offline_config().asr
    model = load_whisper(args.model, workers=asr.workers, cpu_threads=asr.cpu_threads)
    transcriber = WhisperTranscriber(model, Path(args.model).name)
    voices = SETS[args.set]
    print(f"machine: {os.cpu_count()} cores; model {args.model} int8 on CPU, greedy; voices: {args.set} set")
    tmp = Path(tempfile.mkdtemp())
    for lang in args.calls:
        make = english_call if lang == "en" else korean_call
        (tmp / lang).mkdir()
        call = make(tmp / lang, voices, args.turns)
        speech = sum(p.speech_end - p.speech_start for p in call.placed)
        length = len(load16k(next(iter(call.tracks.values())))) / RATE
        print(
            f"\n{call.name} ({', '.join(call.tracks)}), {len(call.placed)} turns, {speech:.0f} s of speech "
            f"in {length:.0f} s, language {call.language}:"
        )
        for condition in args.conditions:
            sub = tmp / lang / condition
            sub.mkdir()
            heard = noisy(call, condition, sub)
            results = {} if args.no_plain else {"plain whole-track": run_plain(model, heard)}
            for variant in args.variants:
                results[f"pipeline, {variant}"] = run_pipeline(transcriber, heard, VARIANTS[variant])
            width = max(map(len, results))
            print(f" {condition}:")
            for label, result in results.items():
                print(f"  {label:<{width}}  {scores(heard, result)}", flush=True)
            if args.show:
                for i, p in enumerate(call.placed):
                    print(f"   [{p.speaker}] ref: {p.text}")
                    for label, result in results.items():
                        print(f"     {label}: {result.turns[i]}")
                for label, result in results.items():
                    for text in result.invented:
                        print(f"   invented by {label}: {text}")


if __name__ == "__main__":
    main()
