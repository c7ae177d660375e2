"""Benchmark: the speech pipeline on replayed multi-speaker calls of real speech.

Prints, for the machine it runs on:
- latency to the stored transcript (p50, p95), counted from the end of the utterance (the
  segmenter's decision, 0.5 s of silence after the last word) and from the last word, with
  1, 2, 4 and 8 people talking at once
  (call time simulated at --speed 0, see bot/clock.py; --realtime also paces one call in
  real time to check the simulation against the clock);
- throughput of the whole pipeline against plain faster-whisper transcribing the same
  utterances in the same run (ratio), and both word error rates against the references;
- peak memory of the pipeline process.

    python benchmarks/bench_pipeline.py [--model PATH_OR_SIZE] [--speakers 1 2 4 8] [--realtime]

Configuration comes from STALK_* variables as for the bot, e.g. STALK_VAD_EARLY_MS=200 for the
early transcription.

Each measurement runs in its own process so that peak memory is the pipeline's alone.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.calls import RATE, base_dir, build_call, librispeech_files, librispeech_refs, load16k, wer  # noqa: E402

SPEAKERS = ["1688", "1998", "2033", "2414", "2609", "3005"]
NAMES = ["alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi"]


def make_call(tmp: Path, n: int, turns: int = 5, max_len: float = 10.0, seed: int = 0):
    """n people: each track holds ``turns`` utterances of up to ``max_len`` s with random
    pauses, so that the tracks overlap the way simultaneous talkers (or separate side
    conversations) do. With n=2 it is a conversation taking turns."""
    refs = librispeech_refs()
    rng = random.Random(seed)
    if n == 2:
        script = []
        pools = [[f for f in librispeech_files(s) if len(load16k(f)) / RATE <= max_len] for s in SPEAKERS[:2]]
        for t in range(turns):
            for i, name in enumerate(("alice", "bob")):
                f = pools[i][t % len(pools[i])]
                script.append((name, f, refs[f.stem]))
        return build_call(tmp, script, gap=0.7)
    tracks, placed = {}, []
    for i in range(n):
        spk = SPEAKERS[i % len(SPEAKERS)]
        files = [f for f in librispeech_files(spk) if len(load16k(f)) / RATE <= max_len]
        rng.shuffle(files)
        script = [(NAMES[i], f, refs[f.stem]) for f in files[:turns]]
        sub = tmp / NAMES[i]
        sub.mkdir()
        t, p = build_call(sub, script, gap=rng.uniform(1.0, 3.0), lead=rng.uniform(0.5, 3.0))
        tracks.update(t)
        placed += p
    return tracks, placed


def run_pipeline(model: str, n: int, realtime: bool) -> dict:
    import io

    from bot.config import load_config
    from bot.replay import Track, percentile, replay

    config = load_config(None, env={**os.environ, "STALK_ASR_MODEL": model})
    tmp = Path(tempfile.mkdtemp())
    tracks, placed = make_call(tmp, n)
    from bot.asr.model import load_whisper
    from bot.asr.transcriber import WhisperTranscriber

    asr = config.asr
    transcriber = WhisperTranscriber(
        load_whisper(asr.model, workers=asr.workers, cpu_threads=asr.cpu_threads, search_dirs=config.models.dirs),
        asr.model,
    )
    t0 = time.perf_counter()
    summary = replay(
        config,
        [Track(k, str(v)) for k, v in tracks.items()],
        db_url=str(tmp / "bench.db"),
        speed=1.0 if realtime else 0.0,
        out=io.StringIO(),
        transcriber=transcriber,
    )
    wall = time.perf_counter() - t0
    from storage import get_session, open_database

    db = open_database(str(tmp / "bench.db"))
    detail = get_session(db, summary.session_id)
    hyps = [
        " ".join(
            u.text
            for u in detail.utterances
            if u.speaker == p.speaker and p.speech_start - 0.4 <= u.start <= p.speech_end
        )
        for p in placed
    ]
    short = [u.end - u.start for u in detail.utterances]
    return {
        "speakers": n,
        "call_seconds": summary.duration,
        "speech_seconds": sum(p.speech_end - p.speech_start for p in placed),
        "utterances": len(detail.utterances),
        "longest_utterance": max(short, default=0),
        "wall_seconds": wall,
        "compute_seconds": summary.compute_seconds,
        "p50": percentile(summary.processing_latencies, 50),
        "p95": percentile(summary.processing_latencies, 95),
        "word_p50": percentile(summary.latencies, 50),
        "word_p95": percentile(summary.latencies, 95),
        "wer": wer([p.text for p in placed], hyps),
        "early_ms": config.vad.early_ms,
        "early_kept": summary.early.kept,
        "early_discarded": summary.early.discarded,
        "early_discarded_seconds": summary.early.discarded_seconds,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        # Plain faster-whisper gets the very same utterance audio, re-cut from the tracks.
        "segments": [(u.speaker, u.start, u.end) for u in detail.utterances],
        "tracks": {k: str(v) for k, v in tracks.items()},
        "refs": [p.text for p in placed],
        "placed": [(p.speaker, p.speech_start, p.speech_end) for p in placed],
    }


def run_plain(model: str, segments, tracks, placed, refs, pad: float = 0.2) -> dict:
    """faster-whisper as documented: WhisperModel.transcribe, one utterance after another."""
    from faster_whisper import WhisperModel

    from bot.asr.model import resolve_model

    path = resolve_model(model, [str(Path(base_dir()).parent)])
    m = WhisperModel(path, device="cpu", compute_type="int8", cpu_threads=os.cpu_count() or 1)
    audio = {k: load16k(v) for k, v in tracks.items()}
    clips = [(spk, s, audio[spk][max(0, int((s - pad) * RATE)) : int((e + pad) * RATE)]) for spk, s, e in segments]
    t0 = time.perf_counter()
    texts = []
    for spk, s, clip in clips:
        segs, _ = m.transcribe(clip, beam_size=1, without_timestamps=True, condition_on_previous_text=False)
        texts.append((spk, s, " ".join(x.text.strip() for x in segs)))
    seconds = time.perf_counter() - t0
    hyps = [" ".join(t for spk2, s, t in texts if spk2 == spk and lo - 0.4 <= s <= hi) for spk, lo, hi in placed]
    return {"plain_seconds": seconds, "plain_wer": wer(refs, hyps)}


def child(args) -> None:
    result = run_pipeline(args.model, args.child, args.realtime)
    if args.plain:
        result.update(run_plain(args.model, result["segments"], result["tracks"], result["placed"], result["refs"]))
    print(json.dumps(result))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=base_dir(), help="Whisper model (default: ../shared/models/whisper-base)")
    ap.add_argument("--speakers", type=int, nargs="+", default=[1, 2, 4, 8])
    ap.add_argument("--realtime", action="store_true", help="also replay the 2-person call at --speed 1")
    ap.add_argument("--child", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--plain", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(args)

    def measure(n: int, plain: bool = False, realtime: bool = False) -> dict:
        cmd = [sys.executable, __file__, "--child", str(n), "--model", args.model]
        cmd += ["--plain"] if plain else []
        cmd += ["--realtime"] if realtime else []
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        return json.loads(out.strip().splitlines()[-1])

    print(f"machine: {os.cpu_count()} cores; model {args.model} int8 on CPU, 2 workers, greedy")
    two = measure(2, plain=True)
    print("\n2 people taking turns (utterances up to 10 s):")
    print(
        f"  call {two['call_seconds']:.1f} s, {two['utterances']} utterances, longest {two['longest_utterance']:.1f} s"
    )
    print(
        f"  latency end of utterance -> stored: p50 {two['p50']:.2f} s, p95 {two['p95']:.2f} s (call time, simulated)"
    )
    print(
        f"  latency last word -> stored:        p50 {two['word_p50']:.2f} s, p95 {two['word_p95']:.2f} s"
        " (includes the 0.5 s of silence that ends an utterance)"
    )
    print(
        f"  pipeline wall time {two['wall_seconds']:.1f} s (model {two['compute_seconds']:.1f} s); "
        f"plain faster-whisper on the same utterances {two['plain_seconds']:.1f} s"
    )
    print(f"  throughput, pipeline vs plain faster-whisper: {two['plain_seconds'] / two['wall_seconds']:.2f}x")
    print(
        f"  real-time factor: pipeline {two['wall_seconds'] / two['call_seconds']:.3f}, "
        f"plain {two['plain_seconds'] / two['call_seconds']:.3f}"
    )
    print(f"  WER: pipeline {two['wer']:.1%}, plain faster-whisper {two['plain_wer']:.1%}")
    if two["early_ms"]:
        print(
            f"  early transcription after {two['early_ms']} ms of silence: {two['early_kept']} kept, "
            f"{two['early_discarded']} discarded ({two['early_discarded_seconds']:.1f} s of model time repeated)"
        )
    print(f"  peak memory (pipeline process) {two['peak_rss_mb']:.0f} MB")
    if args.realtime:
        live = measure(2, realtime=True)
        print(
            f"  same call paced in real time (--speed 1): end of utterance -> stored p50 {live['p50']:.2f} s, "
            f"p95 {live['p95']:.2f} s; last word -> stored p50 {live['word_p50']:.2f} s, p95 {live['word_p95']:.2f} s"
        )
    print("\nsimultaneous speakers: latency to stored from the end of utterance (and from the last word)")
    print("  speakers  utterances  speech s  p50 s  p95 s  (word p50  p95)  wall s  peak MB")
    for n in args.speakers:
        r = two if n == 2 else measure(n)
        print(
            f"  {n:8d}  {r['utterances']:10d}  {r['speech_seconds']:8.1f}  {r['p50']:5.2f}  {r['p95']:5.2f}"
            f"  ({r['word_p50']:8.2f} {r['word_p95']:5.2f})  {r['wall_seconds']:6.1f}  {r['peak_rss_mb']:7.0f}"
        )


if __name__ == "__main__":
    main()
