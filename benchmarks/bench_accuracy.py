"""Benchmark: transcript accuracy of the pipeline against plain faster-whisper, in one run.

Two calls of real speech from ../shared/data, voices the tests and the tuning did not use:
- English: three LibriSpeech test-other speakers taking turns (language en);
- Korean: four Common Voice speakers taking turns (language detected, as users run it).

On each call, with the same model (base int8 unless --model says otherwise) and cores:
- plain: faster-whisper ``transcribe`` over each speaker's whole track, its own VAD on,
  conditioned on its previous text as it is by default; each segment is credited to the
  turn it overlaps most, so a segment spanning two turns loses one of them;
- pipeline: ``replay`` at --speed 0, once per variant (utterance context off and on).

Printed per call and variant: WER (English) or CER plain and space-insensitive (Korean,
punctuation removed, digits read as Korean words), the same over each speaker's whole text
(no turn matching: what the words alone score), turns lost (no text at all), and seconds.

    flock /tmp/stalk-cpu.lock python benchmarks/bench_accuracy.py [--model PATH] [--variants off on own ...] [--show]
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.calls import (  # noqa: E402
    Placed,
    base_dir,
    build_call,
    cer,
    korean_refs,
    librispeech_files,
    librispeech_refs,
    load16k,
    offline_config,
    shared,
    texts_by_turn,
    wer,
)

# Held out: the ASR tests and benchmarks/bench_pipeline.py's two-person call use 1998, 2033,
# 2414 and the first files of 1688; the Korean tests the first two Common Voice speakers.
ENGLISH = (("Wren", "2609"), ("Odile", "3005"), ("Piotr", "1688"))
ENGLISH_FIRST_FILE = 4
KOREAN_SPEAKERS = 4
TURNS = 3
MAX_SECONDS = 20.0
# Pipeline variants: settings over the defaults ("asr.key" or "vad.key").
VARIANTS: dict[str, dict[str, object]] = {
    "off": {"asr.context": False},
    "on": {"asr.context": True, "asr.context_others": True},
    "own": {"asr.context": True, "asr.context_others": False},
    "on-2lines": {"asr.context": True, "asr.context_others": True, "asr.context_lines": 2},
    "off-28s": {"asr.context": False, "vad.max_utterance_s": 28.0},
    "own-28s": {"asr.context": True, "asr.context_others": False, "vad.max_utterance_s": 28.0},
    "off-pad400": {"asr.context": False, "vad.speech_pad_ms": 400},
}


@dataclass(frozen=True)
class Call:
    name: str
    language: str  # the asr.language setting: "en", or "auto" to detect
    tracks: dict[str, Path]
    placed: list[Placed]


def english_call(tmp: Path) -> Call:
    refs = librispeech_refs()
    pools = {
        name: [f for f in librispeech_files(spk)[ENGLISH_FIRST_FILE:] if len(load16k(f)) / 16000 <= MAX_SECONDS]
        for name, spk in ENGLISH
    }
    script = [(name, pools[name][t], refs[pools[name][t].stem]) for t in range(TURNS + 2) for name, _ in ENGLISH]
    tracks, placed = build_call(tmp, script, gap=0.8)
    return Call("English, 3 people", "en", tracks, placed)


def korean_call(tmp: Path) -> Call:
    by_speaker: dict[str, list[tuple[str, str]]] = {}
    for file, speaker, text in korean_refs():
        by_speaker.setdefault(speaker, []).append((file, text))
    speakers = [s for s, items in by_speaker.items() if len(items) >= TURNS][-KOREAN_SPEAKERS:]
    names = ["하늘", "도윤", "서연", "지호"]
    script = [
        (names[i], shared("data", "korean", by_speaker[s][t][0]), by_speaker[s][t][1])
        for t in range(TURNS)
        for i, s in enumerate(speakers)
    ]
    tracks, placed = build_call(tmp, script, gap=0.8)
    return Call("Korean, 4 people", "auto", tracks, placed)


@dataclass(frozen=True)
class Result:
    turns: list[str]  # hypothesis per placed turn
    by_speaker: dict[str, str]  # each speaker's whole text, in call order
    seconds: float
    prompted: int = 0
    echoes: int = 0


def run_plain(model, call: Call) -> Result:
    t0 = time.perf_counter()
    turns = [""] * len(call.placed)
    by_speaker = {}
    language = None if call.language == "auto" else call.language
    for speaker, path in call.tracks.items():
        segments, _ = model.transcribe(str(path), language=language, beam_size=1, vad_filter=True)
        texts = []
        for seg in segments:
            texts.append(seg.text.strip())
            mine = [(i, p) for i, p in enumerate(call.placed) if p.speaker == speaker]
            overlap = [(min(seg.end, p.speech_end) - max(seg.start, p.speech_start), i) for i, p in mine]
            best, i = max(overlap)
            if best > 0:
                turns[i] = f"{turns[i]} {seg.text.strip()}".strip()
        by_speaker[speaker] = " ".join(texts)
    return Result(turns, by_speaker, time.perf_counter() - t0)


def run_pipeline(transcriber, call: Call, settings: dict[str, object]) -> Result:
    from bot.pipeline import PipelineListener
    from bot.replay import Track, replay
    from storage import get_session, open_database

    class Count(PipelineListener):
        prompted = echoes = 0

        def on_utterance(self, event) -> None:
            Count.prompted += event.transcript.prompted
            Count.echoes += event.transcript.echo

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
        listeners=[Count()],
        hints=False,
    )
    seconds = time.perf_counter() - t0
    db = open_database(str(tmp / "bench.db"))
    utts = get_session(db, summary.session_id).utterances
    db.close()
    by_speaker = {s: " ".join(u.text for u in utts if u.speaker == s) for s in call.tracks}
    return Result(texts_by_turn(utts, call.placed), by_speaker, seconds, Count.prompted, Count.echoes)


def scores(call: Call, result: Result) -> str:
    refs = [p.text for p in call.placed]
    whole_refs = [" ".join(p.text for p in call.placed if p.speaker == s) for s in call.tracks]
    whole = [result.by_speaker[s] for s in call.tracks]
    lost = sum(not t.strip() for t in result.turns)
    if call.language == "en":
        figures = f"WER {wer(refs, result.turns):6.1%} (whole text {wer(whole_refs, whole):6.1%})"
    else:
        figures = (
            f"CER {cer(refs, result.turns, spaces=True, language='ko'):6.1%}, "
            f"space-insensitive {cer(refs, result.turns, language='ko'):6.1%} "
            f"(whole text {cer(whole_refs, whole, spaces=True, language='ko'):6.1%}, "
            f"{cer(whole_refs, whole, language='ko'):6.1%})"
        )
    return f"{figures}  lost {lost:2d}/{len(refs)}  {result.seconds:5.1f} s"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=base_dir(), help="Whisper model (default: ../shared/models/whisper-base)")
    ap.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS), help="pipeline settings")
    ap.add_argument("--show", action="store_true", help="print every turn's reference and hypotheses")
    args = ap.parse_args()

    from bot.asr.model import load_whisper
    from bot.asr.transcriber import WhisperTranscriber

    config = offline_config()
    asr = config.asr
    model = load_whisper(args.model, workers=asr.workers, cpu_threads=asr.cpu_threads)
    transcriber = WhisperTranscriber(model, Path(args.model).name)
    print(f"machine: {os.cpu_count()} cores; model {args.model} {asr.compute_type} on CPU, greedy")
    tmp = Path(tempfile.mkdtemp())
    for make in (english_call, korean_call):
        sub = tmp / make.__name__
        sub.mkdir()
        call = make(sub)
        speech = sum(p.speech_end - p.speech_start for p in call.placed)
        print(f"\n{call.name}, {len(call.placed)} turns, {speech:.0f} s of speech, language {call.language}:")
        results = {"plain whole-track": run_plain(model, call)}
        for variant in args.variants:
            results[f"pipeline, {variant}"] = run_pipeline(transcriber, call, VARIANTS[variant])
        width = max(map(len, results))
        for label, result in results.items():
            extra = f"  ({result.prompted} prompted, {result.echoes} echoes)" if label.startswith("pipeline") else ""
            print(f"  {label:<{width}}  {scores(call, result)}{extra}")
        if args.show:
            for i, p in enumerate(call.placed):
                print(f"  [{p.speaker}] ref: {p.text}")
                for label, result in results.items():
                    print(f"    {label}: {result.turns[i]}")


if __name__ == "__main__":
    main()
